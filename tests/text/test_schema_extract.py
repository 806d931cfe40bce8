"""The schema reader (inline JSON, a file, llm's concise syntax), the strict form OpenAI wants,
the answer checker, and the fenced-block extraction of -x / --extract-last."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatrepl.extract import fenced_block, fenced_blocks
from chatrepl.schema import SchemaError, concise, mismatch, parse_answer, read, strict


def test_concise_syntax_as_llm_writes_it() -> None:
    assert concise("name, age int, bio: their bio") == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "bio": {"type": "string", "description": "their bio"},
        },
        "required": ["name", "age", "bio"],
    }
    # new lines separate fields when there are any, so a description may hold commas
    schema = concise("score float: from 0, to 1\nok bool")
    assert schema["properties"]["score"] == {"type": "number", "description": "from 0, to 1"}
    assert schema["properties"]["ok"] == {"type": "boolean"}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("name, age integer", "unknown type 'integer': use int, float, bool or str"),
        ("name, name", "names the field 'name' twice"),
        (", ,", "names no field"),
        (": a description only", "has no name before the ':'"),
        ("", "The schema is empty"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "'[1' is not a name"),  # not an object's JSON: read as the concise syntax
    ],
)
def test_schemas_that_cannot_be_read_get_one_sentence(text: str, said: str) -> None:
    with pytest.raises(SchemaError) as caught:
        read(text)
    assert said in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_schema_inline_or_in_a_file(tmp_path: Path) -> None:
    inline = '{"type": "object", "properties": {"x": {"type": "integer"}}}'
    assert read(inline)["properties"]["x"] == {"type": "integer"}
    (tmp_path / "s.json").write_text(inline)
    assert read(str(tmp_path / "s.json")) == json.loads(inline)
    (tmp_path / "s.txt").write_text("title, year int\n")
    assert read(str(tmp_path / "s.txt"))["required"] == ["title", "year"]
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(SchemaError, match=r"bad\.json is not valid JSON"):
        read(str(tmp_path / "bad.json"))


def test_strict_closes_every_object_and_requires_every_property() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "pets": {
                "type": "array",
                "items": {"type": "object", "properties": {"kind": {"type": "string"}}},
            },
        },
        "required": ["name"],
    }
    out = strict(schema)
    assert out["additionalProperties"] is False
    assert out["required"] == ["name", "pets"]
    item = out["properties"]["pets"]["items"]
    assert item == {
        "type": "object",
        "properties": {"kind": {"type": "string"}},
        "additionalProperties": False,
        "required": ["kind"],
    }
    assert schema["required"] == ["name"]  # the original is left as it was


def test_answers_checked_against_a_schema() -> None:
    schema = concise("name, age int, ok bool")
    assert parse_answer('{"name": "Ada", "age": 36, "ok": true}', schema)["age"] == 36
    assert parse_answer('```json\n{"name": "A", "age": 1, "ok": false}\n```', schema)["ok"] is False
    cases = {
        '{"name": "Ada", "ok": true}': "lacks the field 'age'",
        '{"name": "Ada", "age": "36", "ok": true}': "the field 'age' should be a whole number, not text",
        '{"name": "Ada", "age": true, "ok": true}': "should be a whole number, not true or false",
        "[1]": "the answer should be an object, not a list",
        "Sure! Here it is": "The answer is not JSON",
    }
    for answer, said in cases.items():
        with pytest.raises(SchemaError) as caught:
            parse_answer(answer, schema)
        assert said in str(caught.value), answer


def test_the_checker_covers_items_enum_and_closed_objects() -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}},
            "mood": {"enum": ["happy", "sad"]},
        },
        "additionalProperties": False,
    }
    assert mismatch({"tags": ["a"], "mood": "sad"}, schema) is None
    assert "item 2 of the field 'tags' should be text" in str(mismatch({"tags": ["a", 2]}, schema))
    assert 'not one of "happy", "sad"' in str(mismatch({"mood": "meh"}, schema))
    assert "the field 'extra', which the schema does not name" in str(
        mismatch({"extra": 1}, schema)
    )
    assert mismatch(3.0, {"type": "integer"}) is None
    assert mismatch(None, {"type": ["string", "null"]}) is None


def test_fenced_blocks_first_and_last() -> None:
    text = (
        "Here:\n\n```python\nprint(1)\n```\n\nand\n\n````\nnested ``` fence\n````\n\n"
        "~~~sh\nls\n~~~\n"
    )
    assert fenced_blocks(text) == ["print(1)\n", "nested ``` fence\n", "ls\n"]
    assert fenced_block(text) == "print(1)\n"
    assert fenced_block(text, last=True) == "ls\n"
    assert fenced_block("no code here") is None
    assert fenced_block("x ```py\nprint(1)\n``` y") is None  # a fence starts a line
    assert fenced_block("```\r\nwin\r\n```\r\n") == "win\n"
