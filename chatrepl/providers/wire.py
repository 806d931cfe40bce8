"""What both wire formats need: reading server JSON by type, tool-call arguments and ids,
``<think>`` tags in answer text, and the last pass every stream goes through (valid text,
secrets blanked out, also when a secret is split across chunks).

Server JSON is never trusted to have the documented types: a field that should be text may be a
number, ``null``, a list or an object, and reading it must not crash the stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from ..records import Event, Finish, ReasoningDelta, RefusalDelta, TextDelta, ToolCall, Usage
from ..text import valid_text


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    """``value`` if it is text, else ``""`` (for ids, names, types: a number is no name)."""
    return value if isinstance(value, str) else ""


def as_int(value: Any) -> int | None:
    """A whole count: an int, or a float with no fraction; ``None`` for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def as_float(value: Any) -> float | None:
    """A number (a cost), or ``None``; text that reads as a number counts (OpenRouter prices)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def text_of(value: Any) -> str:
    """The text of a content field: a string, a number written out, or a list of typed blocks
    (``[{"type": "text", "text": ...}]``) joined; anything else is no text."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        pieces = []
        for block in value:
            if isinstance(block, str):
                pieces.append(block)
            elif isinstance(block, dict) and block.get("type", "text") in ("text", "output_text"):
                pieces.append(as_str(block.get("text")))
        return "".join(pieces)
    return ""


def parse_arguments(text: str) -> tuple[dict[str, Any], str | None]:
    """Tool-call arguments as an object; ``({}, text)`` when they are not a JSON object."""
    if not text.strip():
        return {}, None
    try:
        value = json.loads(text)
    except ValueError:
        return {}, text
    return (value, None) if isinstance(value, dict) else ({}, text)


def new_call_id() -> str:
    """An id for a tool call the server gave none: ``tc_`` and a ULID."""
    from ulid import ULID

    return f"tc_{str(ULID()).lower()}"


def tool_call(call_id: str, name: str, arguments: str) -> ToolCall:
    """A finished tool call from its id, name and the whole argument text."""
    parsed, raw = parse_arguments(arguments)
    return ToolCall(call_id or new_call_id(), name, parsed, raw)


def _held(text: str, marker: str) -> int:
    """How many characters at the end of ``text`` could be the start of ``marker``."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:size]):
            return size
    return 0


class ThinkSplitter:
    """Splits ``<think>…</think>`` at the very start of an answer off as reasoning.

    Only a block that opens the answer (after blank space) counts: a model quoting the tag
    later in its answer is answer text. Tags may be split across chunks; an unclosed block is
    all reasoning. The blank space after ``</think>`` is dropped.
    """

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self.state = "start"  # start → think → after → text, or start → text
        self.buffer = ""

    def feed(self, text: str) -> Iterator[Event]:
        """The events for one more chunk of answer text."""
        self.buffer += text
        while self.buffer:
            if self.state == "start":
                stripped = self.buffer.lstrip()
                if stripped.startswith(self.OPEN):
                    self.state, self.buffer = "think", stripped[len(self.OPEN) :]
                elif self.OPEN.startswith(stripped):
                    return  # blank space or a part of "<think>": wait for more
                else:
                    self.state = "text"
            elif self.state == "think":
                end = self.buffer.find(self.CLOSE)
                if end >= 0:
                    if end:
                        yield ReasoningDelta(self.buffer[:end])
                    self.state, self.buffer = "after", self.buffer[end + len(self.CLOSE) :]
                    continue
                keep = _held(self.buffer, self.CLOSE)
                if len(self.buffer) > keep:
                    yield ReasoningDelta(self.buffer[: len(self.buffer) - keep])
                self.buffer = self.buffer[len(self.buffer) - keep :]
                return
            elif self.state == "after":
                self.buffer = self.buffer.lstrip()
                if self.buffer:
                    self.state = "text"
            else:
                yield TextDelta(self.buffer)
                self.buffer = ""

    def finish(self) -> Iterator[Event]:
        """Whatever was held back when the answer ends."""
        if self.buffer and self.state == "think":
            yield ReasoningDelta(self.buffer)
        elif self.buffer and self.state != "after":
            yield TextDelta(self.buffer)
        self.buffer = ""


class _Redactor:
    """Blanks secrets out of one stream of text, also when a secret is split across chunks.

    A tail that may begin a secret is held back, but only from SHORT_PREFIX characters on: a
    shorter one (``s``, ``sk-``) is public and common in text, so it is sent at once (a reader
    that stops early must not lose it) and the rest of the secret is blanked when it follows.
    """

    SHORT_PREFIX = 4

    def __init__(self, secrets: list[str]):
        self.secrets = secrets
        self.pending = ""
        self.sent = ""  # the last few characters sent, which may begin a secret

    def feed(self, text: str) -> str:
        head = self.sent
        combined = head + self.pending + text
        out: list[str] = []
        sent_to, scan = (
            len(head),
            0,
        )  # combined[:sent_to] was sent already; a secret may begin there
        while True:
            hits = [(combined.find(x, scan), -len(x), x) for x in self.secrets]
            hits = [h for h in hits if h[0] >= 0]
            if not hits:
                break
            begin, _, secret = min(hits)
            finish = begin + len(secret)
            if finish <= sent_to:  # cannot be: a secret is longer than what is remembered
                scan = begin + 1
                continue
            out += [combined[sent_to:begin], "***"]
            sent_to = scan = finish
        keep = max((_held(combined[scan:], x) for x in self.secrets), default=0)
        hold_from = len(combined) - keep
        if keep and (keep >= self.SHORT_PREFIX or hold_from < len(head)):
            hold_from = max(hold_from, sent_to)
        else:
            hold_from = len(combined)
        out.append(combined[sent_to:hold_from])
        self.pending = combined[hold_from:]
        result = "".join(out)
        self.sent = (head + result)[-(self.SHORT_PREFIX - 1) :]
        return result

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        self.sent = (self.sent + text)[-(self.SHORT_PREFIX - 1) :]
        return text


def finish_stream(events: Iterable[Event], secrets: list[str]) -> Iterator[Event]:
    """The last pass of every stream: text made valid (no lone surrogates), secrets blanked
    out of text, reasoning, refusals and tool calls, the order of events kept."""
    if not secrets:
        for event in events:
            yield _valid(event)
        return
    kinds = (TextDelta, ReasoningDelta, RefusalDelta)
    redactors = {kind: _Redactor(secrets) for kind in kinds}
    last: ReasoningDelta | None = None  # the provider stamp to put on flushed reasoning

    def flush(but: type | None = None) -> Iterator[Event]:
        for kind, redactor in redactors.items():
            if kind is not but and (held := redactor.flush()):
                if kind is ReasoningDelta:
                    yield ReasoningDelta(held, provider=last.provider if last else None)
                else:
                    yield kind(held)

    for event in events:
        event = _valid(event)
        plain = type(event) in kinds and not getattr(event, "signature", None)
        plain = plain and not getattr(event, "redacted", None)
        if plain:
            yield from flush(but=type(event))
            if isinstance(event, ReasoningDelta):
                last = event
                text = redactors[ReasoningDelta].feed(event.text)
                if text:
                    yield ReasoningDelta(text, provider=event.provider)
            elif isinstance(event, TextDelta | RefusalDelta) and (
                text := redactors[type(event)].feed(event.text)
            ):
                yield type(event)(text)
            continue
        yield from flush()
        if isinstance(event, ToolCall):
            event = _redact_call(event, secrets)
        yield event
    yield from flush()


def _redact_call(call: ToolCall, secrets: list[str]) -> ToolCall:
    shown = json.dumps(call.arguments, ensure_ascii=False)
    raw = call.raw
    if any(s in shown or (raw and s in raw) for s in secrets):
        for secret in secrets:
            shown = shown.replace(secret, "***")
            raw = raw.replace(secret, "***") if raw else raw
        return ToolCall(call.id, call.name, json.loads(shown), raw)
    return call


def _valid(event: Event) -> Event:
    """``event`` with every text field free of lone surrogates (SQLite and terminals refuse)."""
    if isinstance(event, TextDelta | RefusalDelta):
        return type(event)(valid_text(event.text))
    if isinstance(event, ReasoningDelta):
        return ReasoningDelta(
            valid_text(event.text),
            valid_text(event.signature) if event.signature else event.signature,
            valid_text(event.redacted) if event.redacted else event.redacted,
            event.provider,
        )
    if isinstance(event, ToolCall):
        arguments = event.arguments
        dumped = json.dumps(arguments, ensure_ascii=False)
        if valid_text(dumped) != dumped:
            arguments = json.loads(valid_text(dumped))
        raw = valid_text(event.raw) if event.raw else event.raw
        return ToolCall(valid_text(event.id), valid_text(event.name), arguments, raw)
    if isinstance(event, Finish):
        return Finish(event.reason, valid_text(event.raw))
    return event


def usage_total(usage: Usage) -> bool:
    """Whether the server said anything about usage at all."""
    return any(
        v is not None
        for v in (
            usage.input_tokens,
            usage.output_tokens,
            usage.reasoning_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
            usage.cost,
        )
    )
