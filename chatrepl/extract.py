"""The fenced code blocks of an answer: what ``-x`` / ``--extract`` and ``--extract-last`` print."""

from __future__ import annotations

import re

#: A fenced block: a fence of three or more backticks or tildes at the start of a line, an
#: optional info string, the code, and a closing fence of the same character, at least as long.
_FENCE = re.compile(
    r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)\n(?P<code>.*?)"
    r"^ {0,3}(?P=fence)[`~]*[ \t]*$",
    re.DOTALL | re.MULTILINE,
)


def fenced_blocks(text: str) -> list[str]:
    """The code of every fenced block in ``text``, in order (each ends with a new line)."""
    return [m.group("code") for m in _FENCE.finditer(text.replace("\r\n", "\n"))]


def fenced_block(text: str, last: bool = False) -> str | None:
    """The first (or ``last``) fenced code block of ``text``, or ``None`` when it has none."""
    blocks = fenced_blocks(text)
    if not blocks:
        return None
    return blocks[-1] if last else blocks[0]
