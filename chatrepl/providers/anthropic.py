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
from typing import Any

from .. import errors
from ..records import Event, Finish, Message, ReasoningDelta, TextDelta, ToolSpec, Usage
from .base import Model
from .http import (
    Endpoint,
    HTTPModelMixin,
    _one_line,
    error_message,
    fetch_json,
    iter_lines,
    parse_json,
    post_stream,
    quota_error,
    refusal_of,
    whole_body,
)
from .sse import iter_events
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

_ERROR_WORDS = {
    "overloaded_error": "is overloaded: try again shortly",
    "rate_limit_error": "is limiting requests: wait a little and try again",
    "api_error": "had an internal error: try again shortly",
}


@dataclass
class AnthropicModel(HTTPModelMixin, Model):
    """A model behind Anthropic's Messages API."""

    endpoint: Endpoint = field(default_factory=lambda: Endpoint("Anthropic", ""))
    #: the context window from config, used before the known table
    context_length: int | None = None
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
        return body

    def stream(
        self,
        messages: list[Message],
        options: dict[str, Any],
        cancel: threading.Event,
        tools: list[ToolSpec] | None = None,
    ) -> Iterator[Event]:
        from ..attachments import request_content

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
        try:
            yield from finish_stream(self._read(response, cancel), self.endpoint.secrets())
        finally:
            response.close()

    def _read(self, response: Any, cancel: threading.Event) -> Iterator[Event]:
        reader = _Reader(self.endpoint)
        whole, lines = whole_body(iter_lines(response, self.endpoint))
        if whole is not None:  # a plain JSON answer where a stream was asked for
            for kind, data in whole_events(parse_json(whole, self.endpoint)):
                yield from reader.feed(kind, data)
            yield from reader.end()
            return
        seen_any = False
        for event in iter_events(lines):
            if cancel.is_set():
                return
            seen_any = True
            data = parse_json(event.data, self.endpoint)
            kind = event.event if event.event != "message" else as_str(as_dict(data).get("type"))
            yield from reader.feed(kind, as_dict(data))
            if reader.done:
                break
        if not seen_any:
            raise errors.StreamError("Anthropic answered with an empty stream.")
        if cancel.is_set():
            return
        if not reader.done:
            yield from reader.usage_so_far()
            raise errors.StreamError(
                "The answer from Anthropic ended early; the text that arrived was kept."
            )
        yield from reader.end()

    # --- what the service serves ---------------------------------------------------------------

    def available_models(self) -> list[str] | None:
        """The ids ``GET /v1/models`` lists (one call, kept), or ``None`` if it could not be read."""
        if "models" not in self._facts:
            headers = {k: v for k, v in self.headers().items() if k != "Accept"}
            data = fetch_json(self.client(), self.endpoint, "GET", "v1/models?limit=1000", headers)
            entries = as_list(as_dict(data).get("data"))
            ids = [i for e in entries if (i := as_str(as_dict(e).get("id")))]
            self._facts["models"] = ids if data is not None else None
        return self._facts["models"]

    def context_window(self) -> int | None:
        """The context window from config, else the known table (Anthropic does not say)."""
        return self.context_length or super().context_window()


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
    from ..attachments import Base64Data, kind, name, note, text_content

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
                source = {"type": "text", "media_type": "text/plain", "data": text}
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
    """A whole ``message`` object (or an error) as the stream events that would have sent it."""
    data = as_dict(data)
    if data.get("type") == "error" or "error" in data:
        yield "error", data
        return
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
    """The state of one streamed answer: blocks by index, usage, how it ended."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.blocks: dict[int | None, dict[str, Any]] = {}
        self.usage = Usage()
        self.stop_raw = ""
        self.done = False

    def feed(self, kind: str, data: dict[str, Any]) -> Iterator[Event]:
        """The events of one stream event."""
        if kind == "error":
            yield from self.usage_so_far()
            raise self.error(data)
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
            state = self.blocks.pop(as_int(data.get("index")), None)
            block = as_dict(state and state["block"])
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
            self.done = True

    def read_usage(self, u: dict[str, Any]) -> None:
        """Anthropic's usage: input at the start, cumulative output in ``message_delta``."""
        for key, name in (
            ("input_tokens", "input_tokens"),
            ("output_tokens", "output_tokens"),
            ("cache_read_input_tokens", "cache_read_tokens"),
        ):
            if (n := as_int(u.get(key))) is not None:
                setattr(self.usage, name, n)

    def usage_so_far(self) -> Iterator[Event]:
        if usage_total(self.usage):
            yield self.usage
        self.usage = Usage()

    def end(self) -> Iterator[Event]:
        yield from self.usage_so_far()
        yield Finish(FINISH.get(self.stop_raw, "stop"), self.stop_raw)

    def error(self, data: dict[str, Any]) -> errors.ProviderError:
        """An ``event: error`` as one sentence."""
        error = as_dict(data.get("error"))
        etype = as_str(error.get("type")) or "error"
        detail = self.endpoint.redact(_one_line(error_message(error.get("message")), 200))
        detail = detail.rstrip(". ")
        if "insufficient_quota" in etype or "billing" in etype:
            return quota_error(self.endpoint, 429, detail)
        what = _ERROR_WORDS.get(etype, "reported an error")
        return errors.ServerError(
            f"Anthropic {what} ({self.endpoint.redact(_one_line(etype, 60))}: {detail})."
        )
