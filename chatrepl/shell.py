"""``!CMD`` in the REPL: run a command the user typed, capture its output (capped), and make it a
text attachment for the next prompt: ``$ CMD``, the output, then the exit status when not 0.

The command runs through the shell (the user typed it, as at any shell prompt) in a session of
its own: it has no terminal to change, reads nothing (stdin is empty), and Ctrl-C stops the
whole process group. Known keys are blanked out of what it printed before anything is shown,
sent or saved.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import os
import re
import select
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .records import Part

DEFAULT_MAX_OUTPUT = 100_000  # characters of output kept; [shell] max_output in config.toml
_GRACE = 2.0  # seconds a stopped command has to end after SIGTERM before SIGKILL
_QUIET = 0.1  # seconds to wait for more output once the command itself has ended
# terminal escape sequences (colours, cursor moves, titles): noise for a model
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


@dataclass
class Ran:
    """A command that ran: what it printed (cleaned), how it ended."""

    command: str
    output: str
    status: int | None  # the exit status; None when it was stopped
    cut: bool = False  # the output went past the cap and the rest was dropped
    max_output: int = DEFAULT_MAX_OUTPUT

    @property
    def stopped(self) -> bool:
        return self.status is None

    def text(self) -> str:
        """What goes with the next prompt: ``$ CMD``, the output, how it ended."""
        lines = [f"$ {self.command}"]
        if self.output:
            lines.append(self.output.rstrip("\n"))
        if self.cut:
            lines.append(
                f"[output cut at {self.max_output:,} characters: [shell] max_output in config.toml]"
            )
        if self.stopped:
            lines.append("[stopped by Ctrl-C]")
        elif self.status:
            lines.append(f"[exit status {self.status}]")
        return "\n".join(lines)


def max_output(config: dict[str, Any] | None = None) -> int:
    """``[shell] max_output`` of config.toml: the characters of output kept.

    Raises:
        ConfigError: it is not a whole number above 0.
    """
    if config is None:
        from .settings import load_config

        config = load_config()
    table = config.get("shell", {})
    if not isinstance(table, dict):
        raise ConfigError("config.toml: [shell] must be a table.")
    value = table.get("max_output", DEFAULT_MAX_OUTPUT)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError("config.toml: [shell] max_output must be a whole number above 0.")
    return value


def run(
    command: str,
    limit: int = DEFAULT_MAX_OUTPUT,
    keys: list[str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> Ran:
    """Run ``command`` through the shell, keeping at most ``limit`` characters of its output
    (stdout and stderr together); ``keys``: values blanked out of it; ``on_line`` is given
    each whole line as it comes (cleaned, keys blanked out), to show progress.

    Ctrl-C (KeyboardInterrupt) stops the command's whole process group and returns what it had
    printed (``status`` None); another interruption (SIGTERM to chatrepl) is raised again once
    the command is stopped.
    """
    posix = os.name == "posix"
    process = subprocess.Popen(  # noqa: S602 - the user typed this command, as at a shell prompt
        command,
        shell=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=posix,
        creationflags=0 if posix else getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0),
    )
    assert process.stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    # a little past the cap is kept, so that a key cut in two by it is still blanked out whole
    room = limit + max((len(k) for k in keys or ()), default=0)
    chunks: list[str] = []
    size, cut, status, pending = 0, False, None, ""
    fd = process.stdout.fileno()
    try:
        while True:
            ended = process.poll() is not None
            ready, _, _ = select.select([fd], [], [], _QUIET if ended else 0.5)
            if not ready:
                if ended:  # done; a background child may hold the pipe: not waited for
                    break
                continue
            data = os.read(fd, 65536)
            if not data:
                break
            if cut:
                continue  # the rest is read and dropped: the command runs to its end
            piece = decoder.decode(data)
            if on_line is not None:
                pending = _lines(pending + piece, on_line, keys)
            chunks.append(piece)
            size += len(piece)
            cut = size > room
        status = process.wait()
    except KeyboardInterrupt as exc:
        _stop(process)
        if type(exc) is not KeyboardInterrupt:  # SIGTERM or SIGQUIT to chatrepl: leave
            raise
    finally:
        process.stdout.close()
    chunks.append(decoder.decode(b"", final=True))
    output = clean("".join(chunks))
    if keys:
        from .redact import redact

        output = redact(output, keys)
    cut = cut or len(output) > limit
    return Ran(command, output[:limit], status, cut, limit)


def _lines(text: str, on_line: Callable[[str], None], keys: list[str] | None) -> str:
    """Give ``on_line`` each whole line of ``text``; the unfinished rest is returned."""
    from .redact import redact

    *whole, rest = text.split("\n")
    for line in whole:
        on_line(redact(clean(line), keys or []))
    return rest


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End ``process`` and everything it started: SIGTERM to its group, SIGKILL if it lingers."""
    for how in (signal.SIGTERM, getattr(signal, "SIGKILL", signal.SIGTERM)):
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            if os.name == "posix":
                os.killpg(process.pid, how)
            else:
                process.kill()
        try:
            process.wait(_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


def clean(output: str) -> str:
    """``output`` as a person saw it on a terminal: escape sequences (colours) removed, each
    line as its last carriage return left it (a progress bar's final state), valid text."""
    from .text import valid_text

    output = _ESCAPES.sub("", output.replace("\r\n", "\n"))
    lines = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in output.split("\n")]
    return valid_text("\n".join(lines))


def part(ran: Ran, keys: list[str] | None = None) -> Part:
    """The staged attachment for ``ran``: a text part holding what is sent (saved once, in the
    turn's parts; it has no bytes in the attachments table)."""
    from .redact import redact

    text = redact(ran.text(), keys or [])  # the command line too (a key typed into it)
    command = redact(ran.command, keys or [])
    encoded = text.encode("utf-8")
    data = {
        "sha256": hashlib.sha256(encoded).hexdigest(),
        "name": f"$ {command}",
        "mime": "text/plain",
        "size": len(encoded),
        "command": command,
        "status": ran.status,
    }
    return Part("attachment", text, data, 0)


def is_command(part: Part) -> bool:
    """Whether ``part`` is a command's output (staged by ``!CMD``)."""
    return part.kind == "attachment" and "command" in part.data


def rest_of(ran: Ran, shown: int, tail: int = 10) -> tuple[int, list[str]]:
    """After the first ``shown`` lines of ``ran``'s output were shown as they came: how many
    lines are left out, and the last lines to show (at most ``tail``)."""
    lines = ran.output.rstrip("\n").split("\n") if ran.output else []
    rest = lines[shown:]
    if len(rest) <= tail + 1:
        return 0, rest
    return len(rest) - tail, rest[-tail:]
