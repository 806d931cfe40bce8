"""The conversation tree: retry, undo, edit, alternatives, switch, fork, and the migration of a
database written by the first release."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fakeserver import Reply
from old_schemas import first_release_db

import chatrepl
from chatrepl.conversation import Conversation
from chatrepl.errors import NotFoundError
from chatrepl.migrations import SCHEMA_VERSION
from chatrepl.store import Store


def sent(server) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(m["role"], m["content"]) for m in server.last["json"]["messages"]]


@pytest.fixture(params=["memory", "store"])
def chat(request, tmp_path: Path):  # type: ignore[no-untyped-def]
    """An echo conversation, kept in memory or in a store."""
    store = Store(tmp_path / "t.db") if request.param == "store" else None
    return chatrepl.get_model("echo").conversation(store=store)


def prompts(c: Conversation) -> list[str]:
    return [t.prompt for t in c.turns]


def test_retry_makes_a_sibling_and_alt_switches_back(chat: Conversation) -> None:
    chat.prompt("one").text()
    first = chat.prompt("two")
    first.text()
    again = chat.retry()
    assert again is not None and again.text() == "two"
    assert prompts(chat) == ["one", "two"] and chat.head == again.id
    alternatives = chat.alternatives()
    assert [a.id for a in alternatives] == [first.id, again.id]
    chat.switch(first.id)
    assert chat.head == first.id and prompts(chat) == ["one", "two"]


def test_undo_moves_the_head_back_and_nothing_is_deleted(chat: Conversation) -> None:
    chat.prompt("one").text()
    taken = chat.prompt("two")
    taken.text()
    assert chat.undo() is taken
    assert prompts(chat) == ["one"]
    chat.prompt("three").text()
    assert prompts(chat) == ["one", "three"]
    assert {n.prompt for n in chat.tree()} == {"one", "two", "three"}
    chat.switch(taken.id)  # the branch taken back is one switch away
    assert prompts(chat) == ["one", "two"]


def test_edit_an_earlier_prompt_branches_from_there(chat: Conversation) -> None:
    a = chat.prompt("a")
    a.text()
    chat.prompt("b").text()
    chat.prompt("c").text()
    b = chat.turns[1]
    edited = chat.edit(b.id, "B!")
    assert edited.text() == "B!"
    assert prompts(chat) == ["a", "B!"] and edited.parent_id == a.id
    # the old branch, with its later turns, is still there: switching to it restores them all
    chat.switch(b.id)
    assert prompts(chat) == ["a", "b", "c"]
    with pytest.raises(NotFoundError):
        chat.edit("01JD8X0000AAAABBBBCCCCDDDD", "nowhere")


def test_what_is_sent_is_the_path_to_the_head(openai_env) -> None:  # type: ignore[no-untyped-def]
    server = openai_env
    c = chatrepl.get_model("openai:gpt-test").conversation(system="terse")
    server.push(Reply("A1"))
    c.prompt("q1").text()
    server.push(Reply("A2"))
    old = c.prompt("q2")
    old.text()
    server.push(Reply("A2 again"))
    c.retry().text()
    server.push(Reply("A3"))
    c.prompt("q3").text()
    assert sent(server) == [
        ("system", "terse"),
        ("user", "q1"),
        ("assistant", "A1"),
        ("user", "q2"),
        ("assistant", "A2 again"),
        ("user", "q3"),
    ]
    c.switch(old.id)
    server.push(Reply("A4"))
    c.prompt("q4").text()
    assert sent(server)[-3:] == [("user", "q2"), ("assistant", "A2"), ("user", "q4")]


def test_a_saved_tree_loads_at_its_head_and_survives_other_processes(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    c = chatrepl.get_model("echo").conversation(store=store)
    c.prompt("one").text()
    two = c.prompt("two")
    two.text()
    c.retry().text()
    c.undo()
    again = Conversation.load(Store(tmp_path / "t.db"), c.id)
    assert prompts(again) == ["one"]  # -c and /resume go on where the user left
    assert len(again.tree()) == 3
    again.switch(two.id)
    assert [t.id for t in Conversation.load(store, c.id).turns][-1] == two.id
    summary = store.summary(c.id)
    assert summary.head == two.id and summary.turns == 2


WRITES = ("INSERT", "UPDATE", "DELETE")


def test_a_branch_costs_a_constant_number_of_writes(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    c = chatrepl.get_model("echo").conversation(store=store)
    for n in range(30):
        c.prompt(f"turn {n}").text()
    statements: list[str] = []
    store.db.connection().set_trace_callback(statements.append)
    writes = []
    line = [t.id for t in c.turns]
    for depth in (1, 29):  # a branch near the root and one at the end: the same writes
        c.switch(line[-1])
        statements.clear()
        c.edit(line[depth], f"edited {depth}").cancel()
        writes.append([s.split()[0] for s in statements if s.split()[0] in WRITES])
    assert writes[0] == writes[1] and 0 < len(writes[0]) <= 20


def test_fork_copies_the_path_into_a_new_conversation(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    c = chatrepl.get_model("echo").conversation(store=store, system="p")
    c.prompt("one").text()
    c.prompt("two").text()
    fork = c.fork()
    assert fork.id != c.id and prompts(fork) == ["one", "two"] and fork.system == "p"
    fork.prompt("three").text()
    assert prompts(Conversation.load(store, fork.id)) == ["one", "two", "three"]
    assert prompts(Conversation.load(store, c.id)) == ["one", "two"]
    assert store.conversation(fork.id).forked_from == c.id


# --- the migration from the first release's schema -------------------------------------------


def test_a_first_release_database_migrates_without_losing_anything(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    first_release_db(path)
    store = Store(path)
    cid = "01JD8X0000AAAABBBBCCCCDDDD"
    every = store.turns(cid, all_branches=True)
    assert [(t.prompt, t.response, t.status) for t in every] == [
        ("one", "answer one", "complete"),
        ("two", "bad answer", "complete"),
        ("two", "good answer", "complete"),
        ("three", "thr", "interrupted"),
        ("four", "", "error"),
    ]
    ids = [t.id for t in every]
    # the retried answer and its replacement are siblings; the undone pair is a side branch
    assert [t.parent_id for t in every] == [None, ids[0], ids[0], ids[2], ids[3]]
    assert [t.prompt for t in store.turns(cid)] == ["one", "two"]  # the head: the good answer
    assert store.summary(cid).head == ids[2]
    assert all(t.options == {"temperature": 0.5} and t.system == "be a goat" for t in every)
    assert every[0].parts[0].kind == "prompt" and every[0].parts[1].text == "answer one"
    assert every[0].calls[0].input_tokens == 3 and every[0].calls[0].ttft_ms == 80
    hits = store.search("answer")  # a conversation is listed once, with its best turn
    assert len(hits) == 1 and hits[0].response_id in ids[:3]
    assert store.search("thr")[0].response_id == ids[3]  # branches are searchable
    c = Conversation.load(store, cid)
    assert c.prompt("five").text() == "five"
    assert [t.prompt for t in store.turns(cid)] == ["one", "two", "five"]
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "responses" not in tables


def test_a_loaded_turn_keeps_its_usage_timings_and_calls(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    c = chatrepl.get_model("echo").conversation(store=store)
    r = c.prompt("three little words")
    r.text()
    (again,) = Conversation.load(store, c.id).turns
    assert (again.usage.input_tokens, again.usage.output_tokens) == (
        r.usage.input_tokens,
        r.usage.output_tokens,
    )
    assert again.usage.output_tokens == 3
    assert again.duration == pytest.approx(round(r.duration * 1000) / 1000)
    assert again.time_to_first_token == pytest.approx(round(r.time_to_first_token * 1000) / 1000)
    assert again.status == "complete" and again.model_name == "echo:echo"
    assert [(k.index, k.model, k.finish_reason) for k in again.calls] == [
        (k.index, k.model, k.finish_reason) for k in r.calls
    ]
    assert again.parts == r.parts and again.text_so_far == "three little words"
