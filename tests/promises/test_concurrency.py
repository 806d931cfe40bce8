"""Several chatrepl processes on one database: every round trip kept whole, no write lost."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor

from conftest import run_chatrepl
from fakeserver import Reply
from pty_repl import chatrepl as repl
from pty_repl import db, say

from chatrepl.conversation import Conversation
from chatrepl.providers.registry import get_backend
from chatrepl.store import Store

MODEL = "openai:gpt-test"
SLOTS = 12


def chatrepl(*args: str) -> subprocess.CompletedProcess[str]:
    return run_chatrepl(*args, timeout=120)


def test_twelve_one_shot_processes_at_once_lose_nothing(openai_env, tmp_path):
    """12 processes at once, 24 prompts: each asks, then continues its own conversation.

    Answers stream slowly enough (~0.5 s) that the flushes and final writes of the 12
    processes overlap, and the second prompts run while other first answers still stream.
    """
    server, db = openai_env, tmp_path / "shared.db"
    Store(db).close()  # one creator: the test is about sharing, not about racing to migrate
    server.push(*[Reply(None, delay=0.015) for _ in range(2 * SLOTS)])

    def slot(i: int) -> str:
        first = f"slot{i} " + " ".join(f"word{j}" for j in range(20))
        out = chatrepl("-m", MODEL, "-p", first, "--db", str(db))
        assert out.returncode == 0, out.stderr
        (hit,) = Store(db).search(f'"slot{i}"')  # the word exactly, not slot10
        out = chatrepl("-r", hit.conversation_id, "-p", f"slot{i} again", "--db", str(db))
        assert out.returncode == 0, out.stderr
        return hit.conversation_id

    with ThreadPoolExecutor(SLOTS) as pool:
        ids = list(pool.map(slot, range(SLOTS)))

    store = Store(db)
    assert store.count() == (SLOTS, 2 * SLOTS)
    for i, cid in enumerate(ids):
        first, second = store.turns(cid)
        assert first.prompt.startswith(f"slot{i} ") and second.prompt == f"slot{i} again"
        assert (first.status, second.status) == ("complete", "complete")
        assert first.response == f"You said: {first.prompt} (messages: 1)"
        assert second.response == f"You said: slot{i} again (messages: 3)"  # with its history
        assert first.output_tokens and second.output_tokens
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM turns_fts").fetchone()[0] == 2 * SLOTS


def test_a_title_set_elsewhere_survives_a_session_that_loaded_it_before(openai_env, tmp_path):
    """A session holds a conversation; `chatrepl title` renames it from another shell; the
    session's next prompt must not write its stale title back."""
    db = tmp_path / "titles.db"
    assert chatrepl("-m", MODEL, "-p", "first", "--db", str(db)).returncode == 0
    store = Store(db)
    session = Conversation.load(store, store.last_id())
    assert session.title == "first"

    out = chatrepl("title", session.id, "Renamed", "elsewhere", "--db", str(db))
    assert out.returncode == 0, out.stderr
    session.prompt("second").text()
    session.set_system("Be brief")
    session.set_model(get_backend(MODEL))

    assert Store(db).summary(session.id).title == "Renamed elsewhere"
    session.set_title("Renamed here")  # and the session's own rename still works
    assert Store(db).summary(session.id).title == "Renamed here"


def test_two_interactive_sessions_on_one_database_both_keep_working(home, openai_env):
    """Two REPLs on one database, typed at in turn: each keeps its own conversation going, sees
    the other's in /list and /search, and can join it without undoing the other's rename."""
    with repl(home) as a, repl(home) as b:
        for i in range(3):
            say(a, f"from A {i}", f"You said: from A {i} (messages: {2 * i + 1})")
            say(b, f"from B {i}", f"You said: from B {i} (messages: {2 * i + 1})")
        say(a, "/title Alpha", "Title: Alpha")
        say(b, "/list", "/resume N continues one")
        assert re.search(r"[12] +\w{8,} +Alpha +openai:test +3", b.text()), b.text()
        say(b, "/search from A 2", "from A 2")

        store = db(home)
        alpha = next(s.id for s in store.recent() if s.title == "Alpha")
        say(b, f"/resume {alpha}", "Resumed: Alpha")
        say(a, "/title Alpha renamed", "Title: Alpha renamed")
        say(b, "from B in Alpha", "You said: from B in Alpha (messages: 7)")
        say(a, "from A 3", "You said: from A 3 (messages: 7)")  # A's own view of it goes on
        for t in (a, b):
            t.line("/exit")
            assert t.wait_exit() == 0

    store = db(home)
    beta = next(s.id for s in store.recent() if s.id != alpha)
    assert store.summary(alpha).title == "Alpha renamed"
    every = store.turns(alpha, all_branches=True)
    assert [(t.prompt, t.status) for t in every] == [
        *[(f"from A {i}", "complete") for i in range(3)],
        ("from B in Alpha", "complete"),
        ("from A 3", "complete"),
    ]
    # Both went on from "from A 2": two branches, nothing lost; the head is the last written.
    assert every[3].parent_id == every[4].parent_id == every[2].id
    assert [t.prompt for t in store.turns(alpha)] == [f"from A {i}" for i in range(4)]
    assert [(t.prompt, t.status) for t in store.turns(beta)] == [
        (f"from B {i}", "complete") for i in range(3)
    ]
    con = sqlite3.connect(home / "chatrepl.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
