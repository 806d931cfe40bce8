"""Conversation tables that a user reads ids back from, and a newcomer's first hour: blank
prompts, misspelt commands, errors that name the right service and offer /retry only where it
helps, /model without a key, /export to odd places, headings in exports, /list 0, and a long
answer shown again on /resume."""

from __future__ import annotations

import io
import os
import re

import pytest
from conftest import run_chatrepl
from fakeserver import Status

import chatrepl
from chatrepl.ids import CROCKFORD
from chatrepl.records import ConversationRecord
from chatrepl.store import Store
from chatrepl.tables import conversation_table, short_ids

SGR = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def same_millisecond_ids(n: int, shared: int = 14) -> list[str]:
    """``n`` ids that share their first ``shared`` characters (made in the same millisecond,
    with randomness that differs late)."""
    stem = "01JD8X0000" + "A" * (shared - 10)
    return [
        stem + "".join(CROCKFORD[(i * 7 + j) % 32] for j in range(26 - shared)) for i in range(n)
    ]


def seeded(path, ids: list[str], title: str = "t") -> Store:
    store = Store(path)
    for k, cid in enumerate(ids):
        store.save_conversation(
            ConversationRecord(
                cid, f"{title} {k}", "user", "echo:echo", None, "2025-01-01T00:00:00", "x"
            )
        )
    return store


# --- tables ------------------------------------------------------------------------------------


def test_short_ids_are_unique_among_the_rows_and_at_least_eight_long():
    ids = same_millisecond_ids(12)
    short = short_ids(ids)
    assert len(set(short.values())) == len(ids)
    assert all(len(s) >= 8 and i.startswith(s) for i, s in short.items())
    assert all(
        len(s) == 8 for s in short_ids(["01JD8XAA" + "0" * 18, "01JD8XBB" + "0" * 18]).values()
    )


def test_short_ids_are_unique_in_the_whole_database(tmp_path):
    ids = same_millisecond_ids(3, shared=16)
    store = seeded(tmp_path / "d.db", ids)
    shown = short_ids(ids[:1], store)[ids[0]]  # one row shown, two more alike in the database
    assert store.resolve(shown) == ids[0]


def render(table, width: int) -> list[str]:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, record=True)
    console.print(table)
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_a_narrow_terminal_cuts_titles_never_ids_or_numbers(tmp_path, width):
    ids = same_millisecond_ids(15)
    store = seeded(tmp_path / "d.db", ids, title="a very long title that goes on " * 8)
    rows = store.recent(100)
    lines = render(conversation_table(rows, width, lambda s: "yesterday", store), width)
    assert lines[0].split()[:3] == ["#", "id", "title"] and "turns" in lines[0]
    body = lines[1:]
    assert len(body) == len(rows)  # one line each: nothing wrapped
    shown = []
    for n, (line, row) in enumerate(zip(body, rows, strict=True), 1):
        cells = line.split()
        assert cells[0] == str(n), line  # the number is there
        assert row.id.startswith(cells[1]) and len(cells[1]) >= 8, line
        assert store.resolve(cells[1]) == row.id  # what /resume and -r take back
        assert "…" in line  # the title gave way
        shown.append(cells[1])
        assert len(line) <= width
    assert len(set(shown)) == len(shown)


def test_repl_list_over_same_millisecond_ids_on_a_narrow_screen(tmp_path):
    from rich.console import Console

    from chatrepl.repl.app import Repl

    ids = same_millisecond_ids(25)
    store = seeded(tmp_path / "d.db", ids, title="long " * 40)
    out = io.StringIO()
    repl = Repl(
        store,
        chatrepl.get_model("echo").conversation(store=store),
        console=Console(file=out, width=50),
    )
    repl.handle("/list 0")
    lines = [SGR.sub("", line) for line in out.getvalue().splitlines()]
    rows = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert len(rows) == 25 and [int(r[0]) for r in rows] == list(range(1, 26))
    assert len({r[1] for r in rows}) == 25
    # and the number takes the user back to it
    repl.handle("/resume 25")
    assert repl.conversation.id == repl.listed[24]


def test_list_zero_means_all_in_the_repl_as_in_the_shell(tmp_path):
    from rich.console import Console

    from chatrepl.repl.app import Repl

    store = seeded(tmp_path / "d.db", same_millisecond_ids(30))
    repl = Repl(
        store,
        chatrepl.get_model("echo").conversation(store=store),
        console=Console(file=io.StringIO(), width=120),
    )
    repl.handle("/list 0")
    assert len(repl.listed) == 30
    repl.handle("/list 3")
    assert len(repl.listed) == 3
    out = io.StringIO()
    repl.console = Console(file=out, width=120)
    for bad in ("/list -1", "/list x", "/list nan", "/list " + "9" * 5000):
        repl.handle(bad)
    assert "Something went wrong" not in out.getvalue()
    repl.handle("/list " + "9" * 50)
    assert len(repl.listed) == 30


# --- a newcomer's first hour ------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t", "\u200b\u2060", "\ufeff"])
def test_a_blank_prompt_is_refused_like_an_empty_stdin(prompt, tmp_path):
    db = tmp_path / "d.db"
    out = run_chatrepl("-m", "echo:echo", "--db", str(db), "-p", prompt)
    assert out.returncode == 2 and out.stderr.startswith("chatrepl: nothing to answer"), out
    piped = run_chatrepl("-m", "echo:echo", "--db", str(db), input=prompt)
    assert piped.returncode == 2 and piped.stderr.startswith("chatrepl: nothing to answer")
    assert not db.exists()


@pytest.mark.parametrize(
    "typo, meant",
    [
        ("lst", "list"),
        ("serach", "search"),
        ("shwo", "show"),
        ("modles", "models"),
        ("delte", "delete"),
    ],
)
def test_a_misspelt_command_suggests_the_right_one(typo, meant):
    out = run_chatrepl(typo)
    assert out.returncode == 2
    assert f"chatrepl {meant}" in out.stderr and "Traceback" not in out.stderr


def repl_over(server, home, store, model: str):
    from rich.console import Console

    from chatrepl.repl.app import Repl

    out = io.StringIO()
    conversation = chatrepl.get_model(model).conversation(store=store)
    return Repl(store, conversation, console=Console(file=out, width=200)), out


@pytest.mark.parametrize(
    "status, retry",
    [(401, False), (404, False), (400, False), (402, False), (500, True), (503, True)],
)
def test_retry_is_offered_only_where_it_can_help(openai_env, home, tmp_path, status, retry):
    server = openai_env
    store = Store(tmp_path / "d.db")
    repl, out = repl_over(server, home, store, "openai:g")
    server.push(*[Status(status)] * 3)
    repl.handle("hello")
    said = out.getvalue()
    assert f"HTTP {status}" in said
    assert ("/retry" in said) is retry, said


def test_an_error_names_the_service_configured(server, home, tmp_path):
    home.mkdir(parents=True)
    (home / "config.toml").write_text(
        f'[providers.groq]\ntype = "openai"\nbase_url = "{server.openai_url}"\nneeds_key = false\n'
    )
    server.push(Status(404))
    out = run_chatrepl("-m", "groq:m", "-p", "hi", "--db", str(tmp_path / "d.db"))
    assert out.stderr.startswith("chatrepl: groq has no model") and "OpenAI" not in out.stderr


def test_model_warns_when_the_provider_has_no_key(home, tmp_path, monkeypatch):
    store = Store(tmp_path / "d.db")
    repl, out = repl_over(None, home, store, "echo")
    repl.handle("/model anthropic:claude-haiku-4-5")
    said = out.getvalue()
    assert "anthropic has no API key" in said and "ANTHROPIC_API_KEY" in said
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-x")
    out.truncate(0)
    repl.handle("/model anthropic:claude-haiku-4-5")
    assert "no API key" not in out.getvalue()


def test_export_refuses_a_missing_folder_and_a_fifo(home, tmp_path):
    store = Store(tmp_path / "d.db")
    repl, out = repl_over(None, home, store, "echo")
    repl.handle("hello there")
    repl.handle(f"/export {tmp_path / 'no' / 'such' / 'folder' / 'x.md'}")
    assert "does not exist" in out.getvalue()
    assert not (tmp_path / "no").exists()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    repl.handle(f"/export {fifo}")  # would block forever if opened for writing
    assert "not a regular file" in out.getvalue()
    repl.handle(f"/export {tmp_path / 'ok.md'}")
    assert (tmp_path / "ok.md").read_text().startswith("# ")
    assert "Something went wrong" not in out.getvalue()


def test_the_markdown_export_keeps_a_prompts_headings_below_the_turns(tmp_path):
    store = Store(tmp_path / "d.db")
    c = chatrepl.get_model("echo").conversation(store=store)
    c.prompt("# Big heading\n\n## Smaller\n\ntext\n\n```\n# not a heading in code\n```").text()
    out = run_chatrepl("export", c.id, "--db", str(tmp_path / "d.db"))
    lines = out.stdout.splitlines()
    turn_level = min(len(m.group(1)) for line in lines if (m := re.match(r"(#+) User", line)))
    own = [line for line in lines if re.match(r"#+ (Big heading|Smaller)", line)]
    assert own and all(len(line.split()[0]) > turn_level for line in own), lines
    assert "# not a heading in code" in lines  # code is left as it is


def test_a_long_resumed_answer_is_shortened_with_the_way_to_see_it_all(tmp_path, home):
    from rich.console import Console

    from chatrepl.conversation import Conversation
    from chatrepl.repl.app import Repl

    store = Store(tmp_path / "d.db")
    c = chatrepl.get_model("echo").conversation(store=store)
    long = "\n".join(f"line{i} of the answer" for i in range(500))
    c.prompt(long).text()
    out = io.StringIO()
    repl = Repl(store, Conversation.load(store, c.id), console=Console(file=out, width=100))
    repl.show_resumed()
    said = out.getvalue()
    assert "line0 of" in said and "line499 of" not in said
    assert "chatrepl show" in said and "more line" in said
    assert said.count("\n") < 120
    short = "just a few words"
    c.prompt(short).text()
    out.truncate(0)
    repl.conversation = c
    repl.show_resumed(1)
    assert short in out.getvalue() and "more line" not in out.getvalue()


def test_the_saved_as_line_shows_a_prefix_resume_takes_back(tmp_path):
    ids = same_millisecond_ids(3, shared=18)
    store = seeded(tmp_path / "d.db", ids)
    from chatrepl.tables import unique_prefix

    for cid in ids:
        assert store.resolve(unique_prefix(store, cid)) == cid
