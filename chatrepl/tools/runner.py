"""Running the calls a model asks for: find the tool, ask the approval hook, run it with a time
limit and a cancel signal, and turn whatever happened into a ``tool_result`` part.

Nothing here raises for a tool's sake: an unknown tool, a denial, an exception, a time-out, an
interruption and a repeated call each become a result the model reads (``is_error`` set).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ToolError
from ..records import Part, ToolCall
from .approval import ApprovalHook, approve_all
from .function import Tool, as_tool

#: Seconds a tool may run before its result is an error.
DEFAULT_TIMEOUT = 30.0
#: How many times one call (same tool, same arguments) may run in one turn.
DEFAULT_MAX_REPEATS = 2
#: Longest result text handed back to the model, in characters.
MAX_RESULT_CHARS = 100_000

INTERRUPTED = "Interrupted: the user stopped this tool call."
#: The first line of the result of a call whose arguments the user changed before it ran.
EDITED = "The user changed the arguments of this call before it ran; it ran with: {arguments}"


class Runner:
    """Runs tool calls for one conversation.

    Args:
        tools: the enabled tools (Tool objects or plain functions).
        approve: the approval hook run before each call (default: approve everything).
        timeout: seconds each call may take.
        max_repeats: identical calls allowed per turn; a further one is refused.
        before_call / after_call: optional observers (display): ``before_call(tool, args)``
            once approved, ``after_call(tool, args, part)`` once the result is known.
    """

    def __init__(
        self,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        approve: ApprovalHook = approve_all,
        timeout: float = DEFAULT_TIMEOUT,
        max_repeats: int = DEFAULT_MAX_REPEATS,
        before_call: Callable[[Tool, dict[str, Any]], None] | None = None,
        after_call: Callable[[Tool | None, dict[str, Any], Part], None] | None = None,
    ):
        self.tools: dict[str, Tool] = {}
        for item in tools:
            self.add(as_tool(item))
        self.approve = approve
        self.timeout = timeout
        self.max_repeats = max_repeats
        self.before_call = before_call
        self.after_call = after_call
        self._seen: Counter[str] = Counter()

    def add(self, tool: Tool) -> None:
        """Offer ``tool`` from now on (replacing one with the same wire name)."""
        self.tools[tool.wire_name] = tool

    def remove(self, tool: Tool) -> None:
        """Stop offering ``tool``."""
        self.tools.pop(tool.wire_name, None)

    def specs(self) -> list[Any]:
        """The enabled tools as ``records.ToolSpec`` for a provider."""
        return [t.to_spec() for t in self.tools.values()]

    def find(self, name: str) -> Tool | None:
        """The tool a call names, by wire name or by display name."""
        if name in self.tools:
            return self.tools[name]
        return next((t for t in self.tools.values() if t.name == name), None)

    def start_turn(self) -> None:
        """Forget the calls counted by the repeat guard: a new turn begins."""
        self._seen.clear()

    def run(self, call: ToolCall, cancel: threading.Event | None = None) -> Part:
        """Run one call; its ``tool_result`` part (``data``: call_id, name, is_error)."""
        cancel = cancel or threading.Event()
        tool = self.find(call.name)
        arguments = dict(call.arguments)
        if tool is None:
            names = ", ".join(sorted(self.tools)) or "none"
            return self._done(
                None,
                call,
                arguments,
                f"Error: there is no tool named {call.name!r}; the tools are: {names}.",
                True,
            )
        if call.raw is not None:
            return self._done(
                tool,
                call,
                arguments,
                "Error: the arguments were not valid JSON; send a JSON object.",
                True,
            )
        key = tool.wire_name + "\0" + json.dumps(arguments, sort_keys=True, default=str)
        if self._seen[key] >= self.max_repeats:
            return self._done(
                tool,
                call,
                arguments,
                f"Refused: this exact call already ran {self._seen[key]} times in this turn and "
                "its result will not change; use the earlier result or change the arguments.",
                True,
            )
        decision = self.approve(tool, arguments)
        if not decision.approved:
            return self._done(tool, call, arguments, decision.reason or "Denied.", True)
        edited = decision.arguments is not None and dict(decision.arguments) != arguments
        if decision.arguments is not None:
            arguments = dict(decision.arguments)
        self._seen[key] += 1
        if self.before_call:
            self.before_call(tool, arguments)
        text, is_error = self._execute(tool, arguments, cancel)
        if edited:
            said = json.dumps(arguments, ensure_ascii=False, default=str)
            text = EDITED.format(arguments=said) + "\n" + text
        return self._done(tool, call, arguments, text, is_error, edited)

    def run_all(
        self, calls: Iterable[ToolCall], cancel: threading.Event | None = None
    ) -> list[Part]:
        """Run each call in order; once ``cancel`` is set, the rest are closed as interrupted
        (every call needs a result for the provider to accept the history)."""
        cancel = cancel or threading.Event()
        parts = []
        for call in calls:
            if cancel.is_set():
                tool = self.find(call.name)
                parts.append(self._done(tool, call, dict(call.arguments), INTERRUPTED, True))
            else:
                parts.append(self.run(call, cancel))
        return parts

    def _execute(
        self, tool: Tool, arguments: dict[str, Any], cancel: threading.Event
    ) -> tuple[str, bool]:
        stop = threading.Event()  # set on a time-out or an interruption: the tool may stop
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["text"] = tool.call(arguments, stop)
            except BaseException as exc:  # noqa: BLE001 - every failure is the model's result
                box["error"] = exc

        worker = threading.Thread(target=work, name=f"tool {tool.name}", daemon=True)
        worker.start()
        deadline = time.monotonic() + self.timeout
        while worker.is_alive():
            try:
                worker.join(0.05)
            except KeyboardInterrupt:  # Ctrl-C where SIGINT raises: the same as ``cancel``
                cancel.set()
            if cancel.is_set():
                stop.set()
                return INTERRUPTED, True
            if time.monotonic() >= deadline and worker.is_alive():
                stop.set()
                return f"Error: the tool took longer than {self.timeout:g} s and was stopped.", True
        if "error" in box:
            return error_text(box["error"]), True
        text = box.get("text", "")
        if not isinstance(text, str):
            from .function import result_text

            text = result_text(text)
        if len(text) > MAX_RESULT_CHARS:
            text = text[:MAX_RESULT_CHARS] + f"\n[cut: the result was {len(text)} characters]"
        return text, False

    def _done(
        self,
        tool: Tool | None,
        call: ToolCall,
        arguments: dict[str, Any],
        text: str,
        is_error: bool,
        edited: bool = False,
    ) -> Part:
        data: dict[str, Any] = {"call_id": call.id, "name": call.name, "is_error": is_error}
        if edited:  # the turn moves edited_arguments onto its call part
            data.update(edited=True, edited_arguments=arguments)
        part = Part(kind="tool_result", text=text, data=data)
        if self.after_call:
            self.after_call(tool, arguments, part)
        return part


def error_text(exc: BaseException) -> str:
    """An exception as the result a model reads: its type (unless ours) and its message."""
    if isinstance(exc, ToolError):
        return f"Error: {exc}"
    message = str(exc) or "no message"
    return f"Error: {type(exc).__name__}: {message}"
