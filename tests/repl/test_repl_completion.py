"""Tab completion: directly, and through a prompt-toolkit session fed by a pipe."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatrepl.conversation import Conversation
from chatrepl.providers.registry import get_backend
from chatrepl.repl.app import Repl
from chatrepl.repl.commands import COMMANDS
from chatrepl.repl.completion import ChatCompleter
from chatrepl.store import ConversationSummary, Store

pytestmark = pytest.mark.timeout(30)

GOATS = ConversationSummary(
    id="01JD8X0000AAAAAAAAAAAAAAAA",
    title="Goat names",
    title_source=None,
    model="openai:gpt-4o",
    system=None,
    created="",
    updated="",
    turns=3,
)
SORTING = ConversationSummary(
    id="01JD8Y0000BBBBBBBBBBBBBBBB",
    title="Sorting in Python",
    title_source=None,
    model="echo:echo",
    system=None,
    created="",
    updated="",
    turns=1,
)
EVIL = ConversationSummary(
    id="01JD8Z0000CCCCCCCCCCCCCCCC",
    title="\x1b]0;pwned\x07 title",
    title_source=None,
    model="echo:echo",
    system=None,
    created="",
    updated="",
    turns=1,
)
MODELS = ["openai:gpt-4o-mini", "openai:gpt-4o", "anthropic:claude-sonnet-4-5", "echo:echo"]


def completions(text: str) -> list[str]:
    completer = ChatCompleter(COMMANDS, lambda: [GOATS, SORTING, EVIL], lambda: MODELS)
    document = Document(text, len(text))
    found = completer.get_completions(document, CompleteEvent(completion_requested=True))
    return [document.text[: len(text) + c.start_position] + c.text for c in found]


def test_the_first_word_completes_to_a_command() -> None:
    assert completions("/mo") == ["/model "]
    assert completions("/re") == ["/resume ", "/retry", "/rewrite ", "/reasoning "]
    assert completions("/q") == ["/quit"]
    assert len(completions("/")) == len(COMMANDS) + 1  # /quit too
    assert completions("/MO") == ["/model "]


def test_ids_and_titles_after_resume_and_delete() -> None:
    assert completions("/resume 01JD8X") == [f"/resume {GOATS.id}"]
    assert completions("/resume 01jd8y") == [f"/resume {SORTING.id}"]
    assert completions("/delete goat") == [f"/delete {GOATS.id}"]
    assert completions("/resume python") == [f"/resume {SORTING.id}"]
    assert completions("/resume la") == ["/resume last"]
    assert len(completions("/resume ")) == 4


def test_titles_are_shown_safely() -> None:
    completer = ChatCompleter(COMMANDS, lambda: [EVIL], lambda: MODELS)
    (shown, *_) = completer.get_completions(Document("/resume "), CompleteEvent())
    assert "\x1b" not in str(shown.display) and "^[" in str(shown.display)


def test_model_names_help_topics_and_words() -> None:
    assert completions("/model anth") == ["/model anthropic:claude-sonnet-4-5"]
    assert completions("/model gpt-4o") == ["/model openai:gpt-4o-mini", "/model openai:gpt-4o"]
    assert completions("/help res") == ["/help resume"]
    assert completions("/system --") == ["/system --clear"]
    assert completions("/copy c") == ["/copy code"]


def test_nothing_for_messages() -> None:
    assert completions("hello /mo") == []
    assert completions("//mo") == []
    assert completions("/list ") == []
    assert completions("/nosuch x") == []
    assert completions("/system be\n/mo") == []


@pytest.fixture
def repl(tmp_path: Path):
    store = Store(tmp_path / "chat.db")
    with create_pipe_input() as pipe:
        conversation = Conversation(get_backend("echo"), store=store)
        conversation.prompt("three goat names").text()
        conversation.set_title("Goat names")
        r = Repl(
            store,
            Conversation(get_backend("echo"), store=store),
            console=Console(file=io.StringIO()),
            input=pipe,
            output=DummyOutput(),
            history=InMemoryHistory(),
        )
        r.pipe = pipe
        r.goats = conversation.id
        yield r


def test_tab_in_a_session(repl: Repl) -> None:
    repl.pipe.send_text("/mo\t\r")
    assert repl.read() == "/model "
    repl.pipe.send_text("/resume goat\t\r")
    assert repl.read() == f"/resume {repl.goats}"
    repl.pipe.send_text("/model echo:e\t\r")
    assert repl.read() == "/model echo:echo"


def test_tab_with_several_candidates_inserts_what_they_share(repl: Repl) -> None:
    repl.pipe.send_text("/ex\t\r")  # /exit and /export share "/ex" only: nothing to add
    assert repl.read() == "/ex"
    repl.pipe.send_text("/de\t\r")
    assert repl.read() == "/delete "


def test_tab_in_a_message_is_a_tab(repl: Repl) -> None:
    repl.pipe.send_text("a\tb\r")
    assert repl.read() == "a\tb"


def test_the_completion_cache_follows_the_turns(repl: Repl) -> None:
    assert [s.id for s in repl.recent] == [repl.goats]
    repl.handle("a second conversation")
    assert [s.id for s in repl.recent] == [repl.conversation.id, repl.goats]
