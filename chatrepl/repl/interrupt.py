"""How the terminal behaves while an answer streams: no echo, and one Ctrl-C that stops it.

With echo on, a Ctrl-C typed during an answer prints ``^C`` into rich's live region and shifts
it by a row (duplicated lines). So while an answer streams, typed keys are not echoed (``ISIG``
stays on, so Ctrl-C still sends SIGINT) and whatever was typed is discarded afterwards.

The first SIGINT raises KeyboardInterrupt where the main thread is (usually waiting for the
next chunk); further ones are ignored until the answer has been finalised and saved, so a
second impatient Ctrl-C cannot cut the final write short.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any


@contextlib.contextmanager
def answering(stdin: IO[Any] | None = None) -> Iterator[None]:
    """Echo off and a once-only Ctrl-C for the duration of the block."""
    with _no_echo(stdin if stdin is not None else sys.stdin), _one_interrupt():
        yield


@contextlib.contextmanager
def _one_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _no_echo(stream: IO[Any]) -> Iterator[None]:
    try:
        import termios

        fd = stream.fileno()
        if not stream.isatty():
            raise OSError
        saved = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError, AttributeError):
        yield  # not a terminal (a pipe in tests, Windows): nothing to do
        return
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
            termios.tcsetattr(fd, termios.TCSANOW, saved)
            termios.tcflush(fd, termios.TCIFLUSH)  # keys typed blind are dropped, not sent


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
