"""Context windows learned from refusals, kept per ``provider:model`` in the home folder.

When no window is configured or known and a server refuses a request as too long, the limit it
states ("maximum context length is 8192 tokens") is saved, else the size of the request it
refused; later runs use it (until config.toml sets ``context_window``), so compaction happens
before sending instead of after another refusal. The file is ``context_windows.json`` (0600).
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

FILE = "context_windows.json"
#: A stated limit smaller than this is a misreading, not a context window.
SMALLEST = 64

#: How servers state the limit: OpenAI and vLLM, llama.cpp, Anthropic, others.
_STATED = (
    re.compile(r"maximum context length (?:is|of) (\d[\d,]*)", re.I),
    re.compile(r"context limit: [\d, +]*> (\d[\d,]*)", re.I),
    re.compile(r"context (?:size|window|length|limit)(?: is| of)?\s*\(?\s*(\d[\d,]*)", re.I),
    re.compile(r"(\d[\d,]*) (?:tokens? )?maximum", re.I),
    re.compile(r"limit (?:is|of) (\d[\d,]*) tokens", re.I),
)
_TOKENS = re.compile(r"(\d[\d,]*) tokens", re.I)


def path() -> Path:
    from .settings import home

    return home() / FILE


def stated_limit(message: str) -> int | None:
    """The context window a refusal states, in tokens, or ``None``.

    A stated phrase wins; else the smallest "N tokens" in the message (the limit is smaller
    than the size refused: "maximum 8192 tokens … resulted in 9000 tokens").
    """
    for pattern in _STATED:
        found = [n for m in pattern.finditer(message) if (n := _number(m.group(1))) >= SMALLEST]
        if found:
            return min(found)
    found = [n for m in _TOKENS.finditer(message) if (n := _number(m.group(1))) >= SMALLEST]
    return min(found) if found else None


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def learned(model: str) -> int | None:
    """The window learned for ``provider:model``, or ``None``."""
    value = _read().get(model)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def learn(model: str, message: str, refused: int | None) -> int | None:
    """Learn ``model``'s window from a refusal whose sentence is ``message``, after a request
    of about ``refused`` tokens (an estimate); returns the window now saved, or ``None``.

    The stated limit is saved unless a window no larger was already saved (then the estimate
    misjudged the size: the refused size is saved, if smaller); with no stated limit, the
    refused size.
    """
    before = learned(model)
    stated = stated_limit(message)
    if stated is not None and (before is None or stated < before):
        window = stated
    elif refused and refused >= SMALLEST and (before is None or refused < before):
        window = refused
    else:
        return before
    _write({**_read(), model: window})
    return window


def _read() -> dict[str, object]:
    try:
        data = json.loads(path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(data: dict[str, object]) -> None:
    """Replace the file at once (a reader never sees half of it), private to the user; a home
    that cannot be written only means the window is learned again next time."""
    from .errors import ConfigError
    from .settings import ensure_home, replace_private

    try:
        folder = ensure_home()
    except ConfigError:
        return
    with contextlib.suppress(OSError):
        replace_private(folder / FILE, json.dumps(data, indent=1, sort_keys=True))
