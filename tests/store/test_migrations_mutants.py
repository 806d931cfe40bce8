"""The schema's promises that mutation testing of ``chatrepl/migrations.py`` found unchecked
(benchmarks/mutation/RESULTS.md): how an existing SQLite file's version is read before anything
writes to it, the sentence a newer database is refused with, the SQLite version schema 5 needs,
and, on PostgreSQL, what a move from an older schema leaves in the database and what search
then shows.

Each test looks at what a caller can see: the refusal and its sentence, the bytes of the file and
its write-ahead log, what the database holds after the move, what search returns.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import old_schemas
import pytest

import chatrepl
from chatrepl.errors import NewerDatabaseError, StoreError
from chatrepl.ids import new_id
from chatrepl.migrations import SCHEMA_VERSION
from chatrepl.records import CallRecord, ConversationRecord, Part, TurnRecord
from chatrepl.store import Store

pytest_plugins = ("pgserver",)
pytestmark = pytest.mark.timeout(120)

DAY = "2025-01-01T00:00:00.000+00:00"


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


# --- SQLite: reading an existing file's version --------------------------------------------------


def a_newer_database_left_with_its_log(folder: Path) -> Path:
    """A database a newer chatrepl wrote and then crashed with: its last changes, the newer
    schema's number among them, are in the write-ahead log, not yet in the file."""
    live = folder / "live"
    live.mkdir()
    Store(live / "chat.db").close()
    writer = sqlite3.connect(live / "chat.db")
    try:
        writer.execute("CREATE TABLE from_the_future (x)")
        writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        writer.commit()
        crashed = folder / "crashed"
        crashed.mkdir()
        for name in ("chat.db", "chat.db-wal"):  # what a crash leaves: the file and its log
            shutil.copy(live / name, crashed / name)
    finally:
        writer.close()
    return crashed / "chat.db"


def test_a_newer_database_whose_last_changes_are_in_its_log_is_refused_untouched(
    tmp_path: Path,
) -> None:
    """The version is read with the log (the newer schema is seen before anything opens the file
    to write), read-only: the log is not folded into the file on the way out."""
    # Kills sqlite_version_1, _3, _6, _7 (opened read-write, or ``immutable`` without the log).
    path = a_newer_database_left_with_its_log(tmp_path)
    before = digests(path.parent)
    with pytest.raises(NewerDatabaseError) as refused:
        Store(path)
    assert f"schema {SCHEMA_VERSION + 1}, this one knows {SCHEMA_VERSION}" in str(refused.value)
    assert "left untouched" in str(refused.value)
    after = digests(path.parent)
    assert {n: after.get(n) for n in before} == before  # the file and its log, byte for byte


def test_a_restored_dump_of_a_newer_database_is_refused_naming_the_file(tmp_path: Path) -> None:
    """A copy restored from ``sqlite3 .dump`` (no ``user_version``) whose ``_migrations`` names
    a step this chatrepl does not know: refused with a sentence naming the file and saying what
    to do, nothing changed."""
    # Kills migrate_sqlite_17 (the sentence dropped).
    path = tmp_path / "restored.db"
    store = Store(path)
    chatrepl.get_model("echo").conversation(store=store).prompt("kept").text()
    store.close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 0")
    con.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', '2030-01-01')")
    con.commit()
    con.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(NewerDatabaseError) as refused:
        Store(path)
    sentence = str(refused.value)
    assert str(path) in sentence and "newer chatrepl" in sentence and "upgrade" in sentence
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


# --- SQLite: the library schema 5 needs ----------------------------------------------------------


def a_schema_4_database(tmp_path: Path) -> Path:
    path = tmp_path / "old.db"
    old = old_schemas.sqlite_at(path, 4)
    old.close()
    return path


def test_schema_5_is_reached_with_sqlite_3_35(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3.35 is the first SQLite with ``DROP COLUMN``: a Python built with it moves the file on."""
    # Kills m005_each_text_once_3 (3.36 asked for).
    path = a_schema_4_database(tmp_path)
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 35, 0))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.35.0")
    Store(path).close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_schema_5_with_an_older_sqlite_is_refused_saying_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = a_schema_4_database(tmp_path)
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.34.1")
    with pytest.raises(StoreError, match=r"needs SQLite 3\.35 or later \(this Python has 3\.34\.1"):
        Store(path)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone() == (4,)  # the move rolled back


# --- PostgreSQL: the move to schema 5 ------------------------------------------------------------


def test_a_postgres_move_to_schema_5_keeps_a_turns_own_texts_only_where_its_parts_differ(
    tmp_path: Path, pg_url: str
) -> None:
    """Each text once: after the move a turn whose columns say what its parts say keeps no copy
    of its prompt or answer; one whose prompt column says something else (written by another
    program) keeps that prompt, and only that."""
    # Kills pg_m005_each_text_once_21, _22, _27, _28 (every text copied into its own columns).
    from dataclasses import replace

    scratch = Store(tmp_path / "scratch.db")
    c = chatrepl.get_model("echo").conversation(store=scratch)
    c.prompt("same words").text()
    c.prompt("other words").text()
    record = scratch.conversation(c.id)
    same, other = scratch.turns(c.id)
    apart = replace(other, prompt="the column's prompt")
    scratch.close()
    old = old_schemas.postgres_at(pg_url, 4)
    old_schemas.write(old, 4, [(record, [same, apart])], postgres=True)
    old.close()

    store = Store(pg_url)
    assert store.turns(c.id) == [same, apart]
    rows = store.db.execute_sql(
        "SELECT prompt_override, response_override FROM chatrepl.turns ORDER BY seq"
    ).fetchall()
    assert [tuple(r) for r in rows] == [(None, None), ("the column's prompt", None)]
    store.close()


def test_postgres_search_shows_the_words_of_a_tool_result_it_found(pg_url: str) -> None:
    """A word found in a tool's result is shown, marked, in the hit's snippet (the snippet is
    made from the turn's prompt, answer, tool results and attachment names)."""
    # Kills pg_m005_each_text_once_38 (tool results' texts left out of ``turn_texts``).
    store = Store(pg_url)
    cid = new_id()
    parts = [
        Part("prompt", "what is the weather"),
        Part("tool_call", "", {"id": "c1", "name": "forecast"}, 1),
        Part("tool_result", "tomorrow looks drizzly", {"call_id": "c1", "name": "forecast"}, 1),
        Part("text", "take an umbrella", {}, 2),
    ]
    t = TurnRecord(
        new_id(), cid, None, "echo:echo", "what is the weather", None, "take an umbrella", {},
        3, 4, "complete", None, DAY, 10, 5, parts=parts,
        calls=[CallRecord(1, "echo:echo", "tool_calls"), CallRecord(2, "echo:echo", "stop")],
    )  # fmt: skip
    store.import_conversation(ConversationRecord(cid, None, None, "echo:echo", None, DAY, DAY), [t])
    (hit,) = store.search("drizzly", marks=("<<", ">>"))
    assert hit.conversation_id == cid
    assert "<<drizzly>>" in hit.snippet
    store.close()
