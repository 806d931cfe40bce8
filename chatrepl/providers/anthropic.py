"""Anthropic ``/v1/messages`` streaming, with its event types.

Messages out: the system prompt apart, ``tool_use`` blocks in the assistant turn (after the
``thinking`` blocks Anthropic wants back in a turn that used tools) and ``tool_result`` blocks in
a user message. Events in: text, ``thinking`` (with its signature) and ``redacted_thinking``,
tool calls whole at ``content_block_stop``, usage and the ``stop_reason``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import errors
from ..records import Event, Finish, Message, ReasoningDelta, TextDelta, ToolSpec, Usage
from . import structured
from .base import Backend
from .http import Endpoint, HTTPBackendMixin, fetch_json, post_stream, refusal_of
from .stream import read_answer
from .wire import as_dict, as_int, as_list, as_str, finish_stream, text_of, tool_call, usage_total

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 8192
#: reasoning_effort → a thinking budget, for people who use the OpenAI-style option everywhere
EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
#: stop_reason → how chatrepl records the ending
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "refused",
}
PROVIDER = "anthropic"
#: The usage fields Anthropic reports: uncached input, output, cache reads and cache writes.
USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


@dataclass
class AnthropicBackend(HTTPBackendMixin, Backend):
    """A model behind Anthropic's Messages API."""

    prefill: ClassVar[bool] = True  # a trailing assistant message is continued
    endpoint: Endpoint = field(default_factory=lambda: Endpoint("Anthropic", ""))
    #: how it answers with a JSON schema (see structured.py)
    structured_output: ClassVar[str] = "tool"
    #: the context window from config, used before the known table
    context_length: int | None = None
    #: mark the prompt for Anthropic's cache (``prompt_cache = false`` in config turns it off)
    prompt_cache: bool = True
    _facts: dict[str, Any] = field(default_factory=dict, repr=False)

    def headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION, "Accept": "text/event-stream"}
        if self.endpoint.api_key:
            headers["x-api-key"] = self.endpoint.api_key
        return headers

    def request_body(
        self, messages: list[Message], options: dict[str, Any], tools: list[ToolSpec] | None
    ) -> dict[str, Any]:
        """The JSON body of a streamed ``/v1/messages`` request."""
        system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
        body: dict[str, Any] = {
            "model": self.name,
            "max_tokens": DEFAULT_MAX_TOKENS,
            "messages": wire_messages([m for m in messages if m.role != "system"]),
            "stream": True,
            **self.options,
            **options,
        }
        if system:
            body["system"] = system
        effort = body.pop("reasoning_effort", None)
        budget = body.pop("thinking_budget", None)
        if budget is None and isinstance(effort, str):
            budget = EFFORT_BUDGET.get(effort.lower())
        if budget is not None:
            try:
                budget = int(budget)
            except (TypeError, ValueError):
                raise errors.BadRequestError(
                    f"thinking_budget must be a whole number of tokens, not {budget!r}."
                ) from None
            if budget > 0:
                body["thinking"] = {"type": "enabled", "budget_tokens": budget}
                try:
                    if int(body["max_tokens"]) <= budget:
                        body["max_tokens"] = budget + DEFAULT_MAX_TOKENS
                except (TypeError, ValueError):
                    body["max_tokens"] = budget + DEFAULT_MAX_TOKENS
        if tools:
            body["tools"] = [
                {
                    "name": t.name,
                    "description": t.description,
                    "input_schema": t.parameters or {"type": "object", "properties": {}},
                }
                for t in tools
            ]
        body = structured.anthropic_body(body)  # --schema: a forced tool
        if self.prompt_cache:
            mark_cache(body)
        return body

    def stream(
        self,
        messages: list[Message],
        options: dict[str, Any],
        cancel: threading.Event,
        tools: list[ToolSpec] | None = None,
    ) -> Iterator[Event]:
        from .attach_wire import request_content

        self.require_key(self.provider)
        body = self.request_body(messages, options, tools)
        content = request_content(body, messages)
        try:
            response = post_stream(
                self.client(),
                self.endpoint,
                "v1/messages",
                self.headers(),
                content,
                self.name,
                cancel,
            )
        except errors.ProviderError as exc:
            who = f"Anthropic's '{self.name}'"
            if refused := refusal_of(exc, self.endpoint, self.name, tools, messages, who):
                raise refused from None
            raise
        if response is None:
            return
        events = read_answer(response, self.endpoint, cancel, _Reader(), self.name, bool(tools))
        if structured.OPTION in options:  # the forced tool's input is the answer
            events = structured.tool_answer(events, options[structured.OPTION])
        try:
            yield from finish_stream(events, self.endpoint.secrets())
        finally:
            response.close()

    # --- what the service serves ---------------------------------------------------------------

    def available_models(self) -> list[str] | None:
        """The ids ``GET /v1/models`` lists (one call, kept), or ``None`` if it could not be read."""
        if "models" not in self._facts:
            headers = {k: v for k, v in self.headers().items() if k != "Accept"}
            data = fetch_json(self.client(), self.endpoint, "GET", "v1/models?limit=1000", headers)
            entries = as_list(as_dict(data).get("data"))
            ids = [i for e in entries if (i := as_str(as_dict(e).get("id")))]
            self._facts["models"] = ids if data is not None else None
        models: list[str] | None = self._facts["models"]
        return models

    def context_window(self) -> int | None:
        """The context window from config, else the known table (Anthropic does not say)."""
        return self.context_length or super().context_window()


#: The most ``cache_control`` marks a request may carry.
MAX_CACHE_MARKS = 4
CACHE_MARK = {"type": "ephemeral"}


def mark_cache(body: dict[str, Any]) -> None:
    """Mark where Anthropic may cache the prompt, so each request reads what the last one
    wrote: the tools, the system text, and the newest two user messages (the last one before
    this request's; tool results count, so each call of a chain reuses the previous one's).
    At most :data:`MAX_CACHE_MARKS`; a prefix too short to cache costs nothing extra.
    """
    marks = 0
    if body.get("tools"):
        body["tools"][-1]["cache_control"] = dict(CACHE_MARK)
        marks += 1
    if isinstance(system := body.get("system"), str) and system.strip():
        body["system"] = [{"type": "text", "text": system, "cache_control": dict(CACHE_MARK)}]
        marks += 1
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    for message in reversed(users[-2:]):
        if marks >= MAX_CACHE_MARKS:
            break
        content = message.get("content")
        if isinstance(content, str):
            if not content.strip():
                continue  # an empty text block is refused
            message["content"] = content = [{"type": "text", "text": content}]
        if isinstance(content, list) and content and isinstance(content[-1], dict):
            content[-1]["cache_control"] = dict(CACHE_MARK)
            marks += 1


def wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """chatrepl messages (no system ones) as Anthropic messages; tool results become a user
    message of ``tool_result`` blocks, merged when several follow each other."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": str(p.data.get("call_id", "")),
                    "content": p.text,
                    "is_error": bool(p.data.get("is_error")),
                }
                for p in message.parts
                if p.kind == "tool_result"
            ]
            last = out[-1] if out else None
            if last and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].extend(blocks)
            else:
                out.append({"role": "user", "content": blocks})
            continue
        calls = [p for p in message.parts if p.kind == "tool_call"]
        if message.role == "user" and any(p.kind == "attachment" for p in message.parts):
            out.append({"role": "user", "content": user_blocks(message)})
            continue
        if message.role != "assistant" or not calls:
            out.append({"role": message.role, "content": message.content})
            continue
        blocks = []
        for part in message.parts:  # Anthropic wants the thinking of a turn that used tools
            if part.kind != "reasoning" or part.data.get("provider") != PROVIDER:
                continue
            if part.data.get("redacted"):
                blocks.append({"type": "redacted_thinking", "data": part.data["redacted"]})
            elif part.data.get("signature"):
                blocks.append(
                    {"type": "thinking", "thinking": part.text, "signature": part.data["signature"]}
                )
        if message.content:
            blocks.append({"type": "text", "text": message.content})
        for part in calls:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": str(part.data.get("id", "")),
                    "name": str(part.data.get("name", "")),
                    "input": part.data.get("arguments") or {},
                }
            )
        out.append({"role": "assistant", "content": blocks})
    return out


def user_blocks(message: Message) -> list[dict[str, Any]]:
    """A user message with attachments as content blocks: ``image`` and ``document`` blocks
    (PDFs base64, text files as text documents with their names), then the prompt."""
    from ..attachments import kind, name
    from .attach_wire import Base64Data, note, text_content

    blocks: list[dict[str, Any]] = []
    for part in message.parts:
        if part.kind != "attachment":
            continue
        if (said := note(part)) is not None:
            blocks.append({"type": "text", "text": said})
            continue
        what = kind(part)
        if what == "text":
            text = text_content(part)
            if text.strip():
                source: dict[str, Any] = {"type": "text", "media_type": "text/plain", "data": text}
                blocks.append({"type": "document", "source": source, "title": name(part)})
            continue
        source = {
            "type": "base64",
            "media_type": part.data["mime"],
            "data": Base64Data(part.data["content"]),
        }
        if what == "pdf":
            blocks.append({"type": "document", "source": source, "title": name(part)})
        else:
            blocks.append({"type": "image", "source": source})
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    return blocks


def whole_events(data: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """A whole ``message`` object as the stream events that would have sent it."""
    data = as_dict(data)
    usage = as_dict(data.get("usage"))
    yield "message_start", {"message": {"usage": usage}}
    for index, block in enumerate(as_list(data.get("content"))):
        block = as_dict(block)
        kind = as_str(block.get("type"))
        start = {k: v for k, v in block.items() if k not in ("text", "thinking", "signature")}
        yield "content_block_start", {"index": index, "content_block": {**start, "input": {}}}
        if kind == "text":
            yield "content_block_delta", {"index": index, "delta": {**block, "type": "text_delta"}}
        elif kind == "thinking":
            delta = {"type": "thinking_delta", "thinking": block.get("thinking")}
            yield "content_block_delta", {"index": index, "delta": delta}
            delta = {"type": "signature_delta", "signature": block.get("signature")}
            yield "content_block_delta", {"index": index, "delta": delta}
        elif kind == "tool_use":
            partial = json.dumps(block.get("input") if "input" in block else {})
            delta = {"type": "input_json_delta", "partial_json": partial}
            yield "content_block_delta", {"index": index, "delta": delta}
        yield "content_block_stop", {"index": index}
    stop = {"stop_reason": data.get("stop_reason")}
    yield "message_delta", {"delta": stop, "usage": usage}
    yield "message_stop", {}


class _Reader:
    """The state of one streamed answer: blocks by index, usage, how it ended (a
    :class:`~chatrepl.providers.stream.Reader`)."""

    end_mark: str | None = None

    def __init__(self) -> None:
        self.blocks: dict[int | None, dict[str, Any]] = {}
        self.counts: dict[str, int] = {}  # the usage fields as Anthropic names them
        self.stop_raw = ""
        self.done = self.finished = False

    def feed(self, kind: str, data: Any) -> Iterator[Event]:
        """The events of one stream event (its type from the ``event:`` name, else the data)."""
        data = as_dict(data)
        if kind == "message":
            kind = as_str(data.get("type"))
        if kind == "message_start":
            self.read_usage(as_dict(as_dict(data.get("message")).get("usage")))
        elif kind == "content_block_start":
            block = as_dict(data.get("content_block"))
            btype = as_str(block.get("type"))
            self.blocks[as_int(data.get("index"))] = {"block": block, "json": ""}
            if btype == "text" and (text := text_of(block.get("text"))):
                yield TextDelta(text)
            elif btype == "thinking" and (text := text_of(block.get("thinking"))):
                yield ReasoningDelta(text, provider=PROVIDER)
            elif btype == "redacted_thinking" and (secret := as_str(block.get("data"))):
                yield ReasoningDelta(redacted=secret, provider=PROVIDER)
        elif kind == "content_block_delta":
            delta = as_dict(data.get("delta"))
            dtype = as_str(delta.get("type"))
            if dtype == "text_delta" and (text := text_of(delta.get("text"))):
                yield TextDelta(text)
            elif dtype == "thinking_delta" and (text := text_of(delta.get("thinking"))):
                yield ReasoningDelta(text, provider=PROVIDER)
            elif dtype == "signature_delta" and (signature := as_str(delta.get("signature"))):
                yield ReasoningDelta(signature=signature, provider=PROVIDER)
            elif dtype == "input_json_delta":
                state = self.blocks.setdefault(as_int(data.get("index")), {"block": {}, "json": ""})
                state["json"] += text_of(delta.get("partial_json"))
        elif kind == "content_block_stop":
            state = self.blocks.pop(as_int(data.get("index")), {})
            block = as_dict(state.get("block"))
            if as_str(block.get("type")) == "tool_use":  # not server_tool_use: it ran already
                arguments = state["json"] if state else ""
                if not arguments.strip() and as_dict(block.get("input")):
                    arguments = json.dumps(block["input"])
                yield tool_call(as_str(block.get("id")), as_str(block.get("name")), arguments)
        elif kind == "message_delta":
            self.read_usage(as_dict(data.get("usage")))
            if reason := as_str(as_dict(data.get("delta")).get("stop_reason")):
                self.stop_raw = reason
        elif kind == "message_stop":
            self.done = self.finished = True

    def whole(self, data: Any) -> Iterator[Event]:
        """A whole ``message`` object, read as the events that would have streamed it."""
        for kind, event in whole_events(data):
            yield from self.feed(kind, event)
        yield from self.end()

    def read_usage(self, u: dict[str, Any]) -> None:
        """Anthropic's usage: input and cache figures in ``message_start``, cumulative figures
        (output, and input again on newer servers) in ``message_delta``: the latest wins."""
        for key in USAGE_KEYS:
            if (n := as_int(u.get(key))) is not None:
                self.counts[key] = n

    @property
    def usage(self) -> Usage:
        """The usage so far, the input counted whole: uncached plus cache reads and writes."""
        c = self.counts
        parts = [c.get(k) for k in USAGE_KEYS if k != "output_tokens"]
        total = None if all(n is None for n in parts) else sum(n or 0 for n in parts)
        return Usage(
            input_tokens=total,
            output_tokens=c.get("output_tokens"),
            cache_read_tokens=c.get("cache_read_input_tokens"),
            cache_write_tokens=c.get("cache_creation_input_tokens"),
        )

    def usage_so_far(self) -> Iterator[Event]:
        if usage_total(usage := self.usage):
            yield usage
        self.counts = {}

    def end(self) -> Iterator[Event]:
        yield from self.usage_so_far()
        yield Finish(FINISH.get(self.stop_raw, "stop"), self.stop_raw)
