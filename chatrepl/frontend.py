"""What both front ends (the REPL and the shell commands) share: opening the store, opening or
loading a conversation with its model fallback, the error-to-exit-status guard, and streaming
an answer to a screen so that the screen shows what was saved."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from .errors import ChatreplError

if TYPE_CHECKING:
    from .budgets import Budget
    from .conversation import Conversation, Response
    from .providers.base import Backend
    from .records import Part
    from .store import Store
    from .tools.runner import Runner
    from .tools.toolbox import Toolbox

#: What the screen says after an answer that did not end normally.
ENDINGS = {
    "interrupted": "interrupted: what arrived is saved (/retry asks again)",
    "cut_off": "cut off at the token limit (/continue asks for the rest)",
    "filtered": "stopped by the provider's content filter",
    "refused": "the model refused to answer",
}


def say_progress(text: str) -> None:
    """What a provider is doing while the user waits, on stderr (``chatrepl: loading …``)."""
    if not text.startswith(("done", "failed")):
        text = f"chatrepl: {text}"
    sys.stderr.write(text)
    sys.stderr.flush()


def say_error(message: str) -> None:
    """One line on stderr: ``chatrepl: message``, cleaned of anything that drives a terminal."""
    from .text import hide_urls, make_safe

    print(f"chatrepl: {make_safe(hide_urls(' '.join(str(message).split())))}", file=sys.stderr)


class Parser(argparse.ArgumentParser):
    """argparse whose error messages cannot drive the terminal: an argument quoted back in
    "unrecognized arguments: …" or "invalid choice: …" is cleaned like any outside text, and
    a URL in it (``--db postgresql://me:password@…`` given where it is not taken) shows no
    secrets."""

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse asks shutil for the width (shutil imports zlib, bz2 and lzma: milliseconds
        # at every start, as a formatter is made for each argument added): asked here instead.
        return self.formatter_class(prog=self.prog, width=_columns())  # type: ignore[call-arg]

    def error(self, message: str) -> NoReturn:
        from .text import hide_urls, make_safe

        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {make_safe(hide_urls(message))}\n")


class SubParser(Parser):
    """A sub-command's parser: an argument it does not take is its own usage error
    (``chatrepl tools: error: …`` under ``chatrepl tools``' usage), not the root's."""

    def parse_known_args(  # type: ignore[override]
        self, args: Any = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        found, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return found, extra


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size() finds it: $COLUMNS, else stdout's
    terminal, else 80."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


def guarded(action: Callable[[], int]) -> int:
    """Run ``action``: an error a user can cause becomes one line on stderr and an exit status
    (1 an error, 130 interrupted, 141 the reader of stdout went away)."""
    try:
        return action()
    except ChatreplError as exc:
        say_error(str(exc))
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`chatrepl -p … | head -1`): stop quietly, as other tools do,
        # and keep Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def open_store(db: str | None, *, create: bool) -> Store:
    """The database ``--db`` / ``$CHATREPL_DB`` / the home names.

    With ``create`` a missing one is made (and the home folder with it, when the database is
    the default one); without, a missing database is an error, so read-only commands leave
    nothing behind.
    """
    from .settings import db_path, ensure_home
    from .store import Store

    if create and not (db or os.environ.get("CHATREPL_DB")):
        ensure_home()
    store = Store(db_path(db), create=create)
    if store.notice:  # once, after a migration: how to give the space it freed back
        print(store.notice, file=sys.stderr)
    return store


def open_conversation(
    store: Store,
    *,
    model_name: str | None = None,
    resume: str | None = None,
    latest: bool = False,
    system: str | None = None,
) -> Conversation:
    """The conversation the command line asks for: ``resume`` (an id or prefix), the
    ``latest`` one, or a new one; answered by ``model_name`` if given.

    Says once on stderr when the offline model is used because nothing is configured.
    """
    from .conversation import Conversation
    from .providers.base import Backend
    from .providers.registry import OFFLINE_ADVICE, default_model_name, get_backend

    Backend.progress = staticmethod(say_progress)  # e.g. "loading gemma3-270m… done in 1.0 s."
    model = get_backend(model_name) if model_name else None
    conversation_id = store.last_id() if latest else resume
    if conversation_id is not None:  # `-r ""` (an unset $ID) is a bad id, not a new chat
        conversation = load_conversation(store, conversation_id, model)
    else:
        if model is None:
            name, offline = default_model_name()
            model = get_backend(name)
            if offline:
                from .settings import home

                say_error(OFFLINE_ADVICE.format(model=name, config=home() / "config.toml"))
        conversation = Conversation(model, store=store)
    if system is not None:
        conversation.system = system or None
    conversation.budget = session_budget(store)
    return conversation


def session_budget(store: Store | None, warn: Callable[[str], None] = say_error) -> Budget | None:
    """The budgets config.toml sets for this session (``None``: none), its prices checked.

    Raises:
        ConfigError: ``[budget]`` or ``[prices]`` is malformed (one sentence, before anything
            is sent).
    """
    from .budgets import Budget
    from .pricing import check_prices
    from .settings import load_config

    config = load_config()
    check_prices(config)
    return Budget.from_config(config, store, warn)


def load_conversation(
    store: Store,
    conversation_id: str,
    model: Backend | None = None,
    fallback: Backend | None = None,
    warn: Callable[[str], None] = say_error,
) -> Conversation:
    """A saved conversation, answered by ``model`` from now on if given.

    When its own model cannot be built any more (a provider since removed from config.toml, or
    an imported ``llm:`` model), ``fallback`` takes over (by default the default model), and
    ``warn`` says so.
    """
    from .conversation import Conversation
    from .errors import ConfigError
    from .providers.registry import default_model_name, get_backend

    if model is None:
        try:
            return Conversation.load(store, conversation_id)
        except ConfigError as exc:
            model = fallback or get_backend(default_model_name()[0])
            warn(f"{exc} Continuing with {model.full_name}.")
    conversation = Conversation.load(store, conversation_id, model=model)
    conversation.set_model(model)  # recorded: the conversation goes on with this model
    return conversation


class Failure(str):
    """The sentence of an answer that failed, and whether asking again may help."""

    retryable: bool = False


def may_retry(exc: BaseException) -> bool:
    """Whether asking again can help after ``exc``: a dropped or refused connection, a timeout,
    a rate limit or a server failure; not a rejected key, an unknown model, a bad request, an
    account out of credit, or a database that cannot be written."""
    from .errors import ProviderError, StreamError

    return isinstance(exc, ProviderError) and (exc.retryable or isinstance(exc, StreamError))


def open_tools(
    store: Store,
    names: list[str] | None,
    approve_all: bool = False,
    ask: Any = None,
    warn: Callable[[str], None] = say_error,
) -> tuple[Toolbox | None, Runner | None]:
    """The tools ``-T NAME`` and config's ``[tools] enabled`` turn on, and a runner that asks
    before each call (``ask``; with ``None``, what is not pre-approved is denied).

    Nothing of the tools is imported (and no MCP server starts) unless some are asked for or
    configured; a name that cannot be enabled is one sentence through ``warn``.
    """
    from .settings import load_config

    config = load_config()
    wanted = list(names or [])
    configured = (
        config.get("tools", {}).get("enabled") if isinstance(config.get("tools"), dict) else None
    )
    if not wanted and not configured:
        return None, None
    from .tools.toolbox import Toolbox

    box = Toolbox(config, store)
    for problem in box.enable_configured(wanted):
        warn(problem)
    return box, box.runner(approve_all=approve_all, ask=ask)


def tool_line(tool: Any, arguments: dict[str, Any], part: Part, width: int = 100) -> str:
    """One compact line for a tool call: its name, its arguments, a summary of its result."""
    import json

    from .text import make_safe, shorten

    args = ", ".join(
        f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in arguments.items()
    )
    name = getattr(tool, "name", None) or str(part.data.get("name", "?"))
    mark = "✗" if part.data.get("is_error") else "→"
    result = part.text
    if part.data.get("edited"):  # the first line says so, for the model: here, a word
        result = "(edited) " + result.partition("\n")[2]
    line = f"⚙ {name}({shorten(args, width // 2)}) {mark} {shorten(result, width // 2)}"
    return make_safe(shorten(line, width))


class Screen(Protocol):
    """Where an answer is shown as it streams."""

    def feed(self, text: str) -> None: ...

    def finish(self, note: str | None = None) -> None: ...


def stream_answer(
    response: Response,
    screen: Screen,
    event: Callable[[Any], None] | None = None,
    notes: dict[str, str] = ENDINGS,
) -> Failure | None:
    """Show ``response`` on ``screen`` as it streams; Ctrl-C stops it, keeping what arrived.

    The screen ends up showing exactly the answer text that was saved, and a note when the
    answer did not end normally. Reasoning goes to ``screen.reasoning(text)`` where the screen
    has it; ``event`` sees every other event (tool calls and results, and reasoning a screen
    cannot show). ``notes`` words the note by status. Returns the error sentence if the request
    failed (a :class:`Failure`, which says whether retrying may help).
    """
    from .records import ReasoningDelta, TextDelta

    think = getattr(screen, "reasoning", None)  # a screen that shows reasoning has this
    events = response.events()
    shown = 0
    error: Failure | None = None
    try:
        for e in events:
            if isinstance(e, TextDelta):
                screen.feed(e.text)
                shown += len(e.text)
            elif isinstance(e, ReasoningDelta) and think is not None:
                think(e.text)
            elif event is not None:
                event(e)
    except KeyboardInterrupt:
        response.cancel()
        events.close()  # the Response saves itself as interrupted
    except ChatreplError as exc:
        error = Failure(str(exc))
        error.retryable = may_retry(exc)
    finally:
        # What the database holds is what the screen shows, to the last piece (a Ctrl-C in
        # the middle of feeding one: the screen counts what it took).
        rest = response.text_so_far[getattr(screen, "received", shown) :]
        if rest:
            screen.feed(rest)
        note = notes.get(response.status) if error is None else None
        if note and response.status == "refused" and (words := refusal_text(response)):
            note = f"{note}: {words}"
        began = response.text_so_far or any(p.kind == "tool_call" for p in response.parts)
        if response.status == "interrupted" and not began and error is None:
            note = "interrupted before the answer began"
        try:
            screen.finish(note=note)
        except KeyboardInterrupt:  # Ctrl-C while the rest was still being drawn
            response.mark_interrupted()
    return error


def refusal_text(response: Response, width: int = 500) -> str:
    """The model's own words of refusal in ``response``, on one line, safe to show."""
    from .text import make_safe, shorten

    words = " ".join("".join(p.text for p in response.parts if p.kind == "refusal").split())
    return make_safe(shorten(words, width)) if words else ""
