"""The REPL's parts without a terminal: a ``Repl`` wired to a pipe for input and a string for output."""

from __future__ import annotations

import io
from typing import Any

from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatrepl.conversation import Conversation
from chatrepl.providers.base import Backend
from chatrepl.providers.registry import get_backend
from chatrepl.repl.app import Repl
from chatrepl.store import Store


class Harness:
    """A Repl wired to a pipe for input and a string for output."""

    def __init__(self, repl: Repl, pipe: Any):
        self.repl, self.pipe = repl, pipe

    @property
    def out(self) -> str:
        return self.repl.console.file.getvalue()

    def clear(self) -> None:
        self.repl.console.file.seek(0)
        self.repl.console.file.truncate()

    def run(self, line: str) -> str:
        """Handle one line; what it printed."""
        self.clear()
        self.repl.handle(line)
        return self.out

    @property
    def store(self) -> Store:
        return self.repl.store

    @property
    def conversation(self) -> Conversation:
        return self.repl.conversation


def make(store: Store, model: Backend | None = None, pipe: Any = None) -> Repl:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    conversation = Conversation(model or get_backend("echo"), store=store)
    return Repl(
        store,
        conversation,
        console=console,
        input=pipe,
        output=DummyOutput(),
        history=InMemoryHistory(),
    )
