"""The REPL's parts: commands, the input line and streaming, through a pipe and DummyOutput."""

from __future__ import annotations

import io
import os
import shutil
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeserver import FakeLLMServer, Reply
from harness import Harness, make
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatrepl.conversation import Conversation
from chatrepl.providers.base import Backend
from chatrepl.providers.registry import get_backend
from chatrepl.records import Message, TextDelta
from chatrepl.repl import commands
from chatrepl.repl.app import Repl
from chatrepl.store import Store

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "chat.db")


@pytest.fixture
def h(store: Store) -> Iterator[Harness]:
    with create_pipe_input() as pipe:
        yield Harness(make(store, pipe=pipe), pipe)


# --- dispatching --------------------------------------------------------------------------------


def test_unknown_command_suggests_the_closest() -> None:
    assert commands.unknown("resum") == "Unknown command /resum: did you mean /resume?"
    assert commands.unknown("moddel") == "Unknown command /moddel: did you mean /model?"
    ambiguous = commands.unknown("ex")
    assert "/exit" in ambiguous and "/export" in ambiguous
    assert "/help" in commands.unknown("zzzz")


def test_unknown_and_odd_input_is_one_line_never_a_traceback(h: Harness) -> None:
    assert h.run("/resum 3").strip() == "Unknown command /resum: did you mean /resume?"
    for line in ("/", "/ ", "/\x1b[2J", "/list many", "/list -3", "/resume zz!!", "/resume 999"):
        out = h.run(line).strip()
        assert out and "\n" not in out and "Traceback" not in out, (line, out)
        assert "\x1b" not in out


def test_every_spec_command_is_registered() -> None:
    spec = "help new list resume title system model retry undo edit copy export search delete info exit quit"
    for name in spec.split():
        assert commands.lookup(name) is not None, name
        assert commands.lookup(name.upper()) is not None


def test_split_keeps_inner_lines() -> None:
    assert commands.split("/system  be\nterse ") == ("system", "be\nterse")
    assert commands.split("/list") == ("list", "")


def test_help_lists_every_command_and_key(h: Harness) -> None:
    out = h.run("/help")
    for cmd in commands.COMMANDS.values():
        assert f"/{cmd.name}" in out
    assert "/copy [code]" in out  # argument hints are not eaten as markup
    assert "Esc Enter" in out and "Ctrl-C" in out
    detail = h.run("/help resume")
    assert "/resume ID" in detail and "last" in detail
    assert "did you mean /resume" in h.run("/help resum")


def test_double_slash_sends_a_message_starting_with_slash(h: Harness) -> None:
    out = h.run("//etc/hosts is a file")
    assert "/etc/hosts is a file" in out
    assert h.conversation.turns[-1].prompt == "/etc/hosts is a file"


# --- chatting -----------------------------------------------------------------------------------


def test_a_message_is_answered_and_saved(h: Harness) -> None:
    out = h.run("hello there")
    assert "hello there" in out
    turns = h.store.turns(h.conversation.id)
    assert [(t.prompt, t.response, t.status) for t in turns] == [
        ("hello there", "hello there", "complete")
    ]
    assert "hello there" in h.repl.toolbar  # the provisional title
    assert h.repl.recent[0].id == h.conversation.id  # the completion cache is refreshed


class Interrupted(Backend):
    """Streams two pieces, then behaves as if Ctrl-C was pressed while waiting for more."""

    def stream(
        self, messages: list[Message], options: dict[str, Any], cancel: threading.Event
    ) -> Iterator[TextDelta]:
        yield TextDelta("partial ")
        yield TextDelta("answer")
        raise KeyboardInterrupt


def test_ctrl_c_mid_answer_keeps_and_marks_the_partial_text(store: Store) -> None:
    repl = make(store, Interrupted("slow", "test"))
    repl.handle("tell me everything")
    out = repl.console.file.getvalue()
    assert "partial answer" in out and "interrupted" in out
    (turn,) = store.turns(repl.conversation.id)
    assert (turn.response, turn.status) == ("partial answer", "interrupted")
    assert repl.running


def test_a_network_error_mid_answer_keeps_the_text_and_retry_works(
    store: Store, openai_env: FakeLLMServer
) -> None:
    openai_env.push(Reply(text="one two three four five", drop_after=3))
    repl = make(store, get_backend("openai:test"))
    repl.handle("count")
    out = repl.console.file.getvalue()
    assert "one two three" in out
    error_lines = [line for line in out.splitlines() if "dropped" in line]
    assert len(error_lines) == 1 and "/retry" in error_lines[0]
    (turn,) = store.turns(repl.conversation.id)
    assert (turn.response, turn.status) == ("one two three", "error")
    repl.handle("/retry")
    assert "You said: count" in repl.console.file.getvalue()
    turns = store.turns(repl.conversation.id)
    assert [t.status for t in turns] == ["complete"]


def test_an_unreachable_server_is_one_line(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    repl = make(store, get_backend("openai:test"))
    repl.conversation.model.endpoint.max_retries = 0
    repl.handle("hello")
    lines = [x for x in repl.console.file.getvalue().splitlines() if x.strip()]
    assert len(lines) == 1 and "Cannot reach" in lines[0]


# --- conversations ------------------------------------------------------------------------------


def test_new_list_and_resume_by_number_prefix_and_last(h: Harness) -> None:
    h.run("first conversation")
    first = h.conversation.id
    out = h.run("/new")
    assert "New conversation" in out and "/resume last" in out
    assert h.conversation.id != first
    h.run("second conversation")
    second = h.conversation.id

    out = h.run("/list")
    assert "first conversation" in out and "second conversation" in out
    assert "(current)" in out
    assert h.repl.listed == [second, first]

    out = h.run("/resume 2")
    assert h.conversation.id == first
    assert "Resumed: first conversation" in out and "> first conversation" in out

    h.run(f"/resume {second[:-3].lower()}")
    assert h.conversation.id == second
    h.run("/resume last")
    assert h.conversation.id == first
    assert "current conversation" in h.run(f"/resume {first}")
    assert "No conversation" in h.run("/resume 7ZZZZZZZ")
    assert "no number 9" in h.run("/resume 9")
    assert "matches several" in h.run("/resume 01")  # a prefix: no list number starts with 0


def test_resume_continues_with_the_history(h: Harness, openai_env: FakeLLMServer) -> None:
    h.repl.handle("/model openai:test")
    h.run("remember the goat")
    cid = h.conversation.id
    h.run("/new")
    h.run(f"/resume {cid}")
    h.run("and now?")
    messages = openai_env.requests[-1]["json"]["messages"]
    assert [m["content"] for m in messages][:1] == ["remember the goat"]
    assert len(messages) == 3


def test_list_is_empty_at_first_and_takes_a_number(h: Harness) -> None:
    assert "No saved conversations yet" in h.run("/list")
    for i in range(3):
        h.run("/new")
        h.run(f"talk {i}")
    out = h.run("/list 2")
    assert "talk 2" in out and "talk 1" in out and "talk 0" not in out


def test_title_by_hand_and_by_the_model(h: Harness, openai_env: FakeLLMServer) -> None:
    assert "chat first" in h.run("/title")
    h.run("/title Goat names")
    assert h.conversation.title == "Goat names"
    h.run("three goat names")  # the first prompt does not replace a title set by hand
    assert h.store.summary(h.conversation.id).title == "Goat names"
    h.run("/model openai:test")
    openai_env.push(Reply(text="Naming Pet Goats\n"))
    out = h.run("/title")
    assert "Naming Pet Goats" in out
    summary = h.store.summary(h.conversation.id)
    assert summary.title == "Naming Pet Goats"
    assert "Naming Pet Goats" in h.repl.toolbar
    assert "Naming Pet Goats" in h.run("/info")


def test_system_applies_from_the_next_turn(h: Harness) -> None:
    assert "No persona" in h.run("/system")
    h.run("before")
    out = h.run("/system You are a pirate.\nSay arr.")
    assert "next turn" in out
    assert "Say arr." in h.run("/system")
    h.run("after")
    turns = h.store.turns(h.conversation.id)
    assert [t.system for t in turns] == [None, "You are a pirate.\nSay arr."]
    assert h.store.summary(h.conversation.id).system == "You are a pirate.\nSay arr."
    h.run("/system --clear")
    h.run("cleared")
    assert h.store.turns(h.conversation.id)[-1].system is None


def test_model_switch_list_and_errors(h: Harness, openai_env: FakeLLMServer) -> None:
    out = h.run("/model")
    assert "Now: echo:echo" in out and "openai" in out and "anthropic" in out
    h.run("hello")
    assert "Unknown model" in h.run("/model nosuchthing")
    assert h.conversation.model.full_name == "echo:echo"
    h.run("/model openai:test")
    assert h.conversation.model.full_name == "openai:test"
    assert "openai:test" in h.repl.toolbar
    h.run("again")
    turns = h.store.turns(h.conversation.id)
    assert [t.model for t in turns] == ["echo:echo", "openai:test"]
    # the history went along to the new model
    assert len(openai_env.requests[-1]["json"]["messages"]) == 3


def test_retry_and_undo(h: Harness) -> None:
    assert "Nothing to retry" in h.run("/retry")
    assert "Nothing to undo" in h.run("/undo")
    h.run("one")
    h.run("two")
    out = h.run("/retry")
    assert "Retrying: two" in out
    assert [t.prompt for t in h.conversation.turns] == ["one", "two"]
    all_turns = h.store.turns(h.conversation.id, all_branches=True)
    assert [t.prompt for t in all_turns] == ["one", "two", "two"]
    assert all_turns[1].parent_id == all_turns[2].parent_id == all_turns[0].id  # siblings
    assert "Took back: two" in h.run("/undo")
    assert [t.prompt for t in h.store.turns(h.conversation.id)] == ["one"]


def test_edit_sends_what_the_editor_saved(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    script = "import sys; f = open(sys.argv[1], 'a'); f.write('from the editor'); f.close()"
    monkeypatch.setenv("EDITOR", f"{sys.executable} -c {script!r}")
    monkeypatch.setenv("VISUAL", "")
    out = h.run("/edit first line")
    assert "> first line" in out
    assert h.conversation.turns[-1].prompt == "first line\nfrom the editor"
    monkeypatch.setenv("EDITOR", "true")
    assert "nothing sent" in h.run("/edit")
    monkeypatch.setenv("EDITOR", "false")
    assert "exited with status 1" in h.run("/edit")
    monkeypatch.setenv("EDITOR", "/no/such/editor --wait")
    assert "Cannot run the editor" in h.run("/edit")
    monkeypatch.setenv("EDITOR", "'unbalanced")
    assert "quoting" in h.run("/edit")
    assert len(h.conversation.turns) == 1


def test_edit_file_is_private_and_removed(
    h: Harness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = tmp_path / "seen"
    script = (
        "import os, sys; p = sys.argv[1]; "
        f"open({str(seen)!r}, 'w').write(p + ' ' + oct(os.stat(p).st_mode & 0o777))"
    )
    monkeypatch.setenv("VISUAL", f"{sys.executable} -c {script!r}")
    h.run("/edit")
    path, mode = seen.read_text().split()
    assert mode == "0o600" and not os.path.exists(path)


def test_copy_uses_a_clipboard_tool_or_osc52(
    h: Harness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert "No answer" in h.run("/copy")
    h.run("some text\n```sh\nls -l\n```")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    got = tmp_path / "clip"
    tool = bin_dir / "xclip"
    tool.write_text(f"#!/bin/sh\nexec {shutil.which('cat')} > {got}\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert "with xclip" in h.run("/copy")
    assert got.read_text() == "some text\n```sh\nls -l\n```"
    assert "code block" in h.run("/copy code")
    assert got.read_text() == "ls -l\n"
    monkeypatch.delenv("DISPLAY")
    out = h.run("/copy")
    assert "OSC 52" in out and "\x1b]52;c;" in out


def test_export_writes_private_markdown(
    h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "Nothing to export" in h.run("/export")
    h.run("/title Goats")
    h.run("three goat names")
    target = tmp_path / "goats.md"
    assert "Exported 1 turn to" in h.run(f"/export {target}")
    text = target.read_text()
    assert text.startswith("# Goats") and "three goat names" in text
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    monkeypatch.chdir(tmp_path)
    h.run("/export")
    assert (tmp_path / f"goats-{h.conversation.id[:10].lower()}.md").exists()
    h.pipe.send_text("n\r")
    assert "Not exported" in h.run(f"/export {target}")


def test_search_numbers_hits_for_resume(h: Harness) -> None:
    h.run("the [big] capybara is large")
    cid = h.conversation.id
    h.run("/new")
    h.run("nothing to see")
    out = h.run("/search capybara")
    assert "the [big] capybara is large" in out and cid[:8] in out
    assert "Nothing found" in h.run("/search zebra")
    h.run("/search capybara")
    h.run("/resume 1")
    assert h.conversation.id == cid


def test_delete_asks_first(h: Harness) -> None:
    assert "nothing to delete" in h.run("/delete")
    h.run("keep me")
    keep = h.conversation.id
    h.run("/new")
    h.run("delete me")
    doomed = h.conversation.id
    h.pipe.send_text("n\r")
    assert "Kept" in h.run(f"/delete {doomed}")
    h.pipe.send_text("y\r")
    out = h.run("/delete")
    assert "Deleted" in out and "new conversation" in out
    assert [s.id for s in h.store.recent()] == [keep]
    assert h.conversation.id not in (keep, doomed)
    h.pipe.send_text("yes\r")
    h.run("/delete 1")
    assert h.store.recent() == []


def test_info_says_everything(h: Harness) -> None:
    h.run("/system Be brief.")
    h.run("hello")
    out = h.run("/info")
    for word in (
        h.conversation.id,
        "hello",
        "echo:echo",
        "Be brief.",
        "turns",
        "tokens",
        "chat.db",
    ):
        assert word in out, word


def test_exit_and_quit_stop_the_loop(h: Harness) -> None:
    h.run("/quit")
    assert not h.repl.running


# --- the input line ---------------------------------------------------------------------------


def test_the_loop_reads_lines_until_exit(h: Harness) -> None:
    h.pipe.send_text("hello\r/title Greeting\r/exit\r")
    h.repl.loop()
    assert [t.prompt for t in h.store.turns(h.conversation.id)] == ["hello"]
    assert h.store.summary(h.conversation.id).title == "Greeting"
    assert "chatrepl -c" in h.out


def test_ctrl_d_leaves(h: Harness) -> None:
    h.pipe.send_text("\x04")
    h.repl.loop()
    assert h.repl.conversation.responses == []


def test_enter_sends_esc_enter_adds_a_line_and_paste_stays_one(h: Harness) -> None:
    h.pipe.send_text("one\x1b\rtwo\r")
    assert h.repl.read() == "one\ntwo"
    h.pipe.send_text("\x1b[200~pasted\nlines\n\x1b[201~\r")
    assert h.repl.read() == "pasted\nlines\n"


def test_ctrl_c_clears_the_line_and_on_an_empty_line_says_how_to_leave(h: Harness) -> None:
    h.pipe.send_text("half a thought\x03whole\r")
    assert h.repl.read() == "whole"
    h.pipe.send_text("\x03")
    assert h.repl.read() == ""
    assert "Ctrl-D" in h.out


def test_history_file_is_private(store: Store, home: Path) -> None:
    from chatrepl.settings import history_path

    with create_pipe_input() as pipe:
        repl = Repl(
            store,
            Conversation(get_backend("echo"), store=store),
            console=Console(file=io.StringIO()),
            input=pipe,
            output=DummyOutput(),
        )
        pipe.send_text("remember this\r")
        assert repl.read() == "remember this"
    assert "remember this" in history_path().read_text()
    assert stat.S_IMODE(history_path().stat().st_mode) == 0o600


def test_toolbar_is_cached_not_recounted(h: Harness) -> None:
    h.run("count these words")
    before = h.repl.toolbar
    h.conversation.responses.clear()  # what a per-keystroke recount would notice
    assert h.repl.toolbar == before
    assert "echo:echo" in before and h.conversation.id[:10] in before and " tok" in before
