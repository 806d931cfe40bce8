"""Faults mid-answer, through the real ``chatrepl -p`` process and its database.

Ctrl-C typed on the terminal, ``kill -9``, the server dropping the connection and the server
stalling past ``CHATREPL_TIMEOUT``: each must leave the prompt and the text that arrived (to the
last flush) saved with the right status, an intact database, and a next start that continues
the conversation and can retry the broken turn. The reader of stdout going away (``| head``) is
a fault too: it must not print a traceback.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pyte
import pytest
from conftest import child_env, saved_rows
from fakeserver import FakeLLMServer, Reply
from pty_repl import chatrepl as repl
from pty_repl import say

from chatrepl.conversation import Conversation
from chatrepl.store import Store

WORDS = " ".join(f"w{i}" for i in range(300))  # 300 tokens; at 0.03 s each, ~9 s in all
MODEL = "openai:gpt-test"


def chatrepl(*args: str, db: Path, **kwargs) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "chatrepl", "-m", MODEL, "--db", str(db), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(**kwargs),
    )


def integrity(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def wait_for_saved_text(db: Path, at_least: int, timeout: float = 30) -> str:
    """Poll the database (as another process would) until the answer has ``at_least`` chars."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                rows = saved_rows(db)
            except sqlite3.OperationalError:
                rows = []
            if rows and len(rows[-1]["response"]) >= at_least:
                return rows[-1]["response"]
        time.sleep(0.05)
    raise AssertionError(f"the answer never reached {at_least} characters in the database")


def one_sentence(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("chatrepl: ") and lines[0].endswith("."), text
    return lines[0].removeprefix("chatrepl: ")


# --- the four faults, each leaving (database, text the user saw) ------------------------------


def ctrl_c_on_a_terminal(server: FakeLLMServer, db: Path) -> tuple[str, str]:
    """Ctrl-C typed in a pseudo-terminal: the line discipline sends SIGINT, as for a person."""
    server.push(Reply(WORDS, delay=0.03))
    child = pexpect.spawn(
        sys.executable,
        ["-m", "chatrepl", "-m", MODEL, "--db", str(db), "-p", "count slowly"],
        env=child_env(),
        dimensions=(40, 200),
        timeout=30,
    )
    child.expect(rb"w20 ")
    output = child.before + child.after
    before = wait_for_saved_text(db, 20)
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    screen = pyte.Screen(200, 40)
    pyte.ByteStream(screen).feed(output + child.before)
    lines = [line.rstrip() for line in screen.display if line.strip()]
    assert lines[-2:] == ["interrupted", "chatrepl: interrupted; the partial answer was saved."]
    shown = " ".join(lines[:-2]).replace("^C", "").strip()
    assert shown.startswith(before.strip())
    return "interrupted", shown


def kill_9(server: FakeLLMServer, db: Path) -> tuple[str, str]:
    """SIGKILL: no clean-up runs; what was flushed is all there is."""
    server.push(Reply(WORDS, delay=0.03))
    proc = chatrepl("-p", "count slowly", db=db)
    before = wait_for_saved_text(db, 40)
    proc.send_signal(signal.SIGKILL)
    shown = proc.stdout.read().decode()
    proc.wait()
    after = saved_rows(db)[-1]["response"]
    assert after.startswith(before)  # the flushed text never shrinks
    assert shown.startswith(after)  # and it is what was on the screen, up to the last flush
    return "pending", after


def server_drops(server: FakeLLMServer, db: Path) -> tuple[str, str]:
    server.push(Reply(WORDS, drop_after=25))
    proc = chatrepl("-p", "count slowly", db=db)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "dropped" in one_sentence(err)
    return "error", out.decode().strip()


def server_stalls(server: FakeLLMServer, db: Path) -> tuple[str, str]:
    server.push(Reply(WORDS, stall_after=25))
    proc = chatrepl("-p", "count slowly", db=db, CHATREPL_TIMEOUT="1")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "stopped answering for 1 s" in one_sentence(err)
    return "error", out.decode().strip()


FAULTS = [ctrl_c_on_a_terminal, kill_9, server_drops, server_stalls]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.__name__)
def test_a_fault_mid_answer_keeps_the_turn_and_the_next_start_can_retry(
    fault, openai_env, tmp_path
):
    server = openai_env
    db = tmp_path / "faults.db"
    status, shown = fault(server, db)

    (row,) = saved_rows(db)
    assert row["prompt"] == "count slowly"
    assert row["status"] == status
    assert row["response"].strip() == shown
    assert len(shown) >= 20 and WORDS.startswith(shown)
    if status == "error":
        assert row["error"], "the sentence shown is saved with the turn"
    assert integrity(db) == "ok"

    # The next start continues the conversation: the text that arrived is part of the history.
    out = subprocess.run(
        [sys.executable, "-m", "chatrepl", "-c", "-p", "and then?", "--db", str(db)],
        capture_output=True,
        env=child_env(),
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    sent = [(m["role"], m["content"]) for m in server.last["json"]["messages"]]
    assert sent == [
        ("user", "count slowly"),
        ("assistant", row["response"]),
        ("user", "and then?"),
    ]

    # And it can retry the broken turn (what /retry does): a sibling, saved complete.
    store = Store(db)
    conversation = Conversation.load(store, store.last_id())
    conversation.undo()  # take back "and then?" to reach the broken turn
    server.push(Reply("a whole answer"))
    assert conversation.retry().text() == "a whole answer"
    turns = store.turns(conversation.id, all_branches=True)
    assert [(t.prompt, t.status) for t in turns] == [
        ("count slowly", status),
        ("and then?", "complete"),
        ("count slowly", "complete"),
    ]
    assert turns[0].parent_id is None and turns[2].parent_id is None  # siblings
    assert turns[1].parent_id == turns[0].id  # the old branch stays whole
    assert [t.id for t in store.turns(conversation.id)] == [turns[2].id]
    assert integrity(db) == "ok"


def test_a_reader_that_goes_away_is_not_a_traceback(tmp_path):
    """``chatrepl -p … | head -1``: the pipe closes mid-answer; no traceback, the turn is kept."""
    db = tmp_path / "pipe.db"
    prompt = "\n".join(f"line {i}" for i in range(50_000))
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatrepl", "--db", str(db), "-m", "echo"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    proc.stdin.write(prompt.encode())
    proc.stdin.close()
    proc.stdout.read(100)
    proc.stdout.close()  # like `head` exiting
    err = proc.stderr.read().decode()
    proc.wait(timeout=30)
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception" not in err
    assert proc.returncode != 0
    (row,) = saved_rows(db)
    assert row["prompt"] == prompt
    assert row["status"] == "interrupted"
    assert prompt.startswith(row["response"]) and row["response"]
    assert integrity(db) == "ok"


# --- the same faults in the REPL, and /retry after a restart ----------------------------------


@pytest.mark.parametrize("fault", ["ctrl-c", "kill -9", "stall"])
def test_a_fault_in_the_repl_then_retry_after_a_restart(fault, home, openai_env):
    server, db = openai_env, home / "chatrepl.db"
    if fault == "stall":
        server.push(Reply(WORDS, stall_after=25))
    else:
        server.push(Reply(WORDS, delay=0.03))
    with repl(home, **({"CHATREPL_TIMEOUT": "1"} if fault == "stall" else {})) as t:
        t.line("count slowly")
        t.wait_for(r"w20\b")
        if fault == "ctrl-c":
            t.key("ctrl-c")
            t.wait_for("interrupted: what arrived is saved")
        elif fault == "kill -9":
            wait_for_saved_text(db, 40)
            os.kill(t.child.pid, signal.SIGKILL)
            t.wait_exit()
        else:
            t.wait_for("stopped answering for 1 s")
        if t.child.isalive():
            t.wait_prompt()
            shown = t.scrollback()
            t.line("/exit")
            assert t.wait_exit() == 0
        else:
            shown = t.scrollback()

    (row,) = saved_rows(db)
    status = {"ctrl-c": "interrupted", "kill -9": "pending", "stall": "error"}[fault]
    assert (row["prompt"], row["status"]) == ("count slowly", status)
    assert WORDS.startswith(row["response"]) and len(row["response"]) >= 40
    assert row["response"] in shown.replace("\n", " ")  # what was saved had been shown
    assert integrity(db) == "ok"

    server.push(Reply("a whole answer"))
    with repl(home, "-c") as t:
        assert "Resumed: count slowly" in t.text()
        say(t, "/retry", "a whole answer")
        t.line("/exit")
        assert t.wait_exit() == 0
    assert server.last["json"]["messages"] == [{"role": "user", "content": "count slowly"}]
    turns = Store(db).turns(Store(db).last_id(), all_branches=True)
    assert [(t.prompt, t.status, t.parent_id) for t in turns] == [
        ("count slowly", status, None),
        ("count slowly", "complete", None),
    ]
    assert [t.id for t in Store(db).turns(Store(db).last_id())] == [turns[1].id]
    assert integrity(db) == "ok"
