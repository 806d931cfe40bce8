"""The store's promises that mutation testing found unchecked (benchmarks/mutation/RESULTS.md).

Each test says what a library caller or the user can observe: what a reopened store returns,
what the database file holds, which sentence a refusal gives.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chatrepl.ids import new_id
from chatrepl.records import CallRecord, ConversationRecord, Part, TurnRecord
from chatrepl.store import Store

pytestmark = pytest.mark.timeout(60)

DAY = "2025-01-01T00:00:00.000+00:00"


def conv(cid: str, head: str | None, updated: str = DAY, **kw: object) -> ConversationRecord:
    fields: dict[str, object] = {
        "title": None,
        "title_source": None,
        "model": "echo:echo",
        "system": None,
    }
    fields.update(kw)
    return ConversationRecord(
        cid,
        fields["title"],  # type: ignore[arg-type]
        fields["title_source"],  # type: ignore[arg-type]
        fields["model"],  # type: ignore[arg-type]
        fields["system"],  # type: ignore[arg-type]
        DAY,
        updated,
        head,
    )


def turn(
    cid: str,
    prompt: str,
    parent: str | None = None,
    response: str = "ok",
    status: str = "complete",
    tid: str | None = None,
    parts: list[Part] | None = None,
) -> TurnRecord:
    """A turn with its prompt and answer parts and one call."""
    return TurnRecord(
        tid or new_id(), cid, parent, "echo:echo", prompt, None, response, {}, 3, 4, status,
        None, DAY, 10, 5,
        parts=parts if parts is not None else [Part("prompt", prompt), Part("text", response, {}, 1)],
        calls=[CallRecord(1, "echo:echo", "stop", 3, 4)],
    )  # fmt: skip


# --- merging another store's history (chatrepl db copy) ---------------------------------------


def test_merge_copies_a_missing_conversation_whole_and_says_new(tmp_path: Path) -> None:
    dst = Store(tmp_path / "dst.db")
    cid = new_id()
    a = turn(cid, "first")
    b = turn(cid, "second", parent=a.id)
    # children before parents: merge must still insert parents first
    assert dst.merge(conv(cid, b.id, title="T", title_source="user"), [b, a]) == ("new", 2, 0)
    again = Store(tmp_path / "dst.db")
    assert [t.prompt for t in again.turns(cid)] == ["first", "second"]
    assert again.turns(cid)[1].parent_id == a.id
    assert again.conversation(cid).title == "T"


def test_merge_takes_a_newer_row_and_keeps_a_newer_one_here(tmp_path: Path) -> None:
    dst = Store(tmp_path / "dst.db")
    cid = new_id()
    a = turn(cid, "first")
    dst.merge(conv(cid, a.id, updated="2025-01-02", title="here"), [a])
    older = conv(cid, a.id, updated="2025-01-01", title="older")
    assert dst.merge(older, [a]) == ("kept", 0, 0)
    assert Store(tmp_path / "dst.db").conversation(cid).title == "here"
    newer = conv(cid, a.id, updated="2025-01-03", title="newer", system="be brief")
    assert dst.merge(newer, [a]) == ("updated", 0, 0)
    row = Store(tmp_path / "dst.db").conversation(cid)
    assert (row.title, row.system, row.updated) == ("newer", "be brief", "2025-01-03")
    assert dst.merge(newer, [a]) == ("kept", 0, 0)  # the same row again: nothing changes


def test_merge_adds_only_missing_turns_and_completes_pending_ones(tmp_path: Path) -> None:
    dst = Store(tmp_path / "dst.db")
    cid = new_id()
    a = turn(cid, "first", response="par", status="pending", parts=[Part("prompt", "first")])
    dst.merge(conv(cid, a.id), [a])
    done = turn(cid, "first", response="partial then whole", tid=a.id)
    done.parts.append(Part("tool_result", "the tool said zebra", {"name": "t"}, 1))
    b = turn(cid, "second", parent=a.id)
    assert dst.merge(conv(cid, b.id), [done, b]) == ("kept", 1, 1)
    got = Store(tmp_path / "dst.db").turns(cid, all_branches=True)
    assert [(t.prompt, t.response, t.status) for t in got] == [
        ("first", "partial then whole", "complete"),
        ("second", "ok", "complete"),
    ]
    assert got[0].parts == done.parts and got[0].calls == done.calls
    assert [h.response_id for h in dst.search("zebra")] == [a.id]  # the new text is indexed
    # a pending turn here that grew there (still pending) is brought up to date too
    c = turn(cid, "third", parent=b.id, response="ab", status="pending")
    dst.merge(conv(cid, c.id), [c])
    longer = turn(cid, "third", parent=b.id, response="abc", status="pending", tid=c.id)
    assert dst.merge(conv(cid, c.id), [longer]) == ("kept", 0, 1)
    assert dst.turn(c.id).response == "abc"
    shorter = turn(cid, "third", parent=b.id, response="a", status="pending", tid=c.id)
    assert dst.merge(conv(cid, c.id), [shorter]) == ("kept", 0, 0)  # never shrinks
    # a finished turn here is never overwritten
    changed = turn(cid, "first", response="something else", tid=a.id)
    assert dst.merge(conv(cid, c.id), [changed]) == ("kept", 0, 0)
    assert dst.turn(a.id).response == "partial then whole"


# --- adding turns to an imported conversation (import-llm again) --------------------------------


def test_add_turns_adds_the_new_ones_and_moves_the_head(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    cid = new_id()
    a = turn(cid, "first")
    assert store.import_conversation(conv(cid, a.id), [a])
    assert not store.import_conversation(conv(cid, a.id), [a])  # already here
    assert store.add_turns(conv(cid, a.id), [a]) == 0
    b = turn(cid, "second", parent=a.id)
    later = conv(cid, b.id, updated="2025-02-01", model="other:model", system="persona")
    assert store.add_turns(later, [a, b]) == 1
    again = Store(tmp_path / "s.db")
    assert [t.prompt for t in again.turns(cid)] == ["first", "second"]
    row = again.conversation(cid)
    assert (row.model, row.system, row.head, row.updated) == (
        "other:model",
        "persona",
        b.id,
        "2025-02-01",
    )


# --- search in reasoning (not indexed: scanned) ------------------------------------------------


def _reasoned(store: Store, reasoning: str, answer: str = "ok") -> str:
    cid = new_id()
    t = turn(
        cid,
        "q",
        response=answer,
        parts=[
            Part("prompt", "q"),
            Part("reasoning", reasoning, {}, 1),
            Part("text", answer, {}, 1),
        ],
    )
    store.import_conversation(conv(cid, t.id, title="R"), [t])
    return cid


def test_reasoning_search_marks_the_word_in_a_snippet_of_about_twelve_words(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    long = " ".join(f"w{n}" for n in range(40)) + " the Zanzibar question " + "z " * 40
    cid = _reasoned(store, long)
    (hit,) = store.search("zanzibar", reasoning=True)
    assert hit.conversation_id == cid and hit.title == "R"
    assert "<Zanzibar>" in store.search("zanzibar", marks=("<", ">"), reasoning=True)[0].snippet
    assert hit.snippet.startswith("…") and hit.snippet.endswith("…")
    assert "[Zanzibar]" in hit.snippet and "w0 " not in hit.snippet
    short = _reasoned(store, "tiny quokka")
    (hit,) = store.search("quokka", reasoning=True)
    assert hit.conversation_id == short and hit.snippet == "tiny [quokka]"


def test_reasoning_search_treats_like_wildcards_and_backslashes_as_characters(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "s.db")
    literal = _reasoned(store, r"costs 50% of a_b in c:\temp")
    _reasoned(store, "costs 500 of axb in c:temp")
    assert {h.conversation_id for h in store.search("50%", reasoning=True)} == {literal}
    assert {h.conversation_id for h in store.search("a_b", reasoning=True)} == {literal}
    assert {h.conversation_id for h in store.search(r"c:\temp", reasoning=True)} == {literal}


def test_reasoning_hits_follow_the_indexed_ones_once_per_conversation_up_to_n(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "s.db")
    answered = _reasoned(store, "walrus thoughts", answer="walrus answer")
    thought = [_reasoned(store, f"walrus musing {n}") for n in range(3)]
    hits = store.search("walrus", reasoning=True)
    assert [h.conversation_id for h in hits] == [answered, *reversed(thought)]  # newest first
    assert len(store.search("walrus", n=2, reasoning=True)) == 2
    assert [h.conversation_id for h in store.search("walrus", n=1, reasoning=True)] == [answered]


def test_the_database_file_holds_what_was_merged(tmp_path: Path) -> None:
    dst = Store(tmp_path / "dst.db")
    cid = new_id()
    a = turn(cid, "first")
    dst.merge(conv(cid, a.id), [a])
    dst.close()
    con = sqlite3.connect(tmp_path / "dst.db")
    assert con.execute("SELECT count(*) FROM parts").fetchone()[0] == 2
    assert con.execute("SELECT count(*) FROM calls").fetchone()[0] == 1
    con.close()
