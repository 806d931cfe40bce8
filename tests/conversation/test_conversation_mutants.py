"""Promises of ``chatrepl.conversation`` that mutation testing found no test holding.

Each test says what a user or a library caller can observe: what a resumed turn remembers,
how parts of a streamed answer are kept apart, what a failed or cancelled turn reports, what a
fork or a retry carries over. The models here are small ``Backend`` subclasses that stream a
fixed script (as a provider would), so every event sequence is exact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatrepl.conversation import CONTINUE_PROMPT, Conversation
from chatrepl.errors import NotFoundError, ProviderError
from chatrepl.providers.base import Backend
from chatrepl.providers.registry import get_backend
from chatrepl.records import (
    Event,
    Finish,
    Message,
    Part,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCall,
    Usage,
)
from chatrepl.store import Store

pytestmark = pytest.mark.timeout(60)


class Scripted(Backend):
    """Streams the next script of ``scripts`` for each request, and keeps what it was sent.

    A script item that is an exception is raised there; a float is a pause (seconds).
    """

    def __init__(self, *scripts: list[Any], provider: str = "scripted") -> None:
        super().__init__("m", provider)
        self.scripts = list(scripts)
        self.sent: list[list[Message]] = []
        self.options_sent: list[dict[str, Any]] = []

    def stream(
        self, messages: list[Message], options: dict[str, Any], cancel: Any, tools: Any = None
    ) -> Iterator[Event]:
        self.sent.append(list(messages))
        self.options_sent.append(dict(options))
        script = self.scripts.pop(0) if self.scripts else [TextDelta("ok"), Finish("stop")]
        for item in script:
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, float):
                time.sleep(item)
                continue
            yield item


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "chat.db")


# --- a resumed conversation remembers each turn as it was -----------------------------------


def test_a_resumed_turn_keeps_its_usage_and_timings(store: Store) -> None:
    # over half a second, so that a scale off by a thousandth would change the milliseconds
    model = Scripted([0.6, TextDelta("hello"), 0.01, Usage(7, 3), Finish("stop")])
    c = Conversation(model, store=store)
    first = c.prompt("hi", "Be brief")
    assert first.text() == "hello"
    again = Conversation.load(store, c.id, model=model).turns[0]
    assert (again.system, again.kind, again.status) == ("Be brief", "turn", "complete")
    assert (again.model_name, again.started) == ("scripted:m", first.started)
    assert again.calls == first.calls and again.calls[0].finish_reason == "stop"
    assert (again.calls[0].input_tokens, again.calls[0].output_tokens) == (7, 3)
    assert (again.usage.input_tokens, again.usage.output_tokens) == (7, 3)
    # saved in whole milliseconds, read back in seconds
    assert first.duration is not None and first.time_to_first_token is not None
    assert again.duration == round(first.duration * 1000) / 1000
    assert again.time_to_first_token == round(first.time_to_first_token * 1000) / 1000
    assert again.duration > 0 and again.time_to_first_token > 0  # (it slept before each)


def test_a_resumed_turn_without_timings_has_none(store: Store) -> None:
    model = Scripted([TextDelta("x"), Finish("stop")])
    c = Conversation(model, store=store)
    r = c.prompt("hi")
    r.cancel()  # cancelled before it began: no time to first token
    again = Conversation.load(store, c.id, model=model).turns[0]
    assert again.time_to_first_token is None
    assert again.duration == 0.0
    assert again.status == "interrupted"


def test_a_resumed_conversation_keeps_where_it_was_forked_from(store: Store) -> None:
    c = Conversation(Scripted(), store=store)
    c.prompt("one").text()
    fork = c.fork()
    assert Conversation.load(store, fork.id, model=Scripted()).forked_from == c.id


# --- how a failed or cancelled turn reports -------------------------------------------------


def test_text_of_a_failed_turn_raises_again_when_asked_again() -> None:
    c = Conversation(Scripted([ProviderError("The service is down.")]))
    r = c.prompt("hi")
    with pytest.raises(ProviderError, match="The service is down."):
        r.text()
    with pytest.raises(ProviderError, match="The service is down."):
        r.text()
    assert r.status == "error" and r.error == "The service is down."


def test_text_of_a_turn_that_failed_midway_gives_what_arrived() -> None:
    c = Conversation(Scripted([TextDelta("half an "), ProviderError("The line dropped.")]))
    r = c.prompt("hi")
    with pytest.raises(ProviderError):
        r.text()
    assert r.text() == "half an "  # asked again: what arrived, without raising
    assert r.status == "error"


def test_a_completed_turn_gives_its_text_again_without_asking_again() -> None:
    model = Scripted([TextDelta("once"), Finish("stop")])
    r = Conversation(model).prompt("hi")
    assert r.text() == "once"
    assert r.error is None
    assert r.text() == "once" and list(r) == ["once"]
    assert len(model.sent) == 1


def test_a_turn_cancelled_before_it_began_never_asks_the_model(store: Store) -> None:
    model = Scripted([TextDelta("never"), Finish("stop")])
    c = Conversation(model, store=store)
    r = c.prompt("hi")
    r.cancel()
    assert list(r) == []
    assert r.text() == ""
    assert model.sent == []
    assert (r.status, r.duration) == ("interrupted", 0.0)
    assert store.turn(r.id).status == "interrupted"


def test_usage_a_provider_does_not_report_stays_unknown() -> None:
    r = Conversation(Scripted([TextDelta("x"), Usage(5, None), Finish("stop")])).prompt("hi")
    r.text()
    assert r.usage.input_tokens == 5
    assert r.usage.output_tokens is None


def test_an_answer_the_provider_cut_short_or_refused_ends_so() -> None:
    cut = Conversation(Scripted([TextDelta("a"), Finish("length")])).prompt("hi")
    cut.text()
    assert cut.status == "cut_off"
    refused = Conversation(Scripted([RefusalDelta("No."), Finish("stop")])).prompt("hi")
    refused.text()
    assert refused.status == "refused"


# --- the parts of a streamed answer ---------------------------------------------------------


def test_reasoning_then_text_are_two_parts() -> None:
    r = Conversation(
        Scripted([ReasoningDelta("think "), ReasoningDelta("hard"), TextDelta("answer")])
    ).prompt("hi")
    assert r.text() == "answer"
    assert r.reasoning == "think hard"
    assert [(p.kind, p.text) for p in r.parts] == [
        ("prompt", "hi"),
        ("reasoning", "think hard"),
        ("text", "answer"),
    ]


def test_each_signed_reasoning_block_is_its_own_part_with_its_signature() -> None:
    script = [
        ReasoningDelta("first"),
        ReasoningDelta("", signature="sig-1", provider="anthropic"),
        ReasoningDelta("second"),
        ReasoningDelta("", signature="sig-2", provider="anthropic"),
        ReasoningDelta("", redacted="opaque", provider="anthropic"),
        TextDelta("done"),
    ]
    r = Conversation(Scripted(script)).prompt("hi")
    r.text()
    blocks = [(p.text, p.data) for p in r.parts if p.kind == "reasoning"]
    assert blocks == [
        ("first", {"signature": "sig-1", "provider": "anthropic"}),
        ("second", {"signature": "sig-2", "provider": "anthropic"}),
        ("", {"redacted": "opaque", "provider": "anthropic"}),
    ]
    assert r.reasoning == "first\n\nsecond\n\n"


def test_text_after_a_tool_call_in_one_call_is_a_new_part() -> None:
    call = ToolCall("c1", "lookup", {"q": "goats"})
    r = Conversation(Scripted([TextDelta("before"), call, TextDelta("after")])).prompt("hi")
    assert r.text() == "beforeafter"
    assert [p.kind for p in r.parts] == ["prompt", "text", "tool_call", "text"]
    assert r.tool_calls == [call]


def test_an_empty_prompt_to_echo_answers_empty() -> None:
    r = Conversation(get_backend("echo")).prompt("")
    assert r.text() == ""
    assert r.status == "complete"


# --- the tree without a store ---------------------------------------------------------------


def test_the_tree_in_memory_lists_every_turn_with_its_place_and_status() -> None:
    c = Conversation(Scripted())
    a = c.prompt("first " + "x" * 300)
    a.text()
    b = c.prompt("second")
    b.text()
    b2 = c.retry()
    assert b2 is not None
    c.graft([_summary(c, b2.id, "so far")])
    nodes = c.tree()
    assert [(n.id, n.parent_id, n.status, n.kind) for n in nodes] == [
        (a.id, None, "complete", "turn"),
        (b.id, a.id, "complete", "turn"),
        (b2.id, a.id, "pending", "turn"),
        ("summary-so far", b2.id, "complete", "summary"),
    ]
    assert nodes[0].prompt == ("first " + "x" * 300)[:200]
    assert nodes[0].started == a.started


# --- retry, edit, fork carry over what they should ------------------------------------------


def _attachment() -> Part:
    return Part("attachment", "", {"name": "note.txt", "mime": "text/plain", "text": "a note"})


def test_retry_asks_again_with_the_same_attachments_and_options() -> None:
    model = Scripted()
    c = Conversation(model)
    c.prompt("look", attachments=[_attachment()], temperature=0.2).text()
    again = c.retry(top_p=0.5)
    assert again is not None
    again.text()
    assert [p for p in again.parts if p.kind == "attachment"] == [_attachment()]
    assert again.options == {"temperature": 0.2, "top_p": 0.5}
    assert model.options_sent[-1] == {"temperature": 0.2, "top_p": 0.5}


def test_edit_keeps_the_attachments_and_options_of_the_turn_it_replaces() -> None:
    c = Conversation(Scripted())
    first = c.prompt("look", attachments=[_attachment()], temperature=0.2)
    first.text()
    edited = c.edit(first.id, "look again", top_p=0.5)
    assert edited.prompt == "look again"
    assert [p for p in edited.parts if p.kind == "attachment"] == [_attachment()]
    assert edited.options == {"temperature": 0.2, "top_p": 0.5}


def test_edit_of_a_turn_not_on_the_path_says_so() -> None:
    c = Conversation(Scripted())
    with pytest.raises(NotFoundError) as caught:
        c.edit("nope", "text")
    assert str(caught.value) == "That turn is not on the current path."


def test_a_fork_is_titled_after_its_origin_and_saved_with_its_head(store: Store) -> None:
    c = Conversation(Scripted(), store=store)
    c.set_title("Goats")
    c.prompt("one").text()
    c.prompt("two").text()
    fork = c.fork()
    assert (fork.title, fork.title_source) == ("Goats (fork)", "user")
    saved = store.conversation(fork.id)
    assert (saved.title, saved.title_source, saved.forked_from) == ("Goats (fork)", "user", c.id)
    assert saved.head == fork.head != c.head
    assert [t.prompt for t in store.path_to(saved.head)] == ["one", "two"]
    assert store.path_to(saved.head)[0].parent_id is None


def test_a_fork_of_an_untitled_conversation_is_untitled_until_asked() -> None:
    c = Conversation(Scripted())
    fork = c.fork()
    assert (fork.title, fork.title_source) == (None, None)
    assert fork.turns == []


def test_a_fork_in_memory_copies_the_path_as_new_turns() -> None:
    c = Conversation(Scripted())
    c.prompt("one").text()
    c.prompt("two").text()
    fork = c.fork()
    assert [t.prompt for t in fork.turns] == ["one", "two"]
    assert fork.turns[0].parent_id is None
    assert fork.turns[1].parent_id == fork.turns[0].id
    assert {t.id for t in fork.turns}.isdisjoint(t.id for t in c.turns)
    assert [t.text() for t in fork.turns] == ["ok", "ok"]


# --- proposing a title ----------------------------------------------------------------------


def test_a_proposed_title_is_asked_with_the_first_four_exchanges() -> None:
    model = Scripted(*[[TextDelta(f"a{n}")] for n in range(5)])
    c = Conversation(model)
    for n in range(5):
        c.prompt(f"q{n}").text()
    model.scripts = [[TextDelta("\n  \n"), TextDelta('"**Goat names**"  \nsecond line')]]
    assert c.propose_title() == "Goat names"
    system, user = model.sent[-1]
    assert system == Message(
        "system",
        "You name conversations. Reply with a title of at most six words, no quotes, "
        "no punctuation at the end.",
    )
    assert user.role == "user"
    assert user.content == "Name this conversation:\n\n" + "\n\n".join(
        f"User: q{n}\nAssistant: a{n}" for n in range(4)
    )
    assert model.options_sent[-1] == {}
    assert len(c.turns) == 5  # not saved as a turn


def test_a_proposed_title_shortens_long_exchanges_and_long_titles() -> None:
    model = Scripted([TextDelta("b" * 400)])
    c = Conversation(model)
    c.prompt("a" * 400).text()
    model.scripts = [[TextDelta("t" * 100)]]
    title = c.propose_title()
    assert len(title) == 60
    user = model.sent[-1][1].content
    assert f"User: {'a' * 299}…\nAssistant: {'b' * 299}…" in user


def test_a_proposed_title_is_the_first_line_with_words_without_its_decoration() -> None:
    model = Scripted([TextDelta("x")])
    c = Conversation(model)
    c.prompt("hi").text()
    model.scripts = [[TextDelta("# 'Xmas lists'#\n")], [TextDelta(" \n\t\n")], []]
    assert c.propose_title() == "Xmas lists"
    assert c.propose_title() == ""  # only blank lines: no title
    assert c.propose_title() == ""  # nothing at all


def test_echo_proposes_its_first_prompt_as_title() -> None:
    c = Conversation(get_backend("echo"))
    assert c.propose_title() == ""
    c.prompt("").text()
    assert c.propose_title() == ""
    c.prompt("g" * 80).text()
    assert c.propose_title() == "g" * 59 + "…"


def test_a_saved_tool_call_without_usable_arguments_reads_as_no_arguments() -> None:
    c = Conversation(Scripted())
    record = _summary(c, None, "x")
    record.kind, record.prompt = "turn", "hi"
    record.parts = [
        Part("prompt", "hi"),
        Part("tool_call", "", {"id": "c1", "name": "lookup", "arguments": "{not json"}, 1),
        Part("tool_call", "", {"id": "c2", "name": "other"}, 1),
    ]
    c.graft([record])
    assert c.turns[0].tool_calls == [ToolCall("c1", "lookup", {}), ToolCall("c2", "other", {})]


def test_tokens_add_up_the_turns_on_the_path() -> None:
    model = Scripted(
        [TextDelta("a"), Usage(3, 1)], [TextDelta("b"), Usage(4, None)], [TextDelta("c")]
    )
    c = Conversation(model)
    for q in ("x", "y", "z"):
        c.prompt(q).text()
    assert (c.tokens.input_tokens, c.tokens.output_tokens) == (7, 1)


def test_a_cancel_signal_reaches_the_model() -> None:
    seen: list[threading.Event] = []

    class Watching(Scripted):
        def stream(self, messages, options, cancel, tools=None):  # type: ignore[override]
            seen.append(cancel)
            yield from super().stream(messages, options, cancel, tools)

    r = Conversation(Watching([TextDelta("a"), TextDelta("b")])).prompt("hi")
    for piece in r:
        assert piece == "a"
        r.cancel()
    assert seen[0].is_set()
    assert r.status == "interrupted" and r.text_so_far == "a"


def test_a_title_set_by_hand_is_the_users() -> None:
    c = Conversation(Scripted())
    c.set_title("Goats")
    assert (c.title, c.title_source) == ("Goats", "user")


# --- the store while an answer streams ------------------------------------------------------


def _wait_for(read: Any, want: Any, what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if read() == want:
            return
        time.sleep(0.01)
    raise AssertionError(f"{what} never became {want!r}: {read()!r}")


def test_the_part_still_arriving_is_saved_as_it_grows(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    reader = Store(db)
    seen: list[list[tuple[str, str]]] = []

    class Watched(Backend):
        """Streams two pieces of one text part and, after each, waits to see it saved."""

        def stream(self, messages, options, cancel, tools=None):  # type: ignore[no-untyped-def]
            def saved() -> list[tuple[str, str]]:
                return [(p.kind, p.text) for p in reader.turn(r.id).parts]

            yield TextDelta("one ")
            _wait_for(lambda: reader.turn(r.id).response, "one ", "the saved answer")
            yield TextDelta("two")
            _wait_for(lambda: reader.turn(r.id).response, "one two", "the saved answer")
            seen.append(saved())
            yield RefusalDelta("no more")
            _wait_for(lambda: len(saved()), 3, "the saved parts")
            seen.append(saved())

    r = Conversation(Watched("m", "watched"), store=Store(db)).prompt("go")
    assert r.text() == "one two"
    assert seen == [
        [("prompt", "go"), ("text", "one two")],
        [("prompt", "go"), ("text", "one two"), ("refusal", "no more")],
    ]


def test_a_conversation_deleted_while_it_streams_ends_in_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatrepl.errors import StoreError

    crashed: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", crashed.append)
    db = tmp_path / "chat.db"
    other = Store(db)  # another session on the same database

    class Deleted(Backend):
        def stream(self, messages, options, cancel, tools=None):  # type: ignore[no-untyped-def]
            yield TextDelta("one ")
            other.delete(c.id)
            yield TextDelta("two")
            time.sleep(1.2)  # the flusher tries (and fails) to save "two" meanwhile

    c = Conversation(Deleted("m", "deleted"), store=Store(db))
    r = c.prompt("go")
    with pytest.raises(StoreError, match="is no longer in"):
        r.text()
    assert r.text_so_far == "one two"
    assert crashed == []  # the failed flush was not a crash of the flusher


def test_a_program_that_stops_reading_an_answer_midway_still_exits(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import child_env

    # in this process: the answer dropped midway is saved as interrupted with what arrived
    store = Store(tmp_path / "here.db")
    r = Conversation(get_backend("echo"), store=store).prompt("one two three", delay=0.01)
    answer = iter(r)
    assert next(answer) == "one"
    del answer
    assert (store.turn(r.id).status, store.turn(r.id).response) == ("interrupted", "one")
    # in a program of its own, which then exits with the answer still open
    script = (
        "import sys\n"
        "from chatrepl.conversation import Conversation\n"
        "from chatrepl.providers.registry import get_backend\n"
        "from chatrepl.store import Store\n"
        "c = Conversation(get_backend('echo'), store=Store(sys.argv[1]))\n"
        "answer = iter(c.prompt('one two three four', delay=0.2))\n"
        "print(next(answer), flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "chat.db")],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=30,  # a hang at exit fails here,
    )
    assert (done.returncode, done.stdout) == (0, "one\n"), done.stderr


# --- tools ----------------------------------------------------------------------------------


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city's name.
    """
    return f"Sunny in {city}"


def _asks_for_weather() -> Scripted:
    call = ToolCall("c1", "get_weather", {"city": "Rome"})
    return Scripted([call, Finish("tool_calls")], [TextDelta("It is sunny.")])


def _results(model: Scripted) -> list[str]:
    return [p.text for m in model.sent[-1] if m.role == "tool" for p in m.parts]


def test_chain_with_a_ready_runner_runs_its_tools() -> None:
    from chatrepl.tools import Runner

    model = _asks_for_weather()
    r = Conversation(model).chain("Weather?", tools=Runner([get_weather]))
    assert r.text() == "It is sunny."
    assert _results(model) == ["Sunny in Rome"]


def test_an_approval_hook_that_says_true_lets_the_call_run() -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    def approve(tool: Any, arguments: dict[str, Any]) -> bool:
        asked.append((tool.name, arguments))
        return True

    model = _asks_for_weather()
    r = Conversation(model).chain("Weather?", tools=[get_weather], approve=approve)
    assert r.text() == "It is sunny."
    assert asked == [("get_weather", {"city": "Rome"})]
    assert _results(model) == ["Sunny in Rome"]


def test_chain_takes_a_persona_and_attachments() -> None:
    model = _asks_for_weather()
    r = Conversation(model).chain(
        "Weather?", "Be brief", tools=[get_weather], attachments=[_attachment()]
    )
    r.text()
    assert model.sent[0][0] == Message("system", "Be brief")
    assert [p for p in r.parts if p.kind == "attachment"] == [_attachment()]
    assert [p.data["name"] for p in model.sent[0][1].parts] == ["note.txt"]


# --- the tree with a store ------------------------------------------------------------------


def test_alternatives_of_a_first_turn_are_that_conversations_first_turns(store: Store) -> None:
    elsewhere = Conversation(Scripted(), store=store)
    elsewhere.prompt("elsewhere").text()
    c = Conversation(Scripted(), store=store)
    first = c.prompt("one")
    first.text()
    again = c.retry()
    assert again is not None
    again.text()
    assert [t.id for t in c.alternatives()] == [first.id, again.id]
    assert [t.id for t in c.alternatives(first.id)] == [first.id, again.id]


def test_a_conversation_loaded_without_a_model_answers_with_its_own(
    store: Store, openai_env: Any
) -> None:
    c = Conversation(get_backend("openai:gpt-test"), store=store)
    c.prompt("hi").text()
    assert Conversation.load(store, c.id).model.full_name == "openai:gpt-test"


# --- saved rows: titles, options, summaries -------------------------------------------------


def test_a_title_set_by_hand_is_saved_as_the_users(store: Store) -> None:
    c = Conversation(Scripted(), store=store)
    c.prompt("one").text()
    c.set_title("Goats")
    assert (store.conversation(c.id).title, store.conversation(c.id).title_source) == (
        "Goats",
        "user",
    )


def test_a_stale_title_in_another_session_never_overwrites_a_rename(store: Store) -> None:
    c = Conversation(Scripted(), store=store)
    c.prompt("one").text()
    c.set_title("Old")
    stale = Conversation.load(store, c.id, model=Scripted())
    c.set_title("New")
    stale.set_system("Be brief")  # saves its row, with the title it loaded
    stale.set_model(Scripted())
    assert store.conversation(c.id).title == "New"
    assert store.conversation(c.id).system == "Be brief"


def test_a_resumed_conversation_goes_on_with_the_options_of_its_last_turn(store: Store) -> None:
    c = Conversation(Scripted(), store=store)
    c.prompt("one", temperature=0.2).text()
    again = Conversation.load(store, c.id, model=Scripted())
    assert again.turns[0].options == {"temperature": 0.2}
    assert again.options == {"temperature": 0.2}


def _summary(c: Conversation, parent: str | None, text: str) -> Any:
    from chatrepl.records import TurnRecord

    return TurnRecord(
        id=f"summary-{text}",
        conversation_id=c.id,
        parent_id=parent,
        model="scripted:m",
        prompt="",
        system=None,
        response="",
        options={},
        input_tokens=None,
        output_tokens=None,
        status="complete",
        error=None,
        started="2026-01-01T00:00:00Z",
        duration_ms=5,
        ttft_ms=None,
        parts=[Part("summary", text, {}, 1)],
        kind="summary",
    )


def test_a_graft_goes_on_from_the_turn_it_hangs_from() -> None:
    c = Conversation(Scripted())
    a = c.prompt("a")
    a.text()
    c.prompt("b").text()
    c.prompt("c").text()
    c.graft([_summary(c, a.id, "after a")])
    assert [t.prompt or t.kind for t in c.turns] == ["a", "summary"]
    assert c.head == "summary-after a"


def test_a_graft_from_the_start_replaces_the_whole_path() -> None:
    c = Conversation(Scripted())
    for q in ("a", "b", "c"):
        c.prompt(q).text()
    c.graft([])  # nothing to graft: nothing changes
    assert [t.prompt for t in c.turns] == ["a", "b", "c"]
    c.graft([_summary(c, None, "all")])
    assert [t.kind for t in c.turns] == ["summary"]


def test_a_fork_of_a_compacted_conversation_sends_the_summary(store: Store) -> None:
    model = Scripted()
    c = Conversation(model, store=store)
    a = c.prompt("old question")
    a.text()
    c.graft([_summary(c, a.id, "they talked of goats")])
    fork = c.fork()
    assert [t.kind for t in fork.turns] == ["turn", "summary"]
    assert [t.kind for t in store.path_to(fork.head)] == ["turn", "summary"]
    fork.prompt("new question").text()
    assert [(m.role, m.content) for m in model.sent[-1]] == [
        ("system", "Summary of the conversation so far:\nthey talked of goats"),
        ("user", "new question"),
    ]


# --- tool calls left without a result -------------------------------------------------------


def test_a_call_asked_for_but_not_run_is_sent_back_as_an_error_result() -> None:
    call = ToolCall("c1", "lookup", {"q": "goats"})
    model = Scripted([call, Finish("tool_calls")])
    c = Conversation(model)
    r = c.prompt("hi", tools=[get_weather])
    r.text()
    assert r.tool_calls == [call] and r.status == "complete"
    c.prompt("next").text()
    history = model.sent[-1]
    assert [m.role for m in history] == ["user", "assistant", "tool", "user"]
    assert history[2] == Message(
        "tool",
        "",
        (
            Part(
                "tool_result",
                "The call was not run.",
                {"call_id": "c1", "name": "lookup", "is_error": True},
                1,
            ),
        ),
    )


def test_calls_a_cancelled_chain_never_ran_get_an_error_result() -> None:
    first = ToolCall("c1", "get_weather", {"city": "Rome"})
    second = ToolCall("c2", "get_weather", {"city": "Oslo"})
    model = Scripted([first, second, Finish("tool_calls")], [TextDelta("never")])
    c = Conversation(model)
    turn: list[Any] = []

    def approve(tool: Any, arguments: dict[str, Any]) -> bool:
        turn[0].cancel()  # the user stops the turn while the first call runs
        return True

    turn.append(c.chain("Weather?", tools=[get_weather], approve=approve))
    turn[0].text()
    assert turn[0].status == "interrupted"
    results = [p for p in turn[0].parts if p.kind == "tool_result"]
    assert [(p.text, p.data.get("call_id"), p.call) for p in results] == [
        ("Sunny in Rome", "c1", 1),
        ("The call was stopped before it ran to the end.", "c2", 1),
    ]
    assert results[1].data == {"call_id": "c2", "name": "get_weather", "is_error": True}
    assert len(model.sent) == 1  # the results were not sent: the turn was stopped
    c.prompt("next").text()
    sent = [p.text for m in model.sent[-1] if m.role == "tool" for p in m.parts]
    assert sent == ["Sunny in Rome", "The call was stopped before it ran to the end."]


def test_the_repeat_guard_of_a_runner_counts_each_turn_afresh() -> None:
    from chatrepl.tools import Runner

    runner = Runner([get_weather], max_repeats=1)
    call = ToolCall("c1", "get_weather", {"city": "Rome"})
    model = Scripted([call, Finish("tool_calls")], [TextDelta("one")], [call, Finish("tool_calls")])
    c = Conversation(model)
    c.chain("Weather?", tools=runner).text()
    c.chain("And now?", tools=runner).text()
    assert _results(model) == ["Sunny in Rome", "Sunny in Rome"]  # not refused as a repeat


def test_a_toolbox_of_the_callers_own_runs_its_calls() -> None:
    from chatrepl.tools import Runner

    class Toolbox:
        """Only what a toolbox needs: specs and run."""

        def __init__(self) -> None:
            self.runner = Runner([get_weather])
            self.ran: list[str] = []

        def specs(self) -> list[Any]:
            return self.runner.specs()

        def run(self, call: ToolCall, cancel: threading.Event) -> Part:
            self.ran.append(call.name)
            return self.runner.run(call, cancel)

    box = Toolbox()
    model = _asks_for_weather()
    assert Conversation(model).chain("Weather?", tools=box).text() == "It is sunny."
    assert box.ran == ["get_weather"]
    assert _results(model) == ["Sunny in Rome"]


def test_an_answer_without_a_store_leaves_no_crashed_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crashed: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", crashed.append)
    r = Conversation(Scripted([TextDelta("a"), 0.05, TextDelta("b")])).prompt("hi")
    assert r.text() == "ab"
    assert crashed == []


def test_a_chain_stopped_at_its_limit_is_complete_and_says_why() -> None:
    call = ToolCall("c1", "get_weather", {"city": "Rome"})
    model = Scripted([call, Finish("tool_calls")], [call, Finish("tool_calls")], [TextDelta("x")])
    r = Conversation(model).chain("Weather?", tools=[get_weather], chain_limit=2)
    assert r.text() == ""
    assert r.status == "complete"
    assert len(model.sent) == 2
    assert r.parts[-1] == Part(
        "notice",
        "Stopped after 2 model calls in one turn (the chain limit).",
        {"reason": "chain_limit"},
        2,
    )


def test_a_tool_call_keeps_the_raw_arguments_the_model_sent_when_there_are_any() -> None:
    bad = ToolCall("c1", "lookup", {}, raw='{"q": "goa')
    good = ToolCall("c2", "lookup", {"q": "goats"})
    r = Conversation(Scripted([bad, good, Finish("tool_calls")])).prompt("hi")
    r.text()
    calls = [(p.text, p.data) for p in r.parts if p.kind == "tool_call"]
    assert calls == [
        ("", {"id": "c1", "name": "lookup", "arguments": {}, "raw": '{"q": "goa'}),
        ("", {"id": "c2", "name": "lookup", "arguments": {"q": "goats"}}),
    ]


# --- timings --------------------------------------------------------------------------------


def test_time_to_first_token_is_measured_to_the_first_text_within_the_turn() -> None:
    model = Scripted([ReasoningDelta("hmm"), 0.01, TextDelta("a"), 0.01, TextDelta("b")])
    r = Conversation(model).prompt("hi")
    began = time.monotonic()
    r.text()
    took = time.monotonic() - began
    assert r.duration is not None and r.time_to_first_token is not None
    assert 0 < r.time_to_first_token <= r.duration <= took
    (call,) = r.calls
    assert call.ttft_ms is not None and call.duration_ms is not None
    assert 0 <= call.ttft_ms <= call.duration_ms <= round(took * 1000)


def test_an_answer_without_text_has_no_time_to_first_token() -> None:
    thinking = Conversation(Scripted([ReasoningDelta("hmm"), Finish("stop")])).prompt("hi")
    thinking.text()
    assert thinking.time_to_first_token is None
    empty = Conversation(get_backend("echo")).prompt("")
    empty.text()
    assert empty.time_to_first_token is None
    assert empty.calls[0].ttft_ms is None


def test_a_chain_stopped_while_text_arrives_keeps_the_stopped_calls_result() -> None:
    call = ToolCall("c1", "get_weather", {"city": "Rome"})
    r = Conversation(Scripted([call, TextDelta("partial"), TextDelta(" more")])).chain(
        "Weather?", tools=[get_weather]
    )
    for piece in r:
        assert piece == "partial"
        r.cancel()
    assert r.text_so_far == "partial"
    assert [(p.kind, p.text) for p in r.parts[1:]] == [
        ("tool_call", ""),
        ("text", "partial"),
        ("tool_result", "The call was stopped before it ran to the end."),
    ]


def test_a_prompt_undone_before_it_is_read_still_answers() -> None:
    model = Scripted()
    c = Conversation(model)
    c.prompt("one").text()
    r = c.prompt("two")
    assert c.undo() is r
    assert r.text() == "ok"
    assert [m.content for m in model.sent[-1]] == ["one", "ok", "two"]
    assert [t.prompt for t in c.turns] == ["one"]


# --- the history sent ----------------------------------------------------------------------


def test_a_refusal_is_part_of_the_history_sent_next() -> None:
    model = Scripted([RefusalDelta("I cannot help with that."), Finish("stop")])
    c = Conversation(model)
    c.prompt("do it").text()
    c.prompt("please").text()
    assert [(m.role, m.content) for m in model.sent[-1]] == [
        ("user", "do it"),
        ("assistant", "I cannot help with that."),
        ("user", "please"),
    ]


def test_a_failed_turn_midway_is_left_out_and_the_rest_kept() -> None:
    model = Scripted(
        [TextDelta("one")], [ProviderError("The service is down.")], [TextDelta("three")]
    )
    c = Conversation(model)
    c.prompt("q1").text()
    with pytest.raises(ProviderError):
        c.prompt("q2").text()
    c.prompt("q3").text()
    c.prompt("q4").text()
    assert [m.content for m in model.sent[-1]] == ["q1", "one", "q3", "three", "q4"]


def test_an_attachment_kept_in_the_store_is_sent_with_its_bytes(
    store: Store, tmp_path: Path
) -> None:
    from chatrepl import attachments

    note = tmp_path / "note.txt"
    note.write_text("goats eat everything\n")
    part = attachments.stage(str(note), store)
    model = Scripted()
    c = Conversation(model, store=store)
    c.prompt("read it", attachments=[part]).text()
    (sent,) = model.sent[-1][-1].parts
    assert sent.data["content"] == b"goats eat everything\n"
    assert "missing" not in sent.data


def test_the_first_prompt_is_the_provisional_title_shortened() -> None:
    c = Conversation(Scripted())
    c.prompt("   ").text()  # blank: no title yet
    assert (c.title, c.title_source) == (None, None)
    c.prompt("g" * 80).text()
    assert (c.title, c.title_source) == ("g" * 59 + "…", "prompt")
    c.prompt("a later prompt").text()
    assert c.title == "g" * 59 + "…"


def test_the_text_read_while_it_streams_grows_as_it_arrives() -> None:
    model = Scripted([ReasoningDelta("think"), TextDelta("a"), TextDelta("b"), TextDelta("c")])
    r = Conversation(model).prompt("hi")
    seen = []
    for _ in r:
        seen.append(r.text_so_far)
    assert seen == ["a", "ab", "abc"]
    assert r.reasoning == "think"


def test_a_conversation_of_a_public_model_answers_with_the_providers_model() -> None:
    import chatrepl
    from chatrepl.providers.base import Backend

    public = chatrepl.get_model("echo")
    c = Conversation(public)
    assert isinstance(c.model, Backend) and c.model is public.backend
    c.set_model(chatrepl.get_model("echo"))
    assert isinstance(c.model, Backend)


def test_a_new_conversation_is_untitled_and_forked_from_nothing(store: Store) -> None:
    c = Conversation(Scripted(), store=store)
    assert (c.title, c.title_source, c.forked_from) == (None, None, None)
    c.prompt("   ").text()
    saved = store.conversation(c.id)
    assert (saved.title, saved.title_source, saved.forked_from) == (None, None, None)


def test_a_finished_answer_leaves_nothing_writing_to_the_store(store: Store) -> None:
    r = Conversation(Scripted([TextDelta("a"), 0.05, TextDelta("b")]), store=store).prompt("hi")
    assert r.text() == "ab"
    assert [t for t in threading.enumerate() if t.name == f"flush-{r.id}"] == []
    assert store.turn(r.id).response == "ab"


# --- round three: edited arguments, /continue, budgets, usage, the flusher ------------------


def _two_weather_calls() -> Scripted:
    return Scripted(
        [
            ToolCall("c1", "get_weather", {"city": "Rome"}),
            ToolCall("c2", "get_weather", {"city": "Oslo"}),
            Finish("tool_calls"),
        ],
        [TextDelta("Both sunny."), Finish("stop")],
    )


def _calls(parts: list[Part]) -> list[dict[str, Any]]:
    return [dict(p.data) for p in parts if p.kind == "tool_call"]


def test_each_edited_call_keeps_its_own_arguments_and_the_models(store: Store) -> None:
    # _ran_with's search: the call edited is the one with that id in this model call
    # (step -2 / `or` mutants edit a neighbour or none)
    from chatrepl.tools import Decision

    model = _two_weather_calls()
    edits = {"Rome": "Milan", "Oslo": "Bergen"}

    def approve(tool: Any, arguments: dict[str, Any]) -> Decision:
        return Decision(True, arguments={"city": edits[arguments["city"]]})

    c = Conversation(model, store=store)
    r = c.chain("Weather?", tools=[get_weather], approve=approve)
    assert r.text() == "Both sunny."
    want = [
        {
            "id": "c1",
            "name": "get_weather",
            "arguments": {"city": "Milan"},
            "original_arguments": {"city": "Rome"},
        },
        {
            "id": "c2",
            "name": "get_weather",
            "arguments": {"city": "Bergen"},
            "original_arguments": {"city": "Oslo"},
        },
    ]
    assert _calls(r.parts) == want
    assert _calls(store.turn(r.id).parts) == want
    sent = [p.data["arguments"] for m in model.sent[1] if m.role == "assistant" for p in m.parts]
    assert sent == [{"city": "Milan"}, {"city": "Bergen"}]
    assert [r.split("\n")[-1] for r in _results(model)] == ["Sunny in Milan", "Sunny in Bergen"]


def test_an_edit_of_one_call_leaves_the_other_call_as_the_model_asked() -> None:
    from chatrepl.tools import Decision

    model = _two_weather_calls()

    def approve(tool: Any, arguments: dict[str, Any]) -> Any:
        return Decision(True, arguments={"city": "Milan"}) if arguments["city"] == "Rome" else True

    r = Conversation(model).chain("Weather?", tools=[get_weather], approve=approve)
    r.text()
    assert [(d["arguments"], d.get("original_arguments")) for d in _calls(r.parts)] == [
        ({"city": "Milan"}, {"city": "Rome"}),
        ({"city": "Oslo"}, None),
    ]


def test_an_edited_call_just_after_the_prompt_is_saved_edited_while_the_turn_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the only call, at index 1 and last when it is edited (range start/stop mutants), and
    # flushed again from its own part (`_saved = None` crashes the flusher instead)
    from chatrepl.tools import Decision

    crashed: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", crashed.append)
    db = tmp_path / "chat.db"
    reader = Store(db)
    turn: list[Any] = []

    def saved_arguments() -> Any:
        return [d.get("arguments") for d in _calls(reader.turn(turn[0].id).parts)]

    class Edited(Backend):
        def __init__(self) -> None:
            super().__init__("m", "edited")
            self.n = 0

        def stream(self, messages, options, cancel, tools=None):  # type: ignore[no-untyped-def]
            self.n += 1
            if self.n == 1:
                yield ToolCall("c1", "get_weather", {"city": "Rome"})
                yield Finish("tool_calls")
                return
            # the second model call of the turn: the edit is in the store already
            _wait_for(saved_arguments, [{"city": "Milan"}], "the saved arguments")
            yield TextDelta("Sunny.")

    c = Conversation(Edited(), store=Store(db))
    turn.append(
        c.chain(
            "Weather?",
            tools=[get_weather],
            approve=lambda tool, arguments: Decision(True, arguments={"city": "Milan"}),
        )
    )
    assert turn[0].text() == "Sunny."
    assert _calls(turn[0].parts) == [
        {
            "id": "c1",
            "name": "get_weather",
            "arguments": {"city": "Milan"},
            "original_arguments": {"city": "Rome"},
        }
    ]
    assert crashed == []


def test_a_continued_answer_adds_its_time_to_the_turns_duration(store: Store) -> None:
    model = Scripted(
        [0.3, TextDelta("The first half"), Finish("length")],
        [TextDelta(" and the rest."), Finish("stop")],
    )
    c = Conversation(model, store=store)
    r = c.prompt("write a lot")
    r.text()
    first = r.duration
    assert r.status == "cut_off" and first is not None and first >= 0.3
    c.continue_answer().text()
    assert r.text() == "The first half and the rest."
    assert r.duration is not None and r.duration >= first
    saved = store.turn(r.id).duration_ms
    assert saved is not None and saved >= round(first * 1000)


def test_a_continued_answer_with_reasoning_is_sent_later_as_one_answer() -> None:
    model = Scripted(
        [ReasoningDelta("Plan it."), TextDelta("The first half"), Finish("length")],
        [TextDelta(" and the rest."), Finish("stop")],
        [TextDelta("ok"), Finish("stop")],
    )
    c = Conversation(model)
    c.prompt("write a lot").text()
    c.continue_answer().text()
    c.prompt("next").text()
    history = model.sent[-1]
    assert [m.role for m in history] == ["user", "assistant", "user"]
    assert history[1].content == "The first half and the rest."
    assert [(p.kind, p.text) for p in history[1].parts] == [("reasoning", "Plan it.")]


def test_a_resumed_cut_off_turn_with_a_call_is_continued_without_running_or_closing_it(
    store: Store,
) -> None:
    # a turn read back is not a chain: carrying it on adds no "stopped" result to its call
    model = Scripted(
        [ToolCall("c1", "lookup", {"q": "goats"}), TextDelta("Goats are"), Finish("length")],
        [TextDelta(" great."), Finish("stop")],
    )
    c = Conversation(model, store=store)
    c.prompt("goats?", tools=[get_weather]).text()
    again = Conversation.load(store, c.id, model=model)
    r = again.continue_answer()
    assert r.text() == "Goats are great."
    assert [p.kind for p in r.parts] == ["prompt", "tool_call", "text", "text"]
    assert [p.kind for p in store.turn(r.id).parts] == ["prompt", "tool_call", "text", "text"]


def test_a_fork_keeps_the_sessions_budget() -> None:
    from chatrepl.budgets import Budget

    said: list[str] = []
    c = Conversation(Scripted())
    c.budget = Budget({"day": 1.0}, warn=said.append)
    c.prompt("hi").text()
    assert len(said) == 1 and "No price is known" in said[0]
    f = c.fork()
    assert f.budget is c.budget
    said.clear()
    f.prompt("again").text()  # the budget is asked (it has said its warning already)
    assert said == []
    other = Budget({"day": 1.0}, warn=said.append)
    c.budget = other
    c.fork().prompt("once more").text()
    assert len(said) == 1  # a fork made now checks the budget the session has now


def test_the_tokens_of_an_empty_conversation_are_zero_and_its_cost_unknown() -> None:
    tokens = Conversation(Scripted()).tokens
    assert tokens == Usage(0, 0, 0, 0, 0, None)


def test_tokens_nobody_reported_count_zero_and_a_cost_nobody_knows_stays_unknown() -> None:
    model = Scripted([TextDelta("a"), Usage(input_tokens=5), Finish("stop")])
    c = Conversation(model)
    c.prompt("hi").text()
    assert c.tokens == Usage(5, 0, 0, 0, 0, None)


def test_switching_in_memory_lands_at_the_deepest_newest_turn_below() -> None:
    c = Conversation(Scripted())
    one = c.prompt("one")
    one.text()
    c.prompt("two").text()
    three = c.prompt("three")
    three.text()
    c.undo()
    c.undo()
    c.undo()
    c.prompt("other start").text()
    c.switch(one.id)
    assert c.head == three.id
    assert [t.prompt for t in c.turns] == ["one", "two", "three"]


def test_an_answer_that_starts_after_a_silence_is_still_saved_as_it_grows(
    tmp_path: Path,
) -> None:
    # the flusher keeps waiting through a quiet interval (it does not give up after one)
    db = tmp_path / "chat.db"
    reader = Store(db)
    turn: list[Any] = []

    class Slow(Backend):
        def stream(self, messages, options, cancel, tools=None):  # type: ignore[no-untyped-def]
            time.sleep(1.2)  # longer than two flush intervals with nothing new
            yield TextDelta("late ")
            _wait_for(lambda: reader.turn(turn[0].id).response, "late ", "the saved answer")
            yield TextDelta("answer")

    turn.append(Conversation(Slow("m", "slow"), store=Store(db)).prompt("go"))
    assert turn[0].text() == "late answer"


def test_switching_reads_the_branch_as_opening_the_conversation_there_does(store: Store) -> None:
    # a turn written with texts apart from its parts (an import): the path is its parts', as
    # Conversation.load reads it, not the columns an export reads
    from dataclasses import replace

    from chatrepl.ids import new_id

    c = Conversation(get_backend("echo"), store=store)
    c.prompt("words").text()
    saved = store.path_to(c.head)[0]
    apart = replace(saved, id=new_id(), prompt="column prompt", response="column answer")
    store.add_turns(store.conversation(c.id), [apart])
    c.switch(apart.id)
    assert c.head == apart.id
    assert [(t.prompt, t.text_so_far) for t in c.turns] == [("words", "words")]
    opened = Conversation.load(store, c.id, model=get_backend("echo"))
    assert [(t.id, t.prompt) for t in opened.turns] == [(apart.id, "words")]


def test_carrying_on_an_answer_with_a_call_never_run_sends_that_calls_result_first() -> None:
    # providers refuse an assistant message with tool calls not followed by their results:
    # the continuation of a cut-off prompt(tools=...) answer sends "not run" as a later turn does
    model = Scripted(
        [ToolCall("c1", "lookup", {"q": "goats"}), TextDelta("Goats are"), Finish("length")],
        [TextDelta(" great."), Finish("stop")],
    )
    c = Conversation(model)
    c.prompt("goats?", tools=[get_weather]).text()
    assert c.continue_answer().text() == "Goats are great."
    sent = model.sent[1]
    assert [m.role for m in sent] == ["user", "assistant", "tool", "user"]
    assert [(p.text, p.data) for p in sent[2].parts] == [
        ("The call was not run.", {"call_id": "c1", "name": "lookup", "is_error": True})
    ]
    assert sent[3].content == CONTINUE_PROMPT


def _priced(*scripts: list[Any]) -> Scripted:
    """A scripted model under a name the built-in price table knows."""
    model = Scripted(*scripts, provider="openai")
    model.name = "gpt-4o-mini"
    return model


def test_a_call_is_priced_by_the_table_when_the_server_reports_no_cost() -> None:
    from chatrepl.pricing import price_of

    model = _priced([TextDelta("a"), Usage(input_tokens=1000, output_tokens=500), Finish("stop")])
    c = Conversation(model)
    r = c.prompt("hi")
    r.text()
    price = price_of("openai:gpt-4o-mini")
    assert price is not None
    want = price.cost(1000, 500, None, None)
    assert want and r.calls[0].cost == pytest.approx(want)
    assert r.usage.cost == pytest.approx(want) and c.tokens.cost == pytest.approx(want)


def test_the_cost_the_server_reports_is_the_calls_cost_even_without_a_price() -> None:
    # a model the table does not know; the server said what the call cost
    model = Scripted([TextDelta("a"), Usage(input_tokens=10, cost=0.25), Finish("stop")])
    r = Conversation(model).prompt("hi")
    r.text()
    assert r.calls[0].cost == 0.25 and r.usage.cost == 0.25


def test_what_an_unsaved_conversation_spent_counts_against_its_budget() -> None:
    from chatrepl.budgets import Budget
    from chatrepl.errors import BudgetError

    model = _priced([TextDelta("a"), Usage(input_tokens=10, cost=5.0), Finish("stop")])
    c = Conversation(model)
    c.budget = Budget({"conversation": 1.0})
    c.prompt("hi").text()  # nothing spent before it: sent
    with pytest.raises(BudgetError, match=r"conversation budget of \$1\.00, with \$5\.00 spent"):
        c.prompt("again").text()
    assert len(model.sent) == 1  # the second request was not sent
