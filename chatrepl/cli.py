"""The command line: arguments, sub-commands and one-shot mode. No chat logic of its own.

``chatrepl --version`` answers before anything else is imported: this module imports only
``sys`` and the version at the top (no ``argparse``, no ``typing``, no ``__future__``), and
``chatrepl/__init__.py`` likewise.
"""

import sys

from ._version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

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
    "usage",
    "import",
    "import-llm",
    "db",
    "templates",
    "keys",
)


def suggestion(word: str) -> str | None:
    """The sub-command ``word`` was probably meant to be (``lst`` → ``list``), if any."""
    if not word or word.startswith("-"):
        return None
    import difflib  # only for a word that may be a mistyped command

    close = difflib.get_close_matches(word.lower(), SUBCOMMANDS, n=1, cutoff=0.6)
    return close[0] if close else None


def _blank(text: str) -> bool:
    from .text import is_blank  # not at start-up: text.py compiles its patterns on import

    return is_blank(text)


def commands_epilog() -> str:
    """The sub-commands under ``chatrepl --help``: a title, then the names wrapped at the
    terminal's width between names, never inside one."""
    import shutil
    import textwrap

    width = max(shutil.get_terminal_size().columns - 2, 40)
    names = textwrap.fill(
        ", ".join(SUBCOMMANDS),
        width,
        initial_indent="  ",
        subsequent_indent="  ",
        break_long_words=False,
        break_on_hyphens=False,
    )
    return f"commands for saved conversations (chatrepl COMMAND --help tells more):\n{names}"


def chat_parser() -> "argparse.ArgumentParser":
    """The parser of the chat form: interactive, or one answer with ``-p`` / stdin."""
    import argparse

    from .frontend import Parser

    p = Parser(
        prog="chatrepl",
        description="Chat with large language models in the terminal. Every word is saved.",
        epilog=commands_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the epilog is laid out below
    )
    p.add_argument("-m", "--model", help="model as provider:model, or an alias")
    p.add_argument("-s", "--system", help="the persona (system prompt) from now on")
    p.add_argument("-p", "--prompt", help="answer this one prompt on stdout, save it, and exit")
    p.add_argument(
        "-a",
        "--attach",
        action="append",
        metavar="PATH|URL|-",
        help="attach a file (image, PDF or text) to the prompt; repeatable; - reads it from stdin",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "-c",
        "--continue",
        dest="cont",
        action="store_true",
        help="continue the most recent conversation",
    )
    which.add_argument("-r", "--resume", metavar="ULID", help="continue this conversation")
    p.add_argument(
        "-o",
        "--option",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        help="a model option: temperature, max_tokens, reasoning_effort, thinking_budget, …",
    )
    p.add_argument("--db", metavar="PATH", help="the database (default: chatrepl.db in the home)")
    p.add_argument(
        "-T",
        "--tool",
        dest="tools",
        action="append",
        metavar="NAME",
        help="enable a tool: now, search_history, read_file, an MCP server, or SERVER.TOOL",
    )
    p.add_argument(
        "--auto-approve",
        action="store_true",
        help="run the enabled tools without asking first",
    )
    add_pipeline_arguments(p)
    p.add_argument("--version", action="version", version=f"chatrepl {__version__}")
    return p


def add_pipeline_arguments(p: "argparse.ArgumentParser") -> None:
    """llm's habits: templates, no logging, structured output, code extraction, JSON out."""
    p.add_argument("-t", "--template", metavar="NAME", help="use a saved template (see: templates)")
    p.add_argument(
        "--param",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        help="fill the template's $KEY with VALUE; repeatable",
    )
    p.add_argument(
        "--save",
        metavar="NAME",
        help="save this command (persona, model, options, tools, schema, prompt) as a template "
        "and exit without sending",
    )
    p.add_argument(
        "-n", "--no-log", action="store_true", help="answer without saving anything to the database"
    )
    p.add_argument(
        "--schema",
        metavar="SCHEMA",
        help="answer as JSON fitting SCHEMA: JSON, a file, or fields like 'name, age int, bio: …'",
    )
    extract = p.add_mutually_exclusive_group()
    extract.add_argument(
        "-x", "--extract", action="store_true", help="print only the first fenced code block"
    )
    extract.add_argument(
        "--extract-last", action="store_true", help="print only the last fenced code block"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the whole response as one JSON object (text, usage, ending …)",
    )


def main(argv: list[str] | None = None) -> int:
    """Run chatrepl; returns the exit status (0 ok, 1 error, 2 usage, 130 interrupted, 141 the
    reader of stdout went away)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--version"]:  # the commonest check of all, answered before anything loads
        print(f"chatrepl {__version__}")
        return 0
    from .frontend import guarded

    return guarded(lambda: _main(argv))


def _main(argv: list[str]) -> int:
    if len(argv) > 2 and argv[0] == "--db" and argv[2] in SUBCOMMANDS:
        argv = [argv[2], *argv[:2], *argv[3:]]  # `chatrepl --db X list` reads naturally too
    if argv and argv[0] == "templates":
        from .manage_templates import main as templates

        return templates(argv)
    if argv and argv[0] == "keys":
        from .manage_keys import main as keys

        return keys(argv)
    if argv and argv[0] in SUBCOMMANDS:
        from .manage import main as manage

        return manage(argv)
    if argv and (meant := suggestion(argv[0])) and argv[0] not in SUBCOMMANDS:
        from .text import hide_urls, make_safe, shorten

        print(
            f"chatrepl: '{make_safe(shorten(hide_urls(argv[0]), 40))}' is not a command: "
            f"did you mean `chatrepl {meant}`?",
            file=sys.stderr,
        )
        return 2
    args = chat_parser().parse_args(argv)
    args.prompt, args.system = as_text(args.prompt), as_text(args.system)
    from .errors import OptionError
    from .model_options import parse_all

    try:
        args.options = parse_all([(as_text(k), as_text(v)) for k, v in args.option or []])
    except OptionError as exc:
        from .frontend import say_error

        say_error(str(exc))
        return 2
    if _pipeline(args):
        from .templating import UsageError, prepare

        try:
            status = prepare(args)  # --save, -t, --param, --schema
        except UsageError as exc:
            from .frontend import say_error

            say_error(str(exc))
            return 2
        if status is not None:
            return status
    prompt = args.prompt
    if prompt is not None and _blank(prompt):
        print("chatrepl: nothing to answer: the prompt given with -p is empty.", file=sys.stderr)
        return 2
    if "-" in (args.attach or []) and prompt is None:
        print(
            "chatrepl: with -a -, stdin is the attachment: give the prompt with -p.",
            file=sys.stderr,
        )
        return 2
    template = getattr(args, "template_obj", None)
    whole = template is not None and not template.needs_input()  # its prompt needs no input
    if prompt is None and not sys.stdin.isatty() and "-" not in (args.attach or []):
        prompt = read_stdin().strip()
        if _blank(prompt) and not whole:
            print("chatrepl: nothing to answer: the prompt on stdin was empty.", file=sys.stderr)
            return 2
    elif prompt is not None and "-" not in (args.attach or []) and piped():
        prompt = with_stdin(read_stdin(), prompt)
    if prompt is None and whole:
        prompt = ""  # a template whose prompt is whole answers at once, as llm's -t does
    if prompt is not None:
        from .oneshot import one_shot

        if template is not None:
            from .templating import fill

            prompt = fill(args, prompt)
        return one_shot(args, prompt)
    if getattr(args, "json", False) or args.schema or args.extract or args.extract_last:
        print(
            "chatrepl: --schema, -x, --extract-last and --json shape a one-shot answer: give the "
            "prompt with -p or on stdin.",
            file=sys.stderr,
        )
        return 2
    if template is not None:
        from .templating import fill

        fill(args, "")  # the persona, with its $params; each message is wrapped in the REPL
    from .repl.app import run

    return run(args)


def _pipeline(args: "argparse.Namespace") -> bool:
    """Whether llm's template or schema flags were given (their modules load only then)."""
    return bool(args.save or args.template or args.param or args.schema is not None)


def as_text(arg: str | None) -> str | None:
    """A command-line argument as text: bytes that were not UTF-8 (which Python keeps as lone
    surrogates, and SQLite refuses) are replaced, as on stdin."""
    if arg is None:
        return None
    return arg.encode("utf-8", "surrogateescape").decode("utf-8", errors="replace")


def piped() -> bool:
    """Whether stdin is a pipe or a file (``echo text | chatrepl -p …``, ``< file``): not a
    terminal, and not an empty device such as /dev/null that a program started from a script
    or a service inherits."""
    import os
    import stat

    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):  # no stdin at all
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def with_stdin(piped_text: str, prompt: str) -> str:
    """The message of ``-p PROMPT`` with text piped in: the piped text, a blank line, then the
    prompt (as llm does); just the prompt when nothing came."""
    text = piped_text.rstrip().lstrip("\r\n")
    return f"{text}\n\n{prompt}" if text.strip() else prompt


def read_stdin() -> str:
    """Standard input as text; bytes that are not UTF-8 are replaced, never fatal."""
    return sys.stdin.buffer.read().decode("utf-8", errors="replace")
