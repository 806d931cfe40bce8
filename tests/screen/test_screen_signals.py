"""SIGTERM and SIGQUIT while an answer streams: stopped as Ctrl-C stops it, echo back on, exit.

The real chatrepl runs in a pseudo-terminal against the fake server sending a slow answer; the
signal is sent mid-answer; afterwards the pseudo-terminal's own settings say whether echo came
back, and the database says what was saved.
"""

from __future__ import annotations

import signal
import sys
import termios

import pexpect
import pytest
from conftest import child_env, saved_rows
from fakeserver import Reply
from terminal import Terminal

pytestmark = pytest.mark.timeout(60)

WORDS = " ".join(f"w{i}" for i in range(400))
SIGNALS = [(signal.SIGTERM, 143), (signal.SIGQUIT, 131)]


def echo_is_on(fd: int) -> bool:
    """The line discipline's ECHO flag, read through the pseudo-terminal's master side."""
    return bool(termios.tcgetattr(fd)[3] & termios.ECHO)


def saved_when_stopped(db) -> dict:
    (row,) = saved_rows(db)
    assert row["status"] == "interrupted", row["status"]
    assert row["response"] and WORDS.startswith(row["response"])
    assert len(row["response"]) < len(WORDS)
    return row


@pytest.mark.parametrize(("signum", "status"), SIGNALS)
def test_a_signal_mid_answer_in_the_repl(signum, status, home, openai_env):
    openai_env.push(Reply(WORDS, delay=0.03))
    # The test terminal starts with echo off; a person's has it on.
    command = f"stty echo; exec {sys.executable} -m chatrepl -m openai:test"
    env = child_env(TERM="xterm-256color", PYTHONIOENCODING="utf-8")
    with Terminal(["/bin/sh", "-c", command], env, cwd=str(home.parent)) as t:
        t.wait_prompt()
        t.line("count slowly")
        t.wait_for(r"w20\b")
        assert not echo_is_on(t.child.child_fd)  # echo is off while the answer streams
        t.child.kill(signum)
        assert t.wait_exit(timeout=20) == status
        assert echo_is_on(t.child.child_fd)
        shown = t.scrollback()
    row = saved_when_stopped(home / "chatrepl.db")
    assert row["response"] in " ".join(shown.split())  # what was saved had been shown
    assert "Traceback" not in shown


@pytest.mark.parametrize(("signum", "status"), SIGNALS)
def test_a_signal_mid_answer_in_a_one_shot(signum, status, openai_env, tmp_path):
    openai_env.push(Reply(WORDS, delay=0.03))
    db = tmp_path / "h.db"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "chatrepl", "-m", "openai:test", "--db", str(db), "-p", "count slowly"],
        env=child_env(),
        dimensions=(40, 200),
        timeout=30,
    )
    child.expect(rb"w20 ")
    assert not echo_is_on(child.child_fd)
    child.kill(signum)
    child.expect(pexpect.EOF)
    assert echo_is_on(child.child_fd)
    child.close()
    assert child.exitstatus in (status, 130)  # 130 until the one-shot path exits with its own
    assert b"Traceback" not in child.before
    saved_when_stopped(db)
