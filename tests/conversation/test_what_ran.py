"""What ran is what is saved and sent (issue 23, item 1): tool arguments the user edited,
text piped in with -p, Ctrl-C at the approval question, and /continue joining the cut-off
answer. Over the fake server's real socket; the REPL in a pty."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env, run_chatrepl
from fakeserver import Answer, Call, FakeLLMServer, Text
from pty_repl import chatrepl, db

from chatrepl.conversation import CONTINUE_PROMPT, Conversation
from chatrepl.export import to_markdown
from chatrepl.providers.registry import get_backend
from chatrepl.store import Store
from chatrepl.tools import Decision

pytestmark = pytest.mark.timeout(90)


def tool_messages(body: dict) -> list[dict]:
    return [m for m in body["messages"] if m["role"] == "tool"]


def sent_calls(body: dict) -> list[dict]:
    return [
        c for m in body["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or []
    ]


# --- edited tool arguments ------------------------------------------------------------------


def test_edited_arguments_are_saved_sent_and_exported_as_they_ran(
    home: Path, openai_env: FakeLLMServer, tmp_path: Path
) -> None:
    server = openai_env
    asked = tmp_path / "asked.txt"
    ran = tmp_path / "ran.txt"
    asked.write_text("the model's file")
    ran.write_text("the user's file")

    def read(path: str) -> str:
        """Read a file."""
        return Path(path).read_text()

    def approve(tool, arguments):  # the user edits the path before the call runs
        return Decision(True, arguments={"path": str(ran)})

    store = Store(tmp_path / "e.db")
    c = Conversation(get_backend("openai:test"), store=store)
    server.push(
        Answer(Call("read", json.dumps({"path": str(asked)}))),
        Answer(Text("It says: the user's file.")),
        Answer(Text("Next.")),
    )
    r = c.chain("read it", tools=[read], approve=approve)
    assert r.text() == "It says: the user's file."

    # the request after the call: the call as it ran, and a result that says it was changed
    body = server.requests[1]["json"]
    assert [json.loads(x["function"]["arguments"]) for x in sent_calls(body)] == [
        {"path": str(ran)}
    ]
    result = tool_messages(body)[0]["content"]
    first, _, rest = result.partition("\n")
    assert "changed the arguments" in first and str(ran) in first
    assert rest == "the user's file"

    # saved: the arguments that ran, the model's kept beside them
    saved = store.turns(c.id)[0]
    call = next(p for p in saved.parts if p.kind == "tool_call")
    assert call.data["arguments"] == {"path": str(ran)}
    assert call.data["original_arguments"] == {"path": str(asked)}
    assert "edited_arguments" not in next(p for p in saved.parts if p.kind == "tool_result").data
    assert c.turns[0].tool_calls[0].arguments == {"path": str(ran)}

    # sent again with the next turn, and exported, as it ran
    c.prompt("and then?").text()
    later = server.last["json"]
    assert [json.loads(x["function"]["arguments"]) for x in sent_calls(later)] == [
        {"path": str(ran)}
    ]
    exported = to_markdown(store.summary(c.id), store.turns(c.id))
    assert str(ran) in exported


def test_an_edit_at_the_question_shows_and_saves_what_ran(
    home: Path, openai_env: FakeLLMServer
) -> None:
    server = openai_env
    asked = home.parent / "hostname.txt"
    ran = home.parent / "other.txt"
    asked.write_text("the model asked for this")
    ran.write_text("the user chose this")
    server.push(
        Answer(Call("read_file", json.dumps({"path": str(asked)}))), Answer(Text("Done reading."))
    )
    with chatrepl(home, "-T", "read_file") as t:
        t.line("Read it")
        t.wait_for(r"\[e\]dit")
        t.send("e")
        t.wait_for("Arguments")
        t.send("\x15")
        t.line(json.dumps({"path": str(ran)}))
        t.wait_for("Done reading.")
        t.wait_prompt()
        assert re.search(r"\[1\] ⚙ read_file\(path=.*\) → \(edited\) the user chose this", t.text())
        t.line("/exit")
        assert t.wait_exit() == 0
    store = db(home)
    cid = store.recent()[0].id
    shown = run_chatrepl("show", cid, "--json", env=child_env())
    turn = json.loads(shown.stdout)["turns"][0]
    call = next(p for p in turn["parts"] if p["kind"] == "tool_call")
    assert call["data"]["arguments"] == {"path": str(ran)}
    assert call["data"]["original_arguments"] == {"path": str(asked)}
    assert "changed the arguments" in tool_messages(server.last["json"])[0]["content"]


# --- piped stdin with -p ---------------------------------------------------------------------


def test_piped_text_and_the_prompt_are_both_sent(home: Path, openai_env: FakeLLMServer) -> None:
    server = openai_env
    out = run_chatrepl(
        "-m", "openai:test", "-p", "summarise the above", input="line one\nline two\n"
    )
    assert out.returncode == 0, out.stderr
    sent = server.last["json"]["messages"][-1]["content"]
    assert sent == "line one\nline two\n\nsummarise the above"
    saved = db(home).turns(db(home).recent()[0].id)[0]
    assert saved.prompt == sent


def test_with_a_dash_attachment_stdin_is_the_file_not_text(
    home: Path, openai_env: FakeLLMServer
) -> None:
    server = openai_env
    out = run_chatrepl("-m", "openai:test", "-a", "-", "-p", "what is this?", input="plain words")
    assert out.returncode == 0, out.stderr
    last = server.last["json"]["messages"][-1]
    content = last["content"]
    text = content if isinstance(content, str) else json.dumps(content)
    assert "what is this?" in text and "plain words" in text  # the file, attached
    prompt = db(home).turns(db(home).recent()[0].id)[0].prompt
    assert prompt == "what is this?"  # not glued to the prompt


def test_no_stdin_leaves_the_prompt_alone(home: Path, openai_env: FakeLLMServer) -> None:
    server = openai_env
    out = subprocess.run(
        [sys.executable, "-m", "chatrepl", "-m", "openai:test", "-p", "just this"],
        capture_output=True,
        text=True,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert server.last["json"]["messages"][-1]["content"] == "just this"


# --- Ctrl-C at the approval question ------------------------------------------------------------


def test_ctrl_c_at_the_question_stops_the_turn(home: Path, openai_env: FakeLLMServer) -> None:
    server = openai_env
    args = json.dumps({"path": "/etc/hostname"})
    server.push(Answer(Text("Let me look."), Call("read_file", args)), Answer(Text("SENT ON")))
    with chatrepl(home, "-T", "read_file") as t:
        t.line("Read the hostname")
        t.wait_for(r"\[e\]dit")
        t.send("\x03")
        t.wait_for("interrupted")
        t.wait_prompt()
        assert "SENT ON" not in t.text()
        assert len([r for r in server.requests if r.get("json")]) == 1  # nothing more was sent
        t.line("and now?")  # the next turn's history is one the provider accepts
        t.wait_for("SENT ON")
        t.wait_prompt()
        t.line("/exit")
        assert t.wait_exit() == 0
    history = server.last["json"]["messages"]
    calls = [
        c["id"] for m in history if m["role"] == "assistant" for c in m.get("tool_calls") or []
    ]
    answered = [m["tool_call_id"] for m in history if m["role"] == "tool"]
    assert calls == answered == ["call_1"]
    turn = db(home).turns(db(home).recent()[0].id)[0]
    assert turn.status == "interrupted"
    kinds = [p.kind for p in turn.parts]
    assert kinds == ["prompt", "text", "tool_call", "tool_result"]
    closed = turn.parts[-1]
    assert closed.data["is_error"] is True and closed.data["call_id"] == "call_1"


# --- /continue --------------------------------------------------------------------------------


def test_continue_joins_the_cut_off_answer_in_the_same_turn(
    home: Path, openai_env: FakeLLMServer
) -> None:
    server = openai_env
    server.push(Answer(Text("The first half"), finish="length"), Answer(Text(" and the rest.")))
    with chatrepl(home) as t:
        t.line("write a lot")
        t.wait_for("cut off at the token limit")
        t.wait_prompt()
        t.line("/continue")
        t.wait_for("and the rest.")
        t.wait_prompt()
        t.line("/exit")
        assert t.wait_exit() == 0
    sent = server.last["json"]["messages"]
    assert sent[-2] == {"role": "assistant", "content": "The first half"}
    assert sent[-1] == {"role": "user", "content": CONTINUE_PROMPT}  # not saved as a turn
    turns = db(home).turns(db(home).recent()[0].id)
    assert len(turns) == 1
    assert turns[0].prompt == "write a lot"
    assert turns[0].response == "The first half and the rest."
    assert turns[0].status == "complete"
    assert [c.finish_reason for c in turns[0].calls] == ["length", "stop"]


def test_continue_on_anthropic_sends_the_cut_text_as_a_prefill(
    home: Path, openai_env: FakeLLMServer, tmp_path: Path
) -> None:
    server = openai_env
    store = Store(tmp_path / "a.db")
    c = Conversation(get_backend("anthropic:claude-test"), store=store)
    server.push(Answer(Text("Once upon a "), finish="max_tokens"), Answer(Text(" time.")))
    first = c.prompt("tell a story")
    assert first.text() == "Once upon a "  # the model writes the space again after a prefill
    assert first.status == "cut_off"
    again = c.continue_answer()
    assert again is first
    assert again.text() == "Once upon a time."
    body = server.last["json"]
    assert body["messages"][-1] == {"role": "assistant", "content": "Once upon a"}
    assert body["messages"][-2]["role"] == "user"
    saved = store.turns(c.id)
    assert len(saved) == 1 and saved[0].response == "Once upon a time."
    assert saved[0].status == "complete"
    # a later turn sends the joined answer as one
    c.prompt("more").text()
    assistant = [m for m in server.last["json"]["messages"] if m["role"] == "assistant"]
    assert "".join(
        b["text"] if isinstance(b, dict) else "" for b in _blocks(assistant[0]["content"])
    ) == ("Once upon a time.")


def _blocks(content):
    return [{"type": "text", "text": content}] if isinstance(content, str) else content
