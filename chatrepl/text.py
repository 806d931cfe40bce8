"""Plain-text helpers shared by every front end: making untrusted model text safe to show."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

# C0 controls except tab and newline, DEL, and the C1 range (which some terminals obey too).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code == 0x1B:
        return "^["
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    return f"\\x{code:02x}"


def make_safe(text: str) -> str:
    """Return ``text`` with every terminal control character shown as visible caret notation.

    Newlines and tabs are kept; ESC becomes ``^[``, so an escape sequence from a model is shown
    as text and can never move the cursor, clear the screen, set a title or write the clipboard.
    A carriage return becomes ``^M`` so a line cannot be overwritten either, and a lone
    surrogate (a byte that was not UTF-8) becomes U+FFFD, which a terminal can be sent.
    """
    return _CONTROL.sub(_visible, valid_text(text))


def valid_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD.

    Python keeps bytes that were not UTF-8 (typed in a terminal, given on the command line) as
    lone surrogates, which SQLite and a UTF-8 terminal refuse; they become the replacement
    character, as invalid UTF-8 on stdin does.
    """
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def shorten(text: str, width: int) -> str:
    """One line of at most ``width`` characters, whitespace collapsed, with an ellipsis if cut."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


def parse_time(iso: str | None) -> datetime | None:
    """A stored timestamp as an aware datetime (UTC when it names no zone), or ``None``."""
    from datetime import UTC, datetime

    if not iso:
        return None
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
