"""A database seeded with hostile text, and every command that prints stored text run over it.

What is stored came from outside (a model, a server, an imported file, another program writing
the database): a title, a persona, a prompt, an answer, a tool result or an attachment's name
may hold escape sequences (window title, clear screen, clipboard), C1 controls, bidi controls
that reorder a line, invisible characters, or bytes that were not UTF-8. Whatever a command
prints to a terminal, none of that reaches it as itself: the only control bytes in the output
are the styling the command adds (rich's SGR colours), newlines and tabs.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatrepl import manage
from chatrepl.conversation import Conversation
from chatrepl.ids import new_id
from chatrepl.providers.registry import get_backend
from chatrepl.records import CallRecord, ConversationRecord, Part, TurnRecord
from chatrepl.repl.app import Repl
from chatrepl.store import Store

pytestmark = pytest.mark.timeout(60)

#: Each of these must never reach a terminal as itself.
HOSTILE = (
    "\x1b]0;pwned title\x07"  # set the window title (OSC, BEL-terminated)
    "\x1b]2;pwned\x1b\\"  # the same, ST-terminated
    "\x1b[2J\x1b[H"  # clear the screen, cursor home
    "\x1b]52;c;cm0gLXJmIH4K\x07"  # OSC 52: write the clipboard
    "\x1b[6n"  # ask the terminal to type the cursor position into our input
    "\x1bP+q544e\x1b\\"  # DCS
    "\x9b2J\x9d0;c1 title\x9c"  # the 8-bit CSI and OSC
    "\u202eevil\u202c \u2066isolate\u2069 \u200fmark\u061c"  # bidi: reorder the line
    "\u200binvisible\ufeff\u2060\U000e0041"  # zero-width, BOM, word joiner, a tag
    "\x00nul\x08back\rreturn\x7fdel\x0bvt\x0cff"  # C0 controls and DEL
)
#: A character that may appear in what a command prints: not a control or format character
#: (newline and tab apart), not a surrogate.
FORBIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u200b\u200e\u200f\u2028-\u202e\u2060-\u206f"
    "\ufeff\ufff9-\ufffb\U000e0000-\U000e007f\ud800-\udfff]"
)
#: What rich adds on a terminal: colours and styles only (SGR), nothing else.
SGR = re.compile(r"\x1b\[[0-9;]*m")
WORD = "zanzibarian"  # a word to find the hostile turns by


def assert_clean(output: str, styled: bool = False) -> None:
    """No control or format character reaches the output, bar rich's own SGR when ``styled``."""
    text = SGR.sub("", output) if styled else output
    bad = FORBIDDEN.findall(text)
    assert not bad, f"{[hex(ord(c)) for c in bad[:10]]} in {text!r}"
    # the hostile text was shown (as text, or as JSON's escape), not dropped
    assert "^[" in text or "\\u001b" in text


def seed(path: Path) -> tuple[str, str]:
    """A database holding hostile text in every stored field that is shown; the ids of its two
    conversations (the first with a model chatrepl can resume with)."""
    store = Store(path)
    ids = []
    for model in ("echo:echo", f"openai:gpt{HOSTILE}"):
        cid = new_id()
        c = ConversationRecord(
            id=cid,
            title=f"Title {HOSTILE}",
            title_source="model",
            model=model,
            system=f"Persona {HOSTILE}",
            created="2025-01-31T14:02:05.123+00:00",
            updated="2025-01-31T14:05:00.000+00:00",
        )
        turns: list[TurnRecord] = []
        for n, status in enumerate(("complete", "error", "complete")):
            prompt = f"prompt {n} {WORD} {HOSTILE}"
            answer = f"answer {n} {WORD} {HOSTILE}\n\n```\ncode {HOSTILE}\n```\n"
            tid = new_id()
            turns.append(
                TurnRecord(
                    id=tid,
                    conversation_id=cid,
                    parent_id=turns[-1].id if n == 1 else (turns[0].id if turns else None),
                    model=model,
                    prompt=prompt,
                    system=c.system,
                    response=answer,
                    options={},
                    input_tokens=3,
                    output_tokens=5,
                    status=status,
                    error=f"The server said {HOSTILE}" if status == "error" else None,
                    started=f"2025-01-31T14:0{n}:00.000+00:00",
                    duration_ms=10,
                    ttft_ms=1,
                    parts=[
                        Part("prompt", prompt),
                        Part("attachment", "", {"name": f"file{HOSTILE}.txt", "sha256": "0" * 64}),
                        Part("reasoning", f"thinking {HOSTILE}", {}, 1),
                        Part("tool_call", "", {"id": "c1", "name": f"tool{HOSTILE}"}, 1),
                        Part("tool_result", f"result {HOSTILE}", {"call_id": "c1"}, 1),
                        Part("text", answer, {}, 2),
                    ],
                    calls=[CallRecord(1, model, "stop", 3, 5)],
                )
            )
        c.head = turns[-1].id
        assert store.import_conversation(c, turns)
        ids.append(cid)
    store.close()
    return ids[0], ids[1]


@pytest.fixture
def hostile_db(tmp_path: Path) -> tuple[Path, str, str]:
    path = tmp_path / "hostile.db"
    return (path, *seed(path))


class Stream(io.StringIO):
    def __init__(self, text: str = "", tty: bool = False):
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def run_on_a_terminal(monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> str:
    """``chatrepl ARGV`` in-process with stdout (and stdin) a terminal: stdout and stderr."""
    monkeypatch.setenv("COLUMNS", "200")
    out, err = Stream(tty=True), Stream(tty=True)
    with monkeypatch.context() as mp:
        mp.setattr(sys, "stdout", out)
        mp.setattr(sys, "stderr", err)
        mp.setattr(sys, "stdin", Stream(stdin, tty=True))
        status = manage.main(list(argv))
    assert status == 0, err.getvalue()
    return out.getvalue() + err.getvalue()


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["show", "{a}"],
        ["show", "{b}"],
        ["show", "{a}", "--markdown"],
        ["show", "{a}", "--markdown", "--all-branches"],
        ["export", "{a}"],
        ["export", "{a}", "--all-branches"],
        ["export", "{a}", "--format", "json"],
        ["search", WORD],
        ["search", WORD, "-n", "0"],
        ["delete", "{a}"],  # asks first, showing the title; answered "n"
    ],
    ids=lambda argv: " ".join(argv).replace("{a}", "A").replace("{b}", "B"),
)
def test_shell_commands_show_hostile_stored_text_as_text(
    argv: list[str], hostile_db: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, a, b = hostile_db
    args = [x.format(a=a, b=b) for x in argv]
    output = run_on_a_terminal(monkeypatch, *args, "--db", str(path), stdin="n\n")
    assert_clean(output, styled=True)


def test_search_snippets_on_a_terminal_are_cleaned(
    hostile_db: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snippet itself (not only the title) carries the hostile text, shown as text."""
    path, a, _ = hostile_db
    output = SGR.sub("", run_on_a_terminal(monkeypatch, "search", "evil", "--db", str(path)))
    assert_clean(output)
    assert "\\u202e" in output and "^[]0;pwned title^G" in output


# --- the REPL ------------------------------------------------------------------------------------


@pytest.fixture
def repl(hostile_db: tuple[Path, str, str]) -> Iterator[Repl]:
    path, _, _ = hostile_db
    store = Store(path)
    console = Console(file=io.StringIO(), width=200, color_system=None)
    with create_pipe_input() as pipe:
        yield Repl(
            store,
            Conversation(get_backend("echo"), store=store),
            console=console,
            input=pipe,
            output=DummyOutput(),
            history=InMemoryHistory(),
        )
    store.close()


def run(repl: Repl, line: str) -> str:
    """What one line typed into the REPL printed."""
    file = repl.console.file
    assert isinstance(file, io.StringIO)
    file.seek(0)
    file.truncate()
    repl.handle(line)
    return file.getvalue()


def test_repl_commands_over_hostile_stored_text(repl: Repl, hostile_db: tuple) -> None:
    _, a, _ = hostile_db
    assert_clean(run(repl, "/list"))
    assert_clean(run(repl, f"/search {WORD}"))
    assert_clean(run(repl, f"/resume {a}"))  # the last turns shown again
    assert repl.conversation.id == a
    for line in ("/system", "/info", "/tree", "/alt", "/undo"):
        assert_clean(run(repl, line))
    assert not FORBIDDEN.search(repl.toolbar), repl.toolbar
    assert "^[" in repl.toolbar  # the title is there, as text


def test_system_shows_the_persona_cleaned_and_whole(repl: Repl, hostile_db: tuple) -> None:
    _, a, _ = hostile_db
    run(repl, f"/resume {a}")
    out = run(repl, "/system")
    assert_clean(out)
    assert "Persona ^[]0;pwned title^G^[]2;pwned^[\\^[[2J^[[H" in out
    assert "\\u202eevil\\u202c" in out


def test_search_snippets_in_the_repl_are_cleaned(repl: Repl) -> None:
    out = run(repl, "/search evil")
    assert_clean(out)
    assert "\\u202eevil" in out and "^[]0;pwned title^G" in out


def test_invalid_utf8_typed_in_is_stored_valid_and_shown_cleaned(repl: Repl) -> None:
    """Bytes that were not UTF-8 (lone surrogates in Python) in a prompt and a persona."""
    run(repl, f"/system persona \udcff\udc80 {HOSTILE}")
    run(repl, f"a prompt \udcfe {WORD} {HOSTILE}")
    saved = repl.store.turns(repl.conversation.id)[-1]
    assert "\ufffd" in saved.prompt and not re.search("[\ud800-\udfff]", saved.prompt)
    assert saved.system and "\ufffd" in saved.system
    assert_clean(run(repl, "/system"))
    assert_clean(run(repl, "/info"))
    assert_clean(run(repl, f"/search {WORD}"))
