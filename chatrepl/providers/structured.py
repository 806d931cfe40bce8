"""Structured output on the wire: the ``schema`` option (a JSON schema, set by ``--schema``)
becomes each vendor's way of asking for JSON that fits it.

- OpenAI-compatible: ``response_format`` ``json_schema``, strict (every object closed, every
  property required);
- Anthropic: one tool whose ``input_schema`` is the schema, forced with ``tool_choice``; the
  answer is that tool call's input, turned back into answer text here, so the turn reads (and
  is saved) as a JSON answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from ..records import Event, Finish, TextDelta, ToolCall

#: The option carrying the schema; never sent as it is.
OPTION = "schema"
#: The forced tool's name on Anthropic.
TOOL_NAME = "answer"
#: The schema's name in OpenAI's ``response_format``.
SCHEMA_NAME = "answer"


def conflict(model: Any, options: dict[str, Any], tools: Any) -> str | None:
    """Why ``model`` cannot answer with a schema given these ``options`` and ``tools``, in one
    sentence, or ``None``: said before anything is sent."""
    how = getattr(model, "structured_output", None)
    name = getattr(model, "full_name", str(model))
    if how is None:
        return (
            f"{name} cannot give structured output (--schema): use an OpenAI-compatible or an "
            "Anthropic model."
        )
    if how == "tool":
        if tools:
            return (
                f"{name} answers with a schema through a forced tool, which cannot be combined "
                "with other tools (-T): drop one of the two."
            )
        thinking = options.get("thinking_budget") or options.get("reasoning_effort") not in (
            None,
            "none",
        )
        if thinking:
            return (
                f"{name} cannot think (thinking_budget, reasoning_effort) while a tool is forced "
                "for the schema: drop one of the two."
            )
    return None


def openai_body(body: dict[str, Any]) -> dict[str, Any]:
    """Replace the ``schema`` option of an OpenAI request ``body`` with ``response_format``."""
    from ..schema import strict

    schema = body.pop(OPTION, None)
    if isinstance(schema, dict):
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "schema": strict(schema), "strict": True},
        }
    return body


def anthropic_body(body: dict[str, Any]) -> dict[str, Any]:
    """Replace the ``schema`` option of an Anthropic request ``body`` with a forced tool."""
    schema = body.pop(OPTION, None)
    if isinstance(schema, dict):
        tool = {
            "name": TOOL_NAME,
            "description": "Give the answer as this tool's input, which follows the schema.",
            "input_schema": schema if schema.get("type") == "object" else _wrapped(schema),
        }
        body["tools"] = [*body.get("tools", []), tool]
        body["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
    return body


def _wrapped(schema: dict[str, Any]) -> dict[str, Any]:
    """A tool's input must be an object: a schema of another type is put in ``value``."""
    return {"type": "object", "properties": {"value": schema}, "required": ["value"]}


def tool_answer(events: Iterable[Event], schema: Any) -> Iterator[Event]:
    """Anthropic's events with the forced tool's call turned into answer text (its input as
    JSON) and the call's ending into a normal one."""
    for event in events:
        if isinstance(event, ToolCall) and event.name == TOOL_NAME:
            value: Any = event.arguments
            if isinstance(schema, dict) and schema.get("type") != "object":
                value = value.get("value") if isinstance(value, dict) else value
            yield TextDelta(json.dumps(value, ensure_ascii=False))
        elif isinstance(event, Finish) and event.reason == "tool_calls":
            yield Finish("stop")
        else:
            yield event
