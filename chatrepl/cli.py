"""The command line: arguments, sub-commands and one-shot mode. No chat logic of its own."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:
    from .conversation import Conversation
    from .providers.base import Model
    from .repl.render import StreamRenderer
    from .store import Store

#: Sub-commands, each implemented in chatrepl.manage.
SUBCOMMANDS = (
    "list",
    "show",
    "search",
    "export",
    "title",
    "delete",
    "models",
    "tools",
    "import",
    "import-llm",
)


def chat_parser() -> argparse.ArgumentParser:
    """The parser of the chat form: interactive, or one answer with ``-p`` / stdin."""
    p = argparse.ArgumentParser(
        prog="chatrepl",
        description="Chat with large language models in the terminal. Every word is saved.",
        epilog="Manage saved conversations with: chatrepl {" + ",".join(SUBCOMMANDS) + "} --help",
    )
    p.add_argument("-m", "--model", help="model as provider:model, or an alias")
    p.add_argument("-s", "--system", help="the persona (system prompt) from now on")
    p.add_argument("-p", "--prompt", help="answer this one prompt on stdout, save it, and exit")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "-c",
        "--continue",
        dest="cont",
        action="store_true",
        help="continue the most recent conversation",
    )
    which.add_argument("-r", "--resume", metavar="ULID", help="continue this conversation")
    p.add_argument("--db", metavar="PATH", help="the database (default: chatrepl.db in the home)")
    p.add_argument("--version", action="version", version=f"chatrepl {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run chatrepl; returns the exit status (0 ok, 1 error, 2 usage, 130 interrupted, 141 the
    reader of stdout went away)."""
    argv = sys.argv[1:] if argv is None else argv
    return guarded(lambda: _main(argv))


def guarded(action: Callable[[], int]) -> int:
    """Run ``action``: an error a user can cause becomes one line on stderr and an exit status."""
    from .errors import ChatreplError

    try:
        return action()
    except ChatreplError as exc:
        print(f"chatrepl: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`chatrepl -p … | head -1`): stop quietly, as other tools do,
        # and keep Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _main(argv: list[str]) -> int:
    if len(argv) > 2 and argv[0] == "--db" and argv[2] in SUBCOMMANDS:
        argv = [argv[2], *argv[:2], *argv[3:]]  # `chatrepl --db X list` reads naturally too
    if argv and argv[0] in SUBCOMMANDS:
        from .manage import main as manage

        return manage(argv)
    args = chat_parser().parse_args(argv)
    args.prompt, args.system = as_text(args.prompt), as_text(args.system)
    prompt = args.prompt
    if prompt is None and not sys.stdin.isatty():
        prompt = read_stdin().strip()
        if not prompt.strip():
            print("chatrepl: nothing to answer: the prompt on stdin was empty.", file=sys.stderr)
            return 2
    if prompt is not None:
        return one_shot(args, prompt)
    from .repl.app import run

    return run(args)


def as_text(arg: str | None) -> str | None:
    """A command-line argument as text: bytes that were not UTF-8 (which Python keeps as lone
    surrogates, and SQLite refuses) are replaced, as on stdin."""
    if arg is None:
        return None
    return arg.encode("utf-8", "surrogateescape").decode("utf-8", errors="replace")


def read_stdin() -> str:
    """Standard input as text; bytes that are not UTF-8 are replaced, never fatal."""
    return sys.stdin.buffer.read().decode("utf-8", errors="replace")


def open_conversation(args: argparse.Namespace, store: Store) -> Conversation:
    """The conversation ``-c`` / ``-r`` / ``-m`` / ``-s`` ask for (a new one by default).

    Says once on stderr when the offline model is used because nothing is configured.
    """
    from .conversation import Conversation
    from .providers.registry import OFFLINE_ADVICE, default_model_name, get_model

    model = get_model(args.model) if args.model else None
    conversation_id = args.resume
    if args.cont:
        conversation_id = store.last_id()
    if conversation_id is not None:  # `-r ""` (an unset $ID) is a bad id, not a new chat
        conversation = load_conversation(store, conversation_id, model)
    else:
        if model is None:
            name, offline = default_model_name()
            model = get_model(name)
            if offline:
                from .config import home

                advice = OFFLINE_ADVICE.format(model=name, config=home() / "config.toml")
                print(f"chatrepl: {advice}", file=sys.stderr)
        conversation = Conversation(model, store=store)
    if args.system is not None:
        conversation.system = args.system or None
    return conversation


def load_conversation(store: Store, conversation_id: str, model: Model | None) -> Conversation:
    """A saved conversation, answered by ``model`` from now on if given.

    When its own model cannot be built any more (a provider since removed from config.toml, or
    an imported ``llm:`` model), the default model takes over, and stderr says so.
    """
    from .errors import ConfigError
    from .providers.registry import default_model_name, get_model

    if model is None:
        try:
            return store.load(conversation_id)
        except ConfigError as exc:
            model = get_model(default_model_name()[0])
            print(f"chatrepl: {exc} Continuing with {model.full_name}.", file=sys.stderr)
    conversation = store.load(conversation_id, model=model)
    conversation.set_model(model)  # recorded: the conversation goes on with this model
    return conversation


def one_shot(args: argparse.Namespace, prompt: str) -> int:
    """Answer ``prompt`` as it streams, save the round trip, and exit.

    A terminal gets the answer rendered as Markdown; a pipe or a file gets the text as sent.
    """
    from .config import db_path, ensure_home
    from .errors import ChatreplError
    from .repl.interrupt import answering
    from .store import Store

    if not (args.db or os.environ.get("CHATREPL_DB")):
        ensure_home()
    store = Store(db_path(args.db))
    conversation = open_conversation(args, store)
    response = conversation.prompt(prompt)
    show: StreamRenderer | PipeWriter = terminal_renderer() if sys.stdout.isatty() else PipeWriter()
    try:
        with answering(sys.stdout):  # no ^C echoed into the live display, one Ctrl-C only
            for chunk in response:
                show.feed(chunk)
    except ChatreplError as exc:
        show.finish()
        print(f"chatrepl: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        show.finish(note="interrupted")
        print("chatrepl: interrupted; the partial answer was saved.", file=sys.stderr)
        return 130
    show.finish()
    return 0


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
