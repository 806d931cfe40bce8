"""Writing a message in the user's editor: ``$VISUAL``, else ``$EDITOR``, run without a shell."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ..errors import ChatreplError
from ..screen.interrupt import ctrl_c_to_child

#: Tried in order when neither VISUAL nor EDITOR is set.
FALLBACKS = ("editor", "nano", "vi")


def editor_command(environ: Mapping[str, str] | None = None) -> list[str]:
    """The editor to run, as an argument list (the file name is appended to it)."""
    env = os.environ if environ is None else environ
    for name in ("VISUAL", "EDITOR"):
        value = env.get(name, "").strip()
        if value:
            try:
                command = shlex.split(value)
            except ValueError as exc:
                raise ChatreplError(f"Cannot read ${name} ({exc}): fix its quoting.") from exc
            if command:
                return command
    for name in FALLBACKS:
        if shutil.which(name):
            return [name]
    raise ChatreplError("No editor found: set VISUAL or EDITOR, e.g. export EDITOR=nano.")


def edit(initial: str = "", environ: Mapping[str, str] | None = None) -> str:
    """Open the editor on a private temporary file holding ``initial``; return what was saved.

    The file is created with mode 0600 and removed afterwards.

    Raises:
        ChatreplError: the editor cannot be run or exited with an error.
    """
    command = editor_command(environ)
    fd, name = tempfile.mkstemp(prefix="chatrepl-", suffix=".md")
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(initial)
        try:
            with ctrl_c_to_child():
                result = subprocess.run([*command, str(path)], check=False)
        except FileNotFoundError as exc:
            raise ChatreplError(
                f"Cannot run the editor '{command[0]}': set VISUAL or EDITOR to one that is "
                "installed."
            ) from exc
        except OSError as exc:
            raise ChatreplError(f"Cannot run the editor '{command[0]}': {exc.strerror}.") from exc
        if result.returncode != 0:
            raise ChatreplError(
                f"The editor '{command[0]}' exited with status {result.returncode}: "
                "nothing was sent."
            )
        return path.read_text("utf-8", errors="replace")
    finally:
        path.unlink(missing_ok=True)
