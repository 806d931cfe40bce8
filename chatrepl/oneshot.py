"""One answer and exit: ``chatrepl -p PROMPT`` or a prompt on stdin."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .frontend import (
    ENDINGS,
    open_conversation,
    open_store,
    open_tools,
    say_error,
    stream_answer,
    tool_line,
)

if TYPE_CHECKING:
    from .records import Part
    from .repl.render import StreamRenderer
    from .store import Store

#: Exit status of an answer that arrived but did not end normally.
NOT_NORMAL = 3
#: The notes of ENDINGS without the REPL's hints.
NOTES = {status: note.split(" (")[0].split(":")[0] for status, note in ENDINGS.items()}


def one_shot(args: argparse.Namespace, prompt: str) -> int:
    """Answer ``prompt`` as it streams, save the turn, and exit with its status.

    A terminal gets the answer rendered as Markdown; a pipe or a file gets the text as sent.
    """
    from .repl.interrupt import answering

    store = open_store(args.db)
    staged = attached(args, store)
    conversation = open_conversation(
        store, model_name=args.model, resume=args.resume, latest=args.cont, system=args.system
    )
    box, runner = open_tools(store, args.tools, approve_all=args.auto_approve)
    if runner is not None and runner.tools:
        # no one to ask: what is not pre-approved is denied, and stderr says how to allow it
        runner.after_call = lambda tool, arguments, part: say_tool(tool_line(tool, arguments, part))
        response = conversation.chain(prompt, tools=runner, attachments=staged)
    else:
        response = conversation.prompt(prompt, attachments=staged)
    show: StreamRenderer | PipeWriter = terminal_renderer() if sys.stdout.isatty() else PipeWriter()
    try:
        with answering(sys.stdout):  # no ^C echoed into the live display, one Ctrl-C only
            error = stream_answer(response, show, notes=NOTES)
    finally:
        if box is not None:
            box.close()
    if error is not None:
        say_error(error)
        return 1
    if response.status == "interrupted":
        say_error("interrupted; the partial answer was saved.")
        return 130
    if response.status in ENDINGS:
        say_error(f"the answer was {ENDINGS[response.status]}.")
        return NOT_NORMAL
    return 0


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


class PipeWriter:
    """The answer written to stdout as it arrives, exactly as sent, ending with a newline."""

    def __init__(self) -> None:
        self.last = "\n"

    def feed(self, chunk: str) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()
        self.last = chunk[-1:] or self.last

    def finish(self, note: str | None = None) -> None:
        if self.last != "\n":
            sys.stdout.write("\n")
            sys.stdout.flush()


def terminal_renderer() -> StreamRenderer:
    """The streaming Markdown display on the terminal, already showing its spinner."""
    from rich.console import Console

    from .repl.render import StreamRenderer

    renderer = StreamRenderer(Console(highlight=False))
    renderer.start()
    return renderer
