"""import-llm against real ``llm`` databases, in both of llm's layouts.

The databases are written by the installed ``llm`` CLI with its offline ``echo`` model
(llm-echo), which answers with the prompt and system prompt it was given: every imported turn
is compared with ``llm logs --json`` (llm's own reading, run on a copy) and with that answer.
The old layout (llm ≤ 0.31) is written by a real llm 0.31 when pip can fetch it into a
folder (about a second), and is always also built with llm's own migrations up to the last
one before its message store, filled the way llm 0.31 logged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chatrepl import manage
from chatrepl.conversation import Conversation
from chatrepl.importers.llm import model_name, read_conversations, ulid_for
from chatrepl.store import Store

pytestmark = pytest.mark.skipif(
    not (importlib.util.find_spec("llm") and importlib.util.find_spec("llm_echo")),
    reason="needs llm and llm-echo (pip install -e '.[dev]')",
)

FRAGMENT = "A FRAGMENT of a file\n"
SYSTEM_FRAGMENT = "Answer in haiku.\n"


def llm_env(user_path: Path, pythonpath: Path | None = None) -> dict[str, str]:
    """An environment for the llm CLI: its own folder, no keys, no outside plugins path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LLM_", "OPENAI_", "ANTHROPIC_", "PYTEST_", "PYTHONPATH"))
    }
    env["LLM_USER_PATH"] = str(user_path)
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def llm(user_path: Path, *args: str, pythonpath: Path | None = None) -> str:
    p = subprocess.run(
        [sys.executable, "-m", "llm", *args],
        env=llm_env(user_path, pythonpath),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def write_history(folder: Path, pythonpath: Path | None = None) -> Path:
    """Conversations written by a real llm: one turn; a persona and -c turns; fragments."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "frag.txt").write_text(FRAGMENT)
    (folder / "sfrag.txt").write_text(SYSTEM_FRAGMENT)
    kw = {"pythonpath": pythonpath}
    llm(folder, "-m", "echo", "hello world", **kw)
    llm(folder, "-m", "echo", "-s", "You are a goat", "Three names for a goat", **kw)
    llm(folder, "-c", "Two more", **kw)
    llm(folder, "-c", "One for a kid", "-o", "example_bool", "1", **kw)
    llm(folder, "-m", "echo", "-f", str(folder / "frag.txt"), "--sf", str(folder / "sfrag.txt"),
        "-s", "Be brief", "What is in it?", **kw)  # fmt: skip
    return folder / "logs.db"


@pytest.fixture(scope="session")
def new_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """llm's logs.db as the installed llm (0.32 or later) writes it."""
    return write_history(tmp_path_factory.mktemp("llm-new"))


@pytest.fixture(scope="session")
def old_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """llm 0.31 (the last to write the old layout) and llm-echo 0.4, in a folder of their own."""
    target = tmp_path_factory.mktemp("llm-0.31")
    p = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
         "--target", str(target), "llm==0.31", "sqlite-migrate", "llm-echo==0.4"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    if p.returncode != 0:
        pytest.skip(f"cannot install llm 0.31 (offline?): {p.stderr.strip()[-200:]}")
    return target


@pytest.fixture(scope="session")
def old_layout(tmp_path_factory: pytest.TempPathFactory, old_llm: Path) -> Path:
    """llm's logs.db as llm 0.31 wrote it: conversations and responses."""
    assert "0.31" in llm(tmp_path_factory.mktemp("v"), "--version", pythonpath=old_llm)
    db = write_history(tmp_path_factory.mktemp("llm-old"), pythonpath=old_llm)
    with sqlite3.connect(db) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    assert "responses" in tables and "turns" not in tables
    return db


def copy_of(db: Path, tmp_path: Path, name: str = "llm") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(db, folder / "logs.db")
    return folder / "logs.db"


def llm_view(db: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """Every response as llm itself reads it (from a copy: llm migrates what it opens)."""
    copy = copy_of(db, tmp_path, f"oracle-{uuid.uuid4().hex[:6]}")
    return json.loads(llm(copy.parent, "logs", "--json", "-n", "0"))


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def import_llm(path: Path, chat_db: Path, capsys: pytest.CaptureFixture[str]) -> str:
    status = manage.main(["import-llm", str(path), "--db", str(chat_db)])
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def iso(value: str) -> str:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def compare_every_turn(chat_db: Path, view: list[dict[str, Any]]) -> int:
    """Every response llm shows is a turn of the same conversation, equal field by field."""
    store = Store(chat_db, create=False)
    conversations: dict[str, list[dict[str, Any]]] = {}
    for row in view:
        conversations.setdefault(row["conversation_id"], []).append(row)
    for cid, rows in conversations.items():
        rows.sort(key=lambda r: (iso(r["datetime_utc"]), r["id"]))
        summary = store.summary(cid.upper())
        assert summary.id == cid.upper()
        turns = store.turns(summary.id, all_branches=True)
        assert len(turns) == len(rows)
        persona = None
        for t, r in zip(turns, rows, strict=True):
            echoed = json.loads(r["response"])  # what the echo model was sent
            assert t.id == r["id"].upper()
            assert t.conversation_id == summary.id
            assert t.model == "echo:echo"
            assert t.prompt == echoed["prompt"]
            assert t.response == r["response"]
            # The echo saw the system prompt with its fragments (``llm logs`` shows an old
            # layout's without them). llm 0.31 logs no system for a -c turn, yet sends the
            # earlier one again; llm-echo 0.5 is not shown one that sits in the history.
            assert t.system == (echoed["system"] or r["system"] or persona)
            persona = t.system
            assert t.input_tokens == r["input_tokens"] and t.output_tokens == r["output_tokens"]
            assert t.duration_ms == r["duration_ms"]
            assert t.started == iso(r["datetime_utc"])
            assert t.options == (r["options_json"] or {})
            assert t.status == "complete" and t.error is None
        assert summary.title == rows[0]["conversation_name"]
        assert summary.model == "echo:echo" and summary.system == persona
        assert summary.created == turns[0].started and summary.updated == turns[-1].started
    assert store.count() == (len(conversations), len(view))
    return len(view)


def check_the_history(chat_db: Path) -> None:
    """What write_history wrote, as chatrepl sees it."""
    rows = json.loads(subprocess_json(chat_db))
    by_title = {r["title"]: r for r in rows}
    assert len(by_title) == 3 and {"hello world", "Three names for a goat"} < set(by_title)
    goat = by_title["Three names for a goat"]
    assert goat["turns"] == 3 and goat["system"] == "You are a goat"
    store = Store(chat_db, create=False)
    turns = store.turns(goat["id"])
    assert [t.prompt for t in turns] == ["Three names for a goat", "Two more", "One for a kid"]
    assert [t.system for t in turns] == ["You are a goat"] * 3
    assert turns[2].options == {"example_bool": True}
    frag = next(r for r in rows if r["title"] not in ("hello world", "Three names for a goat"))
    (t,) = store.turns(frag["id"])
    assert t.prompt == FRAGMENT + "\nWhat is in it?"
    assert t.system == SYSTEM_FRAGMENT.strip() + "\n\nBe brief"


def subprocess_json(chat_db: Path) -> str:
    from io import StringIO

    out = StringIO()
    saved, sys.stdout = sys.stdout, out
    try:
        assert manage.main(["list", "-n", "0", "--json", "--db", str(chat_db)]) == 0
    finally:
        sys.stdout = saved
    return out.getvalue()


# --- the layout of the installed llm (threads, turns, messages) ----------------------------------


def test_new_layout_every_turn(new_layout: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = copy_of(new_layout, tmp_path)
    with sqlite3.connect(db) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        assert con.execute("SELECT count(*) FROM responses").fetchone()[0] == 0
    assert {"threads", "turns", "messages", "parts"} <= tables
    before = snapshot(db.parent)
    chat = tmp_path / "chat.db"
    out = import_llm(db, chat, capsys)
    assert out == f"Imported 3 conversations (5 turns) from {db}.\n"
    assert snapshot(db.parent) == before  # only read: not a byte changed, no file added
    assert compare_every_turn(chat, llm_view(db, tmp_path)) == 5
    check_the_history(chat)


def test_importing_twice_imports_nothing_twice(new_layout: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = copy_of(new_layout, tmp_path)
    chat = tmp_path / "chat.db"
    import_llm(db, chat, capsys)
    again = import_llm(db, chat, capsys)
    assert again == f"Imported 0 conversations (0 turns), 3 conversations already here from {db}.\n"
    assert Store(chat, create=False).count() == (3, 5)
    # llm goes on; the next import brings only what is new
    llm(db.parent, "-c", "A fourth one")
    llm(db.parent, "-m", "echo", "a new chat")
    out = import_llm(db, chat, capsys)
    assert out.startswith("Imported 1 conversation (1 turn), added 1 new turn to 1 conversation")
    assert compare_every_turn(chat, llm_view(db, tmp_path)) == 7


def test_an_imported_conversation_continues_in_chatrepl(
    new_layout: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    db = copy_of(new_layout, tmp_path)
    chat = tmp_path / "chat.db"
    import_llm(db, chat, capsys)
    store = Store(chat)
    goat = next(s for s in store.recent() if s.title == "Three names for a goat")
    c = Conversation.load(store, goat.id[:12])
    r = c.prompt("And a last one")
    sent = c.messages_for(r)
    assert [m.role for m in sent] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert sent[0].content == "You are a goat"
    assert [m.content for m in sent[1::2]] == [
        "Three names for a goat",
        "Two more",
        "One for a kid",
        "And a last one",
    ]
    assert r.text() == "And a last one"
    assert len(store.turns(goat.id)) == 4


def test_forks_tool_chains_and_turns_off_the_thread(
    new_layout: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    """Shapes the llm CLI does not write but its Python API can: built into a real database."""
    db = copy_of(new_layout, tmp_path)
    with sqlite3.connect(db) as con:
        con.row_factory = sqlite3.Row
        goat = con.execute("SELECT * FROM threads WHERE name = 'Three names for a goat'").fetchone()
        goat_turns = con.execute(
            "SELECT * FROM turns WHERE thread_id = ? ORDER BY datetime_utc", (goat["id"],)
        ).fetchall()
        # a fork from the goat thread after its second turn
        fork_id = "01m85g00000000000000000000"
        ask = add_message(con, goat_turns[1]["tip_message_hash"], "user", "In the fork")
        answer = add_message(con, ask, "assistant", "fork answer")
        con.execute(
            "INSERT INTO threads (id, name, tip_message_hash, forked_from, datetime_utc)"
            " VALUES (?, 'a fork', ?, ?, '2030-01-01 00:00:00+00:00')",
            (fork_id, answer, goat["id"]),
        )
        add_turn(con, "01m85g00000000000000000001", fork_id, ask, answer, "2030-01-01T00:00:01")
        # the goat thread's tip moved back one turn: its last turn is no longer its history
        con.execute(
            "UPDATE threads SET tip_message_hash = ? WHERE id = ?",
            (goat_turns[1]["tip_message_hash"], goat["id"]),
        )
        # a tool chain: one prompt, two model calls
        tools = "01m85g00000000000000000010"
        q = add_message(con, None, "user", "What time is it?")
        call = add_message(con, q, "assistant", None, part="tool_call")
        result = add_message(con, call, "tool", None, part="tool_result")
        final = add_message(con, result, "assistant", "It is noon.")
        con.execute(
            "INSERT INTO threads (id, name, tip_message_hash, datetime_utc)"
            " VALUES (?, 'time', ?, '2030-01-02 00:00:00+00:00')",
            (tools, final),
        )
        add_turn(con, "01m85g00000000000000000011", tools, q, call, "2030-01-02T00:00:01", 5, 2)
        add_turn(con, "01m85g00000000000000000012", tools, result, final, "2030-01-02T00:00:02", 9, 4)  # fmt: skip
    chat = tmp_path / "chat.db"
    import_llm(db, chat, capsys)
    store = Store(chat, create=False)

    fork = store.summary(fork_id.upper())
    turns = store.turns(fork.id)
    assert [t.prompt for t in turns] == ["Three names for a goat", "Two more", "In the fork"]
    assert [t.system for t in turns] == ["You are a goat"] * 3
    assert turns[2].id == "01M85G00000000000000000001" and turns[2].response == "fork answer"
    # the shared turns are copies with ids of their own, the same on every import
    assert turns[0].id != goat_turns[0]["id"].upper()
    assert turns[0].id == ulid_for(f"fork:{fork_id}:{goat_turns[0]['id']}", turns[0].started)
    assert turns[0].response == store.turns(goat["id"].upper())[0].response

    all_goat = store.turns(goat["id"].upper(), all_branches=True)
    on_path = {t.id for t in store.turns(goat["id"].upper())}
    assert [t.id in on_path for t in all_goat] == [True, True, False]  # the third is off it
    assert store.summary(goat["id"].upper()).turns == 2

    (turn,) = store.turns(tools.upper())
    assert turn.prompt == "What time is it?" and turn.response == "It is noon."
    assert (turn.input_tokens, turn.output_tokens) == (14, 6)
    assert [(p.kind, p.call) for p in turn.parts] == [
        ("prompt", 0),
        ("tool_call", 1),
        ("tool_result", 1),
        ("text", 2),
    ]
    call, result = turn.parts[1].data, turn.parts[2].data
    assert (call["name"], result["name"], result["call_id"]) == ("clock", "clock", call["id"])
    assert [(c.index, c.input_tokens, c.output_tokens) for c in turn.calls] == [
        (1, 5, 2),
        (2, 9, 4),
    ]
    assert import_llm(db, chat, capsys).startswith("Imported 0 conversations")


def add_message(
    con: sqlite3.Connection, parent: str | None, role: str, text: str | None, part: str = "text"
) -> str:
    h = "test:" + uuid.uuid4().hex
    con.execute(
        "INSERT INTO messages (hash, parent_hash, role) VALUES (?, ?, ?)", (h, parent, role)
    )
    payload = None if part == "text" else json.dumps({"name": "clock", "arguments": {}})
    con.execute(
        "INSERT INTO parts (message_hash, position, type, tool_name, text, payload)"
        " VALUES (?, 0, ?, ?, ?, ?)",
        (h, part, None if part == "text" else "clock", text, payload),
    )
    return h


def add_turn(
    con: sqlite3.Connection,
    turn_id: str,
    thread: str,
    parent: str,
    tip: str,
    when: str,
    tokens_in: int = 1,
    tokens_out: int = 1,
) -> None:
    con.execute(
        "INSERT INTO turns (id, thread_id, parent_message_hash, tip_message_hash, model,"
        " input_tokens, output_tokens, duration_ms, datetime_utc)"
        " VALUES (?, ?, ?, ?, 'gpt-4o-mini', ?, ?, 10, ?)",
        (turn_id, thread, parent, tip, tokens_in, tokens_out, when),
    )


# --- llm 0.31's layout (conversations, responses), written by llm 0.31 ---------------------------


def test_old_layout_every_turn(old_layout: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = copy_of(old_layout, tmp_path)
    before = snapshot(db.parent)
    chat = tmp_path / "chat.db"
    assert import_llm(db, chat, capsys) == f"Imported 3 conversations (5 turns) from {db}.\n"
    assert snapshot(db.parent) == before
    assert compare_every_turn(chat, llm_view(db, tmp_path)) == 5
    check_the_history(chat)
    assert import_llm(db, chat, capsys).startswith("Imported 0 conversations (0 turns), 3 ")


def test_a_database_upgraded_from_the_old_layout(old_layout: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Old conversations in responses, newer turns in turns: one history, nothing twice."""
    db = copy_of(old_layout, tmp_path)
    chat = tmp_path / "chat.db"
    import_llm(db, chat, capsys)  # before the upgrade
    with sqlite3.connect(db) as con:
        (goat,) = con.execute(
            "SELECT id FROM conversations WHERE name = 'Three names for a goat'"
        ).fetchone()
    llm(db.parent, "--cid", goat, "After the upgrade")  # the installed llm migrates and goes on
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM turns").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM responses").fetchone()[0] == 5
    out = import_llm(db, chat, capsys)
    assert out.startswith("Imported 0 conversations (0 turns), added 1 new turn to 1 conversation")
    assert compare_every_turn(chat, llm_view(db, tmp_path)) == 6
    turns = Store(chat, create=False).turns(goat.upper())
    assert [t.prompt for t in turns][-2:] == ["One for a kid", "After the upgrade"]
    assert turns[-1].system == "You are a goat"
    fresh = tmp_path / "fresh.db"  # and in one go
    import_llm(db, fresh, capsys)
    assert compare_every_turn(fresh, llm_view(db, tmp_path)) == 6


# --- llm's old layout, built with llm's own migrations (always, also offline) --------------------


def old_schema(path: Path, last: str = "m022_response_reasoning") -> sqlite3.Connection:
    """A database with llm's migrations applied up to ``last``, as an older llm left it."""
    import sqlite_utils
    from llm.migrations import MIGRATIONS, ensure_migrations_table

    db = sqlite_utils.Database(path)
    ensure_migrations_table(db)
    for fn in MIGRATIONS:
        fn(db)
        db["_llm_migrations"].insert({"name": fn.__name__, "applied_at": "2024-01-01"})
        if fn.__name__ == last:
            break
    db.close()
    return sqlite3.connect(path)


def test_old_layout_built_from_llms_migrations(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "llm" / "logs.db"
    db.parent.mkdir()
    with old_schema(db) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        assert "turns" not in tables and "responses" in tables
        con.execute(
            "INSERT INTO conversations VALUES ('01hq0000000000000000000000', 'Cheese', 'gpt-4o')"
        )
        con.execute(
            "INSERT INTO fragments (id, hash, content, source) VALUES (1, 'h', 'FRAG', 'f.txt')"
        )
        rows = [
            # id, model, prompt, system, options, response, when, in, out
            ("01hq0000000000000000000001", "gpt-4o", "Name a cheese", "Be French", '{"temperature": 0.5}',
             "Brie.", "2024-02-01T10:00:00.000001+00:00", 12, 3),
            ("01hq0000000000000000000002", "gpt-4o", "Another", None, "{}",
             "Comté.", "2024-02-01T10:01:00", 20, 4),
            ("01hq0000000000000000000003", "gpt-4o", "", None, "{}",  # a tool-chain step
             " And Roquefort.", "2024-02-01T10:01:01", 25, 5),
            ("01hq0000000000000000000004", "claude-3.5-sonnet", "Switch", "Be Italian", "{}",
             "Parmigiano.", "2024-02-01T10:02:00", 7, 2),
        ]  # fmt: skip
        for rid, model, prompt, system, options, response, when, tin, tout in rows:
            con.execute(
                "INSERT INTO responses (id, model, prompt, system, options_json, response,"
                " conversation_id, duration_ms, datetime_utc, input_tokens, output_tokens)"
                " VALUES (?, ?, ?, ?, ?, ?, '01hq0000000000000000000000', 100, ?, ?, ?)",
                (rid, model, prompt, system, options, response, when, tin, tout),
            )
        con.execute("INSERT INTO prompt_fragments VALUES ('01hq0000000000000000000002', 1, 0)")
        # a response logged with no conversation, and an id that is not a ULID
        con.execute(
            "INSERT INTO responses (id, model, prompt, response, datetime_utc)"
            " VALUES ('42', 'mistral-large', 'Alone', 'Yes.', '2024-03-01 09:00:00')"
        )
    before = snapshot(db.parent)
    chat = tmp_path / "chat.db"
    out = import_llm(db, chat, capsys)
    assert out == f"Imported 2 conversations (4 turns) from {db}.\n"
    assert snapshot(db.parent) == before
    store = Store(chat, create=False)
    cheese = store.summary("01HQ0000000000000000000000")
    assert (cheese.title, cheese.turns) == ("Cheese", 3)
    assert cheese.model == "anthropic:claude-3.5-sonnet" and cheese.system == "Be Italian"
    assert cheese.created == "2024-02-01T10:00:00.000+00:00"
    t = store.turns(cheese.id)
    assert [x.id for x in t] == [f"01HQ000000000000000000000{i}" for i in (1, 2, 4)]
    assert [x.model for x in t] == ["openai:gpt-4o"] * 2 + ["anthropic:claude-3.5-sonnet"]
    assert [x.prompt for x in t] == ["Name a cheese", "FRAG\nAnother", "Switch"]
    assert [x.system for x in t] == ["Be French", "Be French", "Be Italian"]
    assert t[1].response == "Comté. And Roquefort."  # the tool-chain step folded in
    assert (t[1].input_tokens, t[1].output_tokens, t[1].duration_ms) == (45, 9, 200)
    assert t[0].options == {"temperature": 0.5}
    assert t[1].started == "2024-02-01T10:01:00.000+00:00"  # no zone: llm wrote UTC
    alone = next(s for s in store.recent() if s.id != cheese.id)
    (a,) = store.turns(alone.id)
    assert (a.prompt, a.response, a.model, alone.title) == (
        "Alone",
        "Yes.",
        "llm:mistral-large",
        "Alone",
    )
    assert a.started == "2024-03-01T09:00:00.000+00:00"
    assert a.id == ulid_for("42", a.started) and a.id.startswith(alone.id[:10])
    assert import_llm(db, chat, capsys).startswith("Imported 0 conversations (0 turns), 2 ")


def test_a_very_old_database_without_token_columns(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "logs.db"
    with old_schema(db, last="m011_fts_for_responses") as con:
        assert "input_tokens" not in {r[1] for r in con.execute("PRAGMA table_info(responses)")}
        con.execute(
            "INSERT INTO conversations VALUES ('01h00000000000000000000000', 'Old', 'gpt-4')"
        )
        con.execute(
            "INSERT INTO responses (id, model, prompt, system, response, conversation_id,"
            " datetime_utc) VALUES ('01h00000000000000000000001', 'gpt-4', 'hi', NULL,"
            " 'hello', '01h00000000000000000000000', '2023-07-01T12:00:00.5')"
        )  # fmt: skip
    chat = tmp_path / "chat.db"
    import_llm(tmp_path, chat, capsys)  # a folder: its logs.db
    (t,) = Store(chat, create=False).turns("01H00000000000000000000000")
    assert (t.prompt, t.response, t.input_tokens, t.options) == ("hi", "hello", None, {})
    assert t.started == "2023-07-01T12:00:00.500+00:00"


# --- where, and what is not llm's ----------------------------------------------------------------


def test_the_default_path_is_where_llm_keeps_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "u"))
    assert manage.llm_logs_path() == tmp_path / "u" / "logs.db"
    monkeypatch.delenv("LLM_USER_PATH")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        assert manage.llm_logs_path() == tmp_path / "xdg" / "io.datasette.llm" / "logs.db"
        monkeypatch.delenv("XDG_CONFIG_HOME")
        monkeypatch.setenv("HOME", str(tmp_path))
        assert manage.llm_logs_path() == tmp_path / ".config" / "io.datasette.llm" / "logs.db"
    assert manage.llm_logs_path(str(tmp_path)) == tmp_path / "logs.db"
    assert manage.llm_logs_path(str(tmp_path / "x.db")) == tmp_path / "x.db"


def test_the_program_with_llms_own_path(new_layout: Path, tmp_path: Path) -> None:
    db = copy_of(new_layout, tmp_path)
    env = llm_env(db.parent)
    env["CHATREPL_DB"] = str(tmp_path / "chat.db")
    p = subprocess.run(
        [sys.executable, "-m", "chatrepl", "import-llm"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"Imported 3 conversations (5 turns) from {db}.\n"
    missing = subprocess.run(
        [sys.executable, "-m", "chatrepl", "import-llm", str(tmp_path / "nope.db")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1
    assert missing.stderr == (
        f"chatrepl: There is no llm database at {tmp_path / 'nope.db'}: give the path of llm's"
        " logs.db (`llm logs path` prints it).\n"
    )


@pytest.mark.parametrize("what", ["missing", "text", "chatrepl", "empty"])
def test_what_is_not_an_llm_database(what: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "logs.db"
    if what == "text":
        path.write_text("hello" * 200)
    elif what == "chatrepl":
        Store(path).close()
    elif what == "empty":
        sqlite3.connect(path).close()
    chat = tmp_path / "chat.db"
    status = manage.main(["import-llm", str(path), "--db", str(chat)])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("chatrepl: ") and err.count("\n") == 1
    assert {
        "missing": "There is no llm database",
        "text": "is not an SQLite database",
        "chatrepl": "not llm's logs",
        "empty": "not llm's logs",
    }[what] in err
    assert not chat.exists()


@pytest.mark.parametrize(
    ("llm_id", "name"),
    [
        ("echo", "echo:echo"),
        ("gpt-4o-mini", "openai:gpt-4o-mini"),
        ("o3-mini", "openai:o3-mini"),
        ("chatgpt-4o-latest", "openai:chatgpt-4o-latest"),
        ("claude-3.5-sonnet", "anthropic:claude-3.5-sonnet"),
        ("anthropic/claude-3-5-sonnet-latest", "anthropic:claude-3-5-sonnet-latest"),
        ("openrouter/meta-llama/llama-3-70b", "openrouter:meta-llama/llama-3-70b"),
        ("gemini-2.0-flash", "llm:gemini-2.0-flash"),
        ("llama3.2:latest", "llm:llama3.2:latest"),
        ("", "llm:unknown"),
    ],
)
def test_model_names(llm_id: str, name: str) -> None:
    assert model_name(llm_id, {"openai", "anthropic", "openrouter"}) == name


def test_ids_kept_or_derived_the_same_every_time() -> None:
    assert ulid_for("01m85fpze3t5s3xxv5ap2sz3kn", "") == "01M85FPZE3T5S3XXV5AP2SZ3KN"
    a = ulid_for("17", "2024-03-01T09:00:00.000+00:00")
    assert a == ulid_for("17", "2024-03-01T09:00:00.000+00:00") != ulid_for("18", "2024-03-01")
    assert len(a) == 26


def test_read_conversations_is_a_library_call(new_layout: Path) -> None:
    got = read_conversations(new_layout, known_providers=())
    assert [len(turns) for _, turns in got] == [1, 3, 1]
    assert all(s.id == turns[0].conversation_id for s, turns in got)
