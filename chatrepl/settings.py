"""Where chatrepl keeps its files, what config.toml says, and the keys it may use."""

from __future__ import annotations

import contextlib
import json
import os
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .files import user_path


def home() -> Path:
    """The home folder: ``$CHATREPL_HOME``, else the platform's user data folder."""
    if value := os.environ.get("CHATREPL_HOME"):
        return user_path(value)
    import platformdirs

    return Path(platformdirs.user_data_dir("chatrepl", appauthor=False))


def ensure_home() -> Path:
    """The home folder, created (private to the user) if it is missing."""
    path = home()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Cannot create the home folder {path}: {exc.strerror}.") from exc
    return path


def db_path(explicit: str | os.PathLike[str] | None = None) -> Path | str:
    """The database: ``--db``, else ``$CHATREPL_DB``, else ``db`` in config.toml, else
    ``chatrepl.db`` in the home folder. A ``postgresql://`` URL is returned as it is."""
    value = explicit or os.environ.get("CHATREPL_DB")
    if not value and (home() / "config.toml").exists():
        value = load_config().get("db")
        if value is not None and not isinstance(value, str):
            raise ConfigError(
                f"{home() / 'config.toml'}: db must be text: a file or a postgresql:// URL."
            )
    if not value:
        return home() / "chatrepl.db"
    if isinstance(value, str) and value.startswith(("postgresql://", "postgres://")):
        return value
    return user_path(value)


def history_path() -> Path:
    """The file prompt-toolkit keeps input history in."""
    return home() / "history"


def private_file(path: Path) -> Path:
    """Create ``path`` if missing, readable and writable by the user only (mode 0600)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path


def tighten(path: Path) -> None:
    """Make an existing file readable and writable by the user only (mode 0600), if it is not;
    a file chatrepl may not change is left as it is."""
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError:
        pass


def write_private(path: Path, text: str, make_folder: bool = True) -> Path:
    """Write ``text`` to ``path`` (an export), readable by the user only (mode 0600).

    Only a regular file is written (a FIFO or a device is refused); a missing folder is made
    (mode 0700) when ``make_folder``, refused otherwise.
    """
    import stat

    from .text import make_safe, valid_text

    shown = make_safe(str(path))
    if path.is_dir():
        raise ConfigError(f"{shown} is a folder: give a file name to export to.")
    if make_folder and not path.parent.exists():
        try:
            path.parent.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            raise ConfigError(f"Cannot create the folder of {shown}: {exc.strerror}.") from exc
    if not path.parent.is_dir():
        raise ConfigError(
            f"The folder {make_safe(str(path.parent))} does not exist: create it first, or "
            "export somewhere else."
        )
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise ConfigError(f"{shown} is not a regular file (a pipe or a device): not exported.")
    try:
        # O_NOFOLLOW-free but O_NONBLOCK: a FIFO made in the meantime cannot hang the export.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError(f"{shown} is not a regular file: not exported.")
            f.truncate(0)
            f.write(valid_text(text))
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError as exc:
        raise ConfigError(f"Cannot write {shown}: {exc.strerror or exc}.") from exc
    return path


def load_config(folder: Path | None = None) -> dict[str, Any]:
    """The parsed ``config.toml`` of the home folder, or ``{}`` when there is none."""
    from .files import NotRegularFileError, read_regular

    path = (folder or home()) / "config.toml"
    try:
        data = tomllib.loads(read_regular(path).decode("utf-8"))
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text: fix or remove it.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}): fix or remove it.") from exc
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to be read: fix or remove it.") from None
    except NotRegularFileError as exc:
        raise ConfigError(f"{path} is {exc.what}, not a regular file: remove it.") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}.") from exc
    for section in ("providers", "aliases"):
        if not isinstance(data.get(section, {}), dict):
            raise ConfigError(f"{path}: [{section}] must be a table.")
    if not isinstance(data.get("default_model", ""), str):
        raise ConfigError(f'{path}: default_model must be text, e.g. "openai:gpt-4o-mini".')
    return data


def load_keys(folder: Path | None = None) -> dict[str, str]:
    """Keys saved in ``keys.json`` (provider name → key), or ``{}``."""
    from .files import NotRegularFileError, read_regular

    path = (folder or home()) / "keys.json"
    try:
        data = json.loads(read_regular(path))
    except FileNotFoundError:
        return {}
    except NotRegularFileError as exc:
        raise ConfigError(f"{path} is {exc.what}, not a regular file: remove it.") from None
    except (OSError, ValueError, RecursionError):
        raise ConfigError(f"{path} is not a JSON object of provider names and keys.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object of provider names and keys.")
    tighten(path)  # a keys file others may read (copied in by hand, say) is made private
    return {str(k): str(v) for k, v in data.items()}


def save_key(provider: str, key: str, folder: Path | None = None) -> Path:
    """Store ``key`` for ``provider`` in ``keys.json`` (mode 0600)."""
    path = private_file((folder or ensure_home()) / "keys.json")
    keys = load_keys(path.parent) if path.stat().st_size else {}
    keys[provider] = key
    replace_private(path, json.dumps(keys, indent=2) + "\n")
    return path


def replace_private(path: Path, text: str) -> None:
    """Replace the file at ``path`` with ``text`` at once (a reader never sees half of it; two
    processes never share a temporary file), readable by the user only (mode 0600)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
