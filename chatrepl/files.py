"""Reading a file the user named, only if it is a regular file: a named pipe (FIFO), a device
or a socket (given directly, through a symbolic link, or swapped in while it is opened) is
refused at once instead of blocking forever on the first read."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class NotRegularFileError(OSError):
    """The path names something other than a regular file; ``what`` says what, in words."""

    def __init__(self, path: os.PathLike[str] | str, what: str):
        super().__init__(f"{os.fspath(path)} is {what}, not a regular file")
        self.what = what


def what_it_is(mode: int) -> str:
    """``a folder``, ``a named pipe (FIFO)``, ``a device``, ``a socket``: a file type in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular(path: os.PathLike[str] | str) -> os.stat_result:
    """The status of the regular file at ``path`` (links followed).

    Raises:
        FileNotFoundError, PermissionError, OSError: it cannot be looked at.
        NotRegularFileError: it is a folder, a FIFO, a device or a socket.
    """
    if "\x00" in os.fspath(path):  # no file can be named so (os.stat raises ValueError)
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), os.fspath(path))
    status = os.stat(path)
    if not stat.S_ISREG(status.st_mode):
        raise NotRegularFileError(path, what_it_is(status.st_mode))
    return status


def read_regular(path: os.PathLike[str] | str, limit: int | None = None) -> bytes:
    """The bytes of the regular file at ``path``: at most ``limit + 1`` of them when ``limit``
    is given (so a caller can tell that it is too large). Never blocks on a FIFO: the file is
    checked, then opened without blocking and checked again (it may have been replaced)."""
    check_regular(path)
    fd = os.open(Path(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(path, what_it_is(mode))
        return f.read() if limit is None else f.read(limit + 1)


def user_path(text: str | os.PathLike[str]) -> Path:
    """A path as the user typed it, ``~`` and ``~user`` expanded as a shell does: a ``~name``
    of no known user stays as typed (``Path.expanduser`` would raise RuntimeError)."""
    return Path(os.path.expanduser(os.fspath(text)))
