"""Model options typed as text (``-o KEY VALUE``, ``/set KEY VALUE``): parsed and checked.

A value is read as JSON where it can be (numbers, ``true``/``false``, ``null``, lists,
objects), else kept as text. The options chatrepl knows are checked, with one sentence when a
value cannot be right; any other key passes through to the provider as it is.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import OptionError

#: reasoning_effort values servers take
EFFORTS = ("none", "minimal", "low", "medium", "high")
#: what each known option is, for /set's help and completion
KNOWN = {
    "temperature": "a number from 0 to 2",
    "max_tokens": "a positive whole number of tokens",
    "top_p": "a number from 0 to 1",
    "reasoning_effort": "one of " + ", ".join(EFFORTS),
    "thinking_budget": "a positive whole number of tokens (Anthropic)",
    "seed": "a whole number",
    "stop": "text, or a JSON list of texts",
}
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


def parse_value(text: str) -> Any:
    """``text`` as JSON when it reads as JSON (``0.7``, ``true``, ``[1, 2]``), else as text."""
    stripped = text.strip()
    try:
        value = json.loads(stripped)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text  # NaN and Infinity are not JSON a server takes
    return value


def check(key: str, value: Any) -> Any:
    """``value`` for option ``key``, made right (``"8"`` → ``8``) or rejected in one sentence."""
    if not _KEY.fullmatch(key):
        raise OptionError(
            f"{_shown(key)} is not an option name: use letters, digits and _ (e.g. temperature)."
        )
    if key in ("temperature", "top_p"):
        top = 2 if key == "temperature" else 1
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OptionError(f"{key} must be a number from 0 to {top}, not {_shown(value)}.")
        if not (math.isfinite(value) and 0 <= value <= top):
            raise OptionError(f"{key} must be a number from 0 to {top}, not {_shown(value)}.")
    elif key in ("max_tokens", "thinking_budget"):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise OptionError(
                f"{key} must be a positive whole number of tokens, not {_shown(value)}."
            )
    elif key == "reasoning_effort":
        if not isinstance(value, str) or value.strip().lower() not in EFFORTS:
            raise OptionError(
                f"reasoning_effort must be one of {', '.join(EFFORTS)}, not {_shown(value)}."
            )
        value = value.strip().lower()
    elif key == "seed" and (isinstance(value, bool) or not isinstance(value, int)):
        raise OptionError(f"seed must be a whole number, not {_shown(value)}.")
    return value


def parse(key: str, text: str) -> tuple[str, Any]:
    """One option as typed: its name and checked value."""
    key = key.strip()
    return key, check(key, parse_value(text))


def parse_all(pairs: list[list[str]] | list[tuple[str, str]] | None) -> dict[str, Any]:
    """The options of ``-o KEY VALUE`` given several times (the last one of a key wins)."""
    return dict(parse(key, value) for key, value in pairs or [])


def shown(options: dict[str, Any]) -> str:
    """Options as one line: ``temperature=0.2 max_tokens=500``."""
    return " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in options.items())


def _shown(value: Any) -> str:
    from .text import make_safe, shorten

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return repr(make_safe(shorten(text, 40))) if isinstance(value, str) else make_safe(text)


def reasoning_shown(config: dict[str, Any] | None = None) -> bool:
    """The ``show_reasoning`` setting of config.toml (default true): whether reasoning is shown
    while it streams (the REPL's ``/reasoning on|off`` changes it for the session)."""
    from .errors import ConfigError
    from .settings import load_config

    value = (load_config() if config is None else config).get("show_reasoning", True)
    if not isinstance(value, bool):
        raise ConfigError("config.toml: show_reasoning must be true or false.")
    return value
