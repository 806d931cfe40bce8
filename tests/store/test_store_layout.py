"""Schema 3: a conversation's parts and calls stored together, keyed by conversation first.

The migration from schema 2 keeps every part and call of every turn, on SQLite and on
PostgreSQL; opening a conversation (its texts taken from the parts) gives the same records as
reading each turn's own columns; deleting a conversation leaves no part or call behind.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from fakeserver import Answer, Call, Text, Think

import chatrepl
from chatrepl.conversation import Conversation
from chatrepl.ids import new_id
from chatrepl.store import Store

pytest_plugins = ("pgserver",)


def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def fill(store: Store, server) -> list[str]:
    """Two conversations with branches, reasoning, tool calls over two model calls, an
    interrupted-looking retry: their ids."""
    server.push(
        Answer(Think("let me see"), Call("weather", '{"city": "Oslo"}')),
        Answer(Text("It is sunny in Oslo.")),
        Answer(Text("Second answer.")),
        Answer(Text("A retried answer.")),
    )
    c = chatrepl.get_model("openai:gpt-test").conversation(store=store)
    c.chain("Weather in Oslo?", tools=[weather], approve=lambda tool, args: True).text()
    c.prompt("And then?").text()
    c.retry().text()
    other = chatrepl.get_model("echo").conversation(store=store, system="a persona")
    for words in ("one", "two", "three"):
        other.prompt(words).text()
    other.undo()
    other.prompt("four").text()
    return [c.id, other.id]


def every_turn(store: Store, cids: list[str]) -> list:
    return [store.turns(cid, all_branches=True) for cid in cids]


#: Schema 3 taken back to schema 2's layout (m002's tables and index), on either engine.
BACK_TO_2 = [
    "DROP INDEX IF EXISTS turns_outline",  # SQLite only
    "DROP INDEX turns_in_conversation",
    "CREATE INDEX turns_conversation ON turns (conversation_id, seq)",
    "DELETE FROM _migrations WHERE name = 'm003_by_conversation'",
]
SQLITE_TABLES_2 = [
    """CREATE TABLE parts_2 (
        turn_seq INTEGER NOT NULL REFERENCES turns (seq) ON DELETE CASCADE,
        position INTEGER NOT NULL, call INTEGER NOT NULL DEFAULT 0, kind TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT '', data TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (turn_seq, position)) WITHOUT ROWID""",
    "INSERT INTO parts_2 SELECT turn_seq, position, call, kind, text, data FROM parts",
    """CREATE TABLE calls_2 (
        turn_seq INTEGER NOT NULL REFERENCES turns (seq) ON DELETE CASCADE,
        idx INTEGER NOT NULL, model TEXT NOT NULL, finish_reason TEXT, input_tokens INTEGER,
        output_tokens INTEGER, reasoning_tokens INTEGER, cost REAL, duration_ms INTEGER,
        ttft_ms INTEGER, PRIMARY KEY (turn_seq, idx)) WITHOUT ROWID""",
    """INSERT INTO calls_2 SELECT turn_seq, idx, model, finish_reason, input_tokens,
        output_tokens, reasoning_tokens, cost, duration_ms, ttft_ms FROM calls""",
    "DROP TABLE parts",
    "DROP TABLE calls",
    "ALTER TABLE parts_2 RENAME TO parts",
    "ALTER TABLE calls_2 RENAME TO calls",
    "DELETE FROM _migrations WHERE name = 'm004_cache_tokens'",  # TEMPORARY (cost branch)
    "PRAGMA user_version = 2",
]
POSTGRES_TABLES_2 = [
    statement
    for table, position in (("parts", "position"), ("calls", "idx"))
    for statement in (
        f"ALTER TABLE {table} DROP CONSTRAINT {table}_conversation_id_turn_seq_fkey",
        f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey",
        f"ALTER TABLE {table} DROP COLUMN conversation_id",
        f"ALTER TABLE {table} ADD PRIMARY KEY (turn_seq, {position})",
        f"ALTER TABLE {table} ADD FOREIGN KEY (turn_seq) REFERENCES turns (seq) ON DELETE CASCADE",
    )
]


def test_a_schema_2_sqlite_database_migrates_keeping_every_part_and_call(
    tmp_path: Path, server, openai_env
) -> None:
    path = tmp_path / "two.db"
    old = Store(path)
    cids = fill(old, server)
    before = every_turn(old, cids)
    heads = [old.conversation(cid).head for cid in cids]
    old.close()
    con = sqlite3.connect(path)
    for statement in SQLITE_TABLES_2 + BACK_TO_2:
        con.execute(statement)
    con.commit()
    tables = "SELECT sql FROM sqlite_master WHERE name IN ('parts', 'calls')"
    assert "conversation_id" not in str(con.execute(tables).fetchall())
    con.close()

    new = Store(path)
    assert every_turn(new, cids) == before
    assert [new.conversation(cid).head for cid in cids] == heads
    assert any(p.kind == "tool_result" for t in before[0] for p in t.parts)
    assert any(len(t.calls) == 2 for t in before[0])
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 4
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    # the parts kept their turn: each part's conversation is its turn's
    assert not con.execute(
        "SELECT count(*) FROM parts p JOIN turns t ON t.seq = p.turn_seq "
        "WHERE t.conversation_id != p.conversation_id"
    ).fetchone()[0]
    # and the migrated database goes on: a new turn, loaded back with its history
    c = Conversation.load(new, cids[1])
    assert c.prompt("five").text() == "five"
    assert [r.prompt for r in Conversation.load(new, cids[1]).path] == [
        "one", "two", "four", "five",
    ]  # fmt: skip


def test_a_schema_2_postgres_database_migrates_keeping_every_part_and_call(
    pg_url: str, server, openai_env
) -> None:
    old = Store(pg_url)
    cids = fill(old, server)
    before = every_turn(old, cids)
    with old.db.atomic():
        for statement in POSTGRES_TABLES_2 + BACK_TO_2:
            old.db.execute_sql(statement)
    old.close()
    new = Store(pg_url)
    assert every_turn(new, cids) == before
    c = Conversation.load(new, cids[0])
    assert [r.text() for r in c.path] == ["It is sunny in Oslo.", "A retried answer."]
    assert c.prompt("more").text()  # writes go on under the new keys
    new.delete(cids[0])
    assert new.turns(cids[0], all_branches=True) == []
    new.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_opening_at_the_head_reads_the_same_turns_as_their_rows(
    engine: str, tmp_path: Path, server, openai_env, request: pytest.FixtureRequest
) -> None:
    target = tmp_path / "s.db" if engine == "sqlite" else request.getfixturevalue("pg_url")
    store = Store(target)
    cids = fill(store, server)
    for cid in cids:
        head = store.conversation(cid).head
        rows = store.path_to(head)
        assert store.path_to(head, texts=False) == rows
        assert [store.turn(t.id) for t in rows] == rows  # each turn read on its own
        assert [r.record() for r in Conversation.load(store, cid).path] == rows
    store.close()


def test_a_turn_saved_without_parts_opens_with_its_columns(tmp_path: Path, store: Store) -> None:
    c = chatrepl.get_model("echo").conversation(store=store)
    c.prompt("first words").text()
    con = sqlite3.connect(tmp_path / "s.db")
    con.execute("DELETE FROM parts")
    con.commit()
    (turn,) = Conversation.load(store, c.id).path
    assert (turn.prompt, turn.text()) == ("first words", "first words")


def test_deleting_a_conversation_leaves_no_part_or_call(
    tmp_path: Path, store: Store, server, openai_env
) -> None:
    cids = fill(store, server)
    store.delete(cids[0])
    con = sqlite3.connect(tmp_path / "s.db")
    for table in ("parts", "calls"):
        left = con.execute(f"SELECT DISTINCT conversation_id FROM {table}").fetchall()
        assert left == [(cids[1],)]
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []


def test_opening_keeps_each_turn_s_kind_options_and_every_text_part(
    tmp_path: Path, store: Store
) -> None:
    """What a turn's row holds besides its texts comes back from the outline, and an answer
    spread over several text parts (text, a tool call, more text) comes back whole."""
    from chatrepl.records import CallRecord, ConversationRecord, Part, TurnRecord

    cid, first, second = new_id(), new_id(), new_id()
    when = "2025-01-31T14:00:00.000+00:00"
    turns = [
        TurnRecord(
            first, cid, None, "echo:echo", "Summarise", None, "", {}, 1, 2,
            "complete", None, when, 10, 1,
            [Part("prompt", "Summarise"), Part("summary", "The summary.", call=1)],
            [CallRecord(1, "echo:echo", "stop", 1, 2, None, None, 10, 1)], kind="summary",
        ),
        TurnRecord(
            second, cid, first, "openai:gpt-test", "Weather?", "a persona", "Let me look. Sunny.",
            {"temperature": 0.5}, 3, 4, "complete", None, when, 20, 2,
            [
                Part("prompt", "Weather?"),
                Part("text", "Let me look.", call=1),
                Part("tool_call", "", {"id": "c1", "name": "weather"}, call=1),
                Part("tool_result", "sunny", {"id": "c1"}, call=1),
                Part("text", " Sunny.", call=2),
            ],
        ),
    ]  # fmt: skip
    conversation = ConversationRecord(cid, "t", "user", "echo:echo", None, when, when, second)
    store.import_conversation(conversation, turns)
    loaded = store.path_to(second, texts=False)
    assert [t.kind for t in loaded] == ["summary", "turn"]
    assert [t.options for t in loaded] == [{}, {"temperature": 0.5}]
    assert loaded[1].response == "Let me look. Sunny." and loaded[1].prompt == "Weather?"
    assert loaded == turns


def test_a_turn_s_own_columns_are_what_path_to_reads_by_default(
    tmp_path: Path, store: Store
) -> None:
    """Export and show read the prompt and answer columns; opening reads the parts."""
    c = chatrepl.get_model("echo").conversation(store=store)
    c.prompt("words").text()
    saved = store.path_to(c.head)[0]
    apart = replace(
        saved, id=new_id(), parent_id=saved.id, prompt="column prompt", response="column answer"
    )  # its parts still say "words"
    store.add_turns(store.conversation(c.id), [apart])
    store.set_head(c.id, apart.id)
    from_columns = store.path_to(apart.id)[-1]
    assert (from_columns.prompt, from_columns.response) == ("column prompt", "column answer")
    from_parts = store.path_to(apart.id, texts=False)[-1]
    assert (from_parts.prompt, from_parts.response) == ("words", "words")


def test_a_copy_restored_from_a_dump_opens_at_its_recorded_version(tmp_path: Path) -> None:
    """``sqlite3 old.db .dump | sqlite3 new.db`` keeps every table, ``_migrations`` included,
    but not ``PRAGMA user_version``: the store goes by what ``_migrations`` records."""
    path = tmp_path / "restored.db"
    store = Store(path)
    c = chatrepl.get_model("echo").conversation(store=store)
    c.prompt("kept words").text()
    store.close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 0")  # what a restored dump has
    con.commit()
    con.close()
    again = Store(path)
    assert Conversation.load(again, c.id).prompt("more").text() == "more"
    assert [t.prompt for t in again.turns(c.id)] == ["kept words", "more"]
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 4
    assert [r[0] for r in con.execute("SELECT count(*) FROM _migrations")] == [4]
    con.execute("PRAGMA user_version = 0")
    con.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', '2030-01-01')")
    con.commit()
    with pytest.raises(chatrepl.errors.NewerDatabaseError):
        Store(path)
