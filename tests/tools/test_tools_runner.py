"""The runner: every way a call can go becomes a tool_result part the model reads."""

from __future__ import annotations

import threading
from typing import Any

from chatrepl.records import Part, ToolCall
from chatrepl.tools import Answer, ApprovalPolicy, Decision, Runner, Tool


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def boom(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"it broke: {reason}")


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(id=f"call_{name}", name=name, arguments=arguments)


def test_a_call_runs_and_its_result_is_a_part() -> None:
    part = Runner([add]).run(call("add", a=2, b=3))
    assert part == Part(
        kind="tool_result", text="5", data={"call_id": "call_add", "name": "add", "is_error": False}
    )


def test_an_exception_is_the_models_result() -> None:
    part = Runner([boom]).run(call("boom", reason="gears"))
    assert part.data["is_error"] is True
    assert part.text == "Error: ValueError: it broke: gears"


def test_an_unknown_tool_is_named_in_the_error() -> None:
    part = Runner([add]).run(call("subtract", a=1, b=2))
    assert part.data["is_error"] is True
    assert "'subtract'" in part.text and "add" in part.text


def test_arguments_that_were_not_json_are_an_error() -> None:
    part = Runner([add]).run(ToolCall(id="c1", name="add", arguments={}, raw='{"a": 1,'))
    assert part.data["is_error"] is True and "not valid JSON" in part.text


def test_a_slow_tool_hits_the_time_limit() -> None:
    stopped = threading.Event()

    def slow(cancel: threading.Event) -> str:
        cancel.wait(30)
        stopped.set()
        return "late"

    tool = Tool("slow", "Slow.", {"type": "object", "properties": {}}, lambda args, c: slow(c))
    part = Runner([tool], timeout=0.3).run(call("slow"))
    assert part.data["is_error"] is True
    assert "longer than 0.3 s" in part.text
    assert stopped.wait(5), "the tool was told to stop"


def test_cancel_interrupts_a_running_tool() -> None:
    cancel = threading.Event()

    def waits(args: dict[str, Any], stop: threading.Event) -> str:
        cancel.set()  # the user presses Ctrl-C while it runs
        stop.wait(30)
        return "never seen"

    tool = Tool("waits", "Waits.", {"type": "object", "properties": {}}, waits)
    part = Runner([tool]).run(call("waits"), cancel)
    assert part.data["is_error"] is True and part.text.startswith("Interrupted")


def test_after_a_cancel_every_remaining_call_gets_a_result() -> None:
    cancel = threading.Event()
    cancel.set()
    parts = Runner([add]).run_all([call("add", a=1, b=1), call("nope")], cancel)
    assert [p.data["call_id"] for p in parts] == ["call_add", "call_nope"]
    assert all(p.data["is_error"] and p.text.startswith("Interrupted") for p in parts)


def test_a_denied_call_goes_back_as_a_denial() -> None:
    ran = []

    def record(x: int) -> int:
        """Record."""
        ran.append(x)
        return x

    runner = Runner([record], approve=lambda tool, args: Decision(False, reason="No, thanks."))
    part = runner.run(call("record", x=1))
    assert part.text == "No, thanks." and part.data["is_error"] is True
    assert ran == []


def test_edited_arguments_are_the_ones_used() -> None:
    policy = ApprovalPolicy(ask=lambda tool, args: Answer("edit", {"a": 10, "b": 20}))
    part = Runner([add], approve=policy).run(call("add", a=1, b=2))
    said, _, result = part.text.partition("\n")
    assert result == "30"
    assert said.startswith("The user changed the arguments")  # the model is told
    assert part.data["edited_arguments"] == {"a": 10, "b": 20}


def test_the_same_call_repeated_is_refused_until_the_next_turn() -> None:
    count = []

    def tick(n: int) -> int:
        """Tick."""
        count.append(n)
        return len(count)

    runner = Runner([tick], max_repeats=2)
    texts = [runner.run(call("tick", n=1)).text for _ in range(3)]
    assert texts[:2] == ["1", "2"]
    assert texts[2].startswith("Refused") and len(count) == 2
    assert runner.run(call("tick", n=2)).text == "3"  # other arguments are another call
    runner.start_turn()
    assert runner.run(call("tick", n=1)).text == "4"


def test_observers_see_each_call_and_result() -> None:
    seen: list[Any] = []
    runner = Runner(
        [add],
        before_call=lambda tool, args: seen.append(("before", tool.name, args)),
        after_call=lambda tool, args, part: seen.append(("after", part.text)),
    )
    runner.run(call("add", a=1, b=1))
    assert seen == [("before", "add", {"a": 1, "b": 1}), ("after", "2")]


def test_tools_are_found_by_wire_or_display_name() -> None:
    tool = Tool("time.now", "Now.", {"type": "object", "properties": {}}, lambda a, c: "t")
    runner = Runner([tool])
    assert [s.name for s in runner.specs()] == ["time__now"]
    assert runner.run(call("time__now")).text == "t"
    assert runner.run(call("time.now")).text == "t"


def test_a_huge_result_is_cut() -> None:
    def huge() -> str:
        """Huge."""
        return "x" * 300_000

    part = Runner([huge]).run(call("huge"))
    assert len(part.text) < 100_100 and "[cut" in part.text and not part.data["is_error"]


def test_ctrl_c_raised_in_the_main_thread_still_gives_a_result() -> None:
    import _thread
    import signal

    def waits(args: dict[str, Any], stop: threading.Event) -> str:
        threading.Timer(0.2, _thread.interrupt_main).start()
        stop.wait(30)
        return "never seen"

    tool = Tool("waits", "Waits.", {"type": "object", "properties": {}}, waits)
    cancel = threading.Event()
    # Ctrl-C as in a terminal: a run started in a script's background ignores SIGINT, and
    # interrupt_main then does nothing
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        parts = Runner([tool]).run_all([call("waits"), call("waits")], cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert [p.text for p in parts] == [parts[0].text] * 2 and parts[0].text.startswith(
        "Interrupted"
    )
    assert cancel.is_set()


def test_a_toolbox_runner_follows_enable_and_disable() -> None:
    from chatrepl.tools.toolbox import Toolbox

    box = Toolbox({"tools": {"auto_approve": ["now"], "timeout": 7}})
    runner = box.runner(ask=None)
    assert runner.timeout == 7 and runner.specs() == []
    box.enable("now")
    assert [s.name for s in runner.specs()] == ["now"]
    assert not runner.run(call("now")).data["is_error"]  # pre-approved by the pattern
    box.enable("read_file")
    denied = runner.run(call("read_file", path="/etc/hostname"))
    assert denied.data["is_error"] and "denied" in denied.text  # no terminal to ask
    box.disable("now")
    assert [s.name for s in runner.specs()] == ["read_file"]
