"""The slash-commands of how the model answers: options (/set, /unset), reasoning shown or
hidden (/reasoning), carrying on a cut-off answer (/continue) and compaction (/compact)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ChatreplError
from ..model_options import KNOWN, parse, shown
from ..text import make_safe
from .commands import command

if TYPE_CHECKING:
    from .session import Session


@command("set", "[KEY VALUE]", "a model option from the next turn on", completes=tuple(KNOWN))
def cmd_set(repl: Session, arg: str) -> None:
    """Set a model option for the turns from now on: `/set temperature 0.2`,
    `/set max_tokens 500`, `/set reasoning_effort low` (OpenAI-style servers),
    `/set thinking_budget 4000` (Anthropic). Values are read as JSON where they can be
    (numbers, true/false, lists), else as text; any other option goes to the provider as it
    is. Each turn saves the options it was sent with. Without arguments, list the options set."""
    c = repl.conversation
    if not arg:
        if c.options:
            repl.say(f"Options: {make_safe(shown(c.options))}  (/unset KEY removes one)")
        else:
            repl.say("No options set: /set KEY VALUE, e.g. /set temperature 0.2.")
        return
    key, _, text = arg.partition(" ")
    if not text.strip():
        hint = f" ({KNOWN[key]})" if key in KNOWN else ""
        raise ChatreplError(f"Give a value too: /set {make_safe(key)} VALUE{hint}.")
    key, value = parse(key, text.strip())
    c.options[key] = value
    repl.say(f"{key} = {make_safe(shown({key: value}).partition('=')[2])} from the next turn on.")


@command("unset", "KEY|--all", "remove a model option", completes=(*KNOWN, "--all"))
def cmd_unset(repl: Session, arg: str) -> None:
    """Remove a model option set with /set (or -o): the provider's default applies again.
    `/unset --all` removes every one."""
    c = repl.conversation
    if arg == "--all":
        c.options.clear()
        repl.say("Every option removed.")
    elif not arg:
        raise ChatreplError("Name the option to remove: /unset KEY (or /unset --all).")
    elif arg in c.options:
        del c.options[arg]
        repl.say(f"{arg} removed.")
    else:
        repl.say(f"{make_safe(arg)} is not set.")


@command("reasoning", "[on|off]", "show or hide the model's reasoning", completes=("on", "off"))
def cmd_reasoning(repl: Session, arg: str) -> None:
    """Show (`on`) or hide (`off`) the model's reasoning while it streams; it folds to one
    line once the answer starts, and is saved either way. Without an argument, show the last
    answer's reasoning in full. The `show_reasoning` setting of config.toml is the default."""
    from rich.text import Text

    if arg.lower() in ("on", "off"):
        setattr(repl, "show_reasoning", arg.lower() == "on")  # noqa: B010 - the app's setting
        repl.say(f"Reasoning {'shown' if arg.lower() == 'on' else 'hidden'} from now on.")
        return
    if arg:
        raise ChatreplError("Say /reasoning on, /reasoning off, or /reasoning alone.")
    turns = repl.conversation.turns
    thought = turns[-1].reasoning if turns else ""
    state = "shown" if getattr(repl, "show_reasoning", True) else "hidden"
    if not thought.strip():
        repl.say(f"The last answer came without reasoning (reasoning is {state}).")
        return
    repl.console.print(Text(make_safe(thought.strip()), style="dim italic"))
    repl.say(f"({len(thought.split())} words; reasoning is {state} while it streams)", "dim")


@command("continue", "", "carry on an answer that was cut off at the token limit")
def cmd_continue(repl: Session, arg: str) -> None:
    """Carry on the last answer where the token limit cut it off: the rest joins that answer,
    in the same turn (no new prompt). Anthropic models are sent the cut-off text to continue
    from; other servers get a short instruction to continue, which is not saved as a turn.
    `/set max_tokens N` raises the limit first if it was set too low."""
    turns = repl.conversation.turns
    if not turns:
        repl.say("Nothing to continue yet.")
        return
    if turns[-1].status != "cut_off":
        repl.say("The last answer was not cut off: there is nothing to continue.")
        return
    repl.show(repl.conversation.continue_answer())


@command("compact", "[KEEP]", "summarise older turns into one (the originals stay saved)")
def cmd_compact(repl: Session, arg: str) -> None:
    """Summarise the turns of the current path before the last few (KEEP, default 4) into one
    summary turn, so that the conversation takes less of the model's context. The persona and
    the last turns are kept as they are. The summary is a new branch in the tree: the original
    turns stay saved, searchable and exportable (`/tree` and `/alt` show them). It also happens
    by itself when a prompt would not fit the context window."""
    from ..compaction import KEEP_TURNS, compact

    if arg and not ((arg.isascii() and arg.isdigit()) and int(arg) <= 1000):
        raise ChatreplError("Give how many of the last turns to keep as they are, e.g. /compact 2.")
    keep = int(arg) if arg else KEEP_TURNS
    window = getattr(repl, "window", lambda ask=False: None)(ask=True)
    repl.say("Compacting…", "dim")
    done = compact(repl.conversation, window=window, keep=keep)
    if done is None:
        repl.say(f"Nothing to compact: the path has no turns before the last {keep}.")
        return
    repl.say(done.sentence("Compacted"))
    for note in done.notes[:1]:
        repl.error(note)
    repl.refresh()
