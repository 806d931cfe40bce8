"""Conversation semantics: what is sent for each turn, with and without a store."""

from __future__ import annotations

import pytest
from fakeserver import Reply

import chatrepl
from chatrepl import errors
from chatrepl.conversation import Conversation
from chatrepl.records import Part
from chatrepl.store import Store


def sent(server):
    return [(m["role"], m["content"]) for m in server.last["json"]["messages"]]


def test_library_example_with_echo():
    c = chatrepl.get_model("echo").conversation()
    r = c.prompt("Three names for a pet goat")
    assert "".join(r) == "Three names for a pet goat"
    assert r.status == "complete"
    assert r.usage.output_tokens == 6
    assert c.prompt("two more").text() == "two more"
    assert len(c.turns) == 2


def test_history_and_persona_travel(openai_env):
    server = openai_env
    c = chatrepl.get_model("openai:gpt-test").conversation()
    first = c.prompt("Three names for a pet goat", system="You are GlaDOS").text()
    assert sent(server) == [("system", "You are GlaDOS"), ("user", "Three names for a pet goat")]
    c.prompt("two more").text()
    assert sent(server) == [
        ("system", "You are GlaDOS"),
        ("user", "Three names for a pet goat"),
        ("assistant", first),
        ("user", "two more"),
    ]
    assert [t.system for t in c.turns] == ["You are GlaDOS", "You are GlaDOS"]


def test_persona_changes_from_the_next_turn(openai_env):
    server = openai_env
    c = chatrepl.Conversation(chatrepl.get_model("openai:gpt-test"))
    c.prompt("one").text()
    c.set_system("Be brief")
    c.prompt("two").text()
    assert sent(server)[0] == ("system", "Be brief")
    c.set_system(None)
    c.prompt("three").text()
    assert sent(server)[0][0] == "user"
    assert [t.system for t in c.turns] == [None, "Be brief", None]


def test_interrupted_failed_and_undone_turns(openai_env):
    server = openai_env
    c = chatrepl.get_model("openai:gpt-test").conversation()
    server.push(Reply("partial words here and more", delay=0.0))
    r = c.prompt("interrupt me")
    for i, _ in enumerate(r):
        if i == 1:
            r.cancel()
    assert r.status == "interrupted"
    kept = r.text_so_far
    assert kept == "partial words"

    server.push(Reply("x y z", drop_after=0))
    failed = c.prompt("this fails")
    with pytest.raises(errors.StreamError):
        failed.text()
    assert failed.status == "error" and failed.text_so_far == ""

    c.prompt("undo me").text()
    c.undo()
    c.prompt("last").text()
    assert sent(server) == [
        ("user", "interrupt me"),
        ("assistant", kept),
        ("user", "last"),
    ]


def test_failed_turn_with_partial_text_is_kept_in_history(openai_env):
    server = openai_env
    c = chatrepl.get_model("openai:gpt-test").conversation()
    server.push(Reply("a b c d", drop_after=2))
    with pytest.raises(errors.StreamError):
        c.prompt("first").text()
    c.prompt("second").text()
    assert sent(server)[:2] == [("user", "first"), ("assistant", "a b")]


def test_switching_model_keeps_history(openai_env):
    server = openai_env
    c = chatrepl.get_model("openai:gpt-test").conversation()
    c.prompt("hello").text()
    c.set_model(chatrepl.get_model("anthropic:claude-test"))
    c.prompt("again").text()
    assert server.last["vendor"] == "anthropic"
    assert [m["role"] for m in server.last["json"]["messages"]] == ["user", "assistant", "user"]
    assert [t.model_name for t in c.turns] == ["openai:gpt-test", "anthropic:claude-test"]


def test_retry_replaces_the_last_answer(openai_env):
    server = openai_env
    c = chatrepl.get_model("openai:gpt-test").conversation()
    c.prompt("one").text()
    server.push(Reply("bad answer"))
    c.prompt("two").text()
    server.push(Reply("better answer"))
    c.retry().text()
    assert [t.text_so_far for t in c.turns][-1] == "better answer"
    assert sent(server)[-1] == ("user", "two")
    assert len(sent(server)) == 3  # one, its answer, two: the bad answer is not sent


def test_store_load_continues_with_history_and_persona(openai_env, tmp_path):
    server = openai_env
    store = Store(tmp_path / "c.db")
    c = chatrepl.get_model("openai:gpt-test").conversation(store=store)
    a = c.prompt("first", system="You are terse").text()
    c.prompt("undone").text()
    c.undo()

    again = Conversation.load(Store(tmp_path / "c.db"), c.id[:10].lower())
    assert again.id == c.id and again.system == "You are terse"
    assert again.title == "first"
    again.prompt("second").text()
    assert sent(server) == [
        ("system", "You are terse"),
        ("user", "first"),
        ("assistant", a),
        ("user", "second"),
    ]
    assert [t.prompt for t in store.turns(c.id)] == ["first", "second"]


def test_every_round_trip_is_saved_with_usage_and_timings(openai_env, tmp_path):
    store = Store(tmp_path / "c.db")
    c = chatrepl.get_model("anthropic:claude-test").conversation(store=store)
    c.prompt("hello there").text()
    (turn,) = store.turns(c.id)
    assert turn.status == "complete"
    assert turn.response.startswith("You said: hello there")
    assert turn.input_tokens == 2 and turn.output_tokens == 6
    assert turn.duration_ms is not None and turn.ttft_ms is not None
    assert turn.started.endswith("+00:00")


def test_error_turn_is_saved_with_its_sentence(openai_env, tmp_path):
    server = openai_env
    server.api_key = "other"
    store = Store(tmp_path / "c.db")
    c = chatrepl.get_model("openai:gpt-test").conversation(store=store)
    with pytest.raises(errors.AuthError):
        c.prompt("hello").text()
    (turn,) = store.turns(c.id)
    assert turn.status == "error" and "OPENAI_API_KEY" in turn.error
    assert "0123456789" not in turn.error


def test_prompt_is_saved_before_the_request(tmp_path):
    store = Store(tmp_path / "c.db")
    c = chatrepl.get_model("echo").conversation(store=store)
    r = c.prompt("saved first")
    (turn,) = store.turns(c.id)
    assert (turn.prompt, turn.status, turn.response) == ("saved first", "pending", "")
    r.text()
    assert store.turns(c.id)[0].status == "complete"


def test_propose_title_asks_the_model(openai_env):
    server = openai_env
    c = chatrepl.get_model("openai:gpt-test").conversation()
    c.prompt("Tell me about goats").text()
    server.push(Reply('"Goat Facts"\n'))
    assert c.propose_title() == "Goat Facts"
    assert len(c.turns) == 1


def test_cancel_before_streaming_finishes_the_turn(tmp_path):
    store = Store(tmp_path / "c.db")
    c = chatrepl.get_model("echo").conversation(store=store)
    r = c.prompt("never sent")
    r.cancel()
    assert r.status == "interrupted" and list(r) == []
    assert store.turns(c.id)[0].status == "interrupted"


def test_a_turn_left_pending_by_a_crash_is_readable_and_in_the_history(tmp_path):
    store = Store(tmp_path / "c.db")
    c = chatrepl.get_model("echo").conversation(store=store)
    r = c.prompt("crashed")
    # what a killed process leaves behind: the flusher's last write
    store.save_progress(r.id, "half an ans", 1, [*r.parts, Part("text", "half an ans", call=1)])
    again = Conversation.load(store, c.id)
    (turn,) = again.turns
    assert turn.status == "pending" and list(turn) == ["half an ans"]
    again.prompt("next").text()
    assert [m.content for m in again.messages_for(again.turns[-1])] == [
        "crashed",
        "half an ans",
        "next",
    ]
