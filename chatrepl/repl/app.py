"""The interactive loop: read a line, run a command or send a message, stream the answer, save.

Synchronous on purpose: ``PromptSession.prompt()`` reads a line; the answer streams in the main
thread by iterating the ``Response``; Ctrl-C raises KeyboardInterrupt inside that iteration,
the Response marks itself interrupted and saves what arrived, and the loop goes on.

prompt-toolkit and rich are imported inside functions, so ``import chatrepl`` stays light.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ChatreplError, StoreError
from ..frontend import ENDINGS
from ..text import is_blank, make_safe, shorten
from .attach import cmd_attach, stage_arguments  # noqa: F401 - registers /attach
from .branching import cmd_alt  # noqa: F401 - registers the tree's commands
from .commands import dispatch, plural
from .keys import HOW_TO_LEAVE, Pasted
from .template import cmd_template  # noqa: F401 - registers /template
from .toolbar import fit, toolbar_text
from .tooling import ToolScreen

# isort: split
# Registered last, so /help and Tab list them after the commands of conversations and the tree.
from .answer_commands import cmd_set  # noqa: F401, E402 - registers /set /unset /reasoning /continue /compact

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import History
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output
    from rich.console import Console

    from ..conversation import Conversation, Response
    from ..model_list import ModelList
    from ..records import ConversationSummary, Part
    from ..store import Store
    from ..templates import Template
    from ..tools.runner import Runner
    from ..tools.toolbox import Toolbox

PROMPT = "> "
CONTINUATION = "· "
RECENT = 50  # conversations cached for completing /resume and /delete
RESUME_TURNS = 3  # turns shown again on /resume and -c
RESUME_LINES = 24  # lines of an answer shown again on /resume; a longer one is shortened
RESUME_CHARS = 2400  # characters of an answer shown again on /resume, at most
SHELL_LINES = 10  # lines of a !command's output shown as they come (then its last lines)


def run(args: argparse.Namespace) -> int:
    """Chat interactively as ``args`` (-m, -s, -c, -r, --db) say; returns the exit status."""
    from ..frontend import open_conversation, open_store

    no_log = getattr(args, "no_log", False)
    with contextlib.ExitStack() as cleanup:
        store = _unlogged_store(args, cleanup) if no_log else open_store(args.db, create=True)
        # at the end, a last try at writes that failed, else kept for the next start
        cleanup.callback(store.close)
        conversation = open_conversation(
            store, model_name=args.model, resume=args.resume, latest=args.cont, system=args.system
        )
        conversation.options.update(getattr(args, "options", {}))
        repl = Repl(store, conversation, no_log=no_log)
        repl.template = getattr(args, "template_obj", None)
        repl.template_params = dict(getattr(args, "params", None) or {})
        return _run(repl, args)


def _unlogged_store(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> Store:
    """``-n``: the store as it is, only read (conversations are kept in memory); with no store
    yet, an empty one in a temporary folder removed at the end, so nothing is created."""
    import tempfile

    from ..frontend import open_store
    from ..store import Store

    try:
        return open_store(args.db, create=False)
    except ChatreplError:
        if args.resume:
            raise
        folder = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="chatrepl-n-"))
        store = Store(os.path.join(folder, "empty.db"))
        cleanup.callback(store.close)
        return store


def _run(repl: Repl, args: argparse.Namespace) -> int:
    conversation = repl.conversation
    repl.welcome()
    repl.open_tools(getattr(args, "tools", None), getattr(args, "auto_approve", False))
    stage_arguments(repl, getattr(args, "attach", None))
    if args.cont and not conversation.responses:
        repl.say("No saved conversation yet: this is a new one.", "dim")
    elif conversation.responses:
        repl.show_resumed()
    repl.loop()
    return 0


class Repl:
    """The running session: one live conversation, the store, the screen and the input line.

    Args:
        store: where conversations are saved.
        conversation: the conversation to start with.
        console: the rich console to write to (the terminal by default).
        input, output: prompt-toolkit's input and output (the terminal by default; tests pass
            ``create_pipe_input()`` and ``DummyOutput()``).
        history: the input history (by default the ``history`` file in the home, mode 0600).
    """

    def __init__(
        self,
        store: Store,
        conversation: Conversation,
        *,
        no_log: bool = False,
        console: Console | None = None,
        input: Input | None = None,  # noqa: A002 - prompt-toolkit's name
        output: Output | None = None,
        history: History | None = None,
    ):
        self.store = store
        self.no_log = no_log  # -n: nothing is written (conversations live in memory)
        if no_log:
            conversation.store = None
        self.conversation = conversation
        #: the template whose prompt wraps each message (/template, -t), and its $params
        self.template: Template | None = None
        self.template_params: dict[str, str] = {}
        self.console = console if console is not None else make_console()
        self.input, self.output = input, output
        self.history = history
        self.running = True
        self.listed: list[str] = []  # ids of the last /list or /search, for /resume N
        self.recent: list[ConversationSummary] = []  # cached for completion
        self.toolbar = ""  # cached toolbar text
        self.staged: list[Part] = []  # files /attach staged for the next prompt
        self._toolbox: Toolbox | None = None
        self.runner: Runner | None = None  # runs the enabled tools' calls, asking first
        self.approve_all = False
        self._models: ModelList | None = None
        self._window: tuple[object, int | None] | None = None  # the model, its context window
        self._warmed: object = None  # the model last preloaded
        self._session: PromptSession[str] | None = None
        self._prefill: tuple[str, Callable[[str], None]] | None = None
        self._pasted = Pasted()  # whether the line being read began with a paste
        self.show_reasoning = _reasoning_setting()
        if conversation.budget is not None:  # "no price known" said here, once a model
            conversation.budget.warn = self._note
        self.refresh()

    # --- the loop -----------------------------------------------------------------------------

    def loop(self) -> None:
        """Read and handle lines until /exit or Ctrl-D."""
        while self.running:
            text = self.read()
            if text is None:
                break
            self.handle(text, typed=not self._pasted.at_start)
        if self._toolbox is not None:
            self._toolbox.close()  # the MCP servers stop with chatrepl
        if self.no_log:
            self.say("Nothing was saved (-n).", "dim")
        elif self.conversation.responses:
            from ..tables import unique_prefix

            short = unique_prefix(self.store, self.conversation.id)
            self.say(f"Saved as {short}: chatrepl -c continues it.", "dim")

    def read(self) -> str | None:
        """The next line typed, ``""`` after Ctrl-C on an empty line, ``None`` on Ctrl-D."""
        from ..screen.interrupt import typed_ahead

        default = (self._prefill[0] if self._prefill else "") + typed_ahead()
        self._pasted.at_start = False
        try:
            return self.session.prompt([("class:prompt", PROMPT)], default=default)
        except KeyboardInterrupt:
            self._prefill = None
            self.say(HOW_TO_LEAVE, "dim")
            return ""
        except EOFError:
            return None

    def handle(self, text: str, typed: bool = True) -> None:
        """Run a command or send a message; nothing typed here can end in a traceback.

        ``/NAME`` runs a command; a single line ``!CMD`` that was ``typed`` (not pasted) runs a
        shell command; ``//`` and ``\\!`` at the start send a message beginning with ``/``
        and ``!``."""
        text = text.strip()
        rewrite, self._prefill = self._prefill, None
        if not text or is_blank(text):  # only invisible characters: nothing to send
            return
        command = text.startswith("/") and not text.startswith("//")
        shell = typed and text.startswith("!") and "\n" not in text
        message = text[1:] if text.startswith(("//", "\\!")) else text
        try:
            if shell:
                self.run_shell(text[1:].strip())
            elif rewrite and not command:
                rewrite[1](message)
            elif command:
                dispatch(self, text)
            else:
                self.send(message)
        except KeyboardInterrupt:
            self.say("Cancelled.", "dim")
        except ChatreplError as exc:
            self.error(str(exc))
        except Exception as exc:  # a bug: say so in one line, keep the session alive
            if os.environ.get("CHATREPL_DEBUG"):
                traceback.print_exc()
            self.error(
                f"Something went wrong inside chatrepl ({type(exc).__name__}: {exc}); "
                "everything saved so far is safe. Please report it."
            )
        self.refresh()

    # --- talking to the model -----------------------------------------------------------------

    def send(self, text: str) -> None:
        """Send ``text`` as the next turn and show the answer as it streams; older turns are
        summarised first if the request would not fit the model's context window."""
        from ..compaction import make_room

        if self.template is not None and self.template.prompt:
            text = self.template.apply(text, self.template_params)[0]  # its $input is the message
        make_room(self.conversation, text, self.window(ask=True), self._note)
        staged = list(self.staged)
        if self.runner is not None and self.runner.tools:
            response = self.conversation.chain(text, tools=self.runner, attachments=staged)
        else:
            response = self.conversation.prompt(text, attachments=staged)
        self.staged.clear()  # sent with this prompt (and saved with it)
        self.show(response)

    def run_shell(self, command: str) -> None:
        """Run ``command`` (typed after ``!``), show its output and stage it for the next
        prompt; Ctrl-C stops it, and what it printed so far is staged all the same."""
        from ..redact import known_keys
        from ..screen.interrupt import Terminated, answering
        from ..shell import max_output, part, rest_of, run

        if not command:
            self.say("Type a command after !, e.g. !ls (\\! starts a message with !).")
            return
        limit, keys = max_output(), known_keys()
        shown: list[str] = []

        def show_line(line: str) -> None:  # the first lines as they come
            if len(shown) < SHELL_LINES:
                shown.append(line)
                self.say(make_safe(line))

        try:
            with answering():
                ran = run(command, limit, keys, show_line)
        except Terminated as exc:  # SIGTERM or SIGQUIT: the command is stopped, chatrepl ends
            raise SystemExit(exc.exit_status) from None
        hidden, last = rest_of(ran, len(shown))
        if hidden:
            self.say(f"… {plural(hidden, 'more line')} (all of it is staged)", "dim")
        for line in last:
            self.say(make_safe(line))
        staged = part(ran, keys)
        if ran.cut:
            self.say(
                f"The output was cut at {limit:,} characters ([shell] max_output in config.toml).",
                "dim",
            )
        how = (
            "Stopped; what it printed so far"
            if ran.stopped
            else f"Exit status {ran.status}; its output"
            if ran.status
            else "Its output"
        )
        if any(p.data.get("sha256") == staged.data["sha256"] for p in self.staged):
            self.say(f"{how} is already staged.", "dim")
            return
        self.staged.append(staged)
        self.say(f"{how} goes with your next prompt (/attach --clear drops it).", "dim")
        self.refresh()

    def show(self, response: Response, retried: bool = False) -> None:
        """Stream ``response`` to the screen; Ctrl-C stops it, keeping what arrived. A request
        too long for the context is compacted and asked again, once (``retried``)."""
        from ..frontend import stream_answer
        from ..screen.interrupt import answering

        shown = len(response.text_so_far)  # a continued answer: its first part is on screen
        screen = ToolScreen(self.console, reasoning=self.show_reasoning, shown=shown)
        if self.runner is not None:
            self.runner.after_call = screen.tool_line
        with answering():
            screen.start()
            error = stream_answer(response, screen, event=screen.event)
        if error is not None:
            self.error(error, hint="/retry tries again" if error.retryable else "")
            if not retried:
                from ..compaction import recover

                again = recover(self.conversation, response, self.window(), self._note)
                self._window = None  # a refusal may have taught the window: read it again
                self.window(ask=True)
                if again is not None:
                    self.show(again, retried=True)
                    return
        self.console.print()  # (the toolbar is refreshed once the line is handled)

    def open_tools(self, names: list[str] | None, approve_all: bool = False) -> None:
        """Enable the tools ``-T`` and config name; each call is asked here before it runs."""
        from ..frontend import open_tools
        from .approve import Approver

        self.approve_all = approve_all
        ask = Approver(self.console, self.input, self.output)
        self._toolbox, self.runner = open_tools(
            self.store, names, approve_all=approve_all, ask=ask, warn=self.error
        )
        if self.runner is not None and self.runner.tools:  # said at start, not only by /tools
            on = ", ".join(make_safe(t.name) for t in self.runner.tools.values())
            how = "they run without asking" if approve_all else "calls not pre-approved are asked"
            self.say(f"Tools on: {on} ({how}; /tools lists them).", "dim")

    def toolbox(self) -> Toolbox:
        """The session's tools (made on first use, for /tools)."""
        if self._toolbox is None:
            from ..settings import load_config
            from ..tools.toolbox import Toolbox
            from .approve import Approver

            self._toolbox = Toolbox(load_config(), self.store)
            ask = Approver(self.console, self.input, self.output)
            self.runner = self._toolbox.runner(approve_all=self.approve_all, ask=ask)
        return self._toolbox

    def _note(self, message: str) -> None:
        self.say(message, "dim")

    def prefill(self, text: str, send: Callable[[str], None]) -> None:
        """Start the next input line with ``text``; a message sent from it goes to ``send``."""
        self._prefill = (text, send)

    # --- switching conversations --------------------------------------------------------------

    def load(self, conversation_id: str) -> Conversation:
        """A saved conversation; with the current model if its own cannot be used here."""
        from ..frontend import load_conversation

        return load_conversation(
            self.store, conversation_id, fallback=self.conversation.model, warn=self.error
        )

    def switch_to(self, conversation: Conversation) -> None:
        """Make ``conversation`` the live one, under the session's budgets (kept in memory
        only under ``-n``)."""
        conversation.budget = self.conversation.budget
        if self.no_log:
            conversation.store = None
        self.conversation = conversation
        self.refresh()

    def show_resumed(self, n: int = RESUME_TURNS) -> None:
        """Say which conversation this is and show its last ``n`` turns again."""
        from ..screen.render import render_markdown
        from ..tables import unique_prefix

        c = self.conversation
        turns = c.turns
        short = unique_prefix(self.store, c.id)
        self.say(
            f"Resumed: {_title(c.title)} ({short}, {plural(len(turns), 'turn')}, "
            f"{make_safe(c.model.full_name)})",
            "bold",
        )
        if c.system:
            self.say(f"Persona: {make_safe(shorten(c.system, 70))}", "dim")
        if len(turns) > n:
            earlier = len(turns) - n
            self.say(f"… {plural(earlier, 'earlier turn')} not shown", "dim")
        for turn in turns[-n:] if n else []:
            self.echo_prompt(shortened(turn.prompt)[0])
            if turn.text_so_far:
                text, cut = shortened(turn.text_so_far)
                render_markdown(self.console, text)
                if cut:
                    self.say(
                        f"… {plural(cut, 'more line')} of this answer not shown: "
                        f"chatrepl show {short} shows it all (/copy copies it).",
                        "dim",
                    )
            if turn.status == "error":
                self.error(turn.error or "This turn failed.")
            elif note := ENDINGS.get(turn.status):
                self.say(note.split(":")[0], "dim")
            self.console.print()

    # --- small services for the commands ------------------------------------------------------

    def say(self, message: str, style: str = "") -> None:
        """Print one message (never parsed as rich markup)."""
        from rich.text import Text

        self.console.print(Text(message, style=style))

    def error(self, message: str, hint: str = "") -> None:
        """Print an error sentence on one line, in red when there is colour."""
        from rich.text import Text

        line = Text(make_safe(message), style="red")
        if hint:
            line.append(f"  {hint}", style="dim")
        self.console.print(line)

    def echo_prompt(self, text: str) -> None:
        """Show a message as it looks when typed."""
        from rich.text import Text

        lines = make_safe(text).split("\n")
        out = Text(PROMPT, style="bold")
        out.append(lines[0])
        for line in lines[1:]:
            out.append("\n" + CONTINUATION, style="dim")
            out.append(line)
        self.console.print(out)

    def confirm(self, question: str) -> bool:
        """Ask a y/N question; anything but yes (Ctrl-C and Ctrl-D too) is no."""
        from prompt_toolkit import PromptSession

        session: PromptSession[str] = PromptSession(input=self.input, output=self.output)
        try:
            answer = session.prompt(f"{question} [y/N] ")
        except (KeyboardInterrupt, EOFError):
            return False
        return answer.strip().lower() in ("y", "yes")

    def refresh(self) -> None:
        """Recompute what the toolbar and the completer show; after each turn or command."""
        with contextlib.suppress(StoreError):  # keep the old list: completion is a nicety
            self.recent = self.store.recent(RECENT)
        self.toolbar = toolbar_text(
            self.conversation, self.staged, self.window(), no_log=self.no_log
        )
        self._warm_up()

    def window(self, ask: bool = False) -> int | None:
        """The model's context window; ``ask``: ask the server if not known yet (done just
        before a prompt is sent, never at start-up or for the toolbar alone)."""
        from ..context import window_of

        model = self.conversation.model
        if self._window is None or self._window[0] is not model:
            if not ask:
                return None
            self._window = (model, window_of(self.conversation))
        return self._window[1]

    def _warm_up(self) -> None:
        """Load an in-process model in the background while the user types its first prompt."""
        model = self.conversation.model
        preload = getattr(model, "preload", None)
        if preload is None or model is self._warmed:
            return
        self._warmed = model

        def run() -> None:
            with contextlib.suppress(Exception):  # the first answer reports it properly
                preload()

        threading.Thread(target=run, name="preload", daemon=True).start()

    def model_list(self, fresh: bool = False) -> ModelList:
        """Which models exist and which are ready (``model_list``, kept for the session;
        ``fresh``: ask the servers again, as /model does)."""
        if self._models is None or fresh:
            from ..model_list import model_list

            self._models = model_list(current=self.conversation.model.full_name)
        return self._models

    def models(self) -> list[str]:
        """Model names to complete after /model: the models /model lists, then aliases."""
        try:
            found = self.model_list()
        except ChatreplError:
            return [self.conversation.model.full_name]
        return list(dict.fromkeys([self.conversation.model.full_name, *found.names()]))

    def model_status(self, name: str) -> str:
        """``ready``, ``no-key``, ``unreachable`` or ``not-installed``: Tab completion's note."""
        try:
            return self.model_list().status(name)
        except ChatreplError:
            return ""

    def welcome(self) -> None:
        """The first line: version, model, where help is."""
        from .._version import __version__

        self.say(
            f"chatrepl {__version__} · {self.conversation.model.full_name} · "
            "/help for commands, Ctrl-D to leave",
            "dim",
        )

    # --- prompt-toolkit -----------------------------------------------------------------------

    @property
    def session(self) -> PromptSession[str]:
        if self._session is None:
            self._session = self._make_session()
        return self._session

    def _make_session(self) -> PromptSession[str]:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.application import get_app
        from prompt_toolkit.filters import Condition
        from prompt_toolkit.styles import Style

        from .commands import COMMANDS
        from .completion import ChatCompleter
        from .keys import key_bindings

        def typing_command() -> bool:
            text = get_app().current_buffer.text
            return text.startswith("/") and not text.startswith("//") and "\n" not in text

        def toolbar() -> str:
            return fit(self.toolbar, get_app().output.get_size().columns)

        session: PromptSession[str] = PromptSession(
            multiline=True,
            key_bindings=key_bindings(self._pasted),
            history=self.history if self.history is not None else _file_history(self.no_log),
            completer=ChatCompleter(COMMANDS, lambda: self.recent, self.models, self.model_status),
            complete_while_typing=Condition(typing_command),
            reserve_space_for_menu=6,
            bottom_toolbar=toolbar,
            prompt_continuation=lambda width, line, wrap: CONTINUATION.rjust(width),
            enable_open_in_editor=True,
            style=Style.from_dict({"prompt": "bold"}),
            input=self.input,
            output=self.output,
        )
        session.default_buffer.on_text_changed += self._pasted.text_changed
        return session


def make_console() -> Console:
    """The console answers are written to: the terminal, colour unless NO_COLOR."""
    from rich.console import Console

    return Console(highlight=False)


def _file_history(no_log: bool = False) -> Any:
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    if no_log:  # -n: what is typed is not kept either
        return InMemoryHistory()

    from ..settings import history_path, private_file

    try:
        return FileHistory(str(private_file(history_path())))
    except OSError:
        print(
            "chatrepl: cannot write the input history file; history is kept for this run only.",
            file=sys.stderr,
        )
        return InMemoryHistory()


def shortened(text: str) -> tuple[str, int]:
    """The start of a long ``text`` to show again (whole lines, at most :data:`RESUME_LINES`
    and :data:`RESUME_CHARS`, code fences closed), and how many lines were left out."""
    from ..export import close_fences

    lines = text.split("\n")
    if len(lines) <= RESUME_LINES and len(text) <= RESUME_CHARS:
        return text, 0
    kept: list[str] = []
    size = 0
    for line in lines[:RESUME_LINES]:
        if size + len(line) > RESUME_CHARS:
            if not kept:  # one enormous line: its start
                kept.append(line[:RESUME_CHARS] + "…")
            break
        kept.append(line)
        size += len(line) + 1
    return close_fences("\n".join(kept)), max(len(lines) - len(kept), 1)


def _reasoning_setting() -> bool:
    from ..model_options import reasoning_shown

    try:
        return reasoning_shown()
    except ChatreplError:
        return True  # a bad config.toml is reported where it is used


def _title(title: str | None) -> str:
    return make_safe(shorten(title, 60)) if title else "(untitled)"
