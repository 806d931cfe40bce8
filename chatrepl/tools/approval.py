"""Whether a tool call may run: pre-approved name patterns, "always" answers of this session,
an approve-everything flag, and otherwise a question to the user (or, with no terminal to ask,
a denial with a hint on stderr of how to allow it)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:
    from .function import Tool


@dataclass(frozen=True)
class Decision:
    """What happens to one call: run it (perhaps with changed arguments) or deny it.

    Args:
        approved: run it.
        arguments: the arguments to run it with, when the user changed them.
        reason: why it was denied, in words the model reads.
    """

    approved: bool
    arguments: dict[str, Any] | None = None
    reason: str = ""


@dataclass(frozen=True)
class Answer:
    """The user's answer to one question: ``yes``, ``no``, ``always`` or ``edit`` (with the new
    arguments)."""

    choice: Literal["yes", "no", "always", "edit"]
    arguments: dict[str, Any] | None = None


#: Asks the user about one call (the REPL's prompt: chatrepl.repl.approve.ask).
Ask = Callable[["Tool", dict[str, Any]], Answer]
#: What the runner calls before each call.
ApprovalHook = Callable[["Tool", dict[str, Any]], Decision]

DENIED_BY_USER = "The user denied this tool call."
NO_TERMINAL = (
    "This tool call was denied: it is not pre-approved and there is no one to ask. "
    "Answer without it."
)


def approve_all(tool: Tool, arguments: dict[str, Any]) -> Decision:
    """An approval hook that runs every call (the library's default)."""
    return Decision(True)


class ApprovalPolicy:
    """The approval hook the front ends use.

    Args:
        auto_approve: name patterns (fnmatch, e.g. ``now``, ``time.*``) of tools that run
            without asking (config ``[tools] auto_approve``).
        approve_all: run every enabled tool without asking (``--auto-approve``).
        ask: the interactive question; ``None`` where there is no terminal to ask.
        stderr: where the no-terminal hint goes.
    """

    def __init__(
        self,
        auto_approve: Iterable[str] = (),
        approve_all: bool = False,
        ask: Ask | None = None,
        stderr: TextIO | None = None,
    ):
        self.patterns = list(auto_approve)
        self.approve_all = approve_all
        self.ask = ask
        self.always: set[str] = set()
        self._stderr = stderr
        self._hinted: set[str] = set()

    def pre_approved(self, tool: Tool) -> bool:
        """Whether ``tool`` runs without asking."""
        return (
            self.approve_all
            or tool.name in self.always
            or any(fnmatchcase(tool.name, p) for p in self.patterns)
        )

    def __call__(self, tool: Tool, arguments: dict[str, Any]) -> Decision:
        if self.pre_approved(tool):
            return Decision(True)
        if self.ask is None:
            self._hint(tool)
            return Decision(False, reason=NO_TERMINAL)
        answer = self.ask(tool, arguments)
        if answer.choice == "always":
            self.always.add(tool.name)
            return Decision(True)
        if answer.choice == "yes":
            return Decision(True)
        if answer.choice == "edit":
            return Decision(True, arguments=answer.arguments)
        return Decision(False, reason=DENIED_BY_USER)

    def _hint(self, tool: Tool) -> None:
        if tool.name in self._hinted:
            return
        self._hinted.add(tool.name)
        from ..text import make_safe

        name = make_safe(tool.name)
        print(
            f"chatrepl: denied a call to the tool {name} (no terminal to ask): allow it with "
            f'--auto-approve, or with auto_approve = ["{name}"] under [tools] in config.toml.',
            file=self._stderr or sys.stderr,
        )
