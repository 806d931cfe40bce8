"""Known keys blanked out of text that came from outside (command output, attached files)
before it is sent to a model or saved: the user's own secrets must not travel with a prompt."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from .errors import ChatreplError

if TYPE_CHECKING:
    from collections.abc import Iterable

#: A value shorter than this is not blanked out ("none", "x": placeholders, not keys, and
#: replacing them would garble ordinary text).
SHORTEST = 8


def known_keys() -> list[str]:
    """The values of the keys chatrepl knows: every provider's key as it would be used, the
    environment variables the providers name for keys, and every value in keys.json. Longest
    first, so that a key containing another is blanked out whole."""
    from . import settings as cfg
    from .providers.registry import providers

    found: list[str] = []
    try:
        infos = providers()
    except ChatreplError:  # a bad config.toml: the built-in providers still name their keys
        infos = providers({})
    for info in infos.values():
        if info.api_key:
            found.append(info.api_key)
        if env := info.settings.get("api_key_env"):
            found.append(os.environ.get(str(env), ""))
    with contextlib.suppress(ChatreplError):  # a damaged keys.json is reported where it is used
        found += cfg.load_keys().values()
    return sorted({k for k in found if len(k.strip()) >= SHORTEST}, key=len, reverse=True)


def redact(text: str, keys: Iterable[str]) -> str:
    """``text`` with each of ``keys`` (and its surrounding-space-free form) as ``***``."""
    from .text import scrub

    return scrub(text, [v for key in keys for v in (key, key.strip())], shortest=SHORTEST)
