"""What a slash-command may use of the running session: a small interface, so the commands
need not import the app that runs them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.console import Console

    from ..conversation import Conversation, Response
    from ..model_list import ModelList
    from ..records import Part
    from ..store import Store
    from ..templates import Template
    from ..tools.toolbox import Toolbox


class Session(Protocol):
    """The running REPL as the commands see it."""

    store: Store
    conversation: Conversation
    console: Console
    listed: list[str]  # ids of the last /list or /search, for /resume N
    running: bool
    staged: list[Part]  # files /attach staged for the next prompt
    template: Template | None  # the template wrapping each message (/template)
    template_params: dict[str, str]  # its $params
    no_log: bool  # -n: nothing is saved

    def say(self, message: str, style: str = "") -> None:
        """Print one message (never parsed as markup)."""

    def error(self, message: str, hint: str = "") -> None:
        """Print an error sentence on one line."""

    def confirm(self, question: str) -> bool:
        """Ask a y/N question."""

    def echo_prompt(self, text: str) -> None:
        """Show a message as it looks when typed."""

    def send(self, text: str) -> None:
        """Send ``text`` as the next turn and show the answer."""

    def show(self, response: Response) -> None:
        """Stream ``response`` to the screen."""

    def load(self, conversation_id: str) -> Conversation:
        """A saved conversation, with a fallback model if its own cannot be used."""

    def switch_to(self, conversation: Conversation) -> None:
        """Make ``conversation`` the live one."""

    def show_resumed(self, n: int = 3) -> None:
        """Say which conversation this is and show its last turns."""

    def refresh(self) -> None:
        """Recompute what the toolbar and the completer show."""

    def model_list(self, fresh: bool = False) -> ModelList:
        """Which models exist and which are ready (the answer `chatrepl models` gives)."""

    def toolbox(self) -> Toolbox:
        """The session's tools (made on first use)."""

    def prefill(self, text: str, send: Callable[[str], None]) -> None:
        """Start the next input line with ``text`` for the user to edit; a message sent from
        that line goes to ``send`` instead of becoming the next turn."""
