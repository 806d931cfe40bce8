"""The conversation tree in the real REPL, typed at as a person would: retry, rewrite an earlier
prompt, list and switch alternatives, the tree view, leave and resume at the same place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fakeserver import FakeLLMServer
from pty_repl import chatrepl, db, say

pytestmark = pytest.mark.timeout(90)


def test_retry_rewrite_switch_leave_and_resume(home: Path, openai_env: FakeLLMServer) -> None:
    server = openai_env
    with chatrepl(home) as t:
        say(t, "first question", "You said: first question (messages: 1)")
        say(t, "second question", "You said: second question (messages: 3)")
        say(t, "third question", "You said: third question (messages: 5)")

        # /retry makes a sibling of the last turn
        say(t, "/retry", "You said: third question (messages: 5)")
        t.line("/alt")
        t.wait_for(r"● 2\. third question")
        t.wait_for(r"○ 1\. third question")
        t.wait_prompt()

        # /rewrite 2: the old prompt comes back on the input line to edit; Enter branches
        t.line("/rewrite 2")
        t.wait_for("Editing prompt 2 of 3")
        t.wait_for(r"> second question")
        t.send("\x15")  # Ctrl-U: clear the line
        say(t, "a better second question", "You said: a better second question (messages: 3)")
        sent = [m["content"] for m in server.last["json"]["messages"]]
        assert sent == [
            "first question",
            "You said: first question (messages: 1)",
            "a better second question",
        ]

        # the tree shows both branches; /switch goes back to the old one, at its newest turn
        t.line("/tree")
        t.wait_for(r"5 turns?, \d off the current path")
        screen = t.text()
        assert re.search(r"● +1 first question", screen)
        assert re.search(r"○ +2 +second question", screen)
        assert re.search(r"● +5 +a better second question", screen)
        t.wait_prompt()
        number = re.search(r"○ +(\d+) +third question", screen)
        assert number, screen
        t.line(f"/switch {number.group(1)}")
        t.wait_for("On the branch of turn")
        t.wait_prompt()
        say(t, "fourth question", "You said: fourth question (messages: 7)")

        # /undo goes back one step, nothing is deleted
        say(t, "/undo", "Took back: fourth question")
        t.line("/exit")
        assert t.wait_exit() == 0

    store = db(home)
    cid = store.recent()[0].id
    assert len(store.turns(cid, all_branches=True)) == 6
    path = [x.prompt for x in store.turns(cid)]
    assert path[:2] == ["first question", "second question"] and len(path) == 3

    # leave and resume: -c continues at the head the user left
    with chatrepl(home, "-c") as t:
        t.wait_for("Resumed")
        say(t, "after resuming", "You said: after resuming (messages: 7)")
        t.line("/exit")
        assert t.wait_exit() == 0
    assert [x.prompt for x in db(home).turns(cid)] == [*path, "after resuming"]
