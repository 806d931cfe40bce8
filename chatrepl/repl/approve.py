"""The question asked before a tool call runs in the REPL: the tool and its arguments, then
one key: y (yes), n (no), a (always: this tool, this session) or e (edit the arguments first)."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from ..text import make_safe
from ..tools.approval import Answer

if TYPE_CHECKING:
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output
    from rich.console import Console

    from ..tools.function import Tool

#: Lines of arguments shown before the rest is cut.
SHOWN_LINES = 30
QUESTION = "Run it? [y]es [n]o [a]lways (this tool, this session) [e]dit: "


def describe_call(tool: Tool, arguments: dict[str, Any]) -> str:
    """The call as shown: the tool's name, then its arguments as indented JSON (made safe)."""
    body = json.dumps(arguments, indent=2, ensure_ascii=False, default=str)
    lines = body.splitlines()
    if len(lines) > SHOWN_LINES:
        lines = [*lines[:SHOWN_LINES], f"… ({len(lines) - SHOWN_LINES} more lines)"]
    return make_safe(f"Tool call: {tool.name}\n" + "\n".join(lines))


def parse_arguments(text: str) -> dict[str, Any]:
    """Edited arguments: a JSON object, or ValueError with one sentence."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise ValueError("the arguments must be a JSON object, {…}")
    return value


class Approver:
    """Asks the user about each call (an ``ApprovalPolicy``'s ``ask``).

    Args:
        console: where the call is shown.
        input / output: prompt-toolkit's (the terminal by default; a pipe in tests).
    """

    def __init__(self, console: Console, input: Input | None = None, output: Output | None = None):
        self.console = console
        self.input = input
        self.output = output

    def __call__(self, tool: Tool, arguments: dict[str, Any]) -> Answer:
        self.console.print(describe_call(tool, arguments), markup=False, highlight=False)
        self._hold_typed()
        while True:
            key = self._key()
            if key in ("y", "a", "n"):
                return Answer({"y": "yes", "a": "always", "n": "no"}[key])  # type: ignore[arg-type]
            edited = self._edit(arguments)
            if edited is not None:
                return Answer("edit", edited)

    def _hold_typed(self) -> None:
        """Only a key typed once the question shows answers it: what was typed before (while
        the answer streamed, or read ahead by the last prompt) goes to the next prompt."""
        from prompt_toolkit.input import create_input
        from prompt_toolkit.input.typeahead import get_typeahead

        from ..screen.interrupt import hold_typed, keep_typed

        hold_typed()
        try:
            read_ahead = get_typeahead(self.input or create_input())
        except (OSError, ValueError, io.UnsupportedOperation):
            return  # no terminal to read from: nothing was read ahead
        keep_typed("".join(key.data for key in read_ahead))

    def _key(self) -> str:
        """One key of y / n / a / e; Ctrl-D, Esc and Enter are n. Ctrl-C stops the whole turn,
        as it does everywhere: it raises KeyboardInterrupt (the turn is saved as interrupted,
        its open calls closed, nothing more is sent)."""
        from prompt_toolkit import PromptSession
        from prompt_toolkit.key_binding import KeyBindings

        keys = KeyBindings()
        for key in "ynae":

            @keys.add(key)
            @keys.add(key.upper())
            def _(event: Any, key: str = key) -> None:
                event.app.exit(result=key)

        @keys.add("c-c")
        def _(event: Any) -> None:
            event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

        @keys.add("c-d")
        @keys.add("escape", eager=True)
        @keys.add("enter")
        def _(event: Any) -> None:
            event.app.exit(result="n")

        @keys.add("<any>")
        def _(event: Any) -> None:  # anything else: keep waiting for one of the keys
            pass

        session: PromptSession[str] = PromptSession(
            input=self.input, output=self.output, key_bindings=keys
        )
        try:
            return session.prompt(QUESTION)
        except EOFError:
            return "n"

    def _edit(self, arguments: dict[str, Any]) -> dict[str, Any] | None:
        """The arguments edited as one line of JSON (checked before it is accepted); ``None``
        on Ctrl-C / Ctrl-D (back to the question)."""
        from prompt_toolkit import PromptSession
        from prompt_toolkit.validation import ValidationError, Validator

        class JsonObject(Validator):
            def validate(self, document: Any) -> None:
                try:
                    parse_arguments(document.text)
                except ValueError as exc:
                    raise ValidationError(len(document.text), str(exc)) from None

        session: PromptSession[str] = PromptSession(input=self.input, output=self.output)
        try:
            text = session.prompt(
                "Arguments (JSON): ",
                default=json.dumps(arguments, ensure_ascii=False, default=str),
                validator=JsonObject(),
                validate_while_typing=False,
            )
        except (KeyboardInterrupt, EOFError):
            return None
        return parse_arguments(text)
