"""Markdown export reads well; JSON export re-imports losslessly."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatrepl.errors import ChatreplError
from chatrepl.export import FORMAT_VERSION, close_fences, from_json, to_json, to_markdown
from chatrepl.records import CallRecord, ConversationSummary, Part, TurnRecord
from chatrepl.store import Store

CID = "01JD8X0000AAAABBBBCCCCDDDD"


def summary(**kw: object) -> ConversationSummary:
    base = ConversationSummary(
        id=CID,
        title="Goat names",
        title_source="user",
        model="openai:gpt-4o-mini",
        system="You are a goat",
        created="2025-01-31T14:02:05.123+00:00",
        updated="2025-01-31T14:05:00.000+00:00",
    )
    return replace(base, **kw)


def turn(n: int, **kw: object) -> TurnRecord:
    base = TurnRecord(
        id=f"01JD8X0000AAAABBBBCCCCDD{n:02d}",
        conversation_id=CID,
        parent_id=f"01JD8X0000AAAABBBBCCCCDD{n - 1:02d}" if n > 1 else None,
        model="openai:gpt-4o-mini",
        prompt=f"prompt {n}",
        system="You are a goat",
        response=f"answer {n}",
        options={},
        input_tokens=10,
        output_tokens=20,
        status="complete",
        error=None,
        started=f"2025-01-31T14:0{n}:00.000+00:00",
        duration_ms=1500,
        ttft_ms=200,
    )
    return replace(base, **kw)


# --- Markdown ------------------------------------------------------------------------------------


def test_markdown_has_title_model_persona_and_each_turn() -> None:
    text = to_markdown(summary(), [turn(1), turn(2)])
    lines = text.splitlines()
    assert lines[0] == "# Goat names"
    assert f"- id: `{CID}`" in lines
    assert "- model: `openai:gpt-4o-mini`" in lines
    assert "- started: 2025-01-31 14:02:05 UTC" in lines
    assert "- turns: 2" in lines
    assert "- tokens: 20 in, 40 out" in lines
    assert text.count("> **Persona:** You are a goat") == 1  # said once, while it stays
    assert "## User · 2025-01-31 14:01:00 UTC" in lines
    assert lines.count("## Assistant · `openai:gpt-4o-mini`") == 2
    assert text.index("prompt 1") < text.index("answer 1") < text.index("prompt 2")
    assert text.endswith("answer 2\n")


def test_markdown_says_how_each_unfinished_turn_ended() -> None:
    turns = [
        turn(1, status="interrupted", response="half an ans"),
        turn(2, status="error", response="", error="The server failed\n(500)."),
        turn(3, status="pending", response=""),
        turn(4, status="pending", response="cut"),
    ]
    text = to_markdown(summary(), turns)
    assert "half an ans\n\n*(interrupted: the answer stopped here)*" in text
    assert "*(failed: The server failed (500).)*" in text
    assert "*(no answer was saved)*" in text
    assert "cut\n\n*(cut off: chatrepl stopped while this answer streamed)*" in text


def test_markdown_shows_the_path_and_notes_persona_changes() -> None:
    path = [
        turn(1),
        turn(3, system=None, parent_id=turn(1).id),
        turn(4, system="Be brief", model="anthropic:claude-haiku-4-5"),
    ]
    every = [path[0], turn(2, prompt="taken back"), *path[1:]]
    text = to_markdown(summary(title=None), path)
    assert text.startswith("# Untitled conversation\n")
    assert "taken back" not in text
    assert "- turns: 3" in text
    assert "- model: `openai:gpt-4o-mini`, `anthropic:claude-haiku-4-5`" in text
    assert text.index("> *(persona cleared)*") < text.index("> **Persona:** Be brief")
    assert "## Assistant · `anthropic:claude-haiku-4-5`" in text
    # With every branch: the other one follows, saying where it branches off.
    text = to_markdown(summary(title=None), path, every)
    assert "## Other branches" in text and "### Branch 2 (after turn 1)" in text
    assert text.index("taken back") > text.index("## Other branches")


def test_markdown_keeps_a_prompts_own_headings_below_the_turns_heading() -> None:
    text = to_markdown(summary(), [turn(1, prompt="# Title\n\n## Part\nnot # a heading")])
    assert "### Title" in text and "#### Part" in text and "not # a heading" in text
    assert "\n# Title" not in text


def test_markdown_shows_tool_calls_and_results() -> None:
    parts = [
        Part("prompt", "weather?"),
        Part("tool_call", "", {"id": "c1", "name": "weather", "arguments": {"city": "Paris"}}, 1),
        Part("tool_result", "sunny", {"call_id": "c1", "name": "weather", "is_error": False}, 1),
        Part("text", "It is sunny.", {}, 2),
    ]
    text = to_markdown(summary(), [turn(1, parts=parts, response="It is sunny.")])
    assert '- tool call `weather`: `{"city": "Paris"}`' in text
    assert "- result of `weather`:" in text and "sunny" in text
    assert text.index("sunny\n```") < text.index("It is sunny.")


def test_an_answer_cut_off_inside_a_code_block_does_not_swallow_the_rest() -> None:
    cut = "Here:\n\n```python\nprint('hi')"
    text = to_markdown(summary(), [turn(1, response=cut, status="interrupted"), turn(2)])
    assert "print('hi')\n```\n\n*(interrupted" in text
    assert text.count("```") == 2


@pytest.mark.parametrize(
    ("text", "closed"),
    [
        ("plain", "plain"),
        ("```\ncode\n```", "```\ncode\n```"),
        ("```sh\nls", "```sh\nls\n```"),
        ("````\n```\ninner", "````\n```\ninner\n````"),  # a shorter fence does not close it
        ("~~~\n```\nstill open", "~~~\n```\nstill open\n~~~"),
        ("```\na\n``` not a close", "```\na\n``` not a close\n```"),
        ("```\na\n```\n\n```js\nb", "```\na\n```\n\n```js\nb\n```"),
    ],
)
def test_close_fences(text: str, closed: str) -> None:
    assert close_fences(text) == closed


# --- JSON ----------------------------------------------------------------------------------------


def test_json_export_keeps_everything() -> None:
    parts = [
        Part("prompt", "prompt 2"),
        Part("reasoning", "hmm", {"signature": "sig", "provider": "anthropic"}, 1),
        Part("text", "answer 2", {}, 1),
    ]
    calls = [CallRecord(1, "openai:gpt-4o-mini", "stop", 10, 20, 5, 0.001, 1500, 200)]
    turns = [
        turn(1, options={"temperature": 0.2}),
        turn(2, parent_id=None, parts=parts, calls=calls),
    ]
    data = to_json(summary(head=turns[1].id), turns)
    assert data["chatrepl_export"] == FORMAT_VERSION
    assert data["conversation"] == {
        "id": CID,
        "title": "Goat names",
        "model": "openai:gpt-4o-mini",
        "system": "You are a goat",
        "created": "2025-01-31T14:02:05.123+00:00",
        "updated": "2025-01-31T14:05:00.000+00:00",
        "title_source": "user",
        "head": turns[1].id,
        "forked_from": None,
    }
    assert len(data["turns"]) == 2 and data["turns"][1]["parts"][1]["kind"] == "reasoning"
    assert set(data["turns"][0]) == {
        "id",
        "parent_id",
        "parts",
        "calls",
        "kind",
        "model",
        "prompt",
        "system",
        "response",
        "options",
        "input_tokens",
        "output_tokens",
        "status",
        "error",
        "started",
        "duration_ms",
        "ttft_ms",
    }
    back_summary, back = from_json(json.loads(json.dumps(data)))
    assert back_summary == summary(head=turns[1].id)
    assert back[1] == turns[1]
    # a turn exported without parts gets its prompt and answer as parts
    assert back[0] == replace(
        turns[0], parts=[Part("prompt", "prompt 1"), Part("text", "answer 1", call=1)]
    )


def test_format_1_exports_still_import_and_undone_turns_become_branches() -> None:
    data = json.loads(json.dumps(to_json(summary(), [turn(1), turn(2), turn(3)])))
    data["chatrepl_export"] = 1
    for t in data["turns"]:
        for key in ("parent_id", "parts", "calls", "kind"):
            del t[key]
        t["undone"] = False
    data["turns"][1]["undone"] = True  # /retry of turn 2 made turn 3 in the first release
    del data["conversation"]["head"], data["conversation"]["forked_from"]
    s, turns = from_json(data)
    assert [t.parent_id for t in turns] == [None, turn(1).id, turn(1).id]
    assert s.head == turn(3).id
    assert turns[1].parts == [Part("prompt", "prompt 2"), Part("text", "answer 2", call=1)]


def test_from_json_normalises_lower_case_ids() -> None:
    data = to_json(summary(), [turn(1)])
    data["conversation"]["id"] = CID.lower()
    data["turns"][0]["id"] = data["turns"][0]["id"].lower()
    s, turns = from_json(data)
    assert s.id == CID and turns[0].id == turn(1).id and turns[0].conversation_id == CID


def test_from_json_fills_optional_fields_of_a_hand_written_export() -> None:
    data = {
        "chatrepl_export": 1,
        "conversation": {"id": CID, "model": "echo:echo", "created": "x", "updated": "y"},
        "turns": [{"id": turn(1).id, "model": "echo:echo", "prompt": "hi", "started": "x"}],
    }
    s, turns = from_json(data)
    assert s.title is None and s.system is None
    assert turns[0].status == "complete" and turns[0].response == "" and turns[0].options == {}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: [], "not a chatrepl JSON export"),
        (lambda d: {"x": 1}, "not a chatrepl JSON export"),
        (lambda d: {**d, "chatrepl_export": 99}, "format 99"),
        (lambda d: {**d, "conversation": None}, "has no conversation"),
        (lambda d: d["conversation"].pop("model") and d, "has no model"),
        (lambda d: d["conversation"].update(id="nope") or d, "conversation id is not a ULID"),
        (lambda d: d["conversation"].update(title=3) or d, "title is not text"),
        (lambda d: {**d, "turns": "x"}, "no list of turns"),
        (lambda d: {**d, "turns": ["x"]}, "turn 1 is not an object"),
        (lambda d: d["turns"][1].pop("prompt") and d, "turn 2 has no prompt"),
        (lambda d: d["turns"][0].update(input_tokens="7") or d, "turn 1 has a wrong input_tokens"),
        (lambda d: d["turns"][0].update(input_tokens=True) or d, "wrong input_tokens"),
        (lambda d: d["turns"][0].update(parts=[{"kind": 3}]) or d, "a part of turn 1 is wrong"),
        (lambda d: d["turns"][0].update(calls=[{"index": "1"}]) or d, "model call of turn 1"),
        (
            lambda d: d["turns"][1].update(parent_id="01JD8X0000AAAABBBBCCCCDD77") or d,
            "unknown parent",
        ),
        (lambda d: d["conversation"].update(head="01JD8X0000AAAABBBBCCCCDD77") or d, "its head"),
        (lambda d: d["turns"][0].update(status="done") or d, "unknown status 'done'"),
        (lambda d: d["turns"][0].update(id="1") or d, "the id of turn 1 is not a ULID"),
    ],
)
def test_from_json_names_what_is_damaged(damage, message: str) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(json.dumps(to_json(summary(), [turn(1), turn(2)])))
    with pytest.raises(ChatreplError, match=message.replace("(", r"\(")):
        from_json(damage(data))


# --- through a database: export → import gives back the records themselves -----------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)
_tokens = st.one_of(st.none(), st.integers(0, 10**9))
_kinds = st.sampled_from(["reasoning", "text", "refusal", "tool_call", "tool_result", "notice"])


@st.composite
def _parts(draw: st.DrawFn, prompt: str) -> list[Part]:
    parts = [Part("prompt", prompt)]
    for _ in range(draw(st.integers(0, 4))):
        data = draw(
            st.dictionaries(st.sampled_from(["id", "name", "signature"]), _text, max_size=2)
        )
        parts.append(Part(draw(_kinds), draw(_text), data, draw(st.integers(1, 3))))
    return parts


@st.composite
def _turns(draw: st.DrawFn, cid: str) -> list[TurnRecord]:
    from chatrepl.ids import new_id

    out: list[TurnRecord] = []
    for i in range(draw(st.integers(1, 5))):
        status = draw(st.sampled_from(["complete", "interrupted", "error", "pending", "cut_off"]))
        prompt = draw(_text)
        parent = draw(st.sampled_from([None] + [t.id for t in out])) if out else None
        calls = [
            CallRecord(
                n,
                "echo:echo",
                draw(st.sampled_from([None, "stop", "length"])),
                draw(_tokens),
                draw(_tokens),
                draw(_tokens),
                None,
                draw(_tokens),
                None,
            )
            for n in range(1, draw(st.integers(0, 2)) + 1)
        ]
        out.append(
            TurnRecord(
                id=new_id(),
                conversation_id=cid,
                parent_id=parent,
                model=draw(st.sampled_from(["echo:echo", "openai:gpt-4o", "ollama:q:7b"])),
                prompt=prompt,
                system=draw(st.one_of(st.none(), _text)),
                response=draw(_text),
                options=draw(
                    st.dictionaries(
                        st.sampled_from(["temperature", "max_tokens", "top_p", "stop"]),
                        st.one_of(st.floats(0, 2), st.integers(0, 4096), _text),
                        max_size=3,
                    )
                ),
                input_tokens=draw(_tokens),
                output_tokens=draw(_tokens),
                status=status,
                error=draw(_text) if status == "error" else None,
                started=f"2025-01-31T14:0{i}:00.000+00:00",
                duration_ms=draw(st.one_of(st.none(), st.integers(0, 10**7))),
                ttft_ms=draw(st.one_of(st.none(), st.integers(0, 10**6))),
                parts=draw(_parts(prompt)),
                calls=calls,
            )
        )
    return out


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(title=st.one_of(st.none(), _text), persona=st.one_of(st.none(), _text), data=st.data())
def test_json_round_trip_through_two_databases_gives_back_the_records(
    tmp_path: Path, title: str | None, persona: str | None, data: st.DataObject
) -> None:
    from chatrepl.ids import new_id

    cid = new_id()
    turns = data.draw(_turns(cid))
    s = ConversationSummary(
        id=cid,
        title=title,
        title_source="model" if title else None,
        model="echo:echo",
        system=persona,
        created="2025-01-31T14:02:05.123+00:00",
        updated="2025-02-01T08:00:00.000+00:00",
        head=data.draw(st.sampled_from([t.id for t in turns])),
    )
    first = Store(tmp_path / f"{cid}-a.db")
    assert first.import_conversation(s, turns)
    exported = json.dumps(to_json(first.summary(cid), first.turns(cid, all_branches=True)))
    second = Store(tmp_path / f"{cid}-b.db")
    assert second.import_conversation(*from_json(json.loads(exported)))
    # Compared with the originals, not with another export: nothing may be dropped.
    assert second.turns(cid, all_branches=True) == turns
    back = second.summary(cid)
    assert (back.title, back.title_source, back.system, back.head, back.created) == (
        s.title,
        s.title_source,
        s.system,
        s.head,
        s.created,
    )
    assert [t.id for t in second.turns(cid)] == [t.id for t in first.turns(cid)]
