"""JSON schemas for structured output: read one (inline JSON, a file, or llm's concise syntax
``name, age int, bio: their bio``), make it strict for OpenAI, and check an answer against it.

The checker covers what the concise syntax and common schemas use (``type``, ``properties``,
``required``, ``additionalProperties: false``, ``items``, ``enum``), so no jsonschema
dependency is needed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import ChatreplError
from .files import user_path

#: The concise syntax's types, as JSON schema types.
CONCISE_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}
#: What each JSON schema type is called in a sentence.
_TYPE_WORDS = {
    "object": "an object",
    "array": "a list",
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


class SchemaError(ChatreplError):
    """A schema that cannot be read, or an answer that does not match one."""


def read(text: str) -> dict[str, Any]:
    """The schema ``text`` stands for: inline JSON (``{...}``), a file holding JSON or the
    concise syntax, or the concise syntax itself."""
    from .text import make_safe, shorten

    source = text.strip()
    if not source:
        raise SchemaError("The schema is empty: give JSON, a file, or fields like 'name, age int'.")
    where = "the schema"
    if not source.startswith("{") and "\n" not in source and len(source) < 4096:
        path = user_path(source)
        if path.is_file():
            where = make_safe(str(path))
            try:
                source = path.read_text("utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise SchemaError(f"Cannot read the schema file {where}: {exc}.") from None
    if source.startswith("{"):
        try:
            schema = json.loads(source)
        except ValueError as exc:
            raise SchemaError(
                f"{where[:1].upper()}{where[1:]} is not valid JSON ({shorten(str(exc), 80)})."
            ) from None
        if not isinstance(schema, dict):
            raise SchemaError(f"{where[:1].upper()}{where[1:]} must be a JSON object.")
        return schema
    return concise(source)


def concise(text: str) -> dict[str, Any]:
    """llm's concise syntax as a JSON schema: fields separated by commas (or new lines), each
    ``name [type][: description]``; every field is required."""
    from .text import make_safe, shorten

    schema: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    fields = text.split("\n") if "\n" in text else text.split(",")
    for field in (f.strip() for f in fields):
        if not field:
            continue
        head, colon, description = field.partition(":")
        words = head.split()
        shown = make_safe(shorten(field, 40))
        if not words:
            raise SchemaError(f"The schema field '{shown}' has no name before the ':'.")
        if len(words) > 2:
            raise SchemaError(
                f"The schema field '{shown}' is not 'name [type][: description]' "
                "(put a description after a colon)."
            )
        name = words[0]
        if not re.fullmatch(r"\w[\w.-]*", name):
            raise SchemaError(
                f"The schema field '{make_safe(shorten(name, 30))}' is not a name: use letters, "
                "digits and _ (or give the schema as JSON)."
            )
        kind = words[1] if len(words) > 1 else "str"
        if kind not in CONCISE_TYPES:
            raise SchemaError(
                f"The schema field '{make_safe(name)}' has the unknown type "
                f"'{make_safe(shorten(kind, 20))}': use int, float, bool or str."
            )
        if name in schema["properties"]:
            raise SchemaError(f"The schema names the field '{make_safe(name)}' twice.")
        prop: dict[str, Any] = {"type": CONCISE_TYPES[kind]}
        if colon and description.strip():
            prop["description"] = description.strip()
        schema["properties"][name] = prop
        schema["required"].append(name)
    if not schema["properties"]:
        raise SchemaError("The schema names no field: write fields like 'name, age int'.")
    return schema


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` as OpenAI's strict mode wants it: every object closed
    (``additionalProperties: false``) with all its properties required."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {k: strict(v) if isinstance(v, dict) else v for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = strict(value)
        elif key in ("anyOf", "oneOf", "allOf") and isinstance(value, list):
            out[key] = [strict(v) if isinstance(v, dict) else v for v in value]
        elif key in ("$defs", "definitions") and isinstance(value, dict):
            out[key] = {k: strict(v) if isinstance(v, dict) else v for k, v in value.items()}
        else:
            out[key] = value
    if out.get("type") == "object" or "properties" in out:
        out["additionalProperties"] = False
        out["required"] = list(out.get("properties", {}))
        out.setdefault("properties", {})
    return out


def parse_answer(text: str, schema: dict[str, Any]) -> Any:
    """The JSON value of an answer ``text``, checked against ``schema``; one sentence saying
    what is wrong otherwise."""
    from .text import make_safe, shorten

    body = text.strip()
    if body.startswith("```"):  # some servers fence the JSON even when asked for JSON only
        from .extract import fenced_block

        body = (fenced_block(body) or body).strip()
    try:
        value = json.loads(body)
    except ValueError:
        if not body:
            raise SchemaError("The answer is empty, so it does not match the schema.") from None
        begins = make_safe(shorten(" ".join(body.split()), 40))
        raise SchemaError(
            f"The answer is not JSON (it begins {begins!r}), so it does not match the schema."
        ) from None
    if problem := mismatch(value, schema):
        raise SchemaError(f"The answer does not match the schema: {problem}.")
    return value


def mismatch(value: Any, schema: dict[str, Any], where: str = "the answer") -> str | None:
    """What is wrong with ``value`` against ``schema`` (the first problem found), or ``None``."""
    from .text import make_safe, shorten

    wanted = schema.get("type")
    kinds = [wanted] if isinstance(wanted, str) else list(wanted or [])
    if kinds and not any(_is(value, k) for k in kinds):
        said = " or ".join(_TYPE_WORDS.get(k, str(k)) for k in kinds)
        return f"{where} should be {said}, not {_kind_of(value)}"
    if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"][:8])
        shown = make_safe(shorten(json.dumps(value, ensure_ascii=False), 30))
        return f"{where} is {shown}, not one of {make_safe(shorten(allowed, 80))}"
    if isinstance(value, dict):
        props: dict[str, Any] = (
            schema["properties"] if isinstance(schema.get("properties"), dict) else {}
        )
        for name in schema.get("required") or []:
            if name not in value:
                return f"{where} lacks the field '{make_safe(str(name))}'"
        for name, item in value.items():
            sub = props.get(name)
            label = f"the field '{make_safe(shorten(str(name), 40))}'"
            if isinstance(sub, dict):
                if problem := mismatch(item, sub, label):
                    return problem
            elif schema.get("additionalProperties") is False:
                return f"{where} has {label}, which the schema does not name"
            elif isinstance(schema.get("additionalProperties"), dict):
                extra = schema["additionalProperties"]
                if problem := mismatch(item, extra, label):
                    return problem
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for n, item in enumerate(value):
            if problem := mismatch(item, schema["items"], f"item {n + 1} of {where}"):
                return problem
    return None


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            or (isinstance(value, float) and value.is_integer())
        )
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    checks: dict[str, type | tuple[type, ...]] = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
        "null": type(None),
    }
    return isinstance(value, checks[kind]) if kind in checks else True


def _kind_of(value: Any) -> str:
    for kind in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is(value, kind):
            return _TYPE_WORDS[kind]
    return type(value).__name__
