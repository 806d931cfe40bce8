"""A tool as chatrepl offers it to a model: a name, a description, a JSON schema of its
arguments and a way to call it; :meth:`Tool.from_function` builds one from a plain function."""

from __future__ import annotations

import enum
import hashlib
import inspect
import json
import re
import threading
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ToolError
from ..records import ToolSpec

#: What OpenAI (the strictest of the providers) accepts as a function name.
WIRE_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

Caller = Callable[[dict[str, Any], threading.Event], str]


@dataclass
class Tool:
    """One tool.

    Args:
        name: the name shown to the user and matched by patterns (``now``, ``time.get_time``).
        description: what it does, for the model.
        parameters: a JSON schema (an object) of its arguments.
        caller: runs it: ``caller(arguments, cancel) -> result text``; raises on failure.
        source: ``builtin``, ``function`` or the MCP server's name.
        wire_name: the name sent to the model (``^[a-zA-Z0-9_-]{1,64}$``); derived from ``name``.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    caller: Caller = field(repr=False)
    source: str = "function"
    wire_name: str = ""

    def __post_init__(self) -> None:
        if not self.wire_name:
            self.wire_name = wire_name(self.name)

    def call(self, arguments: dict[str, Any], cancel: threading.Event | None = None) -> str:
        """Run the tool with ``arguments``; its result as text. Raises on failure."""
        return self.caller(arguments, cancel or threading.Event())

    def to_spec(self) -> ToolSpec:
        """The tool as offered to a model."""
        return ToolSpec(self.wire_name, self.description, self.parameters)

    @classmethod
    def from_function(cls, fn: Callable[..., Any], name: str | None = None) -> Tool:
        """A tool from a plain function: the schema from its type hints and docstring.

        The docstring's first paragraph is the description; an ``Args:`` section (or
        ``:param x:`` lines) describes the parameters. Parameters with defaults are optional.
        A coroutine function is run to completion in the tool's own thread.
        """
        description, params_doc = parse_docstring(inspect.getdoc(fn) or "")
        parameters = function_schema(fn, params_doc)
        allowed = set(parameters["properties"])
        required = set(parameters.get("required", ()))
        takes_kwargs = any(
            p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()
        )

        def caller(arguments: dict[str, Any], cancel: threading.Event) -> str:
            unknown = sorted(set(arguments) - allowed) if not takes_kwargs else []
            if unknown:
                raise ToolError(
                    f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                    f"this tool takes: {', '.join(sorted(allowed)) or 'no arguments'}."
                )
            missing = sorted(required - set(arguments))
            if missing:
                raise ToolError(f"missing required argument(s): {', '.join(missing)}.")
            value = fn(**arguments)
            if inspect.isawaitable(value):
                import asyncio

                async def wait() -> Any:
                    return await value

                value = asyncio.run(wait())
            return result_text(value)

        return cls(
            name=name or fn.__name__,
            description=description or fn.__name__.replace("_", " "),
            parameters=parameters,
            caller=caller,
            source="function",
        )


def as_tool(item: Tool | Callable[..., Any]) -> Tool:
    """``item`` itself if it is a Tool, else the tool built from the function."""
    return item if isinstance(item, Tool) else Tool.from_function(item)


def wire_name(name: str) -> str:
    """A name every provider accepts for ``name``: ``.`` becomes ``__``, other characters
    outside ``[a-zA-Z0-9_-]`` become ``_``; a name over 64 characters is cut and given a hash."""
    safe = re.sub(r"[^a-zA-Z0-9_-]", "_", name.replace(".", "__")) or "tool"
    if len(safe) > 64:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        safe = safe[:55] + "_" + digest
    return safe


def result_text(value: Any) -> str:
    """What a function returned, as the text the model reads: text as is, else JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


# --- the schema ---------------------------------------------------------------------------------

_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Returns?|Raises|Yields|Examples?|Notes?):\s*$"
)
_ARG = re.compile(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_REST = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+):\s*(.*)$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The description (the text before the first section) and each parameter's description."""
    lines = doc.strip().splitlines()
    description: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    arg_indent = 0
    for raw in lines:
        line = raw.rstrip()
        stripped = line.strip()
        if m := _REST.match(stripped):
            section, current = "rest", m.group(1)
            params[current] = m.group(2).strip()
            continue
        if stripped.startswith(":"):  # :returns:, :raises: …
            section, current = "rest", None
            continue
        if m := _SECTION.match(stripped):
            section = m.group(1).lower()
            current = None
            continue
        if section is None:
            description.append(stripped)
        elif section in ("args", "arguments", "parameters", "params"):
            indent = len(line) - len(line.lstrip())
            m = _ARG.match(line)
            if m and (current is None or indent <= arg_indent):
                current = m.group(1)
                params[current] = m.group(2).strip()
                arg_indent = indent
            elif current and stripped:
                params[current] = (params[current] + " " + stripped).strip()
        elif section == "rest" and current and stripped:
            params[current] = (params[current] + " " + stripped).strip()
    paragraphs = "\n".join(description).strip().split("\n\n")
    text = " ".join(" ".join(p.split()) for p in paragraphs if p.strip())
    return text, params


def function_schema(fn: Callable[..., Any], docs: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON schema (an object) of ``fn``'s parameters, from its type hints."""
    docs = docs or {}
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # a hint naming something that cannot be resolved: no types then
        hints = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        schema = type_schema(hints.get(name, Any))
        if docs.get(name) and "description" not in schema:
            schema["description"] = docs[name]
        if param.default is param.empty:
            required.append(name)
        elif _jsonable(param.default):
            schema["default"] = param.default
        properties[name] = schema
    result: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    return result


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def type_schema(hint: Any) -> dict[str, Any]:
    """The JSON schema of one type hint (``{}``, any value, where it cannot say)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    schema: dict[str, Any]
    if origin is typing.Annotated:
        schema = type_schema(args[0])
        notes = [a for a in args[1:] if isinstance(a, str)]
        if notes:
            schema["description"] = " ".join(notes)
        return schema
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        nullable = len(options) < len(args)
        if len(options) == 1:
            schema = type_schema(options[0])
            if nullable and isinstance(schema.get("type"), str):
                schema["type"] = [schema["type"], "null"]
            elif nullable:
                schema = {"anyOf": [schema, {"type": "null"}]}
            return schema
        schemas = [type_schema(a) for a in options]
        if nullable:
            schemas.append({"type": "null"})
        return {"anyOf": schemas}
    if origin is typing.Literal:
        values = list(args)
        schema = {"enum": values}
        kinds = {_SIMPLE.get(type(v)) for v in values}
        if len(kinds) == 1 and None not in kinds:
            schema = {"type": kinds.pop(), "enum": values}
        return schema
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return type_schema(typing.Literal[tuple(m.value for m in hint)])
    if hint in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset):
        schema = {"type": "array"}
        if args and not (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
            if origin is tuple:
                schema["prefixItems"] = [type_schema(a) for a in args]
                return schema
            schema["items"] = type_schema(args[0])
        elif args:
            schema["items"] = type_schema(args[0])
        return schema
    if hint is dict or origin is dict:
        schema = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = type_schema(args[1])
        return schema
    return {}
