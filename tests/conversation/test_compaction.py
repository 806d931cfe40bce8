"""Compaction: older turns summarised into a summary turn, by /compact, before a request would not
fit, and after a context-length error; bounded summary requests; the originals kept."""

from __future__ import annotations

import io
import json

import pytest
from conftest import child_env, run_chatrepl
from fakeserver import Answer, Reply, Status, Text, Think
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatrepl.compaction import chunks, compact, context_error, digest, transcript
from chatrepl.conversation import Conversation
from chatrepl.export import to_markdown
from chatrepl.providers.registry import get_backend
from chatrepl.repl.app import Repl
from chatrepl.repl.branching import tree_lines
from chatrepl.store import Store

pytestmark = pytest.mark.timeout(90)


def configure(home, server, window: int) -> None:
    """A provider ``fake`` at the fake server whose context window is ``window`` tokens."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[providers.fake]\ntype = "openai"\nbase_url = "{server.openai_url}"\n'
        f"needs_key = false\ncontext_window = {window}\n"
    )


def chat(c: Conversation, n: int, words: int = 5) -> None:
    for i in range(n):
        c.prompt(f"question {i} " + "lorem " * words).text()


def test_compact_makes_a_summary_branch_and_keeps_the_originals(tmp_path):
    store = Store(tmp_path / "c.db")
    c = Conversation(get_backend("echo"), system="Be brief.", store=store)
    chat(c, 10)
    originals = [t.id for t in c.turns]
    done = compact(c, keep=3)
    assert done is not None and (done.replaced, done.kept) == (7, 3)
    turns = c.turns
    # the path: the 7 summarised turns, the summary, then copies of the last 3
    assert [t.id for t in turns[:7]] == originals[:7]
    assert turns[7].kind == "summary" and turns[7].parent_id == originals[6]
    assert [t.prompt for t in turns[8:]] == [f"question {i} " + "lorem " * 5 for i in (7, 8, 9)]
    assert {t.id for t in turns[8:]}.isdisjoint(originals)
    summary = turns[7].parts[0]
    assert summary.kind == "summary" and "question 0" in summary.text

    # what the next prompt sends: the persona with the summary, the 3 kept turns, the prompt
    r = c.prompt("next")
    messages = c.messages_for(r)
    assert messages[0].role == "system"
    assert messages[0].content.startswith("Be brief.\n\nSummary of the conversation so far:")
    assert [m.content for m in messages[1:] if m.role == "user"][:3] == [
        t.prompt for t in turns[8:]
    ]
    assert len(messages) == 1 + 3 * 2 + 1
    r.text()

    # saved: loading again gives the same path; every original is still there and searchable
    again = Conversation.load(store, c.id)
    assert [t.id for t in again.turns] == [t.id for t in c.turns]
    every = store.turns(c.id, all_branches=True)
    assert set(originals) <= {t.id for t in every}
    assert len(every) == 10 + 1 + 3 + 1
    assert store.search("question 0")
    nodes = store.tree(c.id)
    rows = tree_lines(nodes, {t.id for t in again.turns})
    assert any("summary of earlier turns" in line for _, line, _ in rows)
    text = to_markdown(store.summary(c.id), store.turns(c.id), every)
    assert "Summary of the earlier turns" in text and "question 9" in text


def test_a_second_compaction_builds_on_the_first(tmp_path):
    c = Conversation(get_backend("echo"), store=Store(tmp_path / "d.db"))
    chat(c, 8)
    compact(c, keep=2)
    chat(c, 6)
    done = compact(c, keep=2)
    assert done is not None and done.replaced == 2 + 4  # the copies and the new turns
    summaries = [t for t in c.turns if t.kind == "summary"]
    assert len(summaries) == 2
    assert "Summary of what came before" in summaries[-1].parts[0].text
    r = c.prompt("and now")
    system = c.messages_for(r)[0].content
    assert system.count("Summary of the conversation so far:") == 1  # only the newest stands


def test_nothing_to_compact():
    c = Conversation(get_backend("echo"))
    chat(c, 2)
    assert compact(c, keep=4) is None
    assert len(c.turns) == 2


def test_chunks_and_digest_are_bounded():
    pieces = ["x" * 300] * 50 + ["y" * 5000]
    out = list(chunks(pieces, 1000))
    assert all(len(chunk) <= 1000 for chunk in out)
    assert sum(chunk.count("x") for chunk in out) == 300 * 50
    text = "\n".join(f"User: line {i} " + "z" * 300 for i in range(100))
    assert len(digest(text, 2000)) <= 2000


def test_a_huge_turn_keeps_its_start_and_end_in_the_transcript():
    c = Conversation(get_backend("echo"))
    c.prompt("START " + "filler " * 20_000 + " END").text()
    (piece,) = transcript(c.turns)
    assert piece.startswith("User: START") and piece.endswith("END") and len(piece) < 17_000


@pytest.mark.parametrize(
    ("message", "yes"),
    [
        ("This model's maximum context length is 8192 tokens.", True),
        ("The conversation is too long for 'x' (HTTP 413): start a /new conversation", True),
        ("prompt is too long: 210000 tokens > 200000 maximum", True),
        ("the request exceeds the available context size", False),
        ("Rate limit reached", False),
        (None, False),
    ],
)
def test_context_errors_are_recognised(message, yes):
    assert context_error(message) is yes


def test_summary_requests_never_overflow_the_window(home, server):
    """400 turns, a 2,000-token window: every summary request fits, with its answer."""
    configure(home, server, 2000)
    c = Conversation(get_backend("echo"))
    chat(c, 400, words=20)  # built by the offline model: 400 requests would be slow
    model = get_backend("fake:small")
    c.set_model(model)
    before = len(server.requests)
    done = compact(c)
    assert done is not None and done.replaced == 396
    asked = [r["json"] for r in server.requests[before:] if r.get("json")]
    assert len(asked) == done.requests > 10  # chunked, then merged
    for body in asked:
        sent = sum(len(m["content"]) for m in body["messages"])
        assert sent / 4 + body["max_tokens"] <= 2000  # the estimate the window is judged by
        assert body["max_tokens"] <= 1024
        assert "thinking" not in body and "reasoning_effort" not in body
    assert len(c.turns[-5].parts[0].text) <= 250 * 4
    model.close()


def test_the_summary_asks_for_little_reasoning(home, openai_env):
    server = openai_env
    c = Conversation(get_backend("openai:gpt-test"))
    c.options.update(reasoning_effort="high")
    chat(c, 6)
    server.push(Answer(Think("brief"), Text("The gist.")))
    done = compact(c, keep=2)
    assert done is not None and c.turns[-3].parts[0].text == "The gist."
    body = server.last["json"]
    assert body["reasoning_effort"] == "low" and body["max_tokens"] <= 1024

    a = Conversation(get_backend("anthropic:claude-test"))
    a.options.update(thinking_budget=8000)
    chat(a, 6)
    server.push(Answer(Text("Gist.")))
    compact(a, keep=2)
    body = server.last["json"]
    assert "thinking" not in body and body["max_tokens"] <= 1024


def test_a_model_that_cannot_summarise_gets_a_digest(home, openai_env):
    server = openai_env
    c = Conversation(get_backend("openai:gpt-test"))
    chat(c, 6)
    bad = {"error": {"message": "unsupported parameter", "type": "invalid_request_error"}}
    server.push(Status(400, bad), Status(400, bad))
    done = compact(c, keep=2)
    assert done is not None and done.fallback
    text = c.turns[-3].parts[0].text
    assert "question 0" in text and "question 3" in text
    assert "plain digest" in done.sentence()
    assert server.requests[-1]["json"].get("max_tokens") is None  # asked again without options


def repl_for(store: Store, name: str) -> Repl:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    c = Conversation(get_backend(name), store=store)
    return Repl(store, c, console=console, output=DummyOutput(), history=InMemoryHistory())


def said(repl: Repl, line: str) -> str:
    repl.console.file.seek(0)
    repl.console.file.truncate()
    repl.handle(line)
    return repl.console.file.getvalue()


def test_the_compact_command(tmp_path):
    repl = repl_for(Store(tmp_path / "r.db"), "echo")
    assert "Nothing to compact" in said(repl, "/compact")
    for i in range(6):
        said(repl, f"message {i}")
    out = " ".join(said(repl, "/compact 1").split())
    assert "5 earlier turns compacted into one summary, the last 1 kept" in out
    assert "the originals stay saved" in out
    assert "Give how many" in said(repl, "/compact lots")
    assert "summary of earlier turns" in said(repl, "/tree")


def test_it_compacts_by_itself_before_a_request_would_not_fit(home, server, tmp_path):
    configure(home, server, 1000)
    repl = repl_for(Store(tmp_path / "a.db"), "fake:small")
    shown = []
    for i in range(14):
        server.push(Reply(text=f"reply {i} " + "dolor " * 40))
        shown.append(said(repl, f"turn {i} " + "amet " * 40))
    compactions = [t for t in repl.conversation.turns if t.kind == "summary"]
    assert compactions, "no compaction happened"
    told = " ".join(" ".join(shown).split())
    assert "nears the context window" in told and "compacted into one summary" in told
    body = server.requests[-1]["json"]
    assert body["messages"][0]["role"] == "system"
    assert "Summary of the conversation so far" in body["messages"][0]["content"]
    words = sum(len(m["content"].split()) for m in body["messages"])
    assert words < 1000 - 150  # what the fake server counts as tokens, with room to answer


def test_a_context_error_compacts_and_asks_again_once(home, openai_env, tmp_path):
    server = openai_env
    store = Store(tmp_path / "e.db")
    repl = repl_for(store, "openai:gpt-test")
    for i in range(6):
        said(repl, f"turn {i}")
    too_long = {"error": {"message": "This model's maximum context length is 4096 tokens."}}
    server.push(Status(400, too_long), Answer(Text("The summary.")), Reply(text="Fits now."))
    out = said(repl, "one more")
    assert "too long" in out and "compacting, then asking again" in out
    assert "Fits now." in out
    turns = repl.conversation.turns
    assert turns[-1].prompt == "one more" and turns[-1].status == "complete"
    assert any(t.kind == "summary" for t in turns)
    failed = [
        t for t in store.turns(repl.conversation.id, all_branches=True) if t.status == "error"
    ]
    assert [t.prompt for t in failed] == ["one more"]  # kept in the tree

    # a second context error in a row is not retried again
    server.push(Status(400, too_long), Answer(Text("Again.")), Status(400, too_long))
    out = said(repl, "and another")
    assert out.count("maximum context length") == 2
    assert repl.conversation.turns[-1].status == "error"


def test_one_shot_recovers_from_a_context_error(home, openai_env, tmp_path):
    server = openai_env
    db = tmp_path / "o.db"
    for i in range(4):
        out = run_chatrepl(
            "-m", "openai:gpt-test", "--db", str(db), "-c", "-p", f"q{i}", env=child_env()
        )
        assert out.returncode == 0, out.stderr
    too_long = {"error": {"message": "maximum context length exceeded"}}
    server.push(Status(400, too_long), Answer(Text("Gist.")), Reply(text="Answered."))
    out = run_chatrepl("--db", str(db), "-c", "-p", "last", env=child_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Answered.\n"
    assert "compacting" in out.stderr and "Compacted" in out.stderr
    sent = json.dumps(server.last["json"]["messages"])
    assert "Gist." in sent
