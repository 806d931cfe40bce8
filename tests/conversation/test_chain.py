"""Chaining: the model asks for tool calls, chatrepl runs them and sends the results back, in
both wire formats, over a real socket against the fake vendor server."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fakeserver import Answer, Call, Text, Think

import chatrepl
from chatrepl.conversation import Conversation, ToolResult
from chatrepl.records import ToolCall
from chatrepl.store import Store
from chatrepl.tools import Decision

CALLED: list[str] = []


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city's name.
    """
    CALLED.append(city)
    return f"Sunny in {city}, 21 °C"


def broken(x: int) -> str:
    """Always fails."""
    raise RuntimeError("the sensor is offline")


@pytest.fixture(params=["openai:gpt-test", "anthropic:claude-test"])
def model(request, openai_env):  # type: ignore[no-untyped-def]
    CALLED.clear()
    return chatrepl.get_model(request.param)


def sent_roles(server) -> list[str]:  # type: ignore[no-untyped-def]
    return [m["role"] for m in server.last["json"]["messages"]]


def tool_results_sent(server) -> list[str]:  # type: ignore[no-untyped-def]
    """The tool results in the last request, whatever the vendor's shape."""
    out = []
    for m in server.last["json"]["messages"]:
        if m["role"] == "tool":
            out.append(m["content"])
        elif isinstance(m.get("content"), list):
            out += [str(b.get("content")) for b in m["content"] if b.get("type") == "tool_result"]
    return out


def test_chain_runs_the_call_and_sends_the_result_back(model, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "c.db")
    c = model.conversation(store=store)
    server.push(
        Answer(Text("Let me look."), Call("get_weather", '{"city": ', '"Paris"}')),
        Answer(Text("It is sunny in Paris.")),
    )
    r = c.chain("Weather in Paris?", tools=[get_weather])
    events = list(r.events())
    assert r.text_so_far == "Let me look.It is sunny in Paris."
    assert CALLED == ["Paris"]
    assert [e.part.text for e in events if isinstance(e, ToolResult)] == ["Sunny in Paris, 21 °C"]
    assert r.status == "complete" and len(r.calls) == 2
    assert tool_results_sent(server) == ["Sunny in Paris, 21 °C"]
    kinds = [(p.kind, p.call) for p in r.parts]
    assert kinds == [("prompt", 0), ("text", 1), ("tool_call", 1), ("tool_result", 1), ("text", 2)]
    # Saved as it happened, and the next prompt sends the whole exchange again.
    again = Conversation.load(store, c.id)
    (turn,) = again.turns
    assert [(p.kind, p.text) for p in turn.parts] == [(p.kind, p.text) for p in r.parts]
    server.push(Answer(Text("You are welcome.")))
    again.prompt("thanks").text()
    roles = sent_roles(server)
    assert roles[-1] == "user" and "assistant" in roles
    assert tool_results_sent(server) == ["Sunny in Paris, 21 °C"]


def test_prompt_with_tools_exposes_the_calls_without_running_them(model, server) -> None:  # type: ignore[no-untyped-def]
    server.push(Answer(Call("get_weather", '{"city": "Oslo"}')))
    r = model.conversation().prompt("Weather in Oslo?", tools=[get_weather])
    assert r.text() == ""
    assert [(t.name, t.arguments) for t in r.tool_calls] == [("get_weather", {"city": "Oslo"})]
    assert CALLED == []
    assert server.last["json"]["tools"]  # the tools were offered


def test_a_denied_call_goes_back_to_the_model_and_the_turn_goes_on(model, server) -> None:  # type: ignore[no-untyped-def]
    server.push(
        Answer(Call("get_weather", '{"city": "Rome"}')),
        Answer(Text("I may not look it up.")),
    )
    asked: list[dict] = []

    def approve(tool, arguments):  # type: ignore[no-untyped-def]
        asked.append(arguments)
        return False

    r = model.conversation().chain("Weather in Rome?", tools=[get_weather], approve=approve)
    assert r.text() == "I may not look it up."
    assert asked == [{"city": "Rome"}] and CALLED == []
    (result,) = tool_results_sent(server)
    assert "denied" in result.lower()


def test_the_hook_may_change_the_arguments(model, server) -> None:  # type: ignore[no-untyped-def]
    server.push(Answer(Call("get_weather", '{"city": "Rome"}')), Answer(Text("ok")))
    r = model.conversation().chain(
        "Weather?", tools=[get_weather], approve=lambda t, a: Decision(True, {"city": "Milan"})
    )
    r.text()
    assert CALLED == ["Milan"]


def test_a_tool_that_raises_returns_the_error_to_the_model(model, server) -> None:  # type: ignore[no-untyped-def]
    server.push(Answer(Call("broken", '{"x": 1}')), Answer(Text("The sensor is down.")))
    r = model.conversation().chain("Read it", tools=[broken])
    assert r.text() == "The sensor is down."
    (result,) = tool_results_sent(server)
    assert "the sensor is offline" in result
    assert r.parts[-2].kind == "tool_result" and r.parts[-2].data["is_error"] is True


def test_a_model_that_loops_stops_at_the_chain_limit(model, server) -> None:  # type: ignore[no-untyped-def]
    for n in range(5):
        server.push(Answer(Call("get_weather", f'{{"city": "C{n}"}}', id=f"call_{n}")))
    r = model.conversation().chain("Loop", tools=[get_weather], chain_limit=3)
    r.text()
    assert len(r.calls) == 3 and CALLED == ["C0", "C1", "C2"]
    assert r.parts[-1].kind == "notice" and "chain limit" in r.parts[-1].text


def test_the_same_call_repeated_is_refused_after_twice(model, server) -> None:  # type: ignore[no-untyped-def]
    for n in range(3):
        server.push(Answer(Call("get_weather", '{"city": "Bern"}', id=f"call_{n}")))
    server.push(Answer(Text("Done.")))
    r = model.conversation().chain("Loop", tools=[get_weather])
    assert r.text() == "Done."
    assert CALLED == ["Bern", "Bern"]
    assert "already ran" in tool_results_sent(server)[-1]


def test_an_unknown_tool_and_arguments_that_are_not_json(model, server) -> None:  # type: ignore[no-untyped-def]
    server.push(
        Answer(Call("nope", "{}", id="a"), Call("get_weather", "{not json", id="b")),
        Answer(Text("Sorry.")),
    )
    r = model.conversation().chain("x", tools=[get_weather])
    assert r.text() == "Sorry."
    results = tool_results_sent(server)
    assert "no tool named 'nope'" in results[0] and "not valid JSON" in results[1]


def test_reasoning_and_calls_of_a_chain_are_parts(model, server) -> None:  # type: ignore[no-untyped-def]
    shape = "reasoning_content" if "openai" in model.full_name else "thinking"
    server.push(
        Answer(Think("I should check.", shape=shape), Call("get_weather", '{"city": "Lima"}')),
        Answer(Text("Warm.")),
    )
    r = model.conversation().chain("Lima?", tools=[get_weather])
    assert r.text() == "Warm." and r.reasoning == "I should check."
    if "anthropic" in model.full_name:  # its signed thinking goes back with the tool result
        assistant = [m for m in server.last["json"]["messages"] if m["role"] == "assistant"][0]
        assert assistant["content"][0]["type"] == "thinking"


def test_cancel_during_a_tool_run_leaves_a_history_providers_accept(model, server) -> None:  # type: ignore[no-untyped-def]
    started = threading.Event()

    def slow(seconds: int) -> str:
        """Sleeps."""
        started.set()
        time.sleep(seconds)
        return "woke"

    server.push(Answer(Call("slow", '{"seconds": 30}')))
    c = model.conversation()
    r = c.chain("Sleep", tools=[slow])
    threading.Thread(target=lambda: started.wait(10) and r.cancel(), daemon=True).start()
    r.text()
    assert r.status == "interrupted"
    calls = [p for p in r.parts if p.kind == "tool_call"]
    results = [p for p in r.parts if p.kind == "tool_result"]
    assert len(calls) == len(results) == 1 and results[0].data["is_error"] is True
    server.push(Answer(Text("ok")))
    c.prompt("next").text()  # the history sent is whole: every call has its result
    assert len(tool_results_sent(server)) == 1


def test_a_call_without_a_result_is_closed_when_the_history_is_sent(model, server) -> None:  # type: ignore[no-untyped-def]
    server.push(Answer(Call("get_weather", '{"city": "Oslo"}')), Answer(Text("fine")))
    c = model.conversation()
    c.prompt("Weather?", tools=[get_weather]).text()  # asked, never run
    c.prompt("never mind").text()
    (result,) = tool_results_sent(server)
    assert "not run" in result


def test_tool_call_records_are_plain(model, server) -> None:  # type: ignore[no-untyped-def]
    server.push(Answer(Call("get_weather", '{"city": "Oslo"}', id=None)))
    r = model.conversation().prompt("x", tools=[get_weather])
    r.text()
    (call,) = r.tool_calls
    assert isinstance(call, ToolCall) and call.id.startswith("tc_")


def test_show_search_and_export_include_calls_and_results(openai_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    from chatrepl import manage

    server = openai_env
    db = tmp_path / "c.db"
    c = chatrepl.get_model("openai:gpt-test").conversation(store=Store(db))
    server.push(Answer(Call("get_weather", '{"city": "Quito"}')), Answer(Text("Mild.")))
    c.chain("Quito?", tools=[get_weather]).text()

    def shown(*argv: str) -> str:
        import io
        import sys

        class Tty(io.StringIO):
            def isatty(self) -> bool:
                return True

        out = Tty()
        saved, sys.stdout = sys.stdout, out
        try:
            assert manage.main([*argv, "--db", str(db)]) == 0
        finally:
            sys.stdout = saved
        return out.getvalue()

    screen = shown("show", c.id)
    assert '⚙ get_weather(city="Quito") → Sunny in Quito' in screen
    assert screen.index("Sunny in Quito") < screen.index("Mild.")
    exported = json.loads(shown("export", c.id, "--format", "json"))
    kinds = [p["kind"] for p in exported["turns"][0]["parts"]]
    assert kinds == ["prompt", "tool_call", "tool_result", "text"]
    hits = Store(db).search("Sunny Quito")  # a tool result is searchable
    assert [h.conversation_id for h in hits] == [c.id]
