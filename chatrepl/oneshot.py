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
    no_log = getattr(args, "no_log", False)
    store = open_log(args) if no_log else open_store(args.db, create=True)
    try:
        return _answer(args, prompt, store, no_log)
    finally:
        if store is not None:
            store.close()  # a last try at writes that failed, else kept for the next start


def _answer(args: argparse.Namespace, prompt: str, store: Store | None, no_log: bool) -> int:
    from .compaction import make_room, recover
    from .context import window_of
    from .shaped import emit
    from .templating import shaped

    staged = attached(args, None if no_log else store)
    conversation = open_conversation(
        store,  # type: ignore[arg-type] # -n with nothing to continue: no store at all
        model_name=args.model,
        resume=args.resume,
        latest=args.cont and store is not None,
        system=args.system,
    )
    if no_log:
        conversation.store = None  # -n: read what it continues, write nothing
    conversation.options.update(getattr(args, "options", {}))
    schema = getattr(args, "schema_object", None)
    ask = {"schema": schema} if schema is not None else {}
    window = window_of(conversation) if conversation.turns else None
    make_room(conversation, prompt, window, say_error)  # older turns summarised if need be
    box, runner = open_tools(store, args.tools, approve_all=args.auto_approve)  # type: ignore[arg-type]
    try:
        if schema is not None:
            from .providers.structured import conflict

            tools = runner.tools if runner is not None else None
            if problem := conflict(conversation.model, conversation.options, tools):
                say_error(problem)
                return 1
        if runner is not None and runner.tools:
            # no one to ask: what is not pre-approved is denied, and stderr says how to allow it
            runner.after_call = lambda tool, arguments, part: say_tool(
                tool_line(tool, arguments, part)
            )
            response = conversation.chain(prompt, tools=runner, attachments=staged, **ask)
        else:
            response = conversation.prompt(prompt, attachments=staged, **ask)
        thoughts = ReasoningWriter(sys.stderr) if reasoning_shown() else None
        quiet = shaped(args)  # printed whole at the end
        error = _stream(response, thoughts, quiet)
        if error is not None:
            say_error(error)
            again = recover(conversation, response, window, say_error)  # too long: compact, once
            if again is None:
                if quiet:
                    emit(args, response, error)
                return 1
            response = again
            error = _stream(response, thoughts, quiet)
            if error is not None:
                say_error(error)
                if quiet:
                    emit(args, response, error)
                return 1
    finally:
        if box is not None:
            box.close()
    if quiet and (problem := emit(args, response)):
        say_error(problem)  # the answer stays saved as it came
        return 1
    if response.status == "interrupted":
        say_error("interrupted; the partial answer was saved.")
        return 130
    if response.status == "refused" and (words := refusal_text(response)):
        say_error(f"the model refused to answer: {words}")
        return NOT_NORMAL
    if response.status in ENDINGS:
        note = NOTES[response.status]
        if response.status == "cut_off" and not no_log:  # /continue is the REPL's
            note += " (chatrepl -c, then /continue, asks for the rest)"
        say_error(f"the answer was {note}.")
        return NOT_NORMAL
    return 0


def _stream(
    response: Response, thoughts: ReasoningWriter | None, quiet: bool = False
) -> str | None:
    """Show ``response`` on stdout (reasoning on stderr), or nothing while it streams when
    ``quiet`` (a shaped answer, printed at the end); the error sentence if it failed."""
    from .screen.interrupt import answering

    show: StreamRenderer | Split
    if quiet:
        show = Split(Unseen(), thoughts)
    elif not sys.stdout.isatty():
        show = Split(Pipe(), thoughts)
    elif sys.stderr.isatty() and thoughts:  # one terminal: reasoning folds as in the REPL
        show = terminal_renderer(reasoning=True)
    else:
        show = Split(terminal_renderer(reasoning=False), thoughts)
    with answering(sys.stdout):  # no ^C echoed into the live display, one Ctrl-C only
        return stream_answer(response, show, notes=NOTES)


def open_log(args: argparse.Namespace) -> Store | None:
    """``-n``: the store only when a conversation is continued from it (read, never written);
    ``None`` otherwise, so nothing is created."""
    from .errors import ChatreplError

    if not (args.resume or args.cont):
        return None
    try:
        return open_store(args.db, create=False)
    except ChatreplError:
        if args.resume:
            raise
        return None  # -c with no database yet: a new conversation, kept in memory


def attached(args: argparse.Namespace, store: Store | None) -> list[Part]:
    """The files of ``-a`` (a folder or a glob: its text files), staged (kept in ``store``)
    for the prompt, known keys blanked out of text; a file left out of a folder is said."""
    from .expand import stage_any
    from .redact import known_keys

    staged: list[Part] = []
    sources = getattr(args, "attach", None) or []
    keys = known_keys() if sources else []
    for source in sources:
        found = stage_any(source, store, staged, keys)
        for sentence in found.refused:
            say_error(sentence)
        staged += found.parts
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
    """The answer on its display (the terminal's, a pipe, or none), the reasoning apart on
    stderr: the reasoning's line is ended before the answer goes on."""

    def __init__(self, answer: StreamRenderer | Pipe | Unseen, thoughts: ReasoningWriter | None):
        self.answer, self.thoughts = answer, thoughts

    @property
    def received(self) -> int:
        return self.answer.received

    def reasoning(self, text: str) -> None:
        if self.thoughts:
            self.thoughts.write(text)

    def feed(self, chunk: str) -> None:
        if self.thoughts:
            self.thoughts.end()
        self.answer.feed(chunk)

    def finish(self, note: str | None = None) -> None:
        if self.thoughts:
            self.thoughts.end()
        self.answer.finish(note)


class Pipe:
    """The answer written to stdout as it arrives, exactly as sent, ending with a newline."""

    def __init__(self) -> None:
        self.received = 0
        self.last = "\n"

    def feed(self, chunk: str) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()
        self.received += len(chunk)
        self.last = chunk[-1:] or self.last

    def finish(self, note: str | None = None) -> None:
        if self.last != "\n":
            sys.stdout.write("\n")
            sys.stdout.flush()


class Unseen:
    """A shaped answer's display: nothing while it streams (it is printed whole at the end)."""

    def __init__(self) -> None:
        self.received = 0

    def feed(self, chunk: str) -> None:
        self.received += len(chunk)

    def finish(self, note: str | None = None) -> None:
        pass


def terminal_renderer(reasoning: bool = True) -> StreamRenderer:
    """The streaming Markdown display on the terminal, already showing its spinner."""
    from rich.console import Console

    from .screen.render import StreamRenderer

    renderer = StreamRenderer(Console(highlight=False), reasoning=reasoning)
    renderer.start()
    return renderer
