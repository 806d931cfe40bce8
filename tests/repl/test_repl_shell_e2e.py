"""``!CMD`` in the real REPL (a pseudo-terminal, the fake server): the command's output goes with
the next prompt and is saved as a text part of that turn; a paste or ``\\!`` is a message;
Ctrl-C stops a long command; the output is capped; known keys never travel."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import run_chatrepl
from fakeserver import FakeLLMServer
from pty_repl import chatrepl, db

pytestmark = pytest.mark.timeout(90)

KEY = "sk-test-key-0123456789"  # conftest's openai_env sets it as OPENAI_API_KEY


def user_content(server: FakeLLMServer) -> list[dict]:
    """The content blocks of the last user message the server got."""
    content = server.last["json"]["messages"][-1]["content"]
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def command_parts(home: Path) -> list:
    store = db(home)
    cid = store.recent(1)[0].id
    return [p for t in store.turns(cid) for p in t.parts if "command" in p.data]


def test_a_typed_command_goes_with_the_next_prompt_and_is_saved_once(
    home: Path, openai_env: FakeLLMServer
) -> None:
    server = openai_env
    with chatrepl(home) as t:
        t.line("!echo hi-from-shell; echo oops >&2; exit 3")
        t.wait_for("goes with your next prompt")
        t.wait_prompt()
        assert re.search(r"^hi-from-shell$", t.text(), re.MULTILINE)  # shown on screen
        assert "Exit status 3" in t.text()
        assert not server.requests  # no model involved
        assert re.search(r"\+1 attached: \$ echo hi-from-shell", t.text())  # the toolbar
        t.line("/attach")
        t.wait_for(r"'\$ echo hi-from-shell.*' \(output, \d+ B, exit status 3\)")
        t.wait_prompt()
        t.line("what went wrong?")
        t.wait_for(r"what went\s*wrong\? \(messages: 1\)")
        t.wait_prompt()

    blocks = user_content(server)
    assert blocks[0]["text"] == (
        "$ echo hi-from-shell; echo oops >&2; exit 3\nhi-from-shell\noops\n[exit status 3]"
    )
    assert blocks[-1]["text"] == "what went wrong?"

    (part,) = command_parts(home)
    assert part.kind == "attachment" and part.data["status"] == 3
    assert part.text == blocks[0]["text"]
    store = db(home)
    assert store.attachment(part.data["sha256"]) is None  # kept once: in the part, not twice
    assert store.search("hi-from-shell", 5)  # found by search

    cid = store.recent(1)[0].id
    shown = json.loads(run_chatrepl("show", cid, "--json").stdout)
    parts = [p for t in shown["turns"] for p in t["parts"] if p["kind"] == "attachment"]
    assert "hi-from-shell" in parts[0]["text"]
    exported = run_chatrepl("export", cid).stdout
    assert "```console\n$ echo hi-from-shell; echo oops >&2; exit 3\nhi-from-shell\n" in exported


def test_a_paste_and_backslash_bang_are_messages_and_clear_drops_the_output(
    home: Path, openai_env: FakeLLMServer
) -> None:
    server = openai_env
    marker = home.parent / "ran"
    with chatrepl(home) as t:
        t.paste(f"!touch {marker}")
        t.key("enter")
        t.wait_for(r"You said: !touch")
        t.wait_prompt()
        assert not marker.exists()  # a paste is never run
        assert user_content(server)[-1]["text"] == f"!touch {marker}"

        t.line("\\!important")
        t.wait_for("You said: !important")
        t.wait_prompt()

        t.line("!echo dropped")
        t.wait_for("goes with your next prompt")
        t.line("/attach --clear")
        t.wait_for("Unstaged 1 file")
        t.line("plain")
        t.wait_for("You said: plain")
        t.wait_prompt()
        assert user_content(server) == [{"type": "text", "text": "plain"}]

        # a typed one after all that does run
        t.line(f"!touch {marker}")
        t.wait_for("goes with your next prompt")
        assert marker.exists()


def test_ctrl_c_stops_a_long_command_and_keeps_what_it_printed(
    home: Path, openai_env: FakeLLMServer
) -> None:
    server = openai_env
    with chatrepl(home) as t:
        t.line("!echo started; sleep 31.4159; echo never")
        t.wait_for("^started$")
        assert _running("31.4159")
        t.key("ctrl-c")
        t.wait_for("Stopped; what it printed so far goes with your next prompt")
        t.wait_prompt()
        assert not _running("31.4159")  # the whole process group ended
        # the terminal is sane: typing echoes and the next command runs
        t.line("!echo after-stop")
        t.wait_for("^after-stop$")
        t.line("and now?")
        t.wait_for(r"and now\? \(messages")
    sent = [b["text"] for b in user_content(server)]
    assert sent[0] == "$ echo started; sleep 31.4159; echo never\nstarted\n[stopped by Ctrl-C]"
    assert sent[1] == "$ echo after-stop\nafter-stop"


def test_output_is_capped_and_known_keys_are_blanked(home: Path, openai_env: FakeLLMServer) -> None:
    server = openai_env
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("[shell]\nmax_output = 60\n")
    (home / "keys.json").write_text(json.dumps({"other": "kj-another-secret-value"}))
    with chatrepl(home) as t:
        t.line("!echo $OPENAI_API_KEY kj-another-secret-value")
        t.wait_for("goes with your next prompt")
        assert KEY not in t.text()  # (the other one was typed: it shows in the prompt line)
        assert re.search(r"^\*\*\* \*\*\*$", t.text(), re.MULTILINE)
        t.line("!seq 1 1000")
        t.wait_for(r"cut at 60 characters \(\[shell\] max_output")
        t.line("go")
        t.wait_for(r"\] go \(messages")
    sent = [b["text"] for b in user_content(server)]
    assert sent[0] == "$ echo $OPENAI_API_KEY ***\n*** ***"  # the command line too
    assert sent[1].startswith("$ seq 1 1000\n1\n2\n3\n")
    assert sent[1].endswith("[output cut at 60 characters: [shell] max_output in config.toml]")
    saved = " ".join(p.text + json.dumps(p.data) for p in command_parts(home))
    assert KEY not in saved and "kj-another-secret-value" not in saved


def _running(marker: str) -> bool:
    """Whether a process with ``marker`` in its command line is alive (not a zombie)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z" and b"pytest" not in cmdline:
            return True
    return False
