"""A PostgreSQL store far away: the round trips each operation costs, counted by a delay proxy
(tests/delayproxy.py) between chatrepl and a real server, and what survives the server going
away in the middle of an answer.

Round trips are counted, not timed: the proxy counts a flight when the server answers the
client, before the client can see the answer, so every count here is exact. The proxy adds no
delay in these tests (the benchmark, benchmarks/bench_remote_store.py, puts the server 30 and
80 ms away and measures the time).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import child_env
from delayproxy import DelayProxy
from fakeserver import Reply

from chatrepl import conversation as conversation_module
from chatrepl.conversation import Conversation
from chatrepl.errors import StoreError
from chatrepl.providers.base import Backend
from chatrepl.records import Finish, TextDelta, ToolCall
from chatrepl.store import Store

pytest_plugins = ("pgserver",)
pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[postgres]'")

ANSWER = "An answer of a few words, at once."


def via(url: str, port: int) -> str:
    """``url`` through the proxy listening on ``port``."""
    parts = urlsplit(url)
    auth = f"{parts.username}:{parts.password}@" if parts.password else ""
    return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{port}"))


@pytest.fixture
def proxy(pg_server) -> Iterator[DelayProxy]:
    with DelayProxy("127.0.0.1", pg_server.port) as p:
        yield p


@pytest.fixture
def far(pg_url: str, proxy: DelayProxy) -> str:
    """The test's database, created, reached through the proxy."""
    Store(pg_url).close()
    return via(pg_url, proxy.port)


@pytest.fixture(autouse=True)
def no_flush_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers here last milliseconds; on a machine slow enough to take half a second the
    flusher would write once more. Its own round trip is counted on its own below."""
    monkeypatch.setattr(conversation_module, "FLUSH_INTERVAL", 60.0)


class Counting(Backend):
    """An instant model that notes the proxy's count when the request leaves; it asks for a
    tool ``tools`` times before it answers."""

    def __init__(self, proxy: DelayProxy, tools: int = 0) -> None:
        super().__init__("instant", "counting")
        self.proxy, self.tools = proxy, tools
        self.at_request: list[int] = []

    def stream(self, messages: Any, options: Any, cancel: Any, tools: Any = None) -> Iterator:
        self.at_request.append(self.proxy.flights)
        if len(self.at_request) <= self.tools:
            yield ToolCall(f"call-{len(self.at_request)}", "clock", {})
            yield Finish("tool_calls")
            return
        yield TextDelta(ANSWER)
        yield Finish("stop")


def clock() -> str:
    """The time (a tool for the model)."""
    return "noon"


def flights(proxy: DelayProxy, action: Any) -> tuple[Any, int]:
    before = proxy.flights
    result = action()
    return result, proxy.flights - before


# --- opening ---------------------------------------------------------------------------------


def test_opening_is_the_connection_and_one_question(far: str, proxy: DelayProxy) -> None:
    import psycopg

    _, connecting = flights(proxy, lambda: psycopg.connect(far).close())
    store, opening = flights(proxy, lambda: Store(far))
    try:
        # the schema's version in one question; the search path given with the connection
        assert opening == connecting + 1
    finally:
        store.close()


# --- a turn ----------------------------------------------------------------------------------


def test_a_turn_is_one_round_trip_before_the_request_and_one_after(
    far: str, proxy: DelayProxy
) -> None:
    store = Store(far)
    model = Counting(proxy)
    c = Conversation(model, store=store)
    c.prompt("the first turn also makes the conversation").text()
    for n in range(2):
        start = proxy.flights
        response = c.prompt(f"question {n}")
        assert response.text() == ANSWER
        assert model.at_request[-1] - start == 1  # the prompt, durable before it is sent
        assert proxy.flights - start == 2  # and the end of the turn
        store.recent(50)  # what the REPL reads after each turn, for its toolbar
        assert proxy.flights - start == 3  # a REPL turn: ≤ 4
    saved = Store(far).turns(c.id)
    assert [(t.prompt, t.response, t.status) for t in saved][1:] == [
        ("question 0", ANSWER, "complete"),
        ("question 1", ANSWER, "complete"),
    ]
    store.close()


def test_a_tool_round_trip_costs_no_round_trip_to_the_store(far: str, proxy: DelayProxy) -> None:
    store = Store(far)
    model = Counting(proxy, tools=2)
    c = Conversation(model, store=store)
    c.prompt("a first turn").text()
    model.at_request.clear()
    model.tools = 2
    start = proxy.flights
    response = c.chain("what time is it?", tools=[clock])
    assert response.text() == ANSWER
    assert len(response.calls) == 3
    # the prompt before the first request; the results go with the end (or a timed flush)
    assert [n - start for n in model.at_request] == [1, 1, 1]
    assert proxy.flights - start == 2
    results = [p.text for p in Store(far).turn(response.id).parts if p.kind == "tool_result"]
    assert results == ["noon", "noon"]
    store.close()


def test_a_flush_of_streamed_text_is_one_round_trip(far: str, proxy: DelayProxy) -> None:
    store = Store(far)
    c = Conversation(Counting(proxy), store=store)
    response = c.prompt("a question")
    _, cost = flights(
        proxy, lambda: store.save_progress(response.id, "so far", 1, [*response.parts])
    )
    assert cost == 1
    store.close()


def test_a_missing_turn_is_still_a_clear_error(far: str, proxy: DelayProxy) -> None:
    store = Store(far)
    c = Conversation(Counting(proxy), store=store)
    response = c.prompt("a question")
    store.delete(c.id)
    with pytest.raises(StoreError, match="no longer in"):
        store.save_progress(response.id, "so far", 1, list(response.parts))
    store.close()


# --- reading ---------------------------------------------------------------------------------


def test_opening_listing_and_searching_are_a_round_trip_each(far: str, proxy: DelayProxy) -> None:
    store = Store(far)
    model = Counting(proxy)
    c = Conversation(model, store=store)
    for n in range(3):
        c.prompt(f"tell me about the server, part {n}").text()
    c.undo()
    c.prompt("a branch").text()  # a turn off the path, which opening leaves out
    loaded, cost = flights(proxy, lambda: Conversation.load(store, c.id, model=model))
    assert cost == 1  # a whole id: the row, the outline, the parts and the calls together
    assert [t.prompt for t in loaded.turns] == [t.prompt for t in c.turns]
    assert [t.text_so_far for t in loaded.turns] == [ANSWER] * 3
    _, cost = flights(proxy, lambda: Conversation.load(store, c.id[:8], model=model))
    assert cost == 2  # a prefix is resolved first
    listed, cost = flights(proxy, lambda: store.recent(20))
    assert cost == 1
    assert [(s.id, s.turns) for s in listed] == [(c.id, 3)]
    hits, cost = flights(proxy, lambda: store.search("server"))
    assert cost == 1
    assert {h.conversation_id for h in hits} == {c.id}
    path, cost = flights(proxy, lambda: store.path_to(c.head))
    assert cost == 1
    assert [t.prompt for t in path] == [t.prompt for t in c.turns]
    store.close()


# --- a server that goes away in the middle of an answer ----------------------------------------


class Cutting(Backend):
    """Streams a few words, and cuts every connection to the store in the middle."""

    def __init__(self, proxy: DelayProxy, words: int = 6) -> None:
        super().__init__("instant", "cutting")
        self.proxy, self.words = proxy, words

    def stream(self, messages: Any, options: Any, cancel: Any, tools: Any = None) -> Iterator:
        for n in range(self.words):
            if n == self.words // 2:
                self.proxy.cut()
                time.sleep(0.2)  # the proxy drops them from its own thread
            yield TextDelta(f"word{n} ")
        yield Finish("stop")


def test_the_end_of_an_answer_is_kept_when_the_server_goes_away_and_written_after(
    far: str, proxy: DelayProxy
) -> None:
    store = Store(far)
    c = Conversation(Cutting(proxy), store=store)
    response = c.prompt("a question")
    shown = []
    with pytest.raises(StoreError) as told:
        for piece in response:
            shown.append(piece)
    assert "was lost" in str(told.value) and "not saved yet" in str(told.value)
    assert "".join(shown) == response.text_so_far == " ".join(f"word{n}" for n in range(6)) + " "
    # the proxy takes new connections again: the next write makes the kept one first
    c.set_title("after the cut")
    saved = Store(far).turn(response.id)
    assert (saved.response, saved.status) == (response.text_so_far, "complete")
    store.close()


def test_an_end_still_unsaved_at_exit_is_written_by_the_next_start(
    far: str, pg_server, proxy: DelayProxy
) -> None:
    if pg_server.folder is None:
        pytest.skip("CHATREPL_TEST_PG names a server these tests may not stop")
    store = Store(far)
    c = Conversation(Cutting(proxy), store=store)
    response = c.prompt("a question")
    with pytest.raises(StoreError, match="was lost"):
        response.text()
    pg_server.pause()  # the server stays away: the last try at close fails too
    try:
        store.close()
    finally:
        pg_server.start_again()
    assert Store(far).turn(response.id).status == "pending"  # as first written
    Store(far).close()  # the next chatrepl to open it writes what the last one kept
    saved = Store(far).turn(response.id)
    assert (saved.response, saved.status) == (response.text_so_far, "complete")


def test_a_one_shot_whose_server_goes_away_keeps_its_answer_for_the_next_start(
    pg_url: str, pg_server, openai_env
) -> None:
    if pg_server.folder is None:
        pytest.skip("CHATREPL_TEST_PG names a server these tests may not stop")
    Store(pg_url).close()
    words = [f"w{n} " for n in range(12)]
    openai_env.push(Reply(text="".join(words), delay=0.1))
    child = subprocess.Popen(
        [sys.executable, "-m", "chatrepl", "--db", pg_url, "-m", "openai:gpt-test", "-p", "hi"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    deadline = time.monotonic() + 30
    while not openai_env.requests and time.monotonic() < deadline:
        time.sleep(0.02)  # the prompt is saved before the request goes out
    pg_server.pause()  # the server goes away mid-answer, and stays away until the end
    try:
        out, err = child.communicate(timeout=60)
    finally:
        pg_server.start_again()
    assert out.split() == [w.strip() for w in words]  # the whole answer, on screen
    assert err.count("was lost") == 1, err  # told once
    assert "Traceback" not in err
    Store(pg_url).close()  # the next chatrepl to open the database writes what it kept
    store = Store(pg_url)
    [summary] = store.recent(1)
    [turn] = store.turns(summary.id)
    assert (turn.prompt, turn.response, turn.status) == ("hi", "".join(words), "complete")
    store.close()


def test_a_repl_turn_costs_at_most_four_round_trips(far: str, proxy: DelayProxy) -> None:
    """The REPL itself, not the library: a line handled, its flights counted around it."""
    from harness import Harness, make
    from prompt_toolkit.input import create_pipe_input

    store = Store(far)
    model = Counting(proxy)
    with create_pipe_input() as pipe:
        h = Harness(make(store, model, pipe=pipe), pipe)
        h.run("the first turn also makes the conversation")
        start = proxy.flights
        shown = h.run("a question")
        assert ANSWER in shown
        assert model.at_request[-1] - start == 1
        assert proxy.flights - start <= 4  # the prompt, the end, the toolbar's list
    assert [t.status for t in Store(far).turns(h.conversation.id)] == ["complete"] * 2
    store.close()


# --- a pooler that refuses the search path as a connection option -------------------------------


class Pooler(DelayProxy):
    """A stand-in for PgBouncer in front of the server: it declines TLS, and refuses a
    startup message that carries ``options`` as PgBouncer does (``unsupported startup
    parameter: options``); any other connection it passes to the server."""

    refused = 0

    async def _accept(self, reader: Any, writer: Any) -> None:
        import asyncio
        import struct

        try:
            while True:
                size = struct.unpack("!I", await reader.readexactly(4))[0]
                body = await reader.readexactly(size - 4)
                if body[:4] in (b"\x04\xd2\x16\x2f", b"\x04\xd2\x16\x30"):  # TLS, GSS: no
                    writer.write(b"N")
                    await writer.drain()
                    continue
                break
            if b"\x00options\x00" in b"\x00" + body:
                self.refused += 1
                message = b"SFATAL\x00C08P01\x00Munsupported startup parameter: options\x00\x00"
                writer.write(b"E" + struct.pack("!I", len(message) + 4) + message)
                await writer.drain()
                writer.close()
                return
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except (OSError, asyncio.IncompleteReadError):
            writer.close()
            return
        up_writer.write(struct.pack("!I", size) + body)
        self._writers |= {writer, up_writer}
        last = ["client"]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                self._pipe(reader, up_writer, last, "client"),
                self._pipe(up_reader, writer, last, "server"),
                return_exceptions=True,
            )


def test_a_pooler_that_refuses_the_option_gets_the_search_path_set(pg_url: str, pg_server) -> None:
    Store(pg_url).close()
    with Pooler("127.0.0.1", pg_server.port) as pooler:
        store = Store(via(pg_url, pooler.port))
        c = Conversation(Counting(pooler), store=store)
        assert c.prompt("through the pooler").text() == ANSWER
        store.close()
        assert pooler.refused == 1  # once: the store then connects without the option
    assert [t.prompt for t in Store(pg_url).turns(c.id)] == ["through the pooler"]
