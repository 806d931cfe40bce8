"""The slash-commands: one function each, registered with its argument hint and help text.

A command gets the running session (:class:`~chatrepl.repl.session.Session`: console, store,
the live conversation, the ids last listed) and the rest of its line. :func:`dispatch` parses a line,
answers an unknown command with a suggestion, and turns every ChatreplError into one line.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ChatreplError, NotFoundError
from ..files import user_path
from ..text import make_safe, parse_time, sentence, shorten
from .toolbar import SHORT_ID

if TYPE_CHECKING:
    from ..conversation import Conversation
    from ..records import ConversationSummary, Usage
    from .session import Session

Handler = Callable[["Session", str], None]


@dataclass(frozen=True)
class Command:
    """A slash-command.

    Args:
        name: what follows the ``/``.
        func: called with the session and the rest of the line (stripped).
        args: the argument hint shown in /help, e.g. ``[N]``.
        help: one line for /help and the completion menu.
        details: the longer text of ``/help NAME`` (the function's docstring).
        aliases: other names that run it.
        completes: what Tab offers after it: ``conversation``, ``model``, ``command`` or words.
    """

    name: str
    func: Handler
    args: str
    help: str
    details: str
    aliases: tuple[str, ...] = ()
    completes: str | tuple[str, ...] = ""


COMMANDS: dict[str, Command] = {}


def command(
    name: str,
    args: str = "",
    help: str = "",  # noqa: A002 - the natural name
    aliases: tuple[str, ...] = (),
    completes: str | tuple[str, ...] = "",
) -> Callable[[Handler], Handler]:
    """Register the decorated function as ``/name``."""

    def register(func: Handler) -> Handler:
        details = inspect.cleandoc(func.__doc__ or "")
        COMMANDS[name] = Command(name, func, args, help, details, aliases, completes)
        return func

    return register


def lookup(name: str) -> Command | None:
    """The command called ``name`` (or one of its aliases), ignoring case."""
    name = name.lower()
    for cmd in COMMANDS.values():
        if name == cmd.name or name in cmd.aliases:
            return cmd
    return None


def names() -> list[str]:
    """Every name a command answers to."""
    out = []
    for cmd in COMMANDS.values():
        out += [cmd.name, *cmd.aliases]
    return out


def unknown(name: str) -> str:
    """The one-line answer to ``/name`` that is not a command, with a suggestion if there is one."""
    shown = make_safe(shorten(name, 30))
    lowered = name.lower()
    starting = [n for n in names() if lowered and n.startswith(lowered)]
    close = difflib.get_close_matches(lowered, names(), n=3, cutoff=0.6)
    guesses = list(dict.fromkeys(starting + close))[:3]
    if guesses:
        options = [f"/{g}" for g in guesses]
        said = options[0] if len(options) == 1 else ", ".join(options[:-1]) + " or " + options[-1]
        return f"Unknown command /{shown}: did you mean {said}?"
    if not name:
        return "A command goes right after the /: /help lists them."
    return f"Unknown command /{shown}: see /help (// sends a message that begins with /)."


def split(line: str) -> tuple[str, str]:
    """``"/name  the rest"`` → ``("name", "the rest")``; the rest keeps its inner new lines."""
    match = re.match(r"/(\S*)\s*(.*)", line.strip(), re.DOTALL)
    if not match:
        return "", ""
    return match.group(1), match.group(2).strip()


def dispatch(repl: Session, line: str) -> None:
    """Run the command on ``line``; every error a user can cause becomes one line."""
    name, arg = split(line)
    cmd = lookup(name)
    if cmd is None:
        repl.error(unknown(name))
        return
    try:
        cmd.func(repl, arg)
    except ChatreplError as exc:
        repl.error(str(exc))
    except KeyboardInterrupt:
        repl.say("Cancelled.", "dim")


# --- helpers ----------------------------------------------------------------------------------


def ago(iso: str, now: datetime | None = None) -> str:
    """A time as "just now", "5 min ago", "yesterday" … or a date."""
    then = parse_time(iso)
    if then is None:
        return iso
    seconds = ((now or datetime.now(UTC)) - then).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    if seconds < 2 * 86400:
        return "yesterday"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)} days ago"
    return then.astimezone().strftime("%Y-%m-%d")


def plural(n: int, word: str) -> str:
    """``1 turn``, ``2 turns``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def title_of(title: str | None, width: int = 60) -> str:
    """A title safe to show on one line."""
    return make_safe(shorten(title, width)) if title else "(untitled)"


#: The most rows a count asks for; more is as many as there are.
MOST = 1_000_000_000


def _count(arg: str, default: int, what: str) -> int:
    """``arg`` as a count of rows: ``default`` when empty, 0 for all (as ``chatrepl list -n 0``)."""
    if not arg:
        return default
    try:
        n = int(arg)
    except ValueError:
        raise ChatreplError(f"'{make_safe(shorten(arg, 20))}' is not a number: {what}.") from None
    if n < 0:
        raise ChatreplError(f"Give a number of 0 (all) or more: {what}.")
    return MOST if n == 0 else min(n, MOST)


def pick(repl: Session, arg: str) -> str:
    """The full id ``arg`` names: a number from the last list, ``last``, a ULID or a prefix."""
    arg = arg.strip()
    if arg.lower() == "last":
        for s in repl.store.recent(2):
            if s.id != repl.conversation.id:
                return s.id
        raise NotFoundError("There is no other saved conversation yet.")
    # A list number: ids start with 0 for decades yet, and so does no number in a list.
    if (arg.isascii() and arg.isdigit()) and len(arg) <= 3 and not arg.startswith("0"):
        n = int(arg)
        listed = repl.listed or [s.id for s in repl.store.recent(max(n, 20))]
        if not 1 <= n <= len(listed):
            raise NotFoundError(
                f"There is no number {n} in the list ({len(listed)} shown): see /list."
            )
        return listed[n - 1]
    return repl.store.resolve(arg)


def _persona_line(system: str | None) -> str:
    return make_safe(shorten(system, 60)) if system else "none"


# --- the commands -----------------------------------------------------------------------------


@command("help", "[CMD]", "the commands and keys, or one command in detail", completes="command")
def cmd_help(repl: Session, arg: str) -> None:
    """Without CMD: every command and key. With CMD (e.g. `/help resume`): that command in detail."""
    from rich.table import Table
    from rich.text import Text

    from .keys import KEYS

    if arg:
        cmd = lookup(arg.lstrip("/"))
        if cmd is None:
            repl.error(unknown(arg.lstrip("/")))
            return
        usage = "/" + cmd.name + (f" {cmd.args}" if cmd.args else "")
        if cmd.aliases:
            usage += "   (also " + ", ".join("/" + a for a in cmd.aliases) + ")"
        repl.console.print(Text(usage, style="bold"))
        from rich.markdown import Markdown  # the details are Markdown: shown rendered

        repl.console.print(Markdown(cmd.details or cmd.help, inline_code_theme=None))
        return
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for cmd in COMMANDS.values():
        usage = ", ".join("/" + n for n in (cmd.name, *cmd.aliases))
        if cmd.args:
            usage += " " + cmd.args
        table.add_row(Text(usage), Text(cmd.help))
    repl.console.print(table)
    repl.console.print()
    keys = Table.grid(padding=(0, 2))
    keys.add_column(style="bold", no_wrap=True)
    keys.add_column()
    for key, what in KEYS:
        keys.add_row(Text(key), Text(what))
    repl.console.print(keys)
    repl.say("/help CMD tells more about one command.", "dim")


@command("new", "", "start a new conversation (this one stays saved)")
def cmd_new(repl: Session, arg: str) -> None:
    """Start a new conversation with the same model and persona; the current one stays saved and
    `/resume last` brings it back. Use `/system --clear` for a fresh start without the persona."""
    from ..conversation import Conversation

    old = repl.conversation
    repl.switch_to(Conversation(old.model, system=old.system, store=repl.store))
    said = f"New conversation with {make_safe(old.model.full_name)}"
    if old.system:
        said += f", persona: {_persona_line(old.system)}"
    said = sentence(said)
    if old.turns:
        said += " The previous one is saved: /resume last brings it back."
    repl.say(said)


@command("list", "[N]", "recent conversations, numbered for /resume")
def cmd_list(repl: Session, arg: str) -> None:
    """The N (default 20; 0 for all) most recently active conversations: number, id, title,
    model, turns and when it was last active. `/resume N` continues the one numbered N."""
    n = _count(arg, 20, "/list N shows the N most recent conversations, /list 0 all")
    rows = repl.store.recent(n)
    if not rows:
        repl.say("No saved conversations yet: say something to start one.")
        return
    show_table(repl, rows)
    repl.say("/resume N continues one; /resume ID takes an id or a prefix.", "dim")


def show_table(repl: Session, rows: list[ConversationSummary]) -> None:
    """Print ``rows`` numbered, and remember their ids for ``/resume N``."""

    from ..tables import conversation_table

    repl.listed = [r.id for r in rows]
    width = repl.console.width
    table = conversation_table(rows, width, ago, repl.store, current=repl.conversation.id)
    repl.console.print(table)


@command(
    "resume",
    "ID",
    "continue a saved conversation: N from /list, an id or prefix, or last",
    completes="conversation",
)
def cmd_resume(repl: Session, arg: str) -> None:
    """Continue a saved conversation. ID is the number shown by the last `/list` (or `/search`),
    a ULID or a unique prefix of one (any case), or `last` for the most recent other
    conversation. The last few turns are shown again, and the conversation goes on with its
    own model and persona. Tab completes ids and titles."""
    if not arg:
        rows = repl.store.recent(10)
        if not rows:
            repl.say("No saved conversations yet.")
            return
        show_table(repl, rows)
        repl.say("Which one? /resume N, an id or a prefix, or last.", "dim")
        return
    cid = pick(repl, arg)
    if cid == repl.conversation.id:
        repl.say("That is the current conversation.")
        return
    repl.switch_to(repl.load(cid))
    repl.show_resumed()


@command("title", "[TEXT]", "set the title; without TEXT the model proposes one")
def cmd_title(repl: Session, arg: str) -> None:
    """Set the conversation's title to TEXT. Without TEXT, the model reads the conversation and
    proposes a title, which is set. A title you set is never replaced automatically."""
    c = repl.conversation
    if arg:
        title = shorten(arg, 200)
        c.set_title(title, "user")
        note = "" if c.turns else " (saved with the first message)"
        repl.say(f"Title: {title_of(title, 80)}{note}")
        repl.refresh()
        return
    if not c.turns:
        repl.say("Nothing to name yet: chat first, or give the title: /title TEXT.")
        return
    from ..screen.interrupt import answering

    with answering(), repl.console.status("asking the model for a title…", spinner="dots"):
        title = c.propose_title()
    if not title:
        repl.error("The model proposed no title: give one with /title TEXT.")
        return
    c.set_title(title, "model")
    repl.say(f"Title: {title_of(title, 80)}")
    repl.refresh()


@command(
    "system",
    "[TEXT | --clear]",
    "set the persona from the next turn on; show it; clear it",
    completes=("--clear",),
)
def cmd_system(repl: Session, arg: str) -> None:
    """`/system TEXT` makes TEXT the persona (system prompt), sent with every turn from the next
    one on; earlier turns keep the persona they were sent with. `/system` alone shows the
    persona, `/system --clear` removes it. Esc-Enter adds lines to a long persona."""
    c = repl.conversation
    if not arg:
        if c.system:
            repl.say("Persona:", "bold")
            repl.say(make_safe(c.system))
        else:
            repl.say("No persona: /system TEXT sets one.")
        return
    if arg == "--clear":
        c.set_system(None)
        repl.say("Persona cleared from the next turn on.")
    else:
        c.set_system(arg)
        repl.say(f"Persona set from the next turn on: {_persona_line(arg)}")
    repl.refresh()


@command(
    "model",
    "[NAME]",
    "switch model from the next turn on; without NAME list them",
    completes="model",
)
def cmd_model(repl: Session, arg: str) -> None:
    """`/model NAME` answers with NAME (`provider:model` or an alias) from the next turn on; the
    history stays and each turn remembers its model. `/model` alone lists the providers and
    models chatrepl knows of. The openai, anthropic and ollama providers take any model name."""
    from rich.text import Text

    c = repl.conversation
    if arg:
        from ..providers.registry import get_backend

        model = get_backend(arg)
        c.set_model(model)
        repl.say(f"Model: {make_safe(model.full_name)} from the next turn on.")
        if warning := missing_key(model.provider):
            repl.error(warning)
        repl.refresh()
        return
    from rich.padding import Padding
    from rich.table import Table

    repl.say(f"Now: {make_safe(c.model.full_name)}", "bold")
    found = repl.model_list(fresh=True)  # the list `chatrepl models` and Tab completion show
    # Every provider with every model it has, as `chatrepl models` lists them; one that is not
    # ready says why first. Long lists wrap under the models, not under the provider's name.
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column()
    for p in found.providers:
        models = make_safe(", ".join(p.models))
        if p.ready:
            body = Text(models or "(any model name)")
        else:
            body = Text(make_safe(p.note), style="dim")
            if models:
                body.append("\n" + models, style="dim")
        table.add_row(Text(make_safe(p.name)), body)
    repl.console.print(Padding(table, (0, 0, 0, 2), expand=False), overflow="fold")
    for alias, target in found.aliases.items():
        repl.say(f"  alias {make_safe(alias)} → {make_safe(target)}", "dim")
    repl.say("/model provider:name switches; Tab completes.", "dim")


def missing_key(provider: str) -> str | None:
    """The warning for a provider that needs a key and has none, or ``None``."""
    from ..providers.registry import providers

    info = providers().get(provider)
    if info is None or info.usable:
        return None
    env = info.settings.get("api_key_env")
    how = f"set {make_safe(env)}" if env else "add its key to keys.json"
    return (
        f"{make_safe(provider)} has no API key, so the next turn will fail: {how} and restart "
        "chatrepl, or pick another model."
    )


@command("retry", "", "ask the last prompt again (the old answer stays, one /alt away)")
def cmd_retry(repl: Session, arg: str) -> None:
    """Send the last prompt again, with the current model and persona. The new answer is a
    sibling of the old one, which stays: `/alt` lists them and switches between them."""
    last = repl.conversation.turns[-1] if repl.conversation.turns else None
    if last is None:
        repl.say("Nothing to retry yet.")
        return
    repl.say(f"Retrying: {make_safe(shorten(last.prompt, 70))}", "dim")
    response = repl.conversation.retry()
    if response is not None:
        repl.show(response)


@command("undo", "", "go back one turn (it stays saved, on its branch)")
def cmd_undo(repl: Session, arg: str) -> None:
    """Go back one turn: the conversation goes on from the turn before, and the turn taken back
    is no longer sent to the model. Nothing is deleted: it stays on its branch (`/tree`,
    `/alt`). Repeat to go further back."""
    last = repl.conversation.undo()
    if last is None:
        repl.say("Nothing to undo.")
        return
    repl.say(f"Took back: {make_safe(shorten(last.prompt, 70))}")
    repl.say(f"{plural(len(repl.conversation.turns), 'turn')} left.", "dim")
    repl.refresh()


@command("edit", "[TEXT]", "write the next message in $VISUAL / $EDITOR")
def cmd_edit(repl: Session, arg: str) -> None:
    """Open $VISUAL (else $EDITOR, else editor, nano or vi) on a private temporary file, starting
    with TEXT if given. When you save and quit, what you wrote is sent; an empty file sends
    nothing."""
    from .editor import edit

    text = edit(arg + "\n" if arg else "").strip()
    if not text:
        repl.say("Nothing written: nothing sent.")
        return
    repl.echo_prompt(text)
    repl.send(text)


@command("copy", "[code]", "copy the last answer (or its last code block)", completes=("code",))
def cmd_copy(repl: Session, arg: str) -> None:
    """Copy the last answer to the clipboard, through wl-copy, xclip, xsel or pbcopy when one is
    there, else with the terminal's OSC 52 sequence. `/copy code` copies the last fenced code
    block of the answer instead."""
    from .clipboard import copy

    turns = [t for t in repl.conversation.turns if t.text_so_far]
    if not turns:
        repl.say("No answer to copy yet.")
        return
    text = turns[-1].text_so_far
    what = "the last answer"
    if arg:
        if arg.lower() != "code":
            raise ChatreplError("/copy takes nothing, or `code` for the last code block.")
        blocks = re.findall(r"^ *(```|~~~)[^\n]*\n(.*?)^ *\1", text, re.MULTILINE | re.DOTALL)
        if not blocks:
            repl.say("The last answer has no code block.")
            return
        text, what = blocks[-1][1], "the last code block"
    how = copy(text, out=repl.console.file)
    if how == "OSC 52":
        repl.say(f"Sent {what} to the terminal's clipboard (OSC 52; some terminals ignore it).")
    else:
        repl.say(f"Copied {what} ({len(text):,} characters) with {how}.")


@command("export", "[FILE]", "write the conversation as Markdown (or HTML: FILE.html)")
def cmd_export(repl: Session, arg: str) -> None:
    """Write the conversation as a Markdown file (mode 0600): to FILE, or to TITLE-ID.md in the
    current folder. Undone turns are left out; interrupted and failed ones are marked. A FILE
    ending in .html is one self-contained page instead, with every branch (folded) and the
    images embedded."""
    from ..export import to_markdown
    from ..settings import write_private

    c = repl.conversation
    if not c.responses:
        repl.say("Nothing to export yet: this conversation has no turns.")
        return
    if arg:
        path = user_path(arg)
    else:
        slug = re.sub(r"[^a-z0-9]+", "-", (c.title or "").lower()).strip("-")[:40]
        path = Path(f"{slug or 'conversation'}-{c.id[:SHORT_ID].lower()}.md")
    if path.is_file() and not repl.confirm(f"{make_safe(str(path))} exists. Overwrite it?"):
        repl.say("Not exported.")
        return
    summary = repl.store.summary(c.id)
    if path.suffix.lower() in (".html", ".htm"):
        from ..export_html import to_html

        every = repl.store.turns(c.id, all_branches=True)
        text = to_html(summary, repl.store.turns(c.id), every, repl.store.attachment)
    else:
        text = to_markdown(summary, repl.store.turns(c.id))
    write_private(path, text, make_folder=False)
    repl.say(f"Exported {plural(len(c.turns), 'turn')} to {make_safe(str(path))}")


@command("search", "QUERY", "search every conversation; numbered for /resume")
def cmd_search(repl: Session, arg: str) -> None:
    """Full-text search over the prompts, answers and tool results of every conversation
    (`/search --reasoning WORDS`: the model's reasoning too). Each hit shows its
    conversation's id and title and a snippet; `/resume N` continues the conversation of
    hit N."""
    from rich.text import Text

    reasoning = arg.startswith("--reasoning")
    arg = arg.removeprefix("--reasoning").strip()
    if not arg:
        repl.say("Search for what? /search WORDS (/search --reasoning WORDS: reasoning too)")
        return
    hits = repl.store.search(arg, 20, marks=MARKS, reasoning=reasoning)
    if not hits:
        repl.say(sentence(f"Nothing found for {make_safe(shorten(arg, 40))}"))
        return
    from ..tables import short_ids as shortest

    repl.listed = [h.conversation_id for h in hits]
    short = shortest(list(dict.fromkeys(repl.listed)), repl.store)
    for i, hit in enumerate(hits, 1):
        line = Text(f"{i:>3}  ")
        line.append(short[hit.conversation_id], style="bold")
        line.append(f"  {title_of(hit.title, 50)}  ")
        line.append(ago(hit.started), style="dim")
        repl.console.print(line)
        repl.console.print(_snippet(hit.snippet))
    repl.say("/resume N continues the conversation of hit N.", "dim")


#: Around each match in a search snippet: control characters, unlike brackets, are rare in text.
MARKS = ("\x02", "\x03")


def _snippet(snippet: str) -> object:
    from rich.text import Text

    out = Text("     ")
    for i, part in enumerate(re.split("[" + "".join(MARKS) + "]", " ".join(snippet.split()))):
        out.append(make_safe(part), style="bold yellow" if i % 2 else "")
    return out


@command(
    "delete",
    "[ID]",
    "delete a conversation (this one by default), after asking",
    completes="conversation",
)
def cmd_delete(repl: Session, arg: str) -> None:
    """Delete a conversation and all its turns for good, after a y/N question. ID is as for
    /resume; without ID, the current conversation (and a new one starts)."""
    if arg:
        cid = pick(repl, arg)
    else:
        if not repl.conversation.responses:
            repl.say("This conversation is not saved yet: nothing to delete.")
            return
        cid = repl.conversation.id
    s = repl.store.summary(cid)
    from ..tables import unique_prefix

    short = unique_prefix(repl.store, s.id)
    question = f"Delete “{title_of(s.title, 50)}” ({short}, {plural(s.turns, 'turn')}) for good?"
    if not repl.confirm(question):
        repl.say("Kept.")
        return
    repl.store.delete(cid)
    repl.listed = [i for i in repl.listed if i != cid]
    repl.say(f"Deleted “{title_of(s.title, 50)}”.")
    if cid == repl.conversation.id:
        from ..conversation import Conversation

        old = repl.conversation
        repl.switch_to(Conversation(old.model, system=old.system, store=repl.store))
        repl.say("A new conversation starts.", "dim")
    else:
        repl.refresh()


@command("info", "", "id, title, model, persona, turns and tokens")
def cmd_info(repl: Session, arg: str) -> None:
    """Everything about the current conversation: id, title (and who chose it), model, persona,
    turns, tokens, when it started, and the database it is saved in."""
    from rich.table import Table
    from rich.text import Text

    c = repl.conversation
    turns = c.turns
    statuses = [t.status for t in turns]
    detail = ", ".join(
        f"{statuses.count(s)} {s}" for s in ("interrupted", "error") if statuses.count(s)
    )
    usage = c.tokens
    source = {
        "user": "set by you",
        "model": "proposed by the model",
        "prompt": "from the first prompt",
    }
    title = title_of(c.title, 80)
    if c.title and c.title_source in source:
        title += f" ({source[c.title_source]})"
    rows = [
        ("id", c.id + ("" if c.responses else " (not saved until the first message)")),
        ("title", title),
        ("model", make_safe(c.model.full_name)),
        ("persona", make_safe(c.system) if c.system else "none"),
        ("turns", f"{len(turns)}" + (f" ({detail})" if detail else "")),
        ("tokens", _tokens_said(usage)),
        *_context_rows(repl),
        ("started", _local(c.created)),
        ("database", make_safe(str(repl.store.path))),
    ]
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, Text(value))
    repl.console.print(table)


def _context_rows(repl: Session) -> list[tuple[str, str]]:
    """What the context holds of the model's window, and what the conversation cost."""
    from ..context import context_used, conversation_cost
    from ..pricing import money

    c = repl.conversation
    window = getattr(repl, "window", lambda ask=False: None)(ask=bool(c.turns))
    used, estimated = context_used(c)
    said = f"{'~' if estimated else ''}{used:,} tokens"
    if window:
        said += f" of {window:,} ({100 * used / window:.0f}%)"
    else:
        said += " (the model's context window is not known: set context_window in config.toml)"
    cost = conversation_cost(c)
    rows = [
        ("context", said),
        ("cost", money(cost) if cost is not None else "not known (prices in config.toml)"),
    ]
    if c.budget is not None and c.turns:
        rows.append(("budget", _budget_said(c)))
    return rows


def _tokens_said(usage: Usage) -> str:
    """``12,345 in (80% cached: 9,876 read, 1,024 written), 456 out``."""
    from ..context import cached_share

    said = f"{usage.input_tokens or 0:,} in"
    read, written = usage.cache_read_tokens or 0, usage.cache_write_tokens or 0
    if read or written:
        share = cached_share(usage) or 0
        said += f" ({100 * share:.0f}% cached: {read:,} read, {written:,} written)"
    return said + f", {usage.output_tokens or 0:,} out"


def _budget_said(c: Conversation) -> str:
    """``$0.12 of $2.00 in this conversation, $1.23 of $10.00 today``."""
    from ..budgets import KINDS
    from ..pricing import money

    budget = c.budget
    assert budget is not None
    saved = c.store is not None
    return ", ".join(
        f"{money(budget.spent(kind, c.id, saved))} of {money(limit)} {KINDS[kind]}"
        for kind, limit in budget.limits.items()
    )


def _local(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


@command("exit", "", "leave (Ctrl-D too); everything is saved", aliases=("quit",))
def cmd_exit(repl: Session, arg: str) -> None:
    """Leave chatrepl. Everything is already saved: `chatrepl -c` continues where you left."""
    repl.running = False
