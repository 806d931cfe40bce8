"""Tools in the REPL: the screen of an answer that calls tools, and ``/tools``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ChatreplError
from ..records import ToolCall
from ..text import make_safe, sentence
from .commands import command

if TYPE_CHECKING:
    from rich.console import Console

    from ..records import Part
    from ..screen.render import StreamRenderer
    from .session import Session


class ToolScreen:
    """The streaming display of one turn, in segments: the answer text before a tool call is
    drawn and closed, the call and its result are one compact line each, and the text after
    them starts a new segment. The approval question is asked between segments, where no live
    display is running."""

    def __init__(self, console: Console, reasoning: bool = True, shown: int = 0):
        self.console = console
        self.show_reasoning = reasoning
        self._renderer: StreamRenderer | None = None
        self._done = shown  # characters taken by the closed segments (or shown before: a
        # continued answer's first part)
        self.results = 0

    @property
    def received(self) -> int:
        """Characters of answer text taken so far (the screen shows what was saved)."""
        return self._done + (self._renderer.received if self._renderer else 0)

    def _current(self) -> StreamRenderer:
        if self._renderer is None:
            from ..screen.render import StreamRenderer

            self._renderer = StreamRenderer(self.console, reasoning=self.show_reasoning)
            self._renderer.start()
        return self._renderer

    def start(self) -> None:
        self._current()

    def feed(self, text: str) -> None:
        self._current().feed(text)

    def reasoning(self, text: str) -> None:
        renderer = self._current()
        if hasattr(renderer, "reasoning"):
            renderer.reasoning(text)

    def finish(self, note: str | None = None) -> None:
        if self._renderer is not None or note:
            self._close(note)

    def _close(self, note: str | None = None) -> None:
        renderer = self._current()
        self._renderer = None
        self._done += renderer.received
        renderer.finish(note=note)

    def event(self, event: Any) -> None:
        """A tool call closes the segment: its question and its line come next."""
        if isinstance(event, ToolCall) and self._renderer is not None:
            self._close()

    def tool_line(self, tool: Any, arguments: dict[str, Any], part: Part) -> None:
        """The compact line of a call that ran (or was denied), numbered for /tools result."""
        from rich.text import Text

        from ..frontend import tool_line

        if self._renderer is not None:
            self._close()
        self.results += 1
        width = max(self.console.width - 6, 40)
        line = Text(f"[{self.results}] ", style="dim")
        line.append(
            tool_line(tool, arguments, part, width),
            style="red" if part.data.get("is_error") else "cyan",
        )
        self.console.print(line)


@command(
    "tools",
    "[on NAME | off NAME | result N]",
    "list tools; enable or disable one; show a call's whole result",
    completes=("on", "off", "result"),
)
def cmd_tools(repl: Session, arg: str) -> None:
    """`/tools` lists the tools: the built-ins (`now`, `search_history`, `read_file`) and the
    MCP servers of config.toml, each marked on or off. `/tools on NAME` enables one for this
    session (a built-in, a server for all its tools, or SERVER.TOOL); `/tools off NAME` disables
    it. Each call is asked before it runs (yes / no / always / edit) unless config's
    `[tools] auto_approve` or `--auto-approve` says so. `/tools result N` shows the whole result
    of call N of the last answer (the compact line shows a summary)."""
    what, _, name = arg.partition(" ")
    name = name.strip()
    if what == "result":
        _show_result(repl, name)
        return
    box = repl.toolbox()
    if what in ("on", "off"):
        if not name:
            raise ChatreplError(f"/tools {what} NAME: name a tool or an MCP server.")
        changed = box.enable(name) if what == "on" else box.disable(name)
        names = ", ".join(t.name for t in changed)
        repl.say(sentence(f"{'On' if what == 'on' else 'Off'}: {make_safe(names)}"))
        repl.refresh()
        return
    if what:
        raise ChatreplError("/tools takes on NAME, off NAME or result N: see /help tools.")
    from ..tables import tools_table

    repl.console.print(tools_table(box.listing(), repl.console.width))
    repl.say("/tools on NAME enables one; calls are asked before they run.", "dim")


def _show_result(repl: Session, arg: str) -> None:
    turns = repl.conversation.turns
    results = [p for p in turns[-1].parts if p.kind == "tool_result"] if turns else []
    if not results:
        repl.say("The last answer called no tool.")
        return
    if not (arg.isascii() and arg.isdigit()) or not 1 <= int(arg) <= len(results):
        raise ChatreplError(f"Give a number from 1 to {len(results)}: /tools result N.")
    part = results[int(arg) - 1]
    repl.say(f"Result of {make_safe(str(part.data.get('name')))}:", "bold")
    repl.say(make_safe(part.text))
