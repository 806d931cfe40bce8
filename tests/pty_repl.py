"""The real ``chatrepl`` in a pseudo-terminal, read through pyte (tests/terminal.py), typed at
as a person would; shared by every end-to-end REPL test."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import child_env
from terminal import Terminal

from chatrepl.store import Store


@contextmanager
def chatrepl(home: Path, *args: str, **env: str) -> Iterator[Terminal]:
    """``chatrepl -m openai:test ARGS`` in a 40×100 terminal, ready at its prompt."""
    environment = child_env(TERM="xterm-256color", PYTHONIOENCODING="utf-8", **env)
    with Terminal(
        [sys.executable, "-m", "chatrepl", "-m", "openai:test", *args],
        environment,
        cwd=str(home.parent),
    ) as t:
        t.wait_prompt()
        yield t


def db(home: Path) -> Store:
    return Store(home / "chatrepl.db", create=False)


def say(t: Terminal, text: str, answer: str) -> None:
    """Send ``text`` and wait until ``answer`` shows and the prompt is back."""
    t.line(text)
    t.wait_for(re.escape(answer))
    t.wait_prompt()
