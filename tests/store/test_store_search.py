"""Search semantics: every word must match (not any), accents and case are ignored, ``-n 0``
means all; whole words, and word prefixes once prefix search lands.

Each matching turn here is in a conversation of its own, so these hold whether search gives one
row per turn or one row per conversation.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from chatrepl import manage
from chatrepl.ids import new_id
from chatrepl.records import ConversationRecord, Part, TurnRecord
from chatrepl.store import Store

pytestmark = pytest.mark.timeout(60)


def add(store: Store, prompt: str, answer: str = "ok", title: str | None = None) -> str:
    """A conversation of one finished turn; its id."""
    cid, tid = new_id(), new_id()
    c = ConversationRecord(
        cid, title, "user" if title else None, "echo:echo", None, "2025-01-01", "2025-01-01", tid
    )
    turn = TurnRecord(
        tid, cid, None, "echo:echo", prompt, None, answer, {}, None, None, "complete", None,
        "2025-01-01T00:00:00+00:00", None, None,
        parts=[Part("prompt", prompt), Part("text", answer, {}, 1)],
    )  # fmt: skip
    assert store.import_conversation(c, [turn])
    return cid


def found(store: Store, query: str, n: int = 50) -> set[str]:
    return {h.conversation_id for h in store.search(query, n)}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "search.db")


def test_every_word_must_match_not_any(store: Store) -> None:
    both = add(store, "the alpaca grazes", "on the hillside")
    add(store, "an alpaca alone")
    add(store, "a hillside alone")
    assert found(store, "alpaca hillside") == {both}  # in the prompt and the answer of one turn
    assert found(store, "hillside alpaca") == {both}  # in any order
    assert found(store, "alpaca hillside zebra") == set()  # one word missing: no match


def test_accents_and_case_are_ignored_both_ways(store: Store) -> None:
    cafe = add(store, "Un café crème à Zürich")
    naive = add(store, "a naive question about façades")
    assert found(store, "cafe creme") == {cafe}
    assert found(store, "CAFÉ zurich") == {cafe}
    assert found(store, "zürich") == {cafe}
    assert found(store, "naïve") == {naive}
    assert found(store, "FACADES") == {naive}


def test_whole_words_are_found_and_quotes_or_operators_are_plain_words(store: Store) -> None:
    goat = add(store, "goat milk AND cheese")
    add(store, "sheep milk")
    assert found(store, "goat") == {goat}
    assert found(store, "goat OR sheep") == set()  # OR is a word to find, not an operator
    assert found(store, "NOT sheep") == set()
    assert found(store, '"goat" "milk"') == {goat}
    assert found(store, "and") == {goat}  # AND is a word too


def test_n_zero_gives_every_hit(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = {add(store, f"llama number {i}") for i in range(27)}
    path = str(store.path)
    store.close()

    def search(*argv: str) -> list[dict]:
        out = io.StringIO()
        with monkeypatch.context() as mp:
            mp.setattr(sys, "stdout", out)
            assert manage.main(["search", *argv, "--json", "--db", path]) == 0
        return json.loads(out.getvalue())

    assert {h["conversation_id"] for h in search("llama", "-n", "0")} == ids
    assert len(search("llama")) == 20  # the default
    assert len(search("llama", "-n", "5")) == 5


# --- word prefixes ---------------------------------------------------------------------------


def test_a_word_finds_the_words_it_begins(store: Store) -> None:
    capy = add(store, "the capybara is large")
    assert found(store, "capy") == {capy}
    assert found(store, "CAPYB") == {capy}


def test_prefixes_still_need_every_word_and_ignore_accents(store: Store) -> None:
    both = add(store, "a capybara in the café")
    add(store, "a capybara alone")
    assert found(store, "capy caf") == {both}
    assert found(store, "capy cafe") == {both}


def test_a_prefix_never_matches_inside_a_word(store: Store) -> None:
    """Prefix or not, ``bara`` is not the start of a word in ``capybara``."""
    add(store, "the capybara is large")
    assert found(store, "bara") == set()
