"""How the terminal behaves while an answer streams: no echo, and one interruption that stops it.

With echo on, a Ctrl-C typed during an answer prints ``^C`` into rich's live region and shifts
it by a row (duplicated lines). So while an answer streams, typed keys are not echoed (``ISIG``
stays on, so Ctrl-C still sends SIGINT). What was typed blind is taken out of the terminal when
the answer ends, or before a question is asked (:func:`hold_typed`): a key typed before a
question was on the screen never answers it, and the text comes back at the next prompt
(:func:`typed_ahead`) instead of being lost.

The first SIGINT raises KeyboardInterrupt where the main thread is (usually waiting for the
next chunk); further ones are ignored until the answer has been finalised and saved, so a
second impatient Ctrl-C cannot cut the final write short.

SIGTERM and SIGQUIT stop the answer the same way (they raise :class:`Terminated`, a
KeyboardInterrupt, so the caller's Ctrl-C path saves the turn as interrupted and the echo comes
back). Once the block is left, the process exits with the conventional status, 128 plus the
signal (143 for SIGTERM, 131 for SIGQUIT): a block that handled the interruption itself raises
``SystemExit`` as it ends; one that let it through leaves the caller to exit with
``Terminated.exit_status``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

#: Keys typed blind (while an answer streamed), kept for the next prompt.
_held: list[str] = []
#: What typed text keeps out: the sequences keys like the arrows send, and other controls.
_KEY_SEQUENCE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|O.|.)?|[\x00-\x08\x0b-\x1f\x7f]")

#: The signals that stop an answer: Ctrl-C, and the two that ask a program to end.
STOPPING = (
    signal.SIGINT,
    signal.SIGTERM,
    *([signal.SIGQUIT] if hasattr(signal, "SIGQUIT") else []),
)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGQUIT arrived while an answer streamed: stop it as Ctrl-C would, then exit."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_status = 128 + signum


def exit_status(exc: BaseException, default: int = 130) -> int:
    """The status to exit with after ``exc`` ended an answer: 143 / 131 after SIGTERM / SIGQUIT."""
    return exc.exit_status if isinstance(exc, Terminated) else default


@contextlib.contextmanager
def answering(stdin: IO[Any] | None = None) -> Iterator[None]:
    """Echo off and a once-only interruption (Ctrl-C, SIGTERM, SIGQUIT) for the block.

    After SIGTERM or SIGQUIT the block raises ``SystemExit(128 + signal)`` as it ends, unless an
    exception (the :class:`Terminated` itself) is already on its way out.
    """
    with _no_echo(stdin if stdin is not None else sys.stdin), _one_interrupt() as ending:
        yield
    if ending:
        raise SystemExit(128 + ending[0])


@contextlib.contextmanager
def _one_interrupt() -> Iterator[list[int]]:
    """Raise at the first stopping signal, record the rest; yields the termination signals seen."""
    ending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield ending
        return
    fired = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal fired
        if signum != signal.SIGINT and not ending:
            ending.append(signum)
        if not fired:
            fired = True
            raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOPPING}
    try:
        yield ending
    except Terminated:
        ending.clear()  # on its way out: the caller exits with its status
        raise
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _terminal(stream: IO[Any]) -> tuple[int, list[Any]] | None:
    """The terminal ``stream`` reads from and its settings; ``None`` for anything else (a pipe
    in tests, Windows)."""
    try:
        import termios
    except ImportError:
        return None
    try:
        if not stream.isatty():
            return None
        fd = stream.fileno()
        return fd, termios.tcgetattr(fd)
    except (OSError, ValueError, AttributeError, termios.error):
        return None


@contextlib.contextmanager
def _no_echo(stream: IO[Any]) -> Iterator[None]:
    terminal = _terminal(stream)
    if terminal is None:
        yield
        return
    import termios

    fd, saved = terminal
    quiet = list(saved)
    quiet[3] = (quiet[3] & ~(termios.ECHO | termios.ECHOCTL)) | termios.ISIG
    try:
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except termios.error:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(termios.error):
            _take_typed(fd, quiet)
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, saved)


def hold_typed(stream: IO[Any] | None = None) -> None:
    """Take what waits unread in the terminal (typed blind) and keep it for the next prompt,
    so that no question reads it as its answer."""
    terminal = _terminal(stream if stream is not None else sys.stdin)
    if terminal is None:
        return
    import termios

    fd, now = terminal
    with contextlib.suppress(termios.error):
        _take_typed(fd, now)
    with contextlib.suppress(termios.error):
        termios.tcsetattr(fd, termios.TCSANOW, now)


def _take_typed(fd: int, settings: list[Any]) -> None:
    """Read what waits unread, a line typed only in part too, without waiting, into the keys
    kept for the next prompt. The terminal is left reading at once: the caller sets it back."""
    import termios

    at_once = list(settings)
    at_once[3] &= ~termios.ICANON
    at_once[6] = list(settings[6])
    at_once[6][termios.VMIN], at_once[6][termios.VTIME] = 0, 0
    termios.tcsetattr(fd, termios.TCSANOW, at_once)
    taken = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(fd, 4096):
            taken += chunk
    keep_typed(taken.decode("utf-8", "replace"))


def keep_typed(keys: str) -> None:
    """Keep ``keys`` (typed, not yet read as input) for the next prompt, as text."""
    if text := _KEY_SEQUENCE.sub("", keys.replace("\r", "\n")):
        _held.append(text)


def typed_ahead() -> str:
    """The text typed blind since the last prompt (its lines as typed, without the last
    Enter), and forget it."""
    text = "".join(_held).rstrip("\n")
    _held.clear()
    return text


@contextlib.contextmanager
def ctrl_c_to_child() -> Iterator[None]:
    """Let a child program (an editor) have Ctrl-C while this process waits for it.

    A Python handler, unlike ``SIG_IGN``, is reset to the default in the child on exec, so the
    child still gets Ctrl-C as usual while this process shrugs it off.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
