"""Tools from the command line and in the real REPL: approve, deny, edit, always; the one-shot
rules with no terminal to ask."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env
from fakeserver import Answer, Call, FakeLLMServer, Text
from pty_repl import chatrepl, db

pytestmark = pytest.mark.timeout(90)


def results_sent(server: FakeLLMServer) -> list[str]:
    return [m["content"] for m in server.last["json"]["messages"] if m["role"] == "tool"]


def write_file(home: Path, name: str, text: str) -> Path:
    path = home.parent / name
    path.write_text(text)
    return path


def test_the_repl_asks_before_each_call_yes_no_edit_always(
    home: Path, openai_env: FakeLLMServer
) -> None:
    server = openai_env
    notes = write_file(home, "notes.txt", "the secret word is capybara")
    other = write_file(home, "other.txt", "nothing to see")
    args = json.dumps({"path": str(notes)})
    with chatrepl(home, "-T", "read_file") as t:
        # yes
        server.push(Answer(Call("read_file", args)), Answer(Text("The word is capybara.")))
        t.line("What is the word?")
        t.wait_for("Tool call: read_file")
        t.wait_for(r"\[y\]es \[n\]o \[a\]lways")
        t.send("y")
        t.wait_for("The word is capybara.")
        t.wait_prompt()
        assert re.search(r"\[1\] ⚙ read_file\(path=.*\) → the secret word", t.text())
        assert "capybara" in results_sent(server)[0]

        # no: the model is told, the turn goes on
        server.push(Answer(Call("read_file", args)), Answer(Text("I was not allowed.")))
        t.line("Again?")
        t.wait_for(r"\[e\]dit")
        t.send("n")
        t.wait_for("I was not allowed.")
        t.wait_prompt()
        assert "denied" in results_sent(server)[-1].lower()

        # edit the arguments first: another file is read
        server.push(Answer(Call("read_file", args)), Answer(Text("Edited.")))
        t.line("Once more")
        t.wait_for(r"\[e\]dit")
        t.send("e")
        t.wait_for("Arguments")
        t.send("\x15")  # Ctrl-U clears the line; type new arguments
        t.line(json.dumps({"path": str(other)}))
        t.wait_for("Edited.")
        t.wait_prompt()
        assert "nothing to see" in results_sent(server)[-1]

        # always: this tool runs without asking for the rest of the session
        server.push(Answer(Call("read_file", args)), Answer(Text("First.")))
        t.line("Always")
        t.wait_for(r"\[e\]dit")
        t.send("a")
        t.wait_for("First.")
        t.wait_prompt()
        server.push(Answer(Call("read_file", args)), Answer(Text("No question asked.")))
        t.line("And now")
        t.wait_for("No question asked.")
        t.wait_prompt()
        assert "Run it?" not in t.text().split("And now")[-1]  # the last call was not asked

        t.line("/tools result 1")
        t.wait_for("Result of read_file:")
        t.line("/tools")
        t.wait_for(r"on\s+read_file")
        t.line("/exit")
        assert t.wait_exit() == 0

    turns = db(home).turns(db(home).recent()[0].id)
    assert len(turns) == 5
    kinds = [p.kind for p in turns[0].parts]
    assert kinds == ["prompt", "tool_call", "tool_result", "text"]


def oneshot(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatrepl", "-m", "openai:test", *args],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=str(home.parent),
    )


def test_one_shot_with_no_terminal_denies_what_is_not_approved(
    home: Path, openai_env: FakeLLMServer
) -> None:
    server = openai_env
    server.push(Answer(Call("now", "{}")), Answer(Text("I could not check the time.")))
    out = oneshot(home, "-T", "now", "-p", "What time is it?")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "I could not check the time.\n"  # stdout holds the answer only
    assert "--auto-approve" in out.stderr and "auto_approve" in out.stderr
    assert "denied" in results_sent(server)[0]


def test_one_shot_with_auto_approve_runs_the_call(home: Path, openai_env: FakeLLMServer) -> None:
    server = openai_env
    server.push(Answer(Call("now", "{}")), Answer(Text("It is now.")))
    out = oneshot(home, "-T", "now", "--auto-approve", "-p", "What time is it?")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "It is now.\n"
    assert "⚙ now() →" in out.stderr  # tool activity goes to stderr, one line
    assert "UTC" in results_sent(server)[0]


def test_config_pre_approves_by_pattern(home: Path, openai_env: FakeLLMServer) -> None:
    server = openai_env
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text('[tools]\nenabled = ["now"]\nauto_approve = ["n*"]\n')
    server.push(Answer(Call("now", "{}")), Answer(Text("Approved by config.")))
    out = oneshot(home, "-p", "time?")
    assert out.returncode == 0, out.stderr
    assert "UTC" in results_sent(server)[0]


def test_an_unknown_tool_name_is_one_sentence(home: Path, openai_env: FakeLLMServer) -> None:
    out = oneshot(home, "-T", "nope", "-p", "hi")
    assert "Traceback" not in out.stderr
    assert "nope" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_ctrl_c_at_the_question_says_the_turn_stopped_not_that_nothing_began(
    home: Path, openai_env: FakeLLMServer
) -> None:
    """The model's call is on the screen (and saved) when Ctrl-C answers its question: the
    answer had begun, so the note is the one of any interrupted answer."""
    server = openai_env
    args = json.dumps({"path": str(write_file(home, "n.txt", "text"))})
    with chatrepl(home, "-T", "read_file") as t:
        server.push(Answer(Call("read_file", args)), Answer(Text("Never sent.")))
        t.line("Read it")
        t.wait_for(r"\[e\]dit")
        t.send("\x03")
        t.wait_for("interrupted: what arrived is saved")
        t.wait_prompt()
        assert "before the answer began" not in t.text()
        asked = [r for r in server.requests if "messages" in (r.get("json") or {})]
        assert len(asked) == 1  # nothing more was sent


def test_keys_typed_while_the_answer_streams_never_answer_the_question(
    home: Path, openai_env: FakeLLMServer
) -> None:
    """A "y" typed before the question was on the screen is not a yes: the question waits for
    a key typed after it; what was typed blind comes back at the next prompt, not lost."""
    server = openai_env
    args = json.dumps({"path": str(write_file(home, "n.txt", "text"))})
    with chatrepl(home, "-T", "read_file") as t:
        server.push(
            Answer(Text("Let me look at that file first."), Call("read_file", args), delay=0.4),
            Answer(Text("Not read, then.")),
        )
        t.line("Read it")
        t.wait_for("Let me")
        t.send("yes please")
        t.wait_for(r"\[e\]dit")
        t.send("n")  # had "yes please" been read as a yes, the call would have run already
        t.wait_for("Not read, then.")
        t.wait_for(r"^> yes please$")  # back at the prompt, to edit or send
        assert "denied" in results_sent(server)[-1].lower()
        server.push(Answer(Text("Sent as typed.")))
        t.send("\r")
        t.wait_for("Sent as typed.")
        t.wait_prompt()
        assert server.last["json"]["messages"][-1] == {"role": "user", "content": "yes please"}
