"""Schema 4: each model call keeps the tokens read from and written to the provider's prompt
cache, in SQLite and in PostgreSQL; a schema 3 database gains the columns and keeps every call;
the counts go through a JSON export and back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import old_schemas
import pytest

from chatrepl.export import from_json, to_json
from chatrepl.ids import new_id
from chatrepl.migrations import SCHEMA_VERSION
from chatrepl.records import CallRecord, ConversationRecord, ConversationSummary, Part, TurnRecord
from chatrepl.store import Store

pytest_plugins = ("pgserver",)

WHEN = "2025-02-01T10:00:00.000+00:00"


def saved(store: Store, cached: bool = True) -> tuple[str, TurnRecord]:
    """A conversation of one turn made of two model calls: its id and the turn."""
    cid = new_id()
    calls = [
        CallRecord(1, "anthropic:claude", "tool_calls", 2000, 10, None, 0.01, 900, 300),
        CallRecord(2, "anthropic:claude", "stop", 2100, 40, None, 0.002, 800, 200),
    ]
    if cached:
        calls[0].cache_write_tokens = 1800
        calls[1].cache_read_tokens, calls[1].cache_write_tokens = 1800, 0
    turn = TurnRecord(
        new_id(), cid, None, "anthropic:claude", "Hello", None, "Hi.", {}, 4100, 50,
        "complete", None, WHEN, 1700, 300,
        [Part("prompt", "Hello"), Part("text", "Hi.", call=2)], calls,
    )  # fmt: skip
    conversation = ConversationRecord(
        cid, "t", "user", "anthropic:claude", None, WHEN, WHEN, turn.id
    )
    assert store.import_conversation(conversation, [turn])
    return cid, turn


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_a_call_s_cache_tokens_are_saved_and_read_back(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    target = tmp_path / "s.db" if engine == "sqlite" else request.getfixturevalue("pg_url")
    store = Store(target)
    cid, turn = saved(store)
    (back,) = store.turns(cid)
    assert [(c.cache_read_tokens, c.cache_write_tokens) for c in back.calls] == [
        (None, 1800),
        (1800, 0),  # none written: 0, not "not said"
    ]
    assert back == turn
    finished = store.path_to(turn.id, texts=False)[0]
    finished.calls[0].cache_read_tokens = 7
    store.finish_turn(finished)  # rewriting a turn's calls keeps them too
    assert store.turn(turn.id).calls[0].cache_read_tokens == 7
    store.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_a_schema_3_database_gains_the_columns_keeping_every_call(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    scratch = Store(tmp_path / "scratch.db")
    cid, turn = saved(scratch, cached=False)
    written = [(scratch.conversation(cid), [turn])]
    if engine == "sqlite":
        target: str | Path = tmp_path / "three.db"
        old = old_schemas.sqlite_at(target, 3)
    else:
        target = request.getfixturevalue("pg_url")
        old = old_schemas.postgres_at(target, 3)
    old_schemas.write(old, 3, written, postgres=engine == "postgres")
    old.close()

    again = Store(target)
    assert again.turns(cid) == [turn]
    _, cached = saved(again)  # and new calls keep theirs
    assert again.turn(cached.id).calls[1].cache_read_tokens == 1800
    assert again.turn(cached.id).calls[0].cache_write_tokens == 1800
    again.close()
    if engine == "sqlite":
        con = sqlite3.connect(target)
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = [r[1] for r in con.execute("PRAGMA table_info(calls)")]
        assert columns[-2:] == ["cache_read_tokens", "cache_write_tokens"]


def test_cache_tokens_go_through_a_json_export_and_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    cid, turn = saved(store)
    summary: ConversationSummary = store.summary(cid)
    data = json.loads(json.dumps(to_json(summary, store.turns(cid, all_branches=True))))
    assert data["turns"][0]["calls"][1]["cache_read_tokens"] == 1800
    _, (back,) = from_json(data)
    assert back.calls == turn.calls
    other = Store(tmp_path / "other.db")
    other.import_conversation(store.conversation(cid), [back])
    assert other.turn(turn.id).calls == turn.calls
