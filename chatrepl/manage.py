"""The sub-commands that work on saved conversations from the shell.

``chatrepl list | show | search | export | title | delete | models | usage | import |
import-llm | db`` (``templates`` and ``keys`` live in manage_templates.py and manage_keys.py):
cli.py hands :func:`main` the arguments, the sub-command first. Each command prints a rich
table (or rendered Markdown) on a terminal, plain tab-separated lines into a pipe, and stable
JSON with ``--json``. The exit status is 0 on success, 1 on an error (one line on stderr,
``chatrepl: ...``), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ChatreplError, NotFoundError, UsageError
from .files import user_path
from .frontend import guarded, open_store, say_error

if TYPE_CHECKING:
    from rich.console import Console

    from .records import ConversationSummary, TurnRecord
    from .store import Store

#: Fields of a conversation in ``list --json``, in this order.
SUMMARY_FIELDS = (
    "id",
    "title",
    "model",
    "system",
    "created",
    "updated",
    "turns",
    "input_tokens",
    "output_tokens",
)
#: Fields of a hit in ``search --json``, in this order.
HIT_FIELDS = ("conversation_id", "title", "response_id", "started", "snippet")
ALL = 0  # ``-n 0``: no limit

ID_HELP = "a conversation id, a unique prefix of one, or last (the most recently active)"


# --- the parser --------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """The parser of every sub-command."""
    from .frontend import Parser, SubParser

    root = Parser(
        prog="chatrepl",
        description="Work with saved conversations from the shell.",
    )
    commands = root.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=SubParser
    )

    db = SubParser(add_help=False)  # a parent of the sub-commands, of their type
    db.add_argument(
        "--db", metavar="PATH", help="the database (default: $CHATREPL_DB, else the home's)"
    )

    def command(name: str, summary: str, example: str, handler: Callable[..., int]) -> Any:
        p = commands.add_parser(
            name,
            parents=[db] if name not in ("models", "tools") else [],
            help=summary,
            description=summary,
            epilog=f"example: {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(handler=handler)
        return p

    def count(p: argparse.ArgumentParser, what: str, default: int) -> None:
        p.add_argument(
            "-n",
            type=_count,
            default=default,
            metavar="N",
            help=f"show at most N {what} (default {default}; 0 for all)",
        )

    def branches(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--all-branches",
            action="store_true",
            help="Markdown: every branch, not only the current path",
        )
        p.add_argument(
            "--reasoning", action="store_true", help="Markdown: the model's reasoning too"
        )

    def json_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print stable JSON (see the README)")

    p = command(
        "list",
        "The most recently active conversations: id, title, model, turns, last active.",
        "chatrepl list -n 5",
        cmd_list,
    )
    count(p, "conversations", 20)
    json_flag(p)

    p = command(
        "show",
        "One conversation, turn by turn (Markdown on a terminal; Markdown text into a pipe).",
        "chatrepl show 01JD8X",
        cmd_show,
    )
    p.add_argument("id", metavar="ID", help=ID_HELP)
    form = p.add_mutually_exclusive_group()
    form.add_argument(
        "--json",
        action="store_true",
        help="everything saved, as `export --format json`, with the tokens and cost",
    )
    form.add_argument("--markdown", action="store_true", help="the Markdown export, as text")
    branches(p)

    p = command(
        "search",
        "Full-text search over every prompt and answer, best matches first.",
        "chatrepl search goat names",
        cmd_search,
    )
    p.add_argument("query", nargs="+", metavar="QUERY", help="words that must all occur in a turn")
    p.add_argument("--reasoning", action="store_true", help="search the model's reasoning too")
    count(p, "matches", 20)
    json_flag(p)

    p = command(
        "export",
        "Write a conversation as Markdown (to read), HTML (one page to share) or JSON (to "
        "import again).",
        "chatrepl export 01JD8X --format json -o goat.json",
        cmd_export,
    )
    p.add_argument("id", metavar="ID", help=ID_HELP)
    p.add_argument(
        "--format",
        choices=("markdown", "html", "json"),
        default="markdown",
        help="markdown (the default), html (one self-contained page: every branch, images "
        "embedded) or json",
    )
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (mode 0600) instead of stdout"
    )
    branches(p)

    p = command(
        "title",
        "Set a conversation's title.",
        'chatrepl title 01JD8X "Goat names"',
        cmd_title,
    )
    p.add_argument("id", metavar="ID", help=ID_HELP)
    p.add_argument("text", nargs="+", metavar="TEXT", help="the new title")

    p = command(
        "delete",
        "Delete conversations and all their turns, after a confirmation.",
        "chatrepl delete 01JD8X",
        cmd_delete,
    )
    p.add_argument(
        "ids", nargs="+", metavar="ID", help="conversation ids, unique prefixes of them, or last"
    )
    p.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="do not ask (required when stdin is not a terminal)",
    )

    p = command(
        "models",
        "The providers configured, whether each has its key, their models, aliases, the default.",
        "chatrepl models",
        cmd_models,
    )
    json_flag(p)

    add_tools_command(command, json_flag)

    p = command(
        "usage",
        "Tokens and cost of the saved history (every branch), by model, day or conversation.",
        "chatrepl usage --since 2026-12-01 --by day",
        cmd_usage,
    )
    p.add_argument(
        "--since",
        type=_day,
        metavar="DATE",
        help="only turns from this local date on: YYYY-MM-DD, or today",
    )
    p.add_argument(
        "--by",
        choices=("model", "day", "conversation"),
        default="model",
        help="one line per model (the default), local day or conversation",
    )
    json_flag(p)

    p = command(
        "import",
        "Import conversations exported with `chatrepl export --format json`.",
        "chatrepl import goat.json",
        cmd_import,
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON exports; - reads stdin")

    p = command(
        "import-llm",
        "Import the conversations logged by the `llm` tool (its logs.db is only read).",
        "chatrepl import-llm ~/.config/io.datasette.llm/logs.db",
        cmd_import_llm,
    )
    p.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="llm's logs.db or its folder (default: $LLM_USER_PATH/logs.db, else llm's own)",
    )
    p.add_argument(
        "--keys",
        action="store_true",
        help="also copy llm's API keys (into the keyring, else keys.json)",
    )
    add_db_command(commands)
    return root


#: The most rows a count asks for; more is as many as there are.
MOST = 1_000_000_000


def _count(text: str) -> int:
    from .text import make_safe, shorten

    try:
        n = int(text)
    except ValueError:
        shown = make_safe(shorten(text, 20))
        raise argparse.ArgumentTypeError(f"'{shown}' is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError("N cannot be negative (0 shows all)")
    return min(n, MOST)


def main(argv: list[str]) -> int:
    """Run the sub-command ``argv[0]`` with its arguments; returns the exit status."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else 2
    return guarded(lambda: _run(args))


def run_command(add_command: Callable[[Any], None], argv: list[str]) -> int:
    """Run the one sub-command ``add_command`` registers (``chatrepl keys``, ``chatrepl
    templates``); the exit status (2 for a usage error, already printed by argparse)."""
    from .frontend import Parser, SubParser

    root = Parser(prog="chatrepl")
    add_command(
        root.add_subparsers(
            dest="command", required=True, metavar="COMMAND", parser_class=SubParser
        )
    )
    try:
        args = root.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else 2
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    try:
        return args.handler(args)
    except UsageError as exc:
        say_error(str(exc))
        return 2


# --- helpers shared by the commands -------------------------------------------------------------


def _terminal() -> bool:
    return sys.stdout.isatty()


def _console() -> Console:
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False)


def _print_json(data: Any) -> None:
    sys.stdout.write(json_text(data))


def json_text(data: Any) -> str:
    """``data`` as indented JSON, safe on a screen (see :func:`chatrepl.text.json_text`)."""
    from .text import json_text as text

    return text(data)


def _line(*cells: Any) -> str:
    """One tab-separated line: every cell on one line, without tabs."""
    return "\t".join(" ".join(str("" if c is None else c).split()) for c in cells)


def _valid(text: str) -> str:
    from .text import valid_text

    return valid_text(text)


def _safe(text: str | None) -> str:
    from .text import make_safe

    return make_safe(text or "")


def local_time(iso: str | None) -> str:
    """A stored UTC timestamp in local time, as ``2025-01-31 14:02``."""
    from .text import parse_time

    moment = parse_time(iso)
    if moment is None:
        return iso or ""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def summary_json(s: ConversationSummary) -> dict[str, Any]:
    """A conversation as ``list --json`` prints it."""
    return {name: getattr(s, name) for name in SUMMARY_FIELDS}


def _limit(n: int) -> int:
    return MOST if n == ALL else min(n, MOST)


# --- list --------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    """``chatrepl list [-n N] [--json]``."""
    store = open_store(args.db, create=False)
    rows = store.recent(_limit(args.n))
    if args.json:
        _print_json([summary_json(s) for s in rows])
    elif not _terminal():
        for s in rows:
            sys.stdout.write(_line(s.id, s.updated, s.turns, _safe(s.model), _safe(s.title)) + "\n")
    elif not rows:
        print("No conversations yet: start one with `chatrepl`.")
    else:
        from .tables import conversation_table

        console = _console()
        console.print(conversation_table(rows, console.width, local_time, numbered=False, least=26))
    return 0


def conversation_id(store: Store, given: str) -> str:
    """The full id ``given`` names: an id, a unique prefix of one, or ``last`` (the newest)."""
    if given.strip().lower() == "last":
        newest = store.last_id()
        if newest is None:
            raise NotFoundError("There is no saved conversation yet.")
        return newest
    return store.resolve(given)


# --- show --------------------------------------------------------------------------------------


def _conversation(
    args: argparse.Namespace,
) -> tuple[ConversationSummary, list[TurnRecord], list[TurnRecord]]:
    """The conversation ``args.id`` names: its summary, the turns of its current path, and
    every turn."""
    store = open_store(args.db, create=False)
    cid = conversation_id(store, args.id)
    return store.summary(cid), store.turns(cid), store.turns(cid, all_branches=True)


def cmd_show(args: argparse.Namespace) -> int:
    """``chatrepl show ID [--json | --markdown]``."""
    from .export import spending_json, to_json, to_markdown

    summary, turns, every = _conversation(args)
    if args.json:
        data = to_json(summary, every, open_store(args.db, create=False).attachment)
        data["conversation"] |= spending_json([c for t in every for c in t.calls])
        _print_json(data)
    elif args.markdown or not _terminal():
        text = to_markdown(
            summary, turns, every if args.all_branches else None, reasoning=args.reasoning
        )
        sys.stdout.write(_safe(text) if _terminal() else _valid(text))  # a pipe: as saved
    else:
        render(summary, turns, _console())
        if len(every) > len(turns):
            _console().print(
                f"[dim]{len(every) - len(turns)} more turns on other branches: "
                "chatrepl show --markdown --all-branches shows them.[/dim]"
            )
    return 0


def render(summary: ConversationSummary, turns: list[TurnRecord], console: Console) -> None:
    """A conversation for a terminal: a header, then each turn with its answer as Markdown."""
    from rich.rule import Rule
    from rich.text import Text

    from .export import status_note

    shown = turns
    title = " ".join((summary.title or "").split()) or "Untitled conversation"
    console.print(Rule(Text(_safe(title), style="bold"), align="left"))
    facts = [summary.id, _safe(summary.model), f"{len(shown)} turns"]
    if summary.input_tokens or summary.output_tokens:
        facts.append(f"{summary.input_tokens} in / {summary.output_tokens} out tokens")
    facts.append(f"started {local_time(summary.created)}")
    console.print(Text(" · ".join(facts), style="dim"))
    persona = None
    for turn in shown:
        console.print()
        if turn.system != persona:
            persona = turn.system
            line = Text("persona: ", style="bold magenta")
            line.append(_safe(persona) if persona else "(cleared)", style="magenta")
            console.print(line)
            console.print()
        head = Text("You", style="bold cyan")
        head.append(f"  {local_time(turn.started)}", style="dim")
        console.print(head)
        console.print(Text(_safe(turn.prompt.rstrip())))
        console.print()
        console.print(Text(_safe(turn.model), style="bold green"))
        _answer(turn, console)
        if note := status_note(turn):
            style = "red" if turn.status == "error" else "yellow"
            console.print(Text(_safe(note.strip("*")), style=style))


def _answer(turn: TurnRecord, console: Console) -> None:
    """A turn's answer: its text as Markdown, each tool call and result as one compact line."""
    from rich.markdown import Markdown
    from rich.text import Text

    from .export import close_fences
    from .frontend import tool_line

    calls = {p.data.get("id"): p for p in turn.parts if p.kind == "tool_call"}
    text = ""
    for part in turn.parts:
        if part.kind == "text":
            text += part.text
            continue
        if part.kind != "tool_result":
            continue
        if text.strip():
            console.print(Markdown(_safe(close_fences(text))))
        text = ""
        call = calls.get(part.data.get("call_id"))
        arguments = call.data.get("arguments") if call else None
        line = tool_line(
            None, arguments if isinstance(arguments, dict) else {}, part, console.width
        )
        console.print(Text(line, style="red" if part.data.get("is_error") else "cyan"))
    if not turn.parts:
        text = turn.response
    if text.strip():
        console.print(Markdown(_safe(close_fences(text))))


# --- search ------------------------------------------------------------------------------------


def cmd_search(args: argparse.Namespace) -> int:
    """``chatrepl search QUERY [-n N] [--json]``."""
    query = " ".join(" ".join(args.query).split())
    if not query.strip('" '):
        raise UsageError("search for what? Give one or more words.")
    store = open_store(args.db, create=False)
    terminal = _terminal() and not args.json
    marks = MARKS if terminal else ("[", "]")
    hits = store.search(query, _limit(args.n), marks, reasoning=args.reasoning)
    if args.json:
        _print_json([{name: getattr(h, name) for name in HIT_FIELDS} for h in hits])
    elif not _terminal():
        for h in hits:
            sys.stdout.write(
                _line(h.conversation_id, h.response_id, h.started, _safe(h.title), _safe(h.snippet))
                + "\n"
            )
    elif not hits:
        print(f"No turn matches '{_safe(query)}'.")
    else:
        from rich.text import Text

        from .tables import one_line, short_ids

        console = _console()
        ids = short_ids([h.conversation_id for h in hits], least=26)  # whole, for `-r`
        for h in hits:
            line = Text(ids[h.conversation_id], style="cyan")
            line.append(f"  {local_time(h.started)}  ")
            room = console.width - len(line)
            line.append(one_line(h.title or "(untitled)", max(room, 10)), style="bold")
            console.print(line, no_wrap=True, overflow="ellipsis", crop=True)
            snippet = Text("    ")
            snippet.append_text(_highlighted(" ".join(h.snippet.split())))
            console.print(snippet)
    return 0


#: Private-use characters around the matches in a snippet shown on a terminal.
MARKS = ("\ue000", "\ue001")


def _highlighted(snippet: str) -> Any:
    """The snippet with the matches (between :data:`MARKS`) in bold."""
    from rich.text import Text

    text = Text()
    pos = 0
    for m in re.finditer(f"{MARKS[0]}([^{MARKS[1]}]*){MARKS[1]}", snippet):
        text.append(_safe(snippet[pos : m.start()]))
        text.append(_safe(m.group(1)), style="bold yellow")
        pos = m.end()
    text.append(_safe(snippet[pos:]))
    return text


# --- export ------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    """``chatrepl export ID [--format markdown|html|json] [-o FILE]``."""
    from .export import to_json, to_markdown

    summary, turns, every = _conversation(args)
    if args.format == "json":
        files = open_store(
            args.db, create=False
        ).attachment  # the attached files go in the export too
        text = json_text(to_json(summary, every, files))
    elif args.format == "html":
        from .export_html import to_html

        text = to_html(summary, turns, every, open_store(args.db, create=False).attachment)
    else:
        text = to_markdown(
            summary, turns, every if args.all_branches else None, reasoning=args.reasoning
        )
    if args.output in (None, "-"):
        sys.stdout.write(_safe(text) if _terminal() else _valid(text))  # a pipe: as saved
        return 0
    from .settings import write_private

    path = write_private(user_path(args.output), text)
    if sys.stderr.isatty():
        print(f"Exported {summary.id} ({args.format}) to {_safe(str(path))}.", file=sys.stderr)
    return 0


# --- title, delete -----------------------------------------------------------------------------


def cmd_title(args: argparse.Namespace) -> int:
    """``chatrepl title ID TEXT``."""
    title = " ".join(" ".join(args.text).split())
    if not title:
        raise UsageError("the title is empty: give the new title after the id.")
    store = open_store(args.db, create=False)
    cid = conversation_id(store, args.id)
    store.set_title(cid, title, "user")
    if _terminal():
        print(f"{cid} is now titled: {_safe(title)}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """``chatrepl delete ID... [--yes]``: asks on a terminal; refuses without one."""
    store = open_store(args.db, create=False)
    ids = list(dict.fromkeys(conversation_id(store, i) for i in args.ids))
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(
                "not deleting without a confirmation: add --yes (stdin is not a terminal)."
            )
        if not _confirm(store, ids):
            print("Nothing was deleted.", file=sys.stderr)
            return 0
    for cid in ids:
        store.delete(cid)
    if _terminal():
        print(f"Deleted {len(ids)} conversation{'s' if len(ids) != 1 else ''}.")
    return 0


def _confirm(store: Store, ids: list[str]) -> bool:
    for cid in ids:
        s = store.summary(cid)
        title = _safe(" ".join((s.title or "(untitled)").split()))
        print(f"  {cid}  {title}  ({_plural(s.turns, 'turn')})", file=sys.stderr)
    if len(ids) == 1:
        question = "Delete this conversation and all its turns? [y/N] "
    else:
        question = f"Delete these {len(ids)} conversations and all their turns? [y/N] "
    sys.stderr.write(question)
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return False
    return answer.strip().lower() in ("y", "yes")


# --- models ------------------------------------------------------------------------------------


def models_info() -> dict[str, Any]:
    """What ``models --json`` prints: providers (each ready or not, and why), their keys and
    models, aliases, the default (``model_list``: the answer /model and Tab completion give)."""
    from .model_list import model_list

    found = model_list()
    providers = []
    for p in found.providers:
        entry: dict[str, Any] = {
            "name": p.name,
            "type": p.type,
            "key": p.key,
            "key_env": p.key_env,
            "usable": p.ready,
            "status": p.status,
            "why": p.why,
            "base_url": p.base_url,
            "models": p.models,
        }
        if p.served is not None:
            entry["served"] = p.served
        providers.append(entry)
    return {
        "default": found.default,
        "default_resolved": found.default_resolved,
        "offline_fallback": found.offline_fallback,
        "providers": providers,
        "aliases": found.aliases,
    }


# --- usage -------------------------------------------------------------------------------------


def _day(text: str) -> Any:
    """``YYYY-MM-DD`` (or ``today``) as a date, for ``--since``."""
    from datetime import date

    if text.strip().lower() == "today":
        return date.today()
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        from .text import make_safe, shorten

        shown = make_safe(shorten(text, 30))
        raise argparse.ArgumentTypeError(
            f"'{shown}' is not a date: give it as YYYY-MM-DD"
        ) from None


#: The name of each grouping's key in ``usage --json``.
_USAGE_KEYS = {"model": "model", "day": "day", "conversation": "conversation_id"}


def cmd_usage(args: argparse.Namespace) -> int:
    """``chatrepl usage [--since DATE] [--by model|day|conversation] [--json]``."""
    from .pricing import AS_OF
    from .spending import Spend, local_midnight, summed

    store = open_store(args.db, create=False)
    since = local_midnight(args.since) if args.since else None
    rows = store.spending(since=since)
    groups, everything = summed(rows, args.by), summed(rows)
    total = everything[0] if everything else None
    key = _USAGE_KEYS[args.by]
    if args.json:
        _print_json(
            {
                "by": args.by,
                "since": args.since.isoformat() if args.since else None,
                "currency": "USD",
                "rows": [g.as_json(key) for g in groups],
                "total": (total or Spend("total")).as_json(None),
            }
        )
        return 0
    if not _terminal():
        for g in groups:
            share = g.cached_share
            cells = [_safe(g.key)] + ([_safe(g.title)] if args.by == "conversation" else [])
            cells += [g.calls, g.input_tokens, g.output_tokens, g.cache_read_tokens]
            cells += [g.cache_write_tokens, "" if share is None else f"{100 * share:.1f}%"]
            cells += [f"{g.cost:.6f}", g.unpriced_calls]
            sys.stdout.write(_line(*cells) + "\n")
        return 0
    console = _console()
    if total is None:
        when = f" since {args.since.isoformat()}" if args.since else ""
        console.print(f"No model calls saved{when}.")
        return 0
    console.print(_usage_table(groups, total, args.by, console.width, store))
    notes = [
        "Cost: what the server reported, else the tokens at config.toml's prices, else at the "
        f"built-in table's of {AS_OF} (a snapshot: vendors change their prices)."
    ]
    if n := total.unpriced_calls:
        said = "1 call has" if n == 1 else f"{n:,} calls have"
        notes.append(
            f"{said} no known price and {'is' if n == 1 else 'are'} not in the cost (*): give "
            'its model one in config.toml ([prices."provider:model"] input = …, output = …).'
        )
    for note in notes:
        console.print(note, style="dim", highlight=False, markup=False)
    return 0


def _usage_table(groups: list[Any], total: Any, by: str, width: int, store: Store) -> Any:
    """The usage rows as a table, the total last."""
    from .pricing import money
    from .tables import fit, one_line, short_ids

    rows = [*groups, total]
    if by == "conversation":
        ids = short_ids([g.key for g in groups], store)
        keys = [ids[g.key] for g in groups] + ["total"]
    else:
        keys = [one_line(g.key, 10_000) for g in groups] + ["total"]
    columns: list[tuple[str, list[str], str]] = [(by, keys, "keep")]
    if by == "conversation":
        titles = [one_line(g.title, 10_000) if g.title else "(untitled)" for g in groups]
        columns.append(("title", [*titles, ""], "flex"))
    share = [f"{100 * s:.0f}%" if (s := g.cached_share) is not None else "" for g in rows]
    columns += [
        ("calls", [f"{g.calls:,}" for g in rows], "keep"),
        ("input", [f"{g.input_tokens:,}" for g in rows], "keep"),
        ("cached", share, "keep"),
        ("output", [f"{g.output_tokens:,}" for g in rows], "keep"),
        ("cost", [money(g.cost) + ("*" if g.unpriced_calls else "") for g in rows], "keep"),
    ]
    return fit(width, columns)


def cmd_models(args: argparse.Namespace) -> int:
    """``chatrepl models [--json]``."""
    info = models_info()
    if args.json:
        _print_json(info)
        return 0
    statuses = {p["name"]: p["status"] for p in info["providers"]}
    default = info["default_resolved"] or info["default"]

    def status(model: str) -> str:
        return str(statuses.get(model.partition(":")[0], "no-key"))

    if not _terminal():
        listed = set()
        for p in info["providers"]:
            for m in p["models"]:
                listed.add(m)
                line = _line(_safe(m), status(m), "default" if m == default else "")
                sys.stdout.write(line + "\n")
        if default not in listed:
            sys.stdout.write(_line(_safe(default), status(default), "default") + "\n")
        for alias, target in info["aliases"].items():
            line = _line(_safe(alias), status(target), f"alias of {_safe(target)}")
            sys.stdout.write(line + "\n")
        return 0

    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("provider", no_wrap=True, style="cyan")
    table.add_column("key", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("models", ratio=1)
    for p in info["providers"]:
        if p["key"] == "set":
            key = Text("set", style="green")
        elif p["key"] == "missing":
            env = _safe(p["key_env"])
            key = Text(f"missing ({env})" if p["key_env"] else "missing", style="red")
        elif p["key"] == "optional":  # a built-in provider pointed at another server
            key = Text("optional", style="dim")
        else:
            key = Text("not needed", style="dim")
        ready = Text(p["status"], style="green" if p["status"] == "ready" else "red")
        models = Text()
        for i, m in enumerate(p["models"]):
            if i:
                models.append(", ")
            models.append(_safe(m), style="bold" if m == default else "")
        table.add_row(Text(_safe(p["name"])), key, ready, models)
    console = _console()
    console.print(table)
    if info["aliases"]:
        console.print()
        for alias, target in info["aliases"].items():
            console.print(Text(f"alias {_safe(alias)} → {_safe(target)}"))
    console.print()
    line = Text("default: ", style="bold")
    line.append(_safe(info["default"]))
    if info["default_resolved"] and info["default_resolved"] != info["default"]:
        line.append(f" ({_safe(info['default_resolved'])})")
    if info["default_resolved"] is None:
        line.append(" (unknown: see config.toml)", style="red")
    elif info["offline_fallback"]:
        line.append(" (the offline model: no key is configured)", style="yellow")
    console.print(line)
    return 0


# --- import, import-llm ------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    """``chatrepl import FILE...``: JSON exports, each imported once."""
    from .export import attachments_in, from_json

    loaded, files = [], {}
    from .files import NotRegularFileError, read_regular

    for name in args.files:
        try:
            if name == "-":
                text = sys.stdin.read()
            else:
                text = read_regular(user_path(name)).decode("utf-8")
        except NotRegularFileError as exc:
            raise ChatreplError(
                f"{_safe(name)} is {exc.what}, not a regular file: give an export file, or - "
                "to read one from stdin."
            ) from None
        except OSError as exc:
            from .text import sentence

            raise ChatreplError(
                sentence(f"Cannot read {_safe(name)}: {exc.strerror or exc}")
            ) from exc
        except UnicodeDecodeError:
            raise ChatreplError(
                f"{_safe(name)} is not a chatrepl JSON export (not UTF-8 text)."
            ) from None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            shown = _safe(str(exc))[:100]
            raise ChatreplError(f"{_safe(name)} is not a chatrepl JSON export ({shown}).") from None
        try:
            loaded.append(from_json(data))
            files.update(attachments_in(data))
        except ChatreplError as exc:
            raise ChatreplError(f"{_safe(name)}: {exc}") from None
    store = open_store(args.db, create=True)
    for sha, (mime, content) in files.items():
        store.put_attachment(sha, mime, content)
    for summary, turns in loaded:
        title = _safe(" ".join((summary.title or "(untitled)").split()))
        if store.import_conversation(summary, turns):
            print(f"Imported {summary.id} ({len(turns)} turns): {title}")
        else:
            print(f"Already here, nothing imported: {summary.id} ({title})")
    return 0


def llm_logs_path(explicit: str | None = None) -> Path:
    """llm's logs.db: ``explicit`` (a file or its folder), else where ``llm`` keeps it."""
    if explicit:
        path = user_path(explicit)
        return path / "logs.db" if path.is_dir() else path
    if value := os.environ.get("LLM_USER_PATH"):
        return user_path(value) / "logs.db"
    # What click.get_app_dir("io.datasette.llm") answers, as llm asks it.
    if sys.platform == "win32":
        folder = Path(os.environ.get("APPDATA") or Path.home())
    elif sys.platform == "darwin":
        folder = Path.home() / "Library" / "Application Support"
    else:
        folder = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return folder / "io.datasette.llm" / "logs.db"


def cmd_import_llm(args: argparse.Namespace) -> int:
    """``chatrepl import-llm [PATH]``: llm's conversations, each turn imported once."""
    from .importers.llm import read_conversations

    path = llm_logs_path(args.path)
    folder = path.parent
    others = (folder / "templates").is_dir() or (args.keys and (folder / "keys.json").is_file())
    if not path.is_file() and others:  # llm's templates or keys, and no logs yet
        print(f"No conversations: there is no logs.db in {_safe(str(folder))}.")
    else:
        _import_logs(args, path, read_conversations(path))
    _import_llm_files(folder, args.keys)
    return 0


def _import_logs(args: argparse.Namespace, path: Path, conversations: list[Any]) -> None:
    store = open_store(args.db, create=True)
    new = new_turns = grown = added = 0
    for summary, turns in conversations:
        if store.import_conversation(summary, turns):
            new, new_turns = new + 1, new_turns + len(turns)
        elif n := store.add_turns(summary, turns):
            grown, added = grown + 1, added + n
    same = len(conversations) - new - grown
    parts = [f"Imported {_plural(new, 'conversation')} ({_plural(new_turns, 'turn')})"]
    if grown:
        parts.append(f"added {_plural(added, 'new turn')} to {_plural(grown, 'conversation')}")
    if same:
        parts.append(f"{_plural(same, 'conversation')} already here")
    print(f"{', '.join(parts)} from {_safe(str(path))}.")


def _import_llm_files(folder: Path, keys: bool) -> None:
    """llm's templates (and keys, with ``keys``), each reported: what came, what could not."""
    from .importers.llm_files import Report, import_keys, import_templates

    def say(report: Report, what: str) -> None:
        if report.imported:
            names = _safe(", ".join(report.imported))
            print(f"Imported {_plural(len(report.imported), what)} from llm: {names}.")
        if report.same:
            print(
                f"{_plural(len(report.same), what)} already here: {_safe(', '.join(report.same))}."
            )
        for line in report.dropped:
            print(f"Imported {_safe(line)} (chatrepl does not support those).")
        for line in report.skipped:
            print(f"Not imported: {_safe(line)}.")

    say(import_templates(folder), "template")
    if keys:
        report = import_keys(folder)
        if not (report.imported or report.same or report.skipped):
            print(f"No keys to import: there is no keys.json in {_safe(str(folder))}.")
        say(report, "key")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --- tools -------------------------------------------------------------------------------------


def add_tools_command(command: Callable[..., Any], json_flag: Callable[..., None]) -> None:
    """Register ``chatrepl tools [--json] [--start]``."""
    p = command(
        "tools",
        "The built-in tools and the configured MCP servers (with --start, each server's tools).",
        "chatrepl tools --start",
        cmd_tools,
    )
    p.add_argument("--start", action="store_true", help="start each MCP server to list its tools")
    json_flag(p)


def cmd_tools(args: argparse.Namespace) -> int:
    """``chatrepl tools [--json] [--start]``: one row per tool (or per server not started)."""
    from .settings import load_config
    from .tools.toolbox import Toolbox

    box = Toolbox(load_config())
    try:
        rows = box.listing(start_servers=args.start)
    finally:
        box.close()
    if args.json:
        _print_json(rows)
        return 0
    from .tables import tool_about, tools_table

    if _terminal():
        console = _console()
        console.print(tools_table(rows, console.width, states=False))
        return 0
    for row in rows:
        line = _line(_safe(row["name"]), _safe(row["source"]), _safe(tool_about(row)))
        sys.stdout.write(line + "\n")
    return 0


# --- db ----------------------------------------------------------------------------------------


def add_db_command(commands: Any) -> None:
    """Register ``chatrepl db copy SRC DST``."""
    summary = "Work on whole databases: copy history between SQLite files and PostgreSQL."
    p = commands.add_parser("db", help=summary, description=summary)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    about = (
        "Copy every conversation of SRC into DST (each an SQLite file or a postgresql:// URL), "
        "merged by id: what DST lacks is added, a newer row is never overwritten, and copying "
        "again changes nothing."
    )
    c = actions.add_parser(
        "copy",
        help="copy history from SRC into DST",
        description=about,
        epilog="example: chatrepl db copy ~/chatrepl.db postgresql://me@db.example.com/chat",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("src", metavar="SRC", help="the store to copy from (only read)")
    c.add_argument("dst", metavar="DST", help="the store to copy into (created if missing)")
    c.set_defaults(handler=cmd_db_copy)


def cmd_db_copy(args: argparse.Namespace) -> int:
    """``chatrepl db copy SRC DST``."""
    from .dbcopy import run
    from .settings import db_path

    return run(db_path(args.src), db_path(args.dst))
