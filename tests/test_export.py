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
from chatrepl.store import ConversationSummary, Store, TurnRecord

CID = "01JD8X0000AAAABBBBCCCCDDDD"


def summary(**kw: object) -> ConversationSummary:
    base = ConversationSummary(
        CID,
        "Goat names",
        "openai:gpt-4o-mini",
        "You are a goat",
        "2025-01-31T14:02:05.123+00:00",
        "2025-01-31T14:05:00.000+00:00",
        0,
        0,
        0,
        "user",
    )
    return replace(base, **kw)


def turn(n: int, **kw: object) -> TurnRecord:
    base = TurnRecord(
        id=f"01JD8X0000AAAABBBBCCCCDD{n:02d}",
        conversation_id=CID,
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
        undone=False,
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


def test_markdown_leaves_out_undone_turns_and_notes_persona_changes() -> None:
    turns = [
        turn(1),
        turn(2, undone=True, prompt="taken back"),
        turn(3, system=None),
        turn(4, system="Be brief", model="anthropic:claude-haiku-4-5"),
    ]
    text = to_markdown(summary(title=None), turns)
    assert text.startswith("# Untitled conversation\n")
    assert "taken back" not in text
    assert "- turns: 3" in text
    assert "- model: `openai:gpt-4o-mini`, `anthropic:claude-haiku-4-5`" in text
    assert text.index("> *(persona cleared)*") < text.index("> **Persona:** Be brief")
    assert "## Assistant · `anthropic:claude-haiku-4-5`" in text


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
    turns = [turn(1, options={"temperature": 0.2}), turn(2, undone=True)]
    data = to_json(summary(), turns)
    assert data["chatrepl_export"] == FORMAT_VERSION
    assert data["conversation"] == {
        "id": CID,
        "title": "Goat names",
        "model": "openai:gpt-4o-mini",
        "system": "You are a goat",
        "created": "2025-01-31T14:02:05.123+00:00",
        "updated": "2025-01-31T14:05:00.000+00:00",
        "title_source": "user",
    }
    assert len(data["turns"]) == 2 and data["turns"][1]["undone"] is True
    assert set(data["turns"][0]) == {
        "id",
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
        "undone",
    }
    back = from_json(json.loads(json.dumps(data)))
    assert back == (summary(), turns)


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
        (lambda d: d["turns"][0].update(undone=1) or d, "turn 1 has a wrong undone"),
        (lambda d: d["turns"][0].update(status="done") or d, "unknown status 'done'"),
        (lambda d: d["turns"][0].update(id="1") or d, "the id of turn 1 is not a ULID"),
    ],
)
def test_from_json_names_what_is_damaged(damage, message: str) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(json.dumps(to_json(summary(), [turn(1), turn(2)])))
    with pytest.raises(ChatreplError, match=message.replace("(", r"\(")):
        from_json(damage(data))


# --- through a database: export → import is the identity -----------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)
_tokens = st.one_of(st.none(), st.integers(0, 10**9))


@st.composite
def _turns(draw: st.DrawFn) -> list[dict[str, object]]:
    n = draw(st.integers(1, 4))
    out = []
    for i in range(n):
        status = draw(st.sampled_from(["complete", "interrupted", "error", "pending"]))
        out.append(
            {
                "prompt": draw(_text),
                "response": draw(_text),
                "system": draw(st.one_of(st.none(), _text)),
                "options": draw(
                    st.dictionaries(
                        st.sampled_from(["temperature", "max_tokens", "top_p", "stop"]),
                        st.one_of(st.floats(0, 2), st.integers(0, 4096), _text),
                        max_size=3,
                    )
                ),
                "input_tokens": draw(_tokens),
                "output_tokens": draw(_tokens),
                "status": status,
                "error": draw(_text) if status == "error" else None,
                "duration_ms": draw(st.one_of(st.none(), st.integers(0, 10**7))),
                "ttft_ms": draw(st.one_of(st.none(), st.integers(0, 10**6))),
                "undone": draw(st.booleans()),
                "model": draw(st.sampled_from(["echo:echo", "openai:gpt-4o", "ollama:q:7b"])),
                "i": i,
            }
        )
    return out


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(title=st.one_of(st.none(), _text), persona=st.one_of(st.none(), _text), rows=_turns())
def test_json_round_trip_through_two_databases_is_identical(
    tmp_path: Path, title: str | None, persona: str | None, rows: list[dict[str, object]]
) -> None:
    from ulid import ULID

    cid = str(ULID())
    s = ConversationSummary(
        cid,
        title,
        "echo:echo",
        persona,
        "2025-01-31T14:02:05.123+00:00",
        "2025-02-01T08:00:00.000+00:00",
        0,
        0,
        0,
        "model" if title else None,
    )
    turns = [
        TurnRecord(
            id=str(ULID()),
            conversation_id=cid,
            started=f"2025-01-31T14:0{r['i']}:00.000+00:00",
            **{k: v for k, v in r.items() if k != "i"},  # type: ignore[arg-type]
        )
        for r in rows
    ]
    first = Store(tmp_path / f"{cid}-a.db")
    assert first.import_turns(s, turns)
    exported = json.dumps(to_json(first.summary(cid), first.turns(cid, include_undone=True)))
    second = Store(tmp_path / f"{cid}-b.db")
    assert second.import_turns(*from_json(json.loads(exported)))
    again = json.dumps(to_json(second.summary(cid), second.turns(cid, include_undone=True)))
    assert again == exported
    assert json.loads(again)["conversation"]["title_source"] == s.title_source
    assert [t.options for t in second.turns(cid, include_undone=True)] == [t.options for t in turns]
