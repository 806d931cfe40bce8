"""Copying text to the system clipboard: a clipboard tool if one is there, else OSC 52."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import IO

#: (program, arguments, the environment variable that says its display is there, or None).
TOOLS: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("wl-copy", (), "WAYLAND_DISPLAY"),
    ("xclip", ("-selection", "clipboard"), "DISPLAY"),
    ("xsel", ("--clipboard", "--input"), "DISPLAY"),
    ("pbcopy", (), None),
)


def copy(text: str, out: IO[str] | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Put ``text`` on the clipboard; returns how (the tool's name, or ``"OSC 52"``).

    Each tool gets the text on its stdin, run as an argument list without a shell. With no
    tool that works, the text is sent to the terminal as an OSC 52 sequence, which most
    modern terminals (and tmux with ``set-clipboard on``) turn into a clipboard write.
    """
    env = os.environ if environ is None else environ
    data = text.encode("utf-8")
    for program, args, needs in TOOLS:
        if needs and not env.get(needs):
            continue
        path = shutil.which(program, path=env.get("PATH"))
        if not path:
            continue
        try:
            result = subprocess.run(
                [path, *args],
                input=data,
                stdout=subprocess.DEVNULL,  # xclip keeps running: never wait on its pipes
                stderr=subprocess.DEVNULL,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0:
            return program
    out = out if out is not None else sys.stdout
    out.write(osc52(text))
    out.flush()
    return "OSC 52"


def osc52(text: str) -> str:
    """The escape sequence asking the terminal to put ``text`` on the clipboard."""
    payload = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return f"\x1b]52;c;{payload}\x07"
