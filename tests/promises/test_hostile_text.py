"""Text from outside never reaches the screen raw, on any path.

A database is seeded with hostile text (escape sequences, C0 and C1 controls, bidi overrides
and isolates, invisible format characters) in every field that is ever shown: titles, model
names, personas, prompts, answers, reasoning, tool calls and results, errors. Every command
that prints stored text is run over it, in the shell and in the REPL, and no control byte or
bidi control may come out (rich's own styling aside).
"""

from __future__ import annotations

import io
import json
import re
import sys

import pytest

from chatrepl.cli import main
from chatrepl.records import CallRecord, ConversationRecord, Part, TurnRecord
from chatrepl.store import Store

HOSTILE = (
    "\x1b]0;pwned\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07\x9b31m\x90q\x9c\u202eevil\u202c"
    "\u2066iso\u2069\u200f\x00\x08\r\x7f\ufeffend"
)
#: rich's own sequences: styles (SGR), hiding the cursor and synchronized output, erasing and
#: moving up a line of the live display (never the ones a hostile text carries: OSC, clear).
#: (The live display also returns the carriage before a new line.)
# rich's styling and the live region's own controls (colours, cursor shown/hidden, synchronized
# output, autowrap off/on, erase line/below, cursor up/down, save/restore the cursor)
RICH_STYLE = re.compile(
    r"\r?\x1b\[(?:[0-9;]*m|\?(?:25|2026|7)[hl]|2K|J|\d*[AB])|\r?\x1b[78]|\r(?=\n)"
)
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")


def leaks(text: str) -> list[str]:
    """The forbidden characters in ``text`` once rich's styling is taken out."""
    return FORBIDDEN.findall(RICH_STYLE.sub("", text))


def seed(path, n: int = 1) -> list[str]:
    """A database of ``n`` conversations with hostile text in every field; their ids."""
    store = Store(path)
    ids = []
    for k in range(n):
        cid = f"01JAAAAAAAAAAAAAAAAAAAAAA{k}"
        turns = []
        parent = None
        for i, status in enumerate(("complete", "error", "interrupted")):
            tid = f"01JBBBBBBBBBBBBBBBBBBBBB{k}{i}"
            parts = [
                Part("prompt", f"goat {HOSTILE} prompt {i}\n# heading {HOSTILE}"),
                Part("reasoning", f"thinking {HOSTILE}", {}, 1),
                Part("tool_call", "", {"name": f"tool{HOSTILE}", "arguments": {"q": HOSTILE}}, 1),
                Part("tool_result", f"goat result {HOSTILE}", {"name": f"tool{HOSTILE}"}, 1),
                Part("text", f"goat answer {HOSTILE}\n\n```\n{HOSTILE}\n```", {}, 2),
            ]
            turns.append(
                TurnRecord(
                    tid,
                    cid,
                    parent,
                    f"evil:{HOSTILE}",
                    parts[0].text,
                    f"persona {HOSTILE}",
                    parts[-1].text,
                    {},
                    3,
                    4,
                    status,
                    f"failed {HOSTILE}" if status == "error" else None,
                    f"2025-01-0{i + 1}T10:00:00.000+00:00",
                    10,
                    5,
                    parts=parts,
                    calls=[CallRecord(1, f"evil:{HOSTILE}"), CallRecord(2, f"evil:{HOSTILE}")],
                )
            )
            parent = tid
        record = ConversationRecord(
            cid,
            f"title {HOSTILE}",
            "user",
            f"evil:{HOSTILE}",
            f"persona {HOSTILE}",
            "2025-01-01T10:00:00.000+00:00",
            "2025-01-03T10:00:00.000+00:00",
            parent,
        )
        assert store.import_conversation(record, turns)
        ids.append(cid)
    store.close()
    return ids


def strings(data: object) -> list[str]:
    """Every string inside ``data`` (JSON as loaded)."""
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [s for v in data.values() for s in strings(v)]
    if isinstance(data, list):
        return [s for v in data for s in strings(v)]
    return []


class Stream(io.StringIO):
    def __init__(self, text: str = "", tty: bool = False):
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def run(monkeypatch, *argv: str, tty: bool = True) -> tuple[int, str, str]:
    out, err = Stream(tty=tty), Stream()
    with monkeypatch.context() as mp:
        mp.setattr(sys, "stdout", out)
        mp.setattr(sys, "stderr", err)
        mp.setattr(sys, "stdin", Stream("", tty=False))
        try:
            status = main(list(argv))
        except SystemExit as exc:  # argparse's usage errors, as the process exits with them
            status = exc.code if isinstance(exc.code, int) else 2
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    path = tmp_path / "hostile.db"
    seed(path, 2)
    return path


SHELL = [
    ("list",),
    ("list", "--json"),
    ("show", "01JAAAAAAAAAAAAAAAAAAAAAA0"),
    ("show", "01JAAAAAAAAAAAAAAAAAAAAAA0", "--markdown"),
    ("show", "01JAAAAAAAAAAAAAAAAAAAAAA0", "--markdown", "--all-branches"),
    ("show", "01JAAAAAAAAAAAAAAAAAAAAAA0", "--json"),
    ("search", "goat"),
    ("search", "goat", "--json"),
    ("export", "01JAAAAAAAAAAAAAAAAAAAAAA0"),
    ("export", "01JAAAAAAAAAAAAAAAAAAAAAA0", "--format", "json"),
    ("title", "01JAAAAAAAAAAAAAAAAAAAAAA1", f"new {HOSTILE}"),
]


@pytest.mark.parametrize("argv", SHELL, ids=lambda a: " ".join(a[:3])[:40])
def test_shell_commands_show_hostile_text_inert_on_a_terminal(db, monkeypatch, argv):
    status, out, err = run(monkeypatch, *argv, "--db", str(db))
    assert status == 0, err
    assert "Traceback" not in err
    assert leaks(out) == [] and leaks(err) == [], (out[:2000], err)


@pytest.mark.parametrize("argv", [a for a in SHELL if "--json" in a or "json" in a])
def test_json_output_is_inert_and_loses_nothing(db, monkeypatch, argv):
    status, out, _ = run(monkeypatch, *argv, "--db", str(db), tty=False)
    assert status == 0 and leaks(out) == []
    assert any(HOSTILE in text for text in strings(json.loads(out)))  # the same data


def test_tab_separated_lines_into_a_pipe_are_inert(db, monkeypatch):
    for argv in (("list",), ("search", "goat")):
        status, out, _ = run(monkeypatch, *argv, "--db", str(db), tty=False)
        assert status == 0 and out and leaks(out) == [], out


def test_error_messages_quote_outside_text_inert(db, monkeypatch, tmp_path):
    cases = [
        ("show", HOSTILE, "--db", str(db)),
        ("-r", HOSTILE, "-p", "hi", "--db", str(db)),
        (HOSTILE,),
        ("list", "-n", HOSTILE, "--db", str(db)),
        ("search", "goat", "-n", HOSTILE, "--db", str(db)),
        (
            "export",
            "01JAAAAAAAAAAAAAAAAAAAAAA0",
            "-o",
            str(tmp_path / HOSTILE / "x.md"),
            "--db",
            str(tmp_path / "none.db"),
        ),
        ("-m", f"nosuch{HOSTILE}:x", "-p", "hi", "--db", str(db)),
        ("-m", HOSTILE, "-p", "hi", "--db", str(db)),
    ]
    for argv in cases:
        status, out, err = run(monkeypatch, *argv)
        assert status != 0, argv
        assert err.strip() and "Traceback" not in err
        assert leaks(out) == [] and leaks(err) == [], (argv, err)


def test_an_imported_file_with_hostile_names_is_quoted_inert(tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"chatrepl_export": 1, "conversation": {"model": HOSTILE}}), "utf-8")
    status, out, err = run(monkeypatch, "import", str(bad), "--db", str(tmp_path / "i.db"))
    assert status == 1 and leaks(err) == [] and leaks(out) == [], err


def test_hostile_config_values_are_quoted_inert(tmp_path, monkeypatch, home):
    home.mkdir(parents=True, exist_ok=True)
    esc = json.dumps(HOSTILE)[1:-1]  # a JSON string's escapes are TOML's too
    (home / "config.toml").write_text(
        f'default_model = "evil:x"\n[providers.evil]\ntype = "openai"\n'
        f'base_url = "http://localhost:1"\nlabel = "{esc}"\nmodels = ["{esc}"]\n'
        f'[aliases]\n"{esc}" = "evil:{esc}"\n',
        "utf-8",
    )
    for argv, tty in ((("models",), True), (("models",), False), (("models", "--json"), True)):
        status, out, err = run(monkeypatch, *argv, tty=tty)
        assert status == 0, err
        assert leaks(out) == [] and leaks(err) == [], out
    (home / "config.toml").write_text(f'[providers.evil]\nread_timeout = "{esc}"\n', "utf-8")
    status, out, err = run(monkeypatch, "-m", "evil:x", "-p", "hi", "--db", str(tmp_path / "c.db"))
    assert status == 1 and leaks(err) == [], err


# --- the REPL ------------------------------------------------------------------------------------


REPL_COMMANDS = [
    "/list",
    "/list 0",
    "/search goat",
    "/resume 01JAAAAAAAAAAAAAAAAAAAAAA1",
    "/info",
    "/system",
    "/tree",
    "/alt",
    "/retry",
    "/undo",
    "/title",
    "/model",
    f"/model evil:{HOSTILE}",
    f"/{HOSTILE}",
    f"/resume {HOSTILE}",
    f"/export {HOSTILE}/x.md",
    "/delete 01JAAAAAAAAAAAAAAAAAAAAAA1",
]


def test_every_repl_command_over_hostile_text_is_inert(db, home):
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput
    from rich.console import Console

    from chatrepl.frontend import load_conversation
    from chatrepl.repl.app import Repl

    store = Store(db)
    out = io.StringIO()
    console = Console(file=out, width=90, force_terminal=True, color_system="standard")
    with create_pipe_input() as pipe:
        conversation = load_conversation(store, "01JAAAAAAAAAAAAAAAAAAAAAA0")
        repl = Repl(store, conversation, console=console, input=pipe, output=DummyOutput())
        repl.show_resumed()
        for line in REPL_COMMANDS:
            pipe.send_text("n\n")  # answers a y/N question, if one is asked
            repl.handle(line)
    text = out.getvalue()
    assert "Something went wrong inside chatrepl" not in text
    plain = RICH_STYLE.sub("", text)
    assert leaks(text) == [], [
        plain[m.start() - 200 : m.end() + 20] for m in FORBIDDEN.finditer(plain)
    ]
    assert "^[]0;pwned^G" in text  # shown, as text


def test_text_that_is_not_utf8_in_the_database_is_shown_replaced(db, monkeypatch):
    import sqlite3

    con = sqlite3.connect(db)
    con.execute(
        "UPDATE conversations SET title = CAST(x'41eda080ff1b5b324a' AS TEXT), "
        "model = CAST(x'ff' AS TEXT)"
    )
    con.execute("UPDATE parts SET text = CAST(x'676f6174eda080ff' AS TEXT) WHERE kind = 'text'")
    con.commit()
    con.close()
    for argv in (("list",), ("search", "goat"), ("show", "01JAAAAAAAAAAAAAAAAAAAAAA0")):
        for tty in (True, False):
            status, out, err = run(monkeypatch, *argv, "--db", str(db), tty=tty)
            assert status == 0, (argv, err)
            assert "\ufffd" in out and (leaks(out) == [] or not tty)


def test_resuming_a_conversation_whose_model_is_hostile_says_so_inert(db, tmp_path):
    from conftest import run_chatrepl

    out = run_chatrepl("-r", "01JAAAAAAAAAAAAAAAAAAAAAA0", "-p", "hi", "--db", str(db))
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert "Continuing with" in out.stderr and leaks(out.stderr) == [], out.stderr
