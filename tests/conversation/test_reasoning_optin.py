"""Reasoning is left out of the Markdown export and of search unless asked for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env
from fakeserver import Answer, Text, Think

import chatrepl
from chatrepl.export import to_markdown
from chatrepl.store import Store

pytest_plugins = ("pgserver",)


def saved(openai_env, tmp_path: Path) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    db = tmp_path / "r.db"
    openai_env.push(
        Answer(
            Think("Let me ponder the zanzibar question.", shape="reasoning_content"), Text("42.")
        )
    )
    c = chatrepl.get_model("openai:gpt-test").conversation(store=Store(db))
    assert c.prompt("The answer?").text() == "42."
    return db, c.id


def test_the_markdown_export_shows_reasoning_only_when_asked(openai_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, cid = saved(openai_env, tmp_path)
    store = Store(db)
    plain = to_markdown(store.summary(cid), store.turns(cid))
    assert "ponder" not in plain and "42." in plain
    shown = to_markdown(store.summary(cid), store.turns(cid), reasoning=True)
    assert "> *Reasoning:* Let me ponder the zanzibar question." in shown
    assert shown.index("ponder") < shown.index("42.")
    out = subprocess.run(
        [sys.executable, "-m", "chatrepl", "export", cid, "--reasoning", "--db", str(db)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert out.returncode == 0 and "ponder" in out.stdout, out.stderr


def test_search_finds_reasoning_only_when_asked(openai_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, cid = saved(openai_env, tmp_path)
    store = Store(db)
    assert store.search("zanzibar ponder") == []
    (hit,) = store.search("Zanzibar ponder", reasoning=True)
    assert hit.conversation_id == cid and "[zanzibar]" in hit.snippet
    assert store.search("zanzibar nowhere", reasoning=True) == []  # every word must be there
    assert store.search("zan%", reasoning=True) == []  # LIKE's wildcards are plain characters
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatrepl",
            "search",
            "--reasoning",
            "ponder",
            "--json",
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert [h["conversation_id"] for h in json.loads(out.stdout)] == [cid]


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_reasoning_search_finds_every_conversation_however_many_turns_match_in_one(
    engine: str, openai_env, tmp_path: Path, request: pytest.FixtureRequest
) -> None:  # type: ignore[no-untyped-def]
    """An older conversation is found even when a newer one has many matching turns, and
    each conversation is listed once, with its newest matching turn."""
    store = Store(tmp_path / "r.db" if engine == "sqlite" else request.getfixturevalue("pg_url"))
    model = chatrepl.get_model("openai:gpt-test")
    older = model.conversation(store=store)
    openai_env.push(Answer(Think("the zanzibar riddle, older"), Text("old.")))
    older.prompt("Before?").text()
    newer = model.conversation(store=store)
    for n in range(12):
        openai_env.push(Answer(Think(f"zanzibar again, step {n}"), Text(f"{n}.")))
        newer.prompt(f"Step {n}?").text()
    hits = store.search("zanzibar", n=2, reasoning=True)
    assert [h.conversation_id for h in hits] == [newer.id, older.id]
    assert hits[0].response_id == newer.head and "step 11" in hits[0].snippet
    assert [h.conversation_id for h in store.search("zanzibar", n=1, reasoning=True)] == [newer.id]
