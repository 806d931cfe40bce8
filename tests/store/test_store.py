"""The SQLite store: migrations, concurrency, crash safety, search and ids."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import child_env
from fakeserver import Reply

import chatrepl
from chatrepl import errors
from chatrepl.migrations import SCHEMA_VERSION
from chatrepl.store import Store


def chat(store, *prompts, model="echo"):
    c = chatrepl.get_model(model).conversation(store=store)
    for p in prompts:
        c.prompt(p).text()
    return c


def test_fresh_database_is_migrated_private_and_wal(tmp_path):
    path = tmp_path / "new.db"
    Store(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = [r[0] for r in con.execute("SELECT name FROM _migrations")]
    assert names == [
        "m001_initial", "m002_tree", "m003_by_conversation", "m004_cache_tokens",
        "m005_each_text_once", "m006_search_index_merged",
    ]  # fmt: skip
    assert con.execute("SELECT v FROM turns_fts_config WHERE k = 'automerge'").fetchone() == (2,)
    Store(path)  # opening again applies nothing twice
    assert con.execute("SELECT count(*) FROM _migrations").fetchone()[0] == SCHEMA_VERSION


def test_pragmas(tmp_path):
    store = Store(tmp_path / "x.db")
    assert store.db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_newer_database_is_refused_untouched(tmp_path):
    path = tmp_path / "future.db"
    Store(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(errors.NewerDatabaseError, match="newer chatrepl"):
        Store(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_corrupt_and_foreign_files_are_refused_untouched(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(errors.StoreError, match="corrupt or not a chatrepl database"):
        Store(junk)
    assert junk.read_bytes() == b"this is not sqlite at all" * 100
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(errors.StoreError, match="not chatrepl's"):
        Store(other)


def test_missing_database_is_not_created_when_asked_not_to(tmp_path):
    with pytest.raises(errors.StoreError, match="no chatrepl database"):
        Store(tmp_path / "nope.db", create=False)
    assert not (tmp_path / "nope.db").exists()


def test_prefix_resolution(tmp_path):
    store = Store(tmp_path / "x.db")
    ids = [chat(store, f"conversation {i}").id for i in range(3)]
    assert store.resolve(ids[0]) == ids[0]
    assert store.resolve(ids[1].lower()) == ids[1]
    unique = next(
        ids[2][:n] for n in range(1, 27) if sum(i.startswith(ids[2][:n]) for i in ids) == 1
    )
    assert store.resolve(unique) == ids[2]
    common = os.path.commonprefix(ids)
    with pytest.raises(errors.AmbiguousIdError) as info:
        store.resolve(common)
    assert sorted(info.value.candidates) == sorted(ids)
    with pytest.raises(errors.NotFoundError):
        store.resolve("ZZZZZZ")
    with pytest.raises(errors.NotFoundError, match="not a conversation id"):
        store.resolve("hello!")


def test_recent_lists_newest_first_with_counts(tmp_path):
    store = Store(tmp_path / "x.db")
    a = chat(store, "one", "two")
    b = chat(store, "three")
    recent = store.recent(10)
    assert [s.id for s in recent] == [b.id, a.id]
    assert [s.turns for s in recent] == [1, 2]
    assert recent[1].title == "one"
    assert store.last_id() == b.id


def test_search_finds_prompts_and_answers(tmp_path, openai_env):
    store = Store(tmp_path / "x.db")
    openai_env.push(Reply("Goats are ruminants with rectangular pupils."))
    c = chat(store, "tell me about caprines", model="openai:gpt-test")
    chat(store, "something else entirely")
    hits = store.search("rectangular")
    assert [h.conversation_id for h in hits] == [c.id]
    assert "[rectangular]" in hits[0].snippet
    assert [h.conversation_id for h in store.search("caprines")] == [c.id]
    assert store.search('weird "quote (syntax') == []  # user text never breaks FTS syntax


def test_search_follows_deletes_and_updates(tmp_path):
    store = Store(tmp_path / "x.db")
    c = chat(store, "ephemeral zebra")
    assert store.search("zebra")
    store.delete(c.id)
    assert store.search("zebra") == []
    assert store.count() == (0, 0)


def test_vacuum_keeps_search_in_step(tmp_path):
    store = Store(tmp_path / "x.db")
    for i in range(5):
        chat(store, f"word{i}")
    store.delete(store.resolve(store.recent(5)[-1].id))
    store.db.execute_sql("VACUUM")
    for i in range(1, 5):
        (hit,) = store.search(f"word{i}")
        assert store.turns(hit.conversation_id)[0].prompt == f"word{i}"


WRITER = textwrap.dedent(
    """
    import sys, chatrepl
    store = chatrepl.Store(sys.argv[1])
    for i in range(int(sys.argv[3])):
        c = chatrepl.get_model("echo").conversation(store=store)
        c.prompt(f"{sys.argv[2]} prompt {i}").text()
    """
)


def test_two_processes_writing_lose_nothing(tmp_path):
    path = tmp_path / "shared.db"
    Store(path).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, "300"], env=child_env())
        for name in ("alpha", "beta")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    store = Store(path)
    assert store.count() == (600, 600)
    con = sqlite3.connect(path)
    rows = con.execute(
        "SELECT x.prompt, x.response, t.status FROM turns t JOIN turn_texts x ON x.seq = t.seq"
    ).fetchall()
    assert {r[2] for r in rows} == {"complete"}
    assert all(p == r for p, r, _ in rows)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # the search index holds exactly the words of the texts it reads (FTS5 compares them)
    con.execute("INSERT INTO turns_fts (turns_fts, rank) VALUES ('integrity-check', 1)")


STREAMER = textwrap.dedent(
    """
    import sys, chatrepl
    store = chatrepl.Store(sys.argv[1])
    c = chatrepl.get_model("openai:gpt-test").conversation(store=store)
    for chunk in c.prompt("a prompt that must survive"):
        pass
    """
)


def test_killed_mid_stream_keeps_prompt_and_flushed_text(tmp_path, openai_env):
    path = tmp_path / "crash.db"
    Store(path).close()
    words = " ".join(f"w{i}" for i in range(200))
    openai_env.push(Reply(words, delay=0.02))
    proc = subprocess.Popen([sys.executable, "-c", STREAMER, str(path)], env=child_env())
    con = sqlite3.connect(path)
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline and len(text) < 40:
        time.sleep(0.1)
        row = con.execute("SELECT response FROM turn_texts").fetchone()
        text = row[0] if row else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    prompt, response, status = con.execute(
        "SELECT x.prompt, x.response, t.status FROM turns t JOIN turn_texts x ON x.seq = t.seq"
    ).fetchone()
    assert prompt == "a prompt that must survive"
    assert status == "pending"
    assert len(response) >= 40 and words.startswith(response)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(Store(path).recent(5)) == 1  # and the next start works


def test_search_ranks_the_better_match_first(tmp_path):
    store = Store(tmp_path / "x.db")
    strong = chat(store, "goat goat goat goat milk")
    weak = chat(store, "a long sentence that mentions a goat once among many other words here")
    assert [h.conversation_id for h in store.search("goat")] == [strong.id, weak.id]


def test_prefix_matches_are_added_only_within_their_time_budget(
    tmp_path, store: Store, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Whole words are always searched; words as prefixes only while that is quick (a short
    prefix in a million turns costs seconds in FTS5)."""
    import chatrepl
    from chatrepl import dialect

    c = chatrepl.get_model("echo").conversation(store=store)
    c.prompt("three goats graze").text()
    other = chatrepl.get_model("echo").conversation(store=store)
    other.prompt("one goat sleeps").text()
    assert {h.conversation_id for h in store.search("goat")} == {c.id, other.id}
    monkeypatch.setattr(dialect, "PREFIX_BUDGET_S", -1.0)  # already over at the
    monkeypatch.setattr(dialect, "_STEPS", 1)  # first look at the clock
    assert [h.conversation_id for h in store.search("goat")] == [other.id]  # the whole word
    assert store.search("goa") == []
