"""API keys kept out of dotfiles: the operating system's keyring (the ``keyring`` extra) when it
has a working backend, else ``keys.json`` in the home folder (mode 0600).

The keyring cannot list what it holds, so the names chatrepl stored there are kept in
``keyring-names.json`` beside ``keys.json`` (names only, never a key). ``keyring`` discovers
its backends through entry points, which is slow: it is imported only when a key is set or
removed, or looked up because the environment does not hold it and that list names it (a
start-up with no keys in the keyring never imports it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import settings as cfg
from .errors import ChatreplError

#: The keyring's service name for chatrepl's keys (the user name is the key's name).
SERVICE = "chatrepl"
#: The file listing which names are in the keyring.
INDEX = "keyring-names.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class KeyStoreError(ChatreplError):
    """A key that cannot be stored, found or removed."""


@dataclass(frozen=True)
class Stored:
    """Where a key went: ``keyring`` (with the backend's name) or ``keys.json`` (its path)."""

    where: str
    detail: str

    def sentence(self, name: str) -> str:
        if self.where == "keyring":
            return f"Stored the key for {name} in the system keyring ({self.detail})."
        return f"Stored the key for {name} in {self.detail} (readable by you only)."


def check_name(name: str) -> str:
    """``name`` if it can name a key (a provider's name), else one sentence."""
    from .text import make_safe, shorten

    if not _NAME.fullmatch(name):
        raise KeyStoreError(
            f"'{make_safe(shorten(name, 40))}' cannot name a key: use the provider's name, "
            "e.g. openai (letters, digits, '_', '.', '-')."
        )
    return name


def keys_path(folder: Path | None = None) -> Path:
    """``keys.json`` in the home folder."""
    return (folder or cfg.home()) / "keys.json"


def keyring_backend() -> Any:
    """The keyring backend to use, or ``None``: the ``keyring`` package is not installed, or
    it found no usable backend (``keyring.backends.fail.Keyring``)."""
    import importlib.util

    if importlib.util.find_spec("keyring") is None:
        return None
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
    except Exception:  # noqa: BLE001 - a broken keyring setup means "no keyring", never a crash
        return None
    if isinstance(backend, fail.Keyring):
        return None
    chained = getattr(backend, "backends", None)
    if chained is not None and not chained:  # a chainer with nothing behind it
        return None
    return backend


def backend_name(backend: Any) -> str:
    """A short name for a keyring backend (``SecretService Keyring``, ``macOS Keyring``)."""
    return str(getattr(backend, "name", None) or type(backend).__name__)


def lookup(name: str, folder: Path | None = None) -> str | None:
    """The key stored for ``name``: the keyring first (when chatrepl stored it there), then
    ``keys.json``; ``None`` if neither has it. A keyring that fails is passed over (the key may
    still be in ``keys.json``)."""
    backend = keyring_backend() if name in _index(folder) else None
    if backend is not None:
        try:
            value = backend.get_password(SERVICE, name)
        except Exception:  # noqa: BLE001 - a locked or broken keyring: try keys.json
            value = None
        if value:
            return str(value)
    return cfg.load_keys(folder).get(name) or None


def store(name: str, key: str, folder: Path | None = None) -> Stored:
    """Keep ``key`` for ``name``: in the keyring if one works, else in ``keys.json``."""
    check_name(name)
    key = key.strip()
    if not key:
        raise KeyStoreError("No key was given: nothing stored.")
    if any(c.isspace() for c in key) or not key.isprintable():
        raise KeyStoreError("A key is one word of printable characters: nothing stored.")
    backend = keyring_backend()
    if backend is not None:
        try:
            backend.set_password(SERVICE, name, key)
        except Exception:  # noqa: BLE001 - refused (locked, read-only): keys.json instead
            backend = None
        else:
            _index_add(name, folder)
            _drop_from_file(name, folder)  # one place per key: no stale copy on disk
            return Stored("keyring", backend_name(backend))
    path = cfg.save_key(name, key, folder)
    return Stored("keys.json", str(path))


def remove(name: str, folder: Path | None = None) -> list[str]:
    """Forget the key of ``name`` wherever it is stored; where it was removed from."""
    check_name(name)
    removed = []
    backend = keyring_backend()
    if backend is not None:
        try:
            if backend.get_password(SERVICE, name) is not None:
                backend.delete_password(SERVICE, name)
                removed.append("the system keyring")
        except Exception:  # noqa: BLE001 - nothing there, or the keyring refused
            pass
    _index_remove(name, folder)
    if _drop_from_file(name, folder):
        removed.append(str(keys_path(folder)))
    return removed


def stored_names(folder: Path | None = None) -> dict[str, list[str]]:
    """Every name with a stored key, and where: ``keyring`` and/or ``keys.json``."""
    found: dict[str, list[str]] = {}
    for name in _index(folder):
        found.setdefault(name, []).append("keyring")
    for name in cfg.load_keys(folder):
        found.setdefault(name, []).append("keys.json")
    return dict(sorted(found.items()))


# --- the files ----------------------------------------------------------------------------------


def _index_path(folder: Path | None) -> Path:
    return (folder or cfg.home()) / INDEX


def _index(folder: Path | None) -> list[str]:
    try:
        data = json.loads(_index_path(folder).read_text("utf-8"))
    except (OSError, ValueError):
        return []
    return [str(n) for n in data if isinstance(n, str)] if isinstance(data, list) else []


def _write_index(names: list[str], folder: Path | None) -> None:
    path = _index_path(folder)
    if not names and not path.exists():
        return
    target = cfg.private_file((folder or cfg.ensure_home()) / INDEX)
    cfg.replace_private(target, json.dumps(sorted(set(names)), indent=2) + "\n")


def _index_add(name: str, folder: Path | None) -> None:
    names = _index(folder)
    if name not in names:
        _write_index([*names, name], folder)


def _index_remove(name: str, folder: Path | None) -> None:
    names = _index(folder)
    if name in names:
        _write_index([n for n in names if n != name], folder)


def _drop_from_file(name: str, folder: Path | None) -> bool:
    """Remove ``name`` from ``keys.json``; whether it was there."""
    path = keys_path(folder)
    keys = cfg.load_keys(folder)
    if name not in keys:
        return False
    del keys[name]
    cfg.replace_private(path, json.dumps(keys, indent=2) + "\n")
    return True
