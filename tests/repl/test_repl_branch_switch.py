"""Switching to a branch that itself branches (issue 23, item 9): `/alt N` and `/switch N` land
at the newest turn of that branch, wherever in it the newest turn is, with a store and
without."""

from __future__ import annotations

import pytest
from harness import Harness, make

from chatrepl.conversation import Conversation
from chatrepl.providers.registry import get_backend
from chatrepl.store import Store


def branched(c: Conversation) -> dict[str, str]:
    """one → two → three, then two-b beside two (newer than three), then back on two's branch
    a retry of three (three-b, the newest turn under one); then one-b beside one, the head.
    The newest turn under one is three-b, though one's newest child is two-b."""
    ids = {}
    for text in ("one", "two", "three"):
        ids[text] = c.prompt(text).text() and c.turns[-1].id
    c.undo()
    c.undo()
    c.prompt("two-b").text()
    ids["two-b"] = c.turns[-1].id
    c.switch(ids["two"])
    assert c.turns[-1].id == ids["three"]
    again = c.retry()
    assert again is not None
    again.text()
    ids["three-b"] = again.id
    while c.turns:
        c.undo()
    c.prompt("one-b").text()
    ids["one-b"] = c.turns[-1].id
    return ids


@pytest.mark.parametrize("saved", [True, False], ids=["store", "memory"])
def test_switching_lands_at_the_newest_turn_of_the_branch(tmp_path, saved) -> None:
    c = Conversation(get_backend("echo"), store=Store(tmp_path / "b.db") if saved else None)
    ids = branched(c)
    c.switch(ids["one"])
    assert [t.prompt for t in c.turns] == ["one", "two", "three"]
    assert c.turns[-1].id == ids["three-b"]


def test_alt_and_switch_in_the_repl_land_at_the_newest_turn(tmp_path) -> None:
    h = Harness(make(Store(tmp_path / "r.db")), None)
    ids = branched(h.conversation)
    out = h.run("/alt 1")  # one's branch, from one-b
    assert "Switched to alternative 1 of 2" in out
    assert h.conversation.turns[-1].id == ids["three-b"]

    nodes = [n.id for n in h.conversation.tree()]
    h.run(f"/switch {nodes.index(ids['one-b']) + 1}")  # back to one-b
    assert h.conversation.turns[-1].id == ids["one-b"]
    out = h.run(f"/switch {nodes.index(ids['one']) + 1}")
    assert "3 turns on the path" in out
    assert h.conversation.turns[-1].id == ids["three-b"]
