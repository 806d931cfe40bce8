"""A folder or a glob given to ``-a`` or ``/attach`` (``-a src/``, ``-a 'src/**/*.py'``),
expanded to the text files it holds, each staged under its relative name.

A binary file among them is refused with one sentence each; the files together may not pass a
total cap (``[attachments] max_folder_kb`` of config.toml), and one sentence says where the
expansion stopped. Hidden files and folders (a name starting with ``.``: ``.git``, ``.venv``)
are left out of a folder, as a glob leaves them out.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .attachments import AttachmentError, Settings, human_size, keep, kind, load
from .errors import ConfigError
from .files import user_path
from .records import Part

if TYPE_CHECKING:
    from .store import Store

DEFAULT_MAX_FOLDER_KB = 1024  # the text of one folder or glob, all files together
_MAGIC = ("*", "?", "[")


@dataclass
class Expanded:
    """What a folder or glob gave: the staged parts, and one sentence per file left out."""

    parts: list[Part] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def is_many(source: str) -> bool:
    """Whether ``source`` names a folder or is a glob (rather than one file, a URL or ``-``)."""
    if source == "-" or "://" in source:
        return False
    path = user_path(source)
    if path.is_dir():
        return True
    return any(c in source for c in _MAGIC) and not path.exists()


def max_folder_bytes(config: dict[str, Any] | None = None) -> int:
    """``[attachments] max_folder_kb`` of config.toml, in bytes.

    Raises:
        ConfigError: it is not a number above 0.
    """
    if config is None:
        from .settings import load_config

        config = load_config()
    table = config.get("attachments", {})
    value = table.get("max_folder_kb", DEFAULT_MAX_FOLDER_KB) if isinstance(table, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError("config.toml: [attachments] max_folder_kb must be a number above 0.")
    return int(value * 1024)


def expand(
    source: str,
    store: Store | None,
    limits: Settings,
    cap: int,
    keys: Sequence[str] = (),
) -> Expanded:
    """Stage the text files of the folder or glob ``source``, in name order, until their sizes
    together would pass ``cap`` bytes; their bytes are kept in ``store`` once by hash.

    Raises:
        AttachmentError: nothing matches, or the folder cannot be read.
    """
    from .text import make_safe, shorten

    shown = "'" + make_safe(shorten(source, 60)) + "'"
    found = list(_files(source))
    if not found:
        raise AttachmentError(f"No files match {shown}.")
    out, total = Expanded(), 0
    for path, name in found:
        named = "'" + make_safe(shorten(name, 60)) + "'"
        try:
            if _binary(path):
                out.refused.append(
                    f"Left out {named}: a binary file (a folder or a glob gives its text files only)."
                )
                continue
            loaded = load(str(path), limits, keys=keys)
        except (AttachmentError, OSError) as exc:
            out.refused.append(f"Left out {named}: {_reason(exc)}")
            continue
        if kind(loaded.part) != "text":
            out.refused.append(
                f"Left out {named}: a binary file (a folder or a glob gives its text files only)."
            )
            continue
        size = len(loaded.content)
        if total + size > cap:
            left = len(found) - len(out.parts) - len(out.refused)
            out.refused.append(
                f"Stopped at {human_size(total)}: {left} more file{'s' if left != 1 else ''} "
                f"of {shown} would pass the cap of {human_size(cap)} "
                "([attachments] max_folder_kb in config.toml)."
            )
            break
        total += size
        loaded.part.data["name"] = name
        loaded.part.data["from"] = source
        keep(loaded, store)
        out.parts.append(loaded.part)
    return out


def _binary(path: Path) -> bool:
    """Whether the file at ``path`` starts like a binary file (a NUL byte, or not UTF-8)."""
    with path.open("rb") as f:
        head = f.read(8192)
    if b"\x00" in head:
        return True
    for trim in range(4):  # the head may end inside a character
        try:
            head[: len(head) - trim].decode("utf-8")
            return False
        except UnicodeDecodeError:
            continue
    return True


def _reason(exc: Exception) -> str:
    """Why a file was left out, from its error."""
    if isinstance(exc, OSError):
        return f"cannot read it ({exc.strerror or exc})."
    return str(exc)


def _files(source: str) -> Iterator[tuple[Path, str]]:
    """The regular files of ``source`` with the names they are staged under, sorted."""
    path = user_path(source)
    if path.is_dir():
        root = path.resolve()
        base = path.name if path.name not in ("", ".", "..") else ""
        found = []
        for folder, dirs, files in os.walk(root, onerror=_refuse):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                if name.startswith("."):
                    continue
                full = Path(folder) / name
                rel = full.relative_to(root).as_posix()
                found.append((full, f"{base}/{rel}" if base else rel))
        yield from sorted(found, key=lambda f: f[1])
        return
    pattern = os.path.expanduser(source)
    for match in sorted(glob.glob(pattern, recursive=True)):
        full = Path(match)
        if full.is_file():
            yield full, full.as_posix()


def _refuse(exc: OSError) -> None:
    from .text import make_safe

    raise AttachmentError(
        f"Cannot read the folder {make_safe(exc.filename)}: {exc.strerror or exc}."
    ) from None


def stage_any(
    source: str, store: Store | None, staged: list[Part], keys: Sequence[str] = ()
) -> Expanded:
    """Stage ``source`` for the next prompt: one file (a path, a URL, ``-``), or the text files
    of a folder or glob; the files left out of a folder are said in ``refused``.

    Raises:
        AttachmentError: the file cannot be staged, or nothing of the folder or glob can.
    """
    from .attachments import settings, stage

    limits = settings()
    if not is_many(source):
        return Expanded([stage(source, store, staged, limits, keys=keys)])
    return expand(source, store, limits, max_folder_bytes(), keys)
