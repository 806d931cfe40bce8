"""Approval: the policy (patterns, always, approve-all, no terminal) and the REPL's question,
typed through a pipe."""

from __future__ import annotations

import io
from typing import Any

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatrepl.repl.approve import Approver, describe_call, parse_arguments
from chatrepl.tools import Answer, ApprovalPolicy, Tool
from chatrepl.tools.approval import DENIED_BY_USER, NO_TERMINAL

pytestmark = pytest.mark.timeout(30)


def tool(name: str) -> Tool:
    return Tool(name, "A tool.", {"type": "object", "properties": {}}, lambda a, c: "ok")


def test_patterns_approve_by_display_name() -> None:
    policy = ApprovalPolicy(auto_approve=["now", "time.*"], ask=None, stderr=io.StringIO())
    assert policy(tool("now"), {}).approved
    assert policy(tool("time.get_current_time"), {}).approved
    assert not policy(tool("timer"), {}).approved
    assert not policy(tool("read_file"), {}).approved


def test_no_terminal_denies_tells_the_model_and_hints_once_on_stderr() -> None:
    err = io.StringIO()
    policy = ApprovalPolicy(ask=None, stderr=err)
    decision = policy(tool("read_file"), {"path": "/etc/hosts"})
    policy(tool("read_file"), {"path": "/etc/passwd"})
    assert not decision.approved and decision.reason == NO_TERMINAL
    lines = err.getvalue().splitlines()
    assert len(lines) == 1
    assert "--auto-approve" in lines[0] and 'auto_approve = ["read_file"]' in lines[0]


def test_approve_all_runs_everything() -> None:
    assert ApprovalPolicy(approve_all=True, ask=None)(tool("anything"), {}).approved


def test_always_is_remembered_for_the_session() -> None:
    asked: list[str] = []

    def ask(t: Tool, args: dict[str, Any]) -> Answer:
        asked.append(t.name)
        return Answer("always")

    policy = ApprovalPolicy(ask=ask)
    assert policy(tool("now"), {}).approved and policy(tool("now"), {}).approved
    assert asked == ["now"]


def test_no_is_a_denial_in_words_for_the_model() -> None:
    decision = ApprovalPolicy(ask=lambda t, a: Answer("no"))(tool("now"), {})
    assert not decision.approved and decision.reason == DENIED_BY_USER


# --- the question, typed ---------------------------------------------------------------------


def ask(keys: str, arguments: dict[str, Any] | None = None) -> tuple[Answer, str]:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        answer = Approver(console, input=pipe, output=DummyOutput())(
            tool("files.read"), arguments or {"path": "notes.txt"}
        )
    return answer, console.file.getvalue()


@pytest.mark.parametrize(
    "key, choice", [("y", "yes"), ("n", "no"), ("a", "always"), ("Y", "yes"), ("\r", "no")]
)
def test_one_key_answers(key: str, choice: str) -> None:
    answer, shown = ask(key)
    assert answer.choice == choice
    assert "Tool call: files.read" in shown and '"path": "notes.txt"' in shown


def test_other_keys_are_ignored_until_an_answer() -> None:
    assert ask("xqzy")[0].choice == "yes"


def test_ctrl_c_stops_the_turn_not_a_denial() -> None:
    with pytest.raises(KeyboardInterrupt):  # the turn's Ctrl-C path saves it as interrupted
        ask("\x03")


def test_ctrl_d_is_no() -> None:
    assert ask("\x04")[0].choice == "no"


def test_edit_replaces_the_arguments() -> None:
    # e, then clear the prefilled line (Ctrl-U removes what is before the cursor) and type anew
    answer, _ = ask('e\x15{"path": "other.txt"}\r')
    assert answer == Answer("edit", {"path": "other.txt"})


def test_edit_refuses_what_is_not_a_json_object_until_fixed() -> None:
    # an array is refused (the line stays open), then fixed by typing over it
    answer, _ = ask('e\x15[1, 2]\r\x15{"n": 1}\r')
    assert answer == Answer("edit", {"n": 1})


def test_ctrl_c_in_the_editor_goes_back_to_the_question() -> None:
    assert ask("e\x03n")[0].choice == "no"


def test_arguments_from_a_model_cannot_drive_the_terminal() -> None:
    shown = describe_call(tool("x"), {"text": "\x1b]52;c;ZXZpbA==\x07\x1b[2J"})
    assert "\x1b" not in shown and "\x07" not in shown


def test_parse_arguments_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        parse_arguments("[1]")
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_arguments("{nope")
