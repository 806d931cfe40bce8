"""Schema 3: a conversation's parts and calls stored together, keyed by conversation first.

(The migrations from older schemas are tested in test_store_migrations.py.) Opening a conversation (its texts taken from the parts) gives the same records as
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
from chatrepl.migrations import SCHEMA_VERSION
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


def test_a_turn_saved_without_parts_opens_with_its_own_texts(tmp_path: Path) -> None:
    """A turn written without parts (an old export, another program) keeps its prompt and
    answer in its own columns, and search finds them there."""
    from chatrepl.records import ConversationRecord, TurnRecord

    cid, tid, when = new_id(), new_id(), "2025-01-31T14:00:00.000+00:00"
    bare = TurnRecord(
        tid, cid, None, "echo:echo", "first words", None, "an answer", {}, None, None,
        "complete", None, when, None, None,
    )  # fmt: skip
    store = Store(tmp_path / "s.db")
    store.import_conversation(
        ConversationRecord(cid, "t", "user", "echo", None, when, when, tid), [bare]
    )
    (turn,) = Conversation.load(store, cid).path
    assert (turn.prompt, turn.text()) == ("first words", "an answer")
    assert store.path_to(tid, texts=False) == [bare]
    assert [h.response_id for h in store.search("answer")] == [tid]


def test_deleting_a_conversation_leaves_no_part_or_call(tmp_path: Path, server, openai_env) -> None:
    store = Store(tmp_path / "s.db")
    cids = fill(store, server)
    store.delete(cids[0])
    con = sqlite3.connect(tmp_path / "s.db")
    for table in ("parts", "calls"):
        left = con.execute(f"SELECT DISTINCT conversation_id FROM {table}").fetchall()
        assert left == [(cids[1],)]
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []


def test_opening_keeps_each_turn_s_kind_options_and_every_text_part(tmp_path: Path) -> None:
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
    store = Store(tmp_path / "s.db")
    conversation = ConversationRecord(cid, "t", "user", "echo:echo", None, when, when, second)
    store.import_conversation(conversation, turns)
    loaded = store.path_to(second, texts=False)
    assert [t.kind for t in loaded] == ["summary", "turn"]
    assert [t.options for t in loaded] == [{}, {"temperature": 0.5}]
    assert loaded[1].response == "Let me look. Sunny." and loaded[1].prompt == "Weather?"
    assert loaded == turns


def test_a_turn_s_own_columns_are_what_path_to_reads_by_default(tmp_path: Path) -> None:
    """Export and show read the prompt and answer columns; opening reads the parts."""
    store = Store(tmp_path / "s.db")
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
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert [r[0] for r in con.execute("SELECT count(*) FROM _migrations")] == [SCHEMA_VERSION]
    con.execute("PRAGMA user_version = 0")
    con.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', '2030-01-01')")
    con.commit()
    with pytest.raises(chatrepl.errors.NewerDatabaseError):
        Store(path)
