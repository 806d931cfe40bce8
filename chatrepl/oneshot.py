"""One answer and exit: ``chatrepl -p PROMPT`` or a prompt on stdin."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, TextIO

from .frontend import (
    ENDINGS,
    open_conversation,
    open_store,
    open_tools,
    refusal_text,
    say_error,
    stream_answer,
    tool_line,
)
from .model_options import reasoning_shown

if TYPE_CHECKING:
    from .conversation import Response
    from .records import Part
    from .screen.render import StreamRenderer
    from .store import Store

#: Exit status of an answer that arrived but did not end normally.
NOT_NORMAL = 3
#: The notes of ENDINGS without the REPL's hints.
NOTES = {status: note.split(" (")[0].split(":")[0] for status, note in ENDINGS.items()}


def one_shot(args: argparse.Namespace, prompt: str) -> int:
    """Answer ``prompt`` as it streams, save the turn, and exit with its status.

    A terminal gets the answer rendered as Markdown; a pipe or a file gets the text as sent.
    """
    from .compaction import make_room, recover
    from .context import window_of

    store = open_store(args.db, create=True)
    staged = attached(args, store)
    conversation = open_conversation(
        store, model_name=args.model, resume=args.resume, latest=args.cont, system=args.system
    )
    conversation.options.update(getattr(args, "options", {}))
    window = window_of(conversation) if conversation.turns else None
    make_room(conversation, prompt, window, say_error)  # older turns summarised if need be
    box, runner = open_tools(store, args.tools, approve_all=args.auto_approve)
    try:
        if runner is not None and runner.tools:
            # no one to ask: what is not pre-approved is denied, and stderr says how to allow it
            runner.after_call = lambda tool, arguments, part: say_tool(
                tool_line(tool, arguments, part)
            )
            response = conversation.chain(prompt, tools=runner, attachments=staged)
        else:
            response = conversation.prompt(prompt, attachments=staged)
        thoughts = ReasoningWriter(sys.stderr) if reasoning_shown() else None
        error = _stream(response, thoughts)
        if error is not None:
            say_error(error)
            again = recover(conversation, response, window, say_error)  # too long: compact, once
            if again is None:
                return 1
            response = again
            error = _stream(response, thoughts)
            if error is not None:
                say_error(error)
                return 1
    finally:
        if box is not None:
            box.close()
    if response.status == "interrupted":
        say_error("interrupted; the partial answer was saved.")
        return 130
    if response.status == "refused" and (words := refusal_text(response)):
        say_error(f"the model refused to answer: {words}")
        return NOT_NORMAL
    if response.status in ENDINGS:
        say_error(f"the answer was {ENDINGS[response.status]}.")
        return NOT_NORMAL
    return 0


def _stream(response: Response, thoughts: ReasoningWriter | None) -> str | None:
    """Show ``response`` on stdout (reasoning on stderr); the error sentence if it failed."""
    from .screen.interrupt import answering

    show: StreamRenderer | PipeWriter | Split
    if not sys.stdout.isatty():
        show = PipeWriter(thoughts)
    elif sys.stderr.isatty() and thoughts:  # one terminal: reasoning folds as in the REPL
        show = terminal_renderer(reasoning=True)
    else:
        show = Split(terminal_renderer(reasoning=False), thoughts)
    with answering(sys.stdout):  # no ^C echoed into the live display, one Ctrl-C only
        return stream_answer(response, show, notes=NOTES)


def attached(args: argparse.Namespace, store: Store) -> list[Part]:
    """The files of ``-a``, staged (kept in ``store``) for the prompt."""
    from .attachments import stage

    staged: list[Part] = []
    for source in getattr(args, "attach", None) or []:
        staged.append(stage(source, store, staged))
    return staged


def say_tool(line: str) -> None:
    """Tool activity goes to stderr: stdout holds the answer only."""
    print(line, file=sys.stderr, flush=True)


class ReasoningWriter:
    """Reasoning written to ``stream`` (stderr) as it arrives: dimmed on a terminal, made safe,
    and ended with a new line before the answer begins."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.dim = stream.isatty() and not os.environ.get("NO_COLOR")
        self.open = False  # reasoning written, its line not yet ended

    def write(self, text: str) -> None:
        from .text import make_safe

        safe = make_safe(text)
        if not safe:
            return
        self.stream.write(f"\x1b[2m{safe}\x1b[0m" if self.dim else safe)
        self.stream.flush()
        self.open = not safe.endswith("\n")

    def end(self) -> None:
        if self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False


class Split:
    """The terminal display for the answer, the reasoning to stderr (redirected elsewhere)."""

    def __init__(self, renderer: StreamRenderer, thoughts: ReasoningWriter | None) -> None:
        self.renderer, self.thoughts = renderer, thoughts

    @property
    def received(self) -> int:
        return self.renderer.received

    def reasoning(self, text: str) -> None:
        if self.thoughts:
            self.thoughts.write(text)

    def feed(self, chunk: str) -> None:
        if self.thoughts:
            self.thoughts.end()
        self.renderer.feed(chunk)

    def finish(self, note: str | None = None) -> None:
        if self.thoughts:
            self.thoughts.end()
        self.renderer.finish(note)


class PipeWriter:
    """The answer written to stdout as it arrives, exactly as sent, ending with a newline;
    the reasoning (if shown) to stderr."""

    def __init__(self, thoughts: ReasoningWriter | None = None) -> None:
        self.last = "\n"
        self.thoughts = thoughts

    def reasoning(self, text: str) -> None:
        if self.thoughts:
            self.thoughts.write(text)

    def feed(self, chunk: str) -> None:
        if self.thoughts:
            self.thoughts.end()
        sys.stdout.write(chunk)
        sys.stdout.flush()
        self.last = chunk[-1:] or self.last

    def finish(self, note: str | None = None) -> None:
        if self.thoughts:
            self.thoughts.end()
        if self.last != "\n":
            sys.stdout.write("\n")
            sys.stdout.flush()


def terminal_renderer(reasoning: bool = True) -> StreamRenderer:
    """The streaming Markdown display on the terminal, already showing its spinner."""
    from rich.console import Console

    from .screen.render import StreamRenderer

    renderer = StreamRenderer(Console(highlight=False), reasoning=reasoning)
    renderer.start()
    return renderer
