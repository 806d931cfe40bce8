"""Databases written by earlier schemas move to the current one losing nothing, on SQLite and on
PostgreSQL: every turn, part and call comes back as it was written, heads stay, search finds
what it found, and since schema 5 each text is kept once (the SQLite file gives the space back).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import old_schemas
import pytest
from test_store_layout import every_turn, fill

import chatrepl
from chatrepl.conversation import Conversation
from chatrepl.migrations import SCHEMA_VERSION
from chatrepl.store import Store

pytest_plugins = ("pgserver",)


def history(tmp_path: Path, server) -> tuple[list, list]:
    """Conversations with branches, reasoning, tool calls over two model calls and a persona,
    as records (written by today's store, read back): what an old database is filled with."""
    scratch = Store(tmp_path / "scratch.db")
    cids = fill(scratch, server)
    records = [
        (scratch.conversation(cid), every)
        for cid, every in zip(cids, every_turn(scratch, cids), strict=True)
    ]
    scratch.close()
    return cids, records


def check(store: Store, cids: list[str], records: list) -> None:
    """Everything written before is read back the same; search and writing go on."""
    assert every_turn(store, cids) == [turns for _, turns in records]
    assert [store.conversation(cid).head for cid in cids] == [c.head for c, _ in records]
    assert any(p.kind == "tool_result" for t in records[0][1] for p in t.parts)
    assert [h.conversation_id for h in store.search("sunny")] == [cids[0]]  # a tool result
    assert {h.conversation_id for h in store.search("three")} == {cids[1]}
    c = Conversation.load(store, cids[1])
    assert c.prompt("five").text() == "five"
    assert [r.prompt for r in Conversation.load(store, cids[1]).path] == [
        "one", "two", "four", "five",
    ]  # fmt: skip
    assert {h.conversation_id for h in store.search("five")} == {cids[1]}
    store.delete(cids[0])
    assert store.search("sunny") == []


@pytest.mark.parametrize("version", [2, 3, 4])
def test_an_sqlite_database_of_an_older_schema_moves_to_the_current_one(
    version: int, tmp_path: Path, server, openai_env
) -> None:
    cids, records = history(tmp_path, server)
    path = tmp_path / "old.db"
    old = old_schemas.sqlite_at(path, version)
    old_schemas.write(old, version, records)
    old.close()

    store = Store(path)
    assert store.notice is None  # a small file: given back at once
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    columns = {r[1] for r in con.execute("PRAGMA table_info(turns)")}
    assert not columns & {"prompt", "response", "extra"}  # the texts are in the parts only
    assert con.execute(
        "SELECT count(*) FROM turns WHERE prompt_override IS NOT NULL "
        "OR response_override IS NOT NULL"
    ).fetchone() == (0,)
    assert con.execute("PRAGMA freelist_count").fetchone()[0] == 0  # VACUUMed
    automerge = "SELECT v FROM turns_fts_config WHERE k = 'automerge'"
    assert con.execute(automerge).fetchone() == (2,)  # schema 6: segments merged sooner
    check(store, cids, records)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    con.execute("INSERT INTO turns_fts (turns_fts, rank) VALUES ('integrity-check', 1)")


@pytest.mark.parametrize("version", [2, 3, 4])
def test_a_postgres_database_of_an_older_schema_moves_to_the_current_one(
    version: int, tmp_path: Path, server, openai_env, pg_url: str
) -> None:
    cids, records = history(tmp_path, server)
    old = old_schemas.postgres_at(pg_url, version)
    old_schemas.write(old, version, records, postgres=True)
    old.close()
    store = Store(pg_url)
    columns = {r[0] for r in store.db.execute_sql(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'turns' "
        "AND table_schema = 'chatrepl'"
    )}  # fmt: skip
    assert not columns & {"prompt", "response", "extra", "words"}
    check(store, cids, records)
    store.close()


def test_a_turn_whose_texts_differ_from_its_parts_keeps_them_through_the_move(
    tmp_path: Path,
) -> None:
    """A schema 4 turn whose columns say something its parts do not (written by another
    program): the columns' texts are kept, in its own columns, and nothing else is."""
    from dataclasses import replace

    scratch = Store(tmp_path / "scratch.db")
    c = chatrepl.get_model("echo").conversation(store=scratch)
    c.prompt("same words").text()
    record = scratch.conversation(c.id)
    (turn,) = scratch.turns(c.id)
    apart = replace(turn, prompt="the column's prompt")
    path = tmp_path / "old.db"
    old = old_schemas.sqlite_at(path, 4)
    old_schemas.write(old, 4, [(record, [apart])])
    old.close()
    store = Store(path)
    assert store.turns(c.id) == [apart]
    assert store.path_to(turn.id, texts=False)[0].prompt == "same words"
    con = sqlite3.connect(path)
    assert con.execute("SELECT prompt_override, response_override FROM turns").fetchall() == [
        ("the column's prompt", None)
    ]


def test_a_first_release_database_moves_to_the_current_one(tmp_path: Path) -> None:
    from old_schemas import first_release_db

    path = tmp_path / "first.db"
    first_release_db(path)
    store = Store(path)
    cid = "01JD8X0000AAAABBBBCCCCDDDD"
    assert [t.response for t in store.turns(cid, all_branches=True)] == [
        "answer one", "bad answer", "good answer", "thr", "",
    ]  # fmt: skip
    assert store.search("good")[0].snippet == "two\n[good] answer"  # the turn's words, in one
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA freelist_count").fetchone()[0] == 0
    con.execute("INSERT INTO turns_fts (turns_fts, rank) VALUES ('integrity-check', 1)")


def test_a_large_file_is_told_how_to_give_the_space_back(
    tmp_path: Path, server, openai_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the size VACUUM takes a moment for, the move says once how to reclaim the space
    (and how long that takes) instead of doing it while the user waits."""
    from chatrepl import dialect

    cids, records = history(tmp_path, server)
    path = tmp_path / "old.db"
    old = old_schemas.sqlite_at(path, 4)
    old_schemas.write(old, 4, records)
    old.close()
    monkeypatch.setattr(dialect, "VACUUM_AT_ONCE_BYTES", 0)
    store = Store(path)
    assert store.notice is not None
    assert f"sqlite3 '{path}' VACUUM" in store.notice and " s, " in store.notice
    assert sqlite3.connect(path).execute("PRAGMA freelist_count").fetchone()[0] > 0
    assert Store(path).notice is None  # once
    check(store, cids, records)
