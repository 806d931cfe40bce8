"""One HTTP connection per provider host for the whole session, over a real socket.

The fake server speaks HTTP/1.1 with keep-alive and chunked event streams, as the vendors'
servers do, and counts the connections it accepted: turns, tool round trips, titles and model
listings must all go over one; a connection the server closed is replaced quietly; an answer
stopped early closes its connection and the next request opens a new one.
"""

from __future__ import annotations

import threading

import pytest
from fakeserver import Answer, Call, FakeLLMServer, HangUp, Reply, Text

from chatrepl.conversation import Conversation
from chatrepl.providers.registry import get_backend
from chatrepl.records import Message, TextDelta

MODELS = ("openai:gpt-test", "anthropic:claude-test")
CALLED: list[int] = []


def count(n: int) -> str:
    """Count one step further.

    Args:
        n: the step so far.
    """
    CALLED.append(n)
    return str(n + 1)


@pytest.mark.parametrize("name", MODELS)
def test_ten_turns_go_over_one_connection(openai_env: FakeLLMServer, name: str) -> None:
    c = Conversation(get_backend(name))
    for n in range(10):
        assert c.prompt(f"turn {n}").text().startswith(f"You said: turn {n}")
    assert len(openai_env.requests) == 10
    assert openai_env.connections == 1


@pytest.mark.parametrize("name", MODELS)
def test_a_five_step_tool_chain_goes_over_one_connection(
    openai_env: FakeLLMServer, name: str
) -> None:
    CALLED.clear()
    steps = [Answer(Call("count", f'{{"n": {n}}}', id=f"call_{n}")) for n in range(5)]
    openai_env.push(*steps, Answer(Text("Five.")))
    r = Conversation(get_backend(name)).chain("Count to five", tools=[count])
    assert r.text() == "Five." and CALLED == [0, 1, 2, 3, 4]
    assert len(openai_env.requests) == 6
    assert openai_env.connections == 1


@pytest.mark.parametrize("name", MODELS)
def test_a_title_a_listing_and_a_turn_share_one_connection(
    openai_env: FakeLLMServer, name: str
) -> None:
    c = Conversation(get_backend(name))
    c.prompt("hello").text()
    openai_env.push(Reply("A Greeting"))
    assert c.propose_title() == "A Greeting"
    get_backend(name).available_models()  # another backend of the same host: same connection
    c.prompt("again").text()
    assert len(openai_env.requests) == 4
    assert openai_env.connections == 1


@pytest.mark.parametrize("name", MODELS)
def test_a_connection_the_server_closed_is_replaced_quietly(
    openai_env: FakeLLMServer, name: str
) -> None:
    c = Conversation(get_backend(name))
    openai_env.push(Reply("first", hang_up=True))
    assert c.prompt("one").text() == "first"
    assert c.prompt("two").text().startswith("You said: two")
    assert openai_env.connections == 2


@pytest.mark.parametrize("name", MODELS)
def test_a_hang_up_on_a_kept_connection_is_not_an_error(
    openai_env: FakeLLMServer, name: str
) -> None:
    c = Conversation(get_backend(name))
    c.prompt("one").text()
    openai_env.push(HangUp())  # closed as the request went out: sent again on a new one
    r = c.prompt("two")
    assert r.text().startswith("You said: two") and r.status == "complete"
    assert openai_env.connections == 2


@pytest.mark.parametrize("name", MODELS)
def test_an_answer_stopped_early_closes_its_connection(
    openai_env: FakeLLMServer, name: str
) -> None:
    backend = get_backend(name)
    openai_env.push(Reply("one two three four five six", delay=0.05))
    cancel = threading.Event()
    for event in backend.stream([Message("user", "go")], {}, cancel):
        if isinstance(event, TextDelta) and event.text.strip():
            cancel.set()  # what Ctrl-C does
    # The rest of that answer is never read: the next request cannot use its connection.
    events = list(backend.stream([Message("user", "next")], {}, threading.Event()))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).startswith("You said")
    assert openai_env.connections == 2


def test_providers_at_different_hosts_have_a_connection_each(
    openai_env: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeLLMServer() as other:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", other.anthropic_url)
        Conversation(get_backend("openai:gpt-test")).prompt("a").text()
        Conversation(get_backend("anthropic:claude-test")).prompt("b").text()
        Conversation(get_backend("openai:gpt-test")).prompt("c").text()
        assert (openai_env.connections, other.connections) == (1, 1)
