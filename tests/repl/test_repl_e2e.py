"""The real ``chatrepl`` in a pseudo-terminal against the fake server, typed at as a person would.

The screen is read through pyte (tests/terminal.py), which also answers prompt-toolkit's
cursor-position requests so the bottom toolbar shows as it does in a real terminal.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fakeserver import FakeLLMServer, Reply
from pty_repl import chatrepl, db, say

pytestmark = pytest.mark.timeout(60)

SLOW = " ".join(f"w{i}" for i in range(40))


def test_a_session_chat_persona_title_interrupt_retry_undo_exit(
    home: Path, openai_env: FakeLLMServer
) -> None:
    server = openai_env
    with chatrepl(home) as t:
        assert re.search(r"openai:test │ \w{10} │ new", t.text())  # the toolbar

        # Two turns: the second carries the first as history.
        say(t, "Three names for a goat", "You said: Three names for a goat (messages: 1)")
        say(t, "Two more", "You said: Two more (messages: 3)")
        sent = server.requests[-1]["json"]["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "user"]
        assert sent[1]["content"] == "You said: Three names for a goat (messages: 1)"
        assert "Three names for a goat │" in t.text()  # the provisional title

        # A persona applies from the next turn on.
        say(t, "/system You are a pirate.", "Persona set from the next turn on")
        say(t, "Ahoy?", "You said: Ahoy? (messages: 6)")
        assert server.requests[-1]["json"]["messages"][0] == {
            "role": "system",
            "content": "You are a pirate.",
        }

        # The model proposes a title.
        server.push(Reply(text="Goat Names Galore"))
        say(t, "/title", "Title: Goat Names Galore")
        assert "│ Goat Names Galore │" in t.text()

        # Ctrl-C while a slow answer streams: back at the prompt, partial text kept.
        server.push(Reply(text=SLOW, delay=0.15))
        t.line("Count slowly")
        t.wait_for(r"w3\b")
        t.key("ctrl-c")
        t.wait_for("interrupted: what arrived is saved")
        t.wait_prompt()
        store = db(home)
        (cid,) = [s.id for s in store.recent()]
        last = store.turns(cid)[-1]
        assert last.status == "interrupted" and last.prompt == "Count slowly"
        assert last.response.startswith("w0 w1 w2 w3") and len(last.response) < len(SLOW)
        screen = t.scrollback()
        assert last.response in screen  # every word saved was shown …
        shown_words = re.findall(r"\bw\d+\b", screen)
        assert shown_words == last.response.split()  # … and nothing more

        # /retry asks again and replaces the interrupted turn.
        server.push(Reply(text="one two three"))
        say(t, "/retry", "one two three")
        turns = store.turns(cid)
        assert (turns[-1].prompt, turns[-1].response, turns[-1].status) == (
            "Count slowly",
            "one two three",
            "complete",
        )

        # /undo takes it back: the next turn goes without it.
        say(t, "/undo", "Took back: Count slowly")
        say(t, "Still there?", "You said: Still there? (messages: 8)")

        # The database holds exactly what the screen showed.
        screen = t.scrollback()
        for turn in store.turns(cid):
            assert f"> {turn.prompt}" in screen
            assert turn.response in screen

        t.line("/exit")
        assert t.wait_exit() == 0
        assert "chatrepl -c continues it" in t.text()

    summary = db(home).summary(cid)
    assert (summary.title, summary.system, summary.turns) == (
        "Goat Names Galore",
        "You are a pirate.",
        4,
    )


def test_new_list_resume_and_continue(home: Path, openai_env: FakeLLMServer) -> None:
    with chatrepl(home) as t:
        say(t, "About goats", "You said: About goats")
        say(t, "/new", "New conversation")
        say(t, "About sheep", "You said: About sheep")
        say(t, "/list", "/resume N continues one")
        screen = t.text()
        assert re.search(r"1 +\w{8,} +About sheep \(current\)", screen)
        assert re.search(r"2 +\w{8,} +About goats", screen)

        store = db(home)
        sheep, goats = (s.id for s in store.recent())

        say(t, "/resume 2", "Resumed: About goats")
        assert "> About goats" in t.text()
        assert f"│ {goats[:10]} │ About goats" in t.text()
        say(t, "Go on", "You said: Go on (messages: 3)")

        say(t, f"/resume {sheep[:12].lower()}", "Resumed: About sheep")
        say(t, "And?", "You said: And? (messages: 3)")
        t.key("ctrl-d")
        assert t.wait_exit() == 0

    # Coming back later: -c opens the most recent one and shows where it was.
    with chatrepl(home, "-c") as t:
        assert "Resumed: About sheep" in t.text() and "> And?" in t.text()
        say(t, "Once more", "You said: Once more (messages: 5)")
        t.key("ctrl-d")
        t.wait_exit()
    with chatrepl(home, "-r", goats[:12]) as t:
        assert "Resumed: About goats" in t.text() and "> Go on" in t.text()
        t.key("ctrl-d")
        t.wait_exit()


def test_the_input_line_keys(home: Path, openai_env: FakeLLMServer) -> None:
    server = openai_env
    with chatrepl(home) as t:
        # Esc-Enter and Alt-Enter add lines; Enter sends them as one message.
        t.send("first")
        t.key("alt-enter")
        t.send("second")
        t.line("")
        t.wait_for("You said: first")
        t.wait_prompt()
        assert server.requests[-1]["json"]["messages"][-1]["content"] == "first\nsecond"

        # A multi-line paste stays one message.
        t.paste("line one\nline two\nline three")
        t.line("")
        t.wait_for("You said: line one")
        t.wait_prompt()
        assert server.requests[-1]["json"]["messages"][-1]["content"] == (
            "line one\nline two\nline three"
        )
        count = len(server.requests)

        # Ctrl-C while typing clears the line and sends nothing.
        t.send("never mind this")
        t.wait_for("> never mind this")
        t.key("ctrl-c")
        t.settle()
        assert "never mind this" not in t.text()
        assert len(server.requests) == count

        # Tab completes a command; an unknown one gets a suggestion.
        t.send("/mo")
        t.key("tab")
        t.wait_for(r"^> /model$")
        t.wait_for("anthropic:claude")  # and the menu offers the models
        t.key("ctrl-c")
        say(t, "/resum 1", "Unknown command /resum: did you mean /resume?")

        # Ctrl-C during the spinner, before any text: back at the prompt.
        server.push(Reply(text="late", first_token_delay=3))
        t.line("Anyone there?")
        t.wait_for("thinking")
        t.key("ctrl-c")
        t.wait_for("interrupted before the answer began")
        t.wait_prompt()

        t.key("ctrl-d")
        assert t.wait_exit() == 0
    (cid,) = [s.id for s in db(home).recent()]
    assert db(home).turns(cid)[-1].status == "interrupted"


def test_a_dropped_connection_keeps_the_text_and_retry_recovers(
    home: Path, openai_env: FakeLLMServer
) -> None:
    server = openai_env
    server.push(Reply(text="alpha beta gamma delta", drop_after=2))
    with chatrepl(home) as t:
        t.line("Tell me")
        t.wait_for("dropped mid-answer")
        t.wait_prompt()
        screen = t.text()
        assert "alpha beta" in screen and "gamma" not in screen
        assert len([x for x in screen.splitlines() if "dropped" in x]) == 1
        say(t, "/retry", "You said: Tell me (messages: 1)")
        t.line("/quit")
        assert t.wait_exit() == 0
    turns = db(home).turns(db(home).recent()[0].id, all_branches=True)
    assert [(t.status, t.response, t.parent_id) for t in turns] == [
        ("error", "alpha beta", None),
        ("complete", "You said: Tell me (messages: 1)", None),
    ]
    assert [t.id for t in db(home).turns(turns[0].conversation_id)] == [turns[1].id]


def test_markdown_is_rendered_and_no_color_gives_plain_text(
    home: Path, openai_env: FakeLLMServer
) -> None:
    server = openai_env
    server.push(Reply(text="Some **bold** words and \x1b[2Ja clear-screen attempt"))
    with chatrepl(home) as t:
        say(t, "Show me", "clear-screen attempt")
        screen = t.text()
        assert "Some bold words" in screen and "^[[2J" in screen
        t.key("ctrl-d")
        t.wait_exit()
    server.push(Reply(text="Some **bold** words"))
    with chatrepl(home, NO_COLOR="1") as t:
        say(t, "Show me", "Some **bold** words")
        t.key("ctrl-d")
        t.wait_exit()


def test_keys_typed_while_an_answer_streams_wait_at_the_next_prompt(
    home: Path, openai_env: FakeLLMServer
) -> None:
    """Typed blind (not echoed, so the answer's lines stay whole), then back at the prompt as
    text to edit or send: an Enter typed blind does not send it, the arrows' sequences are
    not text, and nothing typed is lost."""
    with chatrepl(home) as t:
        openai_env.push(Reply(SLOW, delay=0.05))
        t.line("Go slowly")
        t.wait_for("w3 ")
        t.send("and then\x1b[A\x1b[D what?\r")
        t.wait_for("w39")
        t.wait_for(r"^> and then what\?$")
        sent = [str((r.get("json") or {}).get("messages")) for r in openai_env.requests]
        assert not any("what?" in m for m in sent)  # not sent by the Enter typed blind
        say(t, "", "You said: and then what?")
