"""Tool.from_function: the JSON schema from type hints and docstrings, and calling the tool."""

from __future__ import annotations

import enum
import re
from typing import Annotated, Literal, Optional

import pytest

from chatrepl.errors import ToolError
from chatrepl.records import ToolSpec
from chatrepl.tools.function import WIRE_NAME, Tool, parse_docstring, wire_name


def get_weather(city: str, days: int = 1, metric: bool = True) -> str:
    """Get the weather forecast for a city.

    Uses the national service where there is one.

    Args:
        city: the city's name, e.g. Paris.
        days: how many days ahead
            (at most 7).
        metric: Celsius when true.
    """
    return f"{city}: sunny for {days} day(s), metric={metric}"


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def kinds(
    a: float,
    b: Optional[str],  # noqa: UP045 - Optional is what the test is about
    c: int | None = None,
    d: list[int] | None = None,
    e: dict[str, float] | None = None,
    f: Literal["x", "y"] = "x",
    g: Colour = Colour.RED,
    h: Annotated[str, "said in the hint"] = "",
    i: tuple[str, ...] = (),
    j=3,
) -> dict:
    """Kinds."""
    return {"a": a, "b": b}


def test_schema_from_hints_and_docstring() -> None:
    tool = Tool.from_function(get_weather)
    assert tool.name == "get_weather"
    assert (
        tool.description
        == "Get the weather forecast for a city. Uses the national service where there is one."
    )
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "the city's name, e.g. Paris."},
            "days": {
                "type": "integer",
                "description": "how many days ahead (at most 7).",
                "default": 1,
            },
            "metric": {"type": "boolean", "description": "Celsius when true.", "default": True},
        },
        "required": ["city"],
    }
    assert tool.to_spec() == ToolSpec("get_weather", tool.description, tool.parameters)


def test_schema_of_each_kind_of_hint() -> None:
    props = Tool.from_function(kinds).parameters["properties"]
    assert props["a"] == {"type": "number"}
    assert props["b"] == {"type": ["string", "null"]}
    assert props["c"] == {"type": ["integer", "null"], "default": None}
    assert props["d"] == {"type": ["array", "null"], "items": {"type": "integer"}, "default": None}
    assert props["e"]["additionalProperties"] == {"type": "number"}
    assert props["e"]["type"] == ["object", "null"]
    assert props["f"] == {"type": "string", "enum": ["x", "y"], "default": "x"}
    assert props["g"] == {"type": "string", "enum": ["red", "blue"]}  # an Enum default is not JSON
    assert props["h"] == {"type": "string", "description": "said in the hint", "default": ""}
    assert props["i"]["type"] == "array" and props["i"]["items"] == {"type": "string"}
    assert props["j"] == {"default": 3}
    assert Tool.from_function(kinds).parameters["required"] == ["a", "b"]


def test_rest_style_docstring() -> None:
    description, params = parse_docstring(
        "Add two numbers.\n\n:param a: the first\n:param int b: the second\n    and last\n:returns: a sum"
    )
    assert description == "Add two numbers."
    assert params == {"a": "the first", "b": "the second and last"}


def test_calling_checks_arguments_and_turns_results_into_text() -> None:
    tool = Tool.from_function(get_weather)
    assert tool.call({"city": "Oslo", "days": 2}) == "Oslo: sunny for 2 day(s), metric=True"
    with pytest.raises(ToolError, match="missing required argument.*city"):
        tool.call({})
    with pytest.raises(ToolError, match="unknown argument town"):
        tool.call({"city": "Oslo", "town": "x"})
    assert Tool.from_function(kinds).call({"a": 1.5, "b": None}) == '{"a": 1.5, "b": null}'


def test_coroutine_functions_run_to_completion() -> None:
    async def double(n: int) -> int:
        """Twice n."""
        return n * 2

    assert Tool.from_function(double).call({"n": 21}) == "42"


@pytest.mark.parametrize(
    "name", ["time.get_current_time", "a b/c", "x" * 80, "ünïcode.tool", "", "s." + "y" * 70]
)
def test_wire_names_are_accepted_by_every_provider(name: str) -> None:
    assert WIRE_NAME.match(wire_name(name))


def test_wire_names_stay_distinct_when_cut() -> None:
    assert wire_name("s." + "a" * 80 + "1") != wire_name("s." + "a" * 80 + "2")
    assert wire_name("time.get_current_time") == "time__get_current_time"
    assert re.fullmatch(r"[a-z_]+", wire_name("now"))
