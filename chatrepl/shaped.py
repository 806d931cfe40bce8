"""What one-shot prints instead of the streamed answer when asked for a shape: the answer checked
against ``--schema`` and printed as JSON, only a fenced code block (``-x``, ``--extract-last``),
or the whole response as one JSON object (``--json``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .conversation import Response


def emit(args: argparse.Namespace, response: Response, error: str | None = None) -> str | None:
    """Print ``response`` as ``args`` ask; the sentence of what went wrong (an answer that does
    not match the schema), or ``None``."""
    from .extract import fenced_block
    from .schema import SchemaError, parse_answer

    text = response.text_so_far
    problem: str | None = None
    value: Any = None
    schema = getattr(args, "schema_object", None)
    if schema is not None and error is None and response.status == "complete":
        try:
            value = parse_answer(text, schema)
        except SchemaError as exc:
            problem = str(exc)
    if getattr(args, "json", False):
        from .text import json_text

        _write(json_text(response_json(response, error or problem, value)))
        return problem
    if problem or error is not None:
        return problem
    if schema is not None and value is not None:
        _write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
        return None
    if args.extract or args.extract_last:
        block = fenced_block(text, last=bool(args.extract_last))
        text = block if block is not None else text  # no block: the whole answer, as llm does
    if text:
        _write(text if text.endswith("\n") else text + "\n")
    return None


def response_json(
    response: Response, error: str | None = None, value: Any = None
) -> dict[str, Any]:
    """The whole response as one object: ``id``, ``conversation_id``, ``model``, ``text``,
    ``reasoning``, ``tool_calls``, ``usage`` (``input``, ``output``, ``cache_read``,
    ``cache_write``), ``cost``, ``ending``, ``duration_ms`` (and ``json``, the parsed answer
    with ``--schema``; ``error`` when it failed)."""
    calls = response.calls

    def total(*names: str) -> int | None:
        values = [v for c in calls for n in names if isinstance(v := getattr(c, n, None), int)]
        return sum(values) if values else None

    costs = [c.cost for c in calls if c.cost is not None]
    data: dict[str, Any] = {
        "id": response.id,
        "conversation_id": response.conversation.id,
        "model": response.model_name,
        "text": response.text_so_far,
        "reasoning": response.reasoning,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in response.tool_calls
        ],
        "usage": {
            "input": total("input_tokens"),
            "output": total("output_tokens"),
            "cache_read": total("cache_read_tokens", "cache_read"),
            "cache_write": total("cache_write_tokens", "cache_write"),
        },
        "cost": sum(costs) if costs else None,
        "ending": response.status,
        "duration_ms": round(response.duration * 1000) if response.duration is not None else None,
    }
    if value is not None:
        data["json"] = value
    if error:
        data["error"] = error
    return data


def _write(text: str) -> None:
    """``text`` on stdout: as it is into a pipe, made safe on a terminal."""
    if sys.stdout.isatty():
        from .text import make_safe

        text = make_safe(text)
    sys.stdout.write(text)
    sys.stdout.flush()
