"""The store's promises that mutation testing found unchecked (benchmarks/mutation/RESULTS.md).

Each test says what a library caller or the user can observe: what a reopened store returns,
what the database file holds, which sentence a refusal gives.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chatrepl.errors import AmbiguousIdError, NotFoundError, StoreError
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


def test_add_turns_adds_the_new_ones_and_moves_the_head(tmp_path: Path, store: Store) -> None:
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


def test_reasoning_search_marks_the_word_in_a_snippet_of_about_twelve_words(
    tmp_path: Path, store: Store
) -> None:
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
    store: Store,
) -> None:
    literal = _reasoned(store, r"costs 50% of a_b in c:\temp")
    _reasoned(store, "costs 500 of axb in c:temp")
    assert {h.conversation_id for h in store.search("50%", reasoning=True)} == {literal}
    assert {h.conversation_id for h in store.search("a_b", reasoning=True)} == {literal}
    assert {h.conversation_id for h in store.search(r"c:\temp", reasoning=True)} == {literal}


def test_reasoning_hits_follow_the_indexed_ones_once_per_conversation_up_to_n(
    tmp_path: Path,
    store: Store,
) -> None:
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


# --- saving while an answer streams ---------------------------------------------------------------


def test_progress_saved_while_streaming_is_what_another_process_reads(
    tmp_path: Path, store: Store
) -> None:
    cid = new_id()
    t = turn(cid, "tell me", response="", status="pending", parts=[Part("prompt", "tell me")])
    store.begin_turn(conv(cid, None), t)
    parts = [Part("prompt", "tell me"), Part("reasoning", "hm", {}, 1), Part("text", "Once", {}, 1)]
    store.save_progress(t.id, "Once", 1, parts)
    parts[2] = Part("text", "Once upon", {}, 1)
    parts.append(Part("tool_call", "", {"id": "c1", "name": "now"}, 1))
    store.save_progress(t.id, "Once upon", 2, parts)  # only the parts from 2 on are written
    (seen,) = Store(tmp_path / "s.db").turns(cid)
    assert (seen.response, seen.status) == ("Once upon", "pending")
    assert seen.parts == parts
    assert [h.response_id for h in Store(tmp_path / "s.db").search("upon")] == [t.id]


def test_a_finished_turns_parts_are_numbered_from_zero_in_the_file(
    tmp_path: Path, store: Store
) -> None:
    cid = new_id()
    t = turn(cid, "tell me", response="", status="pending", parts=[Part("prompt", "tell me")])
    store.begin_turn(conv(cid, None), t)
    t.response, t.status = "done", "complete"
    t.parts = [Part("prompt", "tell me"), Part("text", "done", {}, 1)]
    store.finish_turn(t)
    store.close()
    con = sqlite3.connect(tmp_path / "s.db")
    rows = con.execute("SELECT position, kind FROM parts ORDER BY position").fetchall()
    con.close()
    assert rows == [(0, "prompt"), (1, "text")]  # as a prompt saved by begin_turn is


# --- titles, ids, listings ----------------------------------------------------------------------


def test_a_stale_title_in_memory_never_overwrites_a_saved_one(tmp_path: Path) -> None:
    mine = Store(tmp_path / "s.db")
    cid = new_id()
    a = turn(cid, "first")
    mine.begin_turn(conv(cid, None), a)
    Store(tmp_path / "s.db").set_title(cid, "Renamed elsewhere")
    stale = conv(cid, a.id, title="Old title", title_source="model")
    mine.save_conversation(stale)
    b = turn(cid, "second", parent=a.id)
    mine.begin_turn(stale, b)
    row = Store(tmp_path / "s.db").conversation(cid)
    assert (row.title, row.title_source) == ("Renamed elsewhere", "user")
    mine.save_conversation(stale, rename=True)  # unless asked to
    assert Store(tmp_path / "s.db").conversation(cid).title == "Old title"


def test_a_title_set_without_a_source_is_the_users(tmp_path: Path, store: Store) -> None:
    cid = new_id()
    store.save_conversation(conv(cid, None, title="auto", title_source="model"))
    store.set_title(cid, "Mine")
    assert Store(tmp_path / "s.db").summary(cid).title_source == "user"


IDS = [f"01JD8X{n:02d}" + "ABCDEFGHJKMNPQRSTV" for n in range(6)]  # six ids sharing "01JD8X"


def test_an_ambiguous_prefix_names_five_of_the_ids_it_matched(tmp_path: Path, store: Store) -> None:
    for cid in IDS:
        store.save_conversation(conv(cid, None))
    with pytest.raises(AmbiguousIdError) as caught:
        store.resolve("01jd8x")
    shown = ", ".join(f"{cid[:10]}…" for cid in IDS[:5])
    assert str(caught.value) == (
        f"'01JD8X' matches several conversations ({shown}): type more of the id."
    )
    assert caught.value.candidates == IDS


def test_two_conversations_sharing_a_prefix_are_ambiguous(tmp_path: Path, store: Store) -> None:
    for cid in IDS[:2]:
        store.save_conversation(conv(cid, None))
    with pytest.raises(AmbiguousIdError):
        store.resolve("01JD8X")
    assert store.resolve(IDS[1][:8]) == IDS[1]


def test_an_id_longer_than_an_id_is_not_an_id(tmp_path: Path, store: Store) -> None:
    store.save_conversation(conv(IDS[0], None))
    assert store.resolve(IDS[0].lower()) == IDS[0]  # the whole id, in any case
    with pytest.raises(NotFoundError, match="is not a conversation id: ids are 26 letters"):
        store.resolve(IDS[0] + "0")
    with pytest.raises(NotFoundError, match="is not a conversation id"):
        store.resolve("   ")


def test_an_unknown_turn_id_is_shown_shortened_to_forty_characters(
    tmp_path: Path, store: Store
) -> None:
    with pytest.raises(NotFoundError) as caught:
        store.turn("T" * 100)
    assert str(caught.value) == f"No turn has the id {'T' * 39}…."


def test_a_conversation_without_turns_is_listed_with_no_tokens(
    tmp_path: Path, store: Store
) -> None:
    assert store.last_id() is None  # an empty database
    cid = new_id()
    store.save_conversation(conv(cid, None))
    (s,) = store.recent()
    assert (s.id, s.turns, s.input_tokens, s.output_tokens) == (cid, 0, 0, 0)
    assert store.last_id() == cid


def test_recent_and_search_give_twenty_by_default(tmp_path: Path, store: Store) -> None:
    for n in range(21):
        cid = new_id()
        a = turn(cid, f"llama number {n}")
        store.import_conversation(conv(cid, a.id, updated=f"2025-01-01T00:00:{n:02d}"), [a])
    assert len(store.recent()) == 20
    assert len(store.search("llama")) == 20
    assert len(store.search("llama", n=21)) == 21


# --- attachments ---------------------------------------------------------------------------------


def test_an_attachment_is_kept_once_by_hash_and_read_back(tmp_path: Path, store: Store) -> None:
    store.put_attachment("ab" * 32, "image/png", b"\x89PNG first")
    store.put_attachment("ab" * 32, "image/png", b"other bytes, same hash")  # kept once
    store.put_attachment("cd" * 32, "text/plain", b"second")
    again = Store(tmp_path / "s.db")
    assert again.attachment("ab" * 32) == b"\x89PNG first"
    assert again.attachment("cd" * 32) == b"second"
    assert again.attachment("ef" * 32) is None


# --- what search finds besides prompt and answer --------------------------------------------------


def _with_parts(store: Store, *parts: Part) -> str:
    cid = new_id()
    t = turn(cid, "q", response="a", parts=[Part("prompt", "q"), *parts])
    store.import_conversation(conv(cid, t.id), [t])
    return cid


def test_search_finds_tool_results_and_attachment_names_only(tmp_path: Path, store: Store) -> None:
    cid = _with_parts(
        store,
        Part("attachment", "caption text", {"name": "quarterly.pdf", "sha256": "ab" * 32}),
        Part("tool_call", "callarg", {"id": "c", "name": "lookup"}, 1),
        Part("tool_result", "the result says wombat", {"call_id": "c", "name": "lookup"}, 1),
        Part("attachment", "", {"name": "second.txt"}),
    )
    nameless = _with_parts(store, Part("attachment", "", {"sha256": "cd" * 32}))
    assert {h.conversation_id for h in store.search("wombat")} == {cid}
    assert {h.conversation_id for h in store.search("quarterly")} == {cid}
    assert {h.conversation_id for h in store.search("second")} == {cid}
    assert {h.conversation_id for h in store.search("wombat second")} == {cid}
    for absent in ("caption", "callarg", "lookup", "none", "xxxx"):
        assert store.search(absent) == [], absent
    assert nameless not in {h.conversation_id for h in store.search("sha256")}


# --- search words -------------------------------------------------------------------------------


def _said(store: Store, text: str) -> str:
    cid = new_id()
    t = turn(cid, text)
    store.import_conversation(conv(cid, t.id), [t])
    return cid


def test_an_unclosed_quote_or_a_quote_inside_a_word_is_a_separator(
    tmp_path: Path, store: Store
) -> None:
    cid = _said(store, "they say hello to the goats")
    assert {h.conversation_id for h in store.search('"goat')} == {cid}
    assert {h.conversation_id for h in store.search('say"hello')} == {cid}
    assert store.search('""') == [] and store.search('" "') == []


def test_a_one_letter_word_is_searched_and_quoted_it_stays_whole(
    tmp_path: Path, store: Store
) -> None:
    letter = _said(store, "X marks the spot")
    xylo = _said(store, "a xylophone")
    assert {h.conversation_id for h in store.search("X")} == {letter, xylo}
    assert {h.conversation_id for h in store.search('"X"')} == {letter}


def test_whole_word_matches_come_before_prefix_matches(tmp_path: Path, store: Store) -> None:
    whole = _said(store, "far away on the ridge a mountain goat stood still for a long while")
    _said(store, "mountains goats")  # newer, shorter: the better bm25 score as prefixes
    (hit,) = store.search("mountain goat", n=1)
    assert hit.conversation_id == whole


def test_when_whole_words_fill_the_hits_only_whole_words_are_marked(
    tmp_path: Path, store: Store
) -> None:
    _said(store, "one goat and two goats")
    (hit,) = store.search("goat", n=1)  # the prefix search is not run
    assert hit.snippet == "one [goat] and two goats\nok"  # the prompt, then the answer
    (hit,) = store.search("goat", n=5)  # fewer whole-word hits than asked: prefixes too
    assert hit.snippet == "one [goat] and two [goats]\nok"


# --- reasoning is searched only when asked --------------------------------------------------------


def test_reasoning_is_not_searched_unless_asked(tmp_path: Path, store: Store) -> None:
    cid = _reasoned(store, "pondering the narwhal")
    assert store.search("narwhal") == []
    assert [h.conversation_id for h in store.search("narwhal", reasoning=True)] == [cid]


# --- turns arriving children first, or hanging from a turn that is not there ---------------------


def test_new_turns_given_children_first_are_chained_to_a_saved_parent(
    tmp_path: Path, store: Store
) -> None:
    cid = new_id()
    root = turn(cid, "one")
    store.import_conversation(conv(cid, root.id), [root])
    two = turn(cid, "two", parent=root.id)
    three = turn(cid, "three", parent=two.id)
    four = turn(cid, "four", parent=three.id)
    assert store.add_turns(conv(cid, four.id), [four, three, two, root]) == 3
    again = Store(tmp_path / "s.db")
    assert [t.prompt for t in again.turns(cid)] == ["one", "two", "three", "four"]
    assert again.summary(cid).turns == 4


def test_a_turn_whose_parent_is_missing_is_saved_as_a_first_turn(
    tmp_path: Path, store: Store
) -> None:
    cid = new_id()
    orphan = turn(cid, "hand-edited export", parent=new_id())
    assert store.import_conversation(conv(cid, orphan.id), [orphan])
    again = Store(tmp_path / "s.db")
    assert again.summary(cid).turns == 1
    assert [t.prompt for t in again.turns(cid)] == ["hand-edited export"]


def test_part_data_that_is_not_json_is_saved_as_text(tmp_path: Path, store: Store) -> None:
    from datetime import UTC, datetime

    cid = new_id()
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    t = turn(cid, "q", parts=[Part("prompt", "q"), Part("tool_result", "r", {"at": when}, 1)])
    store.import_conversation(conv(cid, t.id), [t])
    (seen,) = Store(tmp_path / "s.db").turns(cid)
    assert seen.parts[1].data == {"at": "2025-01-02 03:04:05+00:00"}


# --- failures as one sentence ----------------------------------------------------------------------


def test_a_failed_write_that_is_not_a_full_disk_is_not_called_one(
    tmp_path: Path, store: Store
) -> None:
    cid = new_id()
    a = turn(cid, "one")
    twin = turn(cid, "two", tid=a.id)  # a damaged export: one turn id twice
    with pytest.raises(StoreError) as caught:
        store.import_conversation(conv(cid, a.id), [a, twin])
    assert "full" not in str(caught.value) and "UNIQUE constraint failed" in str(caught.value)
    assert store.count() == (0, 0)  # nothing half-imported
    gone = turn(cid, "never saved")
    with pytest.raises(StoreError, match="is no longer in") as caught:
        store.finish_turn(gone)
    assert "full" not in str(caught.value)


def test_a_damaged_chatrepl_database_is_called_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store(path).close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = delete")  # everything into the main file
    con.close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * 3996  # the schema page, after the header
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as caught:
        Store(path)
    assert str(caught.value) == (
        f"{path} is corrupt or not a chatrepl database: move it aside (it was left untouched) "
        "and chatrepl will start a new one."
    )
    assert path.read_bytes() == bytes(data)


def test_a_turn_finalised_after_a_full_disk_is_not_written_again(
    tmp_path: Path, store: Store
) -> None:
    cid = new_id()
    t = turn(cid, "tell me", response="", status="pending", parts=[Part("prompt", "tell me")])
    store.begin_turn(conv(cid, None), t)
    pages = store.db.execute_sql("PRAGMA page_count").fetchone()[0]
    store.db.execute_sql(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL, as on a full disk
    t.response, t.status = "a long answer " * 2000, "complete"
    t.parts = [Part("prompt", "tell me"), Part("text", t.response, {}, 1)]
    with pytest.raises(StoreError, match="full, so the end of this answer is not saved yet"):
        store.finish_turn(t)
    store.db.execute_sql("PRAGMA max_page_count = 1073741823")  # room again
    store.set_title(cid, "next thing")  # finalises the turn first
    assert Store(tmp_path / "s.db").turn(t.id).status == "complete"
    store.delete(cid)
    other = new_id()
    store.save_conversation(conv(other, None))  # the deleted turn is not written again
    assert [s.id for s in Store(tmp_path / "s.db").recent()] == [other]


def test_the_turns_of_an_unknown_conversation_are_none(tmp_path: Path, store: Store) -> None:
    assert store.turns(new_id()) == [] and store.turns(new_id(), all_branches=True) == []
    assert store.tree(new_id()) == [] and store.path_to(None) == []


def test_part_data_another_program_wrote_as_a_non_object_reads_as_empty(
    tmp_path: Path, store: Store
) -> None:
    cid = new_id()
    t = turn(cid, "q")
    store.import_conversation(conv(cid, t.id), [t])
    store.close()
    con = sqlite3.connect(tmp_path / "s.db")
    con.execute("UPDATE parts SET data = '[1, 2]' WHERE kind = 'prompt'")
    con.execute("UPDATE parts SET data = '{not json' WHERE kind = 'text'")
    con.execute("UPDATE turns SET options = '\"text\"'")
    con.commit()
    con.close()
    (seen,) = Store(tmp_path / "s.db").turns(cid)
    assert [p.data for p in seen.parts] == [{}, {}] and seen.options == {}


# --- the migration from the first release, and opening -------------------------------------------


def test_a_migrated_first_release_turn_has_its_parts_and_call_in_order(tmp_path: Path) -> None:
    from old_schemas import first_release_db

    path = tmp_path / "old.db"
    first_release_db(path)
    store = Store(path)
    cid = "01JD8X0000AAAABBBBCCCCDDDD"
    every = store.turns(cid, all_branches=True)
    first = every[0]
    assert first.parts == [Part("prompt", "one", {}, 0), Part("text", "answer one", {}, 1)]
    assert [c.index for c in first.calls] == [1]
    # every turn, not only the first: its prompt, its answer when it had one, its one call
    answers = [("one", "answer one"), ("two", "bad answer"), ("two", "good answer")]
    answers += [("three", "thr"), ("four", "")]
    for t, (prompt, answer) in zip(every, answers, strict=True):
        expected = [Part("prompt", prompt, {}, 0)]
        expected += [Part("text", answer, {}, 1)] if answer else []
        assert t.parts == expected, t.prompt
        assert [(c.index, c.model, c.input_tokens, c.output_tokens) for c in t.calls] == [
            (1, "echo:echo", 3, 4)
        ]
        assert [(c.duration_ms, c.ttft_ms) for c in t.calls] == [(1200, 80)]
    assert store.summary(cid).turns == 2  # the head is the second turn on its path
    store.close()
    con = sqlite3.connect(path)
    rows = con.execute("SELECT position, data FROM parts WHERE turn_seq = 1").fetchall()
    con.close()
    assert rows == [(0, "{}"), (1, "{}")]


def test_an_empty_file_given_as_the_database_becomes_one(tmp_path: Path) -> None:
    path = tmp_path / "touched.db"
    path.touch()
    store = Store(path)
    cid = new_id()
    store.save_conversation(conv(cid, None))
    assert Store(path).recent()[0].id == cid


def test_a_database_being_written_by_another_program_opens_and_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chatrepl.dialect

    monkeypatch.setattr(chatrepl.dialect, "BUSY_TIMEOUT_S", 1)
    path = tmp_path / "s.db"
    cid = new_id()
    Store(path).save_conversation(conv(cid, None, title="before"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program's write lock, held
    holder.execute("UPDATE conversations SET title = 'not committed yet'")
    try:
        assert Store(path, create=False).conversation(cid).title == "before"
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_merging_the_same_pending_turns_again_changes_nothing(tmp_path: Path) -> None:
    dst = Store(tmp_path / "dst.db")
    cid = new_id()
    a = turn(cid, "one", response="ab", status="pending")
    b = turn(cid, "two", parent=a.id, response="cd", status="pending")
    dst.merge(conv(cid, b.id), [a, b])
    assert dst.merge(conv(cid, b.id), [a, b]) == ("kept", 0, 0)
    ended = [turn(cid, t.prompt, t.parent_id, t.response + "!", tid=t.id) for t in (a, b)]
    assert dst.merge(conv(cid, b.id), ended) == ("kept", 0, 2)
    dst.close()
    con = sqlite3.connect(tmp_path / "dst.db")
    rows = con.execute("SELECT DISTINCT position FROM parts ORDER BY position").fetchall()
    con.close()
    assert rows == [(0,), (1,)]  # rewritten parts are numbered from 0, as at first


def test_a_write_sqlite_refuses_as_read_only_is_one_sentence(tmp_path: Path, store: Store) -> None:
    store.db.execute_sql("PRAGMA query_only = 1")  # SQLite answers as for a read-only file
    with pytest.raises(StoreError) as caught:
        store.save_conversation(conv(new_id(), None))
    assert str(caught.value) == (
        f"Cannot write to {store.path}: check its permissions and free space."
    )


def test_reasoning_search_takes_quoted_several_and_one_letter_words(
    tmp_path: Path, store: Store
) -> None:
    both = _reasoned(store, "the walrus and the carpenter")
    _reasoned(store, "a walrus alone, no one else")
    assert [h.conversation_id for h in store.search('"walrus" carpenter', reasoning=True)] == [both]
    marked = _reasoned(store, "x marks it")
    assert [h.conversation_id for h in store.search("X", reasoning=True)] == [marked]
    (hit,) = store.search('"carpenter"', reasoning=True)
    (t,) = store.turns(both)
    assert (hit.response_id, hit.started, hit.title) == (t.id, t.started, "R")


def test_a_reasoning_snippet_is_sixty_characters_either_side_of_the_first_match(
    tmp_path: Path,
    store: Store,
) -> None:
    ten = "abcdefghi "
    _reasoned(store, ten * 7 + "Quokka" + " " + ten * 7 + "quokka again")
    (hit,) = store.search("quokka", reasoning=True)
    assert hit.snippet == "…" + (ten * 6).strip() + " [Quokka] " + (ten * 6).strip() + "…"
    _reasoned(store, "Numbat " + "b" * 59)  # at the very start; exactly 60 after: no ellipsis
    (hit,) = store.search("numbat", reasoning=True)
    assert hit.snippet == "[Numbat] " + "b" * 59
    _reasoned(store, "x dingo " + "c" * 60)  # 61 characters after: cut
    (hit,) = store.search("dingo", reasoning=True)
    assert hit.snippet == "x [dingo] " + "c" * 59 + "…"


# --- opening: a URL is a server, the connection's settings, waiting for a lock --------------------


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_postgres_url_is_never_taken_for_a_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match="Cannot reach the PostgreSQL server at 127.0.0.1:1"):
        Store(f"{scheme}://nobody@127.0.0.1:1/chat")
    assert list(tmp_path.iterdir()) == []  # no SQLite file made of the URL


def test_the_connection_syncs_normally_in_wal_with_foreign_keys(
    tmp_path: Path, store: Store
) -> None:
    assert store.db.execute_sql("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store.db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1


def test_a_write_waits_for_a_lock_another_program_holds_briefly(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "s.db"
    store = Store(path)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE conversations SET title = 'x'")  # nothing to update: the lock only
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        cid = new_id()
        store.save_conversation(conv(cid, None))  # waits for the lock, then writes
    finally:
        release.join()
        holder.close()
    assert Store(path).conversation(cid).id == cid


def test_a_missing_database_opened_to_read_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        Store(tmp_path / "none.db", create=False)
    assert str(caught.value) == (
        f"There is no chatrepl database at {tmp_path / 'none.db'} yet: nothing saved."
    )


# --- the end of an answer kept for the next chatrepl (a full disk at the final write) -------------


def _fill_up(store: Store) -> None:
    """The database can grow no more (SQLITE_FULL, as on a full disk), for this connection."""
    pages = store.db.execute_sql("PRAGMA page_count").fetchone()[0]
    store.db.execute_sql(f"PRAGMA max_page_count = {pages}")


def _unfinished_on_a_full_disk(path: Path) -> TurnRecord:
    """A store at ``path`` whose final write of a turn failed on a full disk, closed (its last
    try fails too): the turn as it ended, saved nowhere yet."""
    store = Store(path)
    cid = new_id()
    t = turn(cid, "tell me", response="", status="pending", parts=[Part("prompt", "tell me")])
    store.begin_turn(conv(cid, None), t)
    _fill_up(store)
    t.response, t.status = "a long answer " * 2000, "complete"
    t.parts = [Part("prompt", "tell me"), Part("text", t.response, {}, 1)]
    with pytest.raises(StoreError, match="full, so the end of this answer is not saved yet"):
        store.finish_turn(t)
    store.close()
    return t


def test_an_end_kept_at_close_is_written_by_the_next_store_s_first_write_then_forgotten(
    tmp_path: Path, home: Path
) -> None:
    # kills __init___3, _18, close_1, _2, _take_kept_1, _4, _6, _8, _9, _written_1, _5
    t = _unfinished_on_a_full_disk(tmp_path / "s.db")
    assert len(list((home / "unsaved").iterdir())) == 1  # kept in the home folder
    later = Store(tmp_path / "s.db")
    assert later.turn(t.id).status == "pending"  # reading writes nothing
    later.save_conversation(conv(new_id(), None))  # the first write writes it first
    seen = Store(tmp_path / "s.db").turn(t.id)
    assert (seen.status, seen.response) == ("complete", t.response)
    assert list((home / "unsaved").iterdir()) == []  # written: forgotten
    later.close()


def test_a_store_that_kept_nothing_leaves_turns_another_kept_for_the_next(
    tmp_path: Path, home: Path
) -> None:
    # kills _written_4 (a store that took no kept turns removing another's file at a write)
    path = tmp_path / "s.db"
    first = Store(path)
    first.save_conversation(conv(new_id(), None))  # looked for kept turns: none
    t = _unfinished_on_a_full_disk(path)  # another chatrepl, meanwhile, keeps one
    first.save_conversation(conv(new_id(), None))
    assert len(list((home / "unsaved").iterdir())) == 1  # still kept
    Store(path).save_conversation(conv(new_id(), None))  # the next chatrepl writes it
    assert Store(path).turn(t.id).status == "complete"
    first.close()


# --- writes to a turn that is gone name it -------------------------------------------------------


def test_a_write_to_a_turn_that_is_gone_names_the_turn(tmp_path: Path, store: Store) -> None:
    # kills finish_turn_10, save_progress_28
    cid = new_id()
    t = turn(cid, "q", status="pending", parts=[Part("prompt", "q")])
    store.begin_turn(conv(cid, None), t)
    store.delete(cid)
    gone = f"The turn {t.id} is no longer in {store.path}: was the database replaced"
    with pytest.raises(StoreError, match=gone):
        store.save_progress(t.id, "so far", 1, [Part("prompt", "q"), Part("text", "so far")])
    with pytest.raises(StoreError, match=gone):
        store.finish_turn(t)


# --- each text stored once: in the parts, the turn's own columns empty ---------------------------


def _own_texts(path: Path) -> dict[str, tuple[str | None, str | None]]:
    """Each turn's own prompt and answer columns in the file, by turn id."""
    con = sqlite3.connect(path)
    rows = con.execute("SELECT id, prompt_override, response_override FROM turns").fetchall()
    con.close()
    return {tid: (prompt, response) for tid, prompt, response in rows}


def test_a_turn_whose_texts_are_its_parts_keeps_them_once_whichever_write_saved_it(
    tmp_path: Path, store: Store
) -> None:
    # kills save_progress_15, _19, _20; _finish_19, _23, _24, _27, _31, _32; _turn_values_8,
    # _9, _12, _16, _17, _19, _20, _23; _override_1; _joined_2
    path = tmp_path / "s.db"
    cid = new_id()
    begun = turn(cid, "tell me", response="", status="pending", parts=[Part("prompt", "tell me")])
    store.begin_turn(conv(cid, None), begun)
    so_far = [Part("prompt", "tell me"), Part("text", "Once", {}, 1)]
    store.save_progress(begun.id, "Once", 1, so_far)
    assert _own_texts(path)[begun.id] == (None, None)
    # an answer in two text parts around a tool call
    ended = turn(cid, "tell me", response="Let me look. Sunny.", tid=begun.id)
    ended.parts = [
        Part("prompt", "tell me"),
        Part("text", "Let me look.", {}, 1),
        Part("tool_call", "", {"id": "c1", "name": "weather"}, 1),
        Part("tool_result", "sunny", {"id": "c1"}, 1),
        Part("text", " Sunny.", {}, 2),
    ]
    store.finish_turn(ended)
    imported = new_id()
    store.import_conversation(conv(imported, None), [turn(imported, "one")])
    pending = turn(imported, "two", response="ab", status="pending")
    store.add_turns(conv(imported, pending.id), [pending])
    grown = turn(imported, "two", response="abc", status="pending", tid=pending.id)
    store.merge(conv(imported, pending.id), [grown])  # rewritten in place
    assert set(_own_texts(path).values()) == {(None, None)}
    (opened,) = store.conversation_at_head(cid)[1]
    assert (opened.prompt, opened.response) == ("tell me", "Let me look. Sunny.")


def test_texts_that_are_not_their_parts_are_kept_by_every_write(
    tmp_path: Path, store: Store
) -> None:
    # kills save_progress_13, _finish_17, _25, _turn_values_7, _10
    cid = new_id()
    bare = turn(cid, "a prompt with no part", response="", status="pending", parts=[])
    store.begin_turn(conv(cid, None), bare)
    assert store.turn(bare.id).prompt == "a prompt with no part"
    store.save_progress(bare.id, "text so far", 0, [])  # an answer streamed without parts
    assert store.turn(bare.id).response == "text so far"
    bare.response, bare.status = "the whole answer", "complete"
    bare.parts = [Part("reasoning", "thought about it", {}, 1)]  # no prompt nor text part
    store.finish_turn(bare)
    seen = Store(tmp_path / "s.db").turn(bare.id)
    assert (seen.prompt, seen.response) == ("a prompt with no part", "the whole answer")
    assert _own_texts(tmp_path / "s.db")[bare.id] == ("a prompt with no part", "the whole answer")


# --- prefixes, first turns, branches -------------------------------------------------------------


def test_a_conversation_opens_by_a_prefix_of_its_id(tmp_path: Path, store: Store) -> None:
    # kills conversation_5, _6, _8 and conversation_at_head_5, _6, _8
    cid = new_id()
    a = turn(cid, "first")
    store.import_conversation(conv(cid, a.id, title="by prefix"), [a])
    assert store.conversation(cid[:8].lower()).title == "by prefix"
    record, path = store.conversation_at_head(cid[:8])
    assert (record.id, [t.id for t in path]) == (cid, [a.id])
    assert store.conversation(cid).id == cid and store.conversation_at_head(cid)[0].id == cid


def test_a_prefix_finds_ids_whatever_letter_follows_it(tmp_path: Path, store: Store) -> None:
    # kills resolve_22 (the range's upper end cut below "Y" and "Z")
    for k, letter in enumerate("0XYZ"):
        cid = f"01JD{k}{letter}" + "ABCDEFGHJKMNPQRSTVWX"
        store.save_conversation(conv(cid, None))
        assert store.resolve(f"01jd{k}") == cid


def test_the_alternatives_to_a_first_turn_are_the_conversation_s_first_turns(
    tmp_path: Path, store: Store
) -> None:
    # kills children_2, _4, _11 (the first turns: no parent)
    cid = new_id()
    a = turn(cid, "one")
    b = turn(cid, "one again")
    c = turn(cid, "two", parent=a.id)
    store.import_conversation(conv(cid, c.id), [a, b, c])
    assert [t.id for t in store.children(None, cid)] == [a.id, b.id]
    assert [t.id for t in store.children(a.id, cid)] == [c.id]


def test_the_newest_turn_of_a_branch_is_found_however_deep_below(
    tmp_path: Path, store: Store
) -> None:
    # kills latest_leaf_26 (only the turn's own children looked at)
    cid = new_id()
    a = turn(cid, "one")
    b = turn(cid, "two", parent=a.id)
    c = turn(cid, "three", parent=b.id)
    d = turn(cid, "four", parent=c.id)
    other = turn(cid, "one again")
    store.import_conversation(conv(cid, d.id), [a, b, c, d, other])
    assert store.latest_leaf(a.id) == d.id
    assert store.latest_leaf(b.id) == d.id
    assert store.latest_leaf(other.id) == other.id


def test_the_newest_turn_below_a_turn_no_longer_saved_is_that_turn(
    tmp_path: Path, store: Store
) -> None:
    # kills latest_leaf_2 (a conversation deleted under a session: nothing below the turn)
    gone = new_id()
    assert store.latest_leaf(gone) == gone


# --- search: nothing for no words; reasoning fills up to n ---------------------------------------


def test_a_query_of_quotes_only_finds_nothing_even_in_reasoning(
    tmp_path: Path, store: Store
) -> None:
    # kills search_5 (a word of just quotes kept: it matches every reasoning)
    _reasoned(store, "some thought")
    assert store.search('""', reasoning=True) == []
    assert store.search('"" ""', reasoning=True) == []


def test_reasoning_hits_fill_up_to_n_past_conversations_already_found(
    tmp_path: Path, store: Store
) -> None:
    # kills search_27 (the reasoning asked for n minus those found, not n plus them)
    thought = _reasoned(store, "an ibex in mind")
    both = _reasoned(store, "ibex again", answer="the ibex answer")  # newer reasoning
    hits = store.search("ibex", n=2, reasoning=True)
    assert [h.conversation_id for h in hits] == [both, thought]


def test_opening_at_the_head_reads_the_parts_and_names_the_conversation(
    tmp_path: Path, store: Store
) -> None:
    # kills conversation_at_head_22 (no conversation id), _34 (the columns read, not the parts)
    cid = new_id()
    a = turn(cid, "words", response="words")
    apart = turn(cid, "column prompt", parent=a.id, response="column answer")
    apart.parts = [Part("prompt", "words"), Part("text", "words", {}, 1)]  # the parts differ
    store.import_conversation(conv(cid, apart.id), [a, apart])
    record, path = store.conversation_at_head(cid)
    assert path == store.path_to(apart.id, texts=False)
    assert [(t.conversation_id, t.prompt, t.response) for t in path] == [
        (cid, "words", "words"),
        (cid, "words", "words"),
    ]
    assert store.path_to(apart.id)[-1].prompt == "column prompt"  # export reads the columns


def test_a_whole_id_is_that_conversation_even_when_a_longer_id_starts_with_it(
    tmp_path: Path, store: Store
) -> None:
    # kills resolve_4 (a whole id looked up as a prefix); a longer id comes from a hand-edited
    # export or another program
    cid = new_id()
    store.save_conversation(conv(cid, None))
    store.save_conversation(conv(cid + "X", None))
    assert store.resolve(cid) == cid


def test_a_pending_turn_brought_up_to_date_by_a_merge_keeps_its_place_in_the_tree(
    tmp_path: Path, store: Store
) -> None:
    # kills _rewrite_turn_5, _6 (the parent rewritten too)
    cid = new_id()
    a = turn(cid, "one")
    b = turn(cid, "two", parent=a.id)
    c = turn(cid, "three", parent=a.id, response="par", status="pending")
    store.merge(conv(cid, c.id), [a, b, c])
    elsewhere = turn(cid, "three", parent=b.id, response="partial, then whole", tid=c.id)
    assert store.merge(conv(cid, c.id), [elsewhere]) == ("kept", 0, 1)
    seen = Store(tmp_path / "s.db").turn(c.id)
    assert (seen.parent_id, seen.response, seen.status) == (a.id, "partial, then whole", "complete")


def test_closing_the_store_in_another_thread_closes_that_thread_s_connection(
    tmp_path: Path,
) -> None:
    # kills close_4, _5 (a thread other than the opener's closing nothing): once every
    # connection to the file is closed, SQLite folds the write-ahead log back and removes it
    import threading

    path = tmp_path / "s.db"
    store = Store(path)
    store.save_conversation(conv(new_id(), None))
    closed, done = threading.Event(), threading.Event()

    def worker() -> None:
        store.recent()  # this thread's own connection
        store.close()
        closed.set()
        done.wait(10)  # the thread lives on

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert closed.wait(10)
        store.close()  # the opener's connection: the last one
        assert not Path(f"{path}-wal").exists()
    finally:
        done.set()
        thread.join()
