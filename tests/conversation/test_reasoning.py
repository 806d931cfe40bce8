"""Reasoning end to end: shown while it streams, folded to one line, saved as parts, on stderr in
one-shot mode, kept out of the Markdown export and of search; and how each answer ended."""

from __future__ import annotations

import io

import pytest
from conftest import child_env, run_chatrepl
from fakeserver import Answer, Redacted, Refusal, Text, Think
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatrepl.conversation import Conversation
from chatrepl.export import to_markdown
from chatrepl.providers.registry import get_backend
from chatrepl.repl.app import Repl
from chatrepl.screen.render import StreamRenderer, fold_line
from chatrepl.store import Store

pytestmark = pytest.mark.timeout(60)

THOUGHT = ("Let me weigh ", "the options ", "carefully.")


def terminal_console(out: io.StringIO) -> Console:
    return Console(file=out, width=80, height=24, force_terminal=True, color_system=None)


def test_reasoning_streams_then_folds_to_one_line_when_the_answer_starts():
    out = io.StringIO()
    clock = iter(range(1000))
    r = StreamRenderer(terminal_console(out), clock=lambda: float(next(clock)))
    r.start()
    for piece in THOUGHT:
        r.reasoning(piece)
    live = out.getvalue()
    assert "Let me weigh the options" in live  # drawn in the live region while it streams
    r.feed("The answer is 42.\n")
    r.finish()
    final = out.getvalue()[len(live) :]
    assert "▸ thought (6 words): Let me weigh the options carefully." in final
    assert final.index("▸ thought") < final.index("The answer is 42.")
    assert r.thought == list(THOUGHT)


def test_hidden_reasoning_shows_nothing_but_the_answer():
    out = io.StringIO()
    r = StreamRenderer(terminal_console(out), reasoning=False)
    r.start()
    for piece in THOUGHT:
        r.reasoning(piece)
    r.feed("Answer.")
    r.finish()
    assert "weigh" not in out.getvalue() and "thought" not in out.getvalue()
    assert "Answer." in out.getvalue()


def test_plain_output_gets_the_fold_line_only():
    out = io.StringIO()
    r = StreamRenderer(Console(file=out, width=80), plain=True)
    r.reasoning("step one\nstep two\x1b[2J")
    r.feed("done")
    r.finish()
    assert out.getvalue() == "▸ thought (4 words): step one step two^[[2J\ndone\n"


def test_reasoning_alone_folds_at_the_end():
    out = io.StringIO()
    r = StreamRenderer(Console(file=out, width=80), plain=True)
    r.reasoning("only thinking")
    r.finish(note="cut off")
    assert out.getvalue() == "▸ thought (2 words): only thinking\ncut off\n"


def test_the_fold_line_fits_its_width():
    line = fold_line("word " * 500, 60)
    assert len(line) <= 60 and line.endswith("…")


SHAPES = [
    ("openai:gpt-test", "reasoning_content"),
    ("openai:gpt-test", "reasoning"),
    ("openai:gpt-test", "details"),
    ("openai:gpt-test", "tags"),
    ("anthropic:claude-test", "thinking"),
]


@pytest.mark.parametrize(("model", "shape"), SHAPES)
def test_one_shot_reasoning_goes_to_stderr_the_answer_to_stdout(openai_env, tmp_path, model, shape):
    server = openai_env
    pieces = ("<think>", *THOUGHT, "</think>") if shape == "tags" else THOUGHT
    server.push(Answer(Think(*pieces, shape=shape), Text("The ", "answer.")))
    db = tmp_path / "r.db"
    out = run_chatrepl("-m", model, "--db", str(db), "-p", "decide", env=child_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout == "The answer.\n"
    assert "Let me weigh the options carefully." in out.stderr
    assert "\x1b[" not in out.stderr  # not a terminal: no dimming
    store = Store(db)
    (summary,) = store.recent()
    (turn,) = store.turns(summary.id)
    kinds = [p.kind for p in turn.parts]
    assert kinds == ["prompt", "reasoning", "text"]
    assert turn.parts[1].text.strip() == "Let me weigh the options carefully."
    if model.startswith("anthropic"):
        assert turn.parts[1].data == {"signature": "sig-abc", "provider": "anthropic"}
    assert turn.response == "The answer."


def test_show_reasoning_false_in_config_keeps_stderr_quiet(openai_env, tmp_path, home):
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("show_reasoning = false\n")
    openai_env.push(Answer(Think(*THOUGHT), Text("Answer.")))
    out = run_chatrepl("-m", "openai:gpt-test", "-p", "x", env=child_env())
    assert out.returncode == 0 and out.stdout == "Answer.\n"
    assert "weigh" not in out.stderr


ENDINGS = [
    # model, the vendor's ending, what the answer holds, status, what stderr says
    ("openai:gpt-test", "length", Text("half an ans"), "cut_off", "cut off at the token limit"),
    ("openai:gpt-test", "content_filter", Text("Some"), "filtered", "content filter"),
    ("openai:gpt-test", None, Refusal("I can't help with that."), "refused", "refused"),
    ("anthropic:claude-test", "max_tokens", Text("half"), "cut_off", "cut off"),
    ("anthropic:claude-test", "refusal", Text("No."), "refused", "refused"),
    ("anthropic:claude-test", None, Refusal("I won't."), "refused", "refused"),
]


@pytest.mark.parametrize(("model", "finish", "item", "status", "said"), ENDINGS)
def test_endings_are_told_saved_and_exit_3(openai_env, tmp_path, model, finish, item, status, said):
    openai_env.push(Answer(Think("hmm"), item, finish=finish))
    db = tmp_path / "e.db"
    out = run_chatrepl("-m", model, "--db", str(db), "-p", "x", env=child_env())
    assert out.returncode == 3, out.stderr
    assert said in out.stderr
    store = Store(db)
    (summary,) = store.recent()
    (turn,) = store.turns(summary.id)
    assert turn.status == status
    assert turn.calls[-1].finish_reason in ("length", "filtered", "refused")
    if isinstance(item, Refusal):  # the model's words are shown (Anthropic sends them as text)
        kind = "text" if model.startswith("anthropic") else "refusal"
        assert [p.kind for p in turn.parts][-1] == kind
        assert item.pieces[0] in out.stdout + out.stderr


def test_redacted_reasoning_is_kept_and_anthropic_gets_it_back(openai_env, tmp_path):
    server = openai_env
    server.push(Answer(Think("plan"), Redacted("opaque=="), Text("Hi.")))
    model = get_backend("anthropic:claude-test")
    store = Store(tmp_path / "k.db")
    c = Conversation(model, store=store)
    assert c.prompt("hello").text() == "Hi."
    parts = store.turns(c.id)[-1].parts
    assert [(p.kind, p.data) for p in parts if p.kind == "reasoning"] == [
        ("reasoning", {"signature": "sig-abc", "provider": "anthropic"}),
        ("reasoning", {"redacted": "opaque==", "provider": "anthropic"}),
    ]
    model.close()


def test_reasoning_stays_out_of_the_markdown_export_and_search(openai_env, tmp_path, store: Store):
    openai_env.push(Answer(Think("zanzibarish musing"), Text("Plain answer.")))
    model = get_backend("openai:gpt-test")
    c = Conversation(model, store=store)
    c.prompt("question").text()
    assert "zanzibarish" in c.turns[-1].reasoning
    text = to_markdown(store.summary(c.id), store.turns(c.id))
    assert "Plain answer." in text and "zanzibarish" not in text
    assert store.search("zanzibarish") == []
    assert len(store.search("Plain")) == 1
    model.close()


def make_repl(store: Store) -> Repl:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    conversation = Conversation(get_backend("openai:gpt-test"), store=store)
    return Repl(
        store, conversation, console=console, output=DummyOutput(), history=InMemoryHistory()
    )


def said(repl: Repl, line: str) -> str:
    repl.console.file.seek(0)
    repl.console.file.truncate()
    repl.handle(line)
    return repl.console.file.getvalue()


def test_reasoning_command_hides_shows_and_recalls(openai_env, tmp_path):
    server = openai_env
    repl = make_repl(Store(tmp_path / "c.db"))
    server.push(Answer(Think(*THOUGHT), Text("First.")))
    out = said(repl, "one")
    assert "▸ thought (6 words)" in out and "First." in out
    assert "Let me weigh the options carefully." in said(repl, "/reasoning")

    assert "hidden" in said(repl, "/reasoning off")
    server.push(Answer(Think("secret plan"), Text("Second.")))
    out = said(repl, "two")
    assert "Second." in out and "thought" not in out and "secret" not in out
    assert repl.conversation.turns[-1].reasoning == "secret plan"  # saved all the same

    assert "shown" in said(repl, "/reasoning on")
    assert "Say /reasoning on" in said(repl, "/reasoning maybe")
    server.push(Answer(Text("No thinking.")))
    said(repl, "three")
    assert "came without reasoning" in said(repl, "/reasoning")
