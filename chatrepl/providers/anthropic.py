"""Anthropic ``/v1/messages`` streaming, with its event types."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import errors
from ..records import Event, Message, TextDelta, ToolSpec, Usage
from .base import Model
from .http import Endpoint, HTTPModelMixin, iter_lines, parse_json, post_stream
from .sse import iter_events

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 8192

_ERROR_WORDS = {
    "overloaded_error": "is overloaded: try again shortly",
    "rate_limit_error": "is limiting requests: wait a little and try again",
    "api_error": "had an internal error: try again shortly",
}


@dataclass
class AnthropicModel(HTTPModelMixin, Model):
    """A model behind Anthropic's Messages API."""

    endpoint: Endpoint = field(default_factory=lambda: Endpoint("Anthropic", ""))

    def stream(
        self,
        messages: list[Message],
        options: dict[str, Any],
        cancel: threading.Event,
        tools: list[ToolSpec] | None = None,
    ) -> Iterator[Event]:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        body: dict[str, Any] = {
            "model": self.name,
            "max_tokens": DEFAULT_MAX_TOKENS,
            "messages": [
                {"role": m.role, "content": m.content} for m in messages if m.role != "system"
            ],
            "stream": True,
            **self.options,
            **options,
        }
        if system:
            body["system"] = system
        headers = {"anthropic-version": API_VERSION, "Accept": "text/event-stream"}
        if self.endpoint.api_key:
            headers["x-api-key"] = self.endpoint.api_key
        response = post_stream(
            self.client(), self.endpoint, "v1/messages", headers, body, self.name, cancel
        )
        if response is None:
            return
        try:
            yield from self._read(response, cancel)
        finally:
            response.close()

    def _read(self, response: Any, cancel: threading.Event) -> Iterator[Event]:
        usage = Usage()
        finished = False
        seen_any = False
        for event in iter_events(iter_lines(response, self.endpoint)):
            if cancel.is_set():
                return
            seen_any = True
            data = parse_json(event.data, self.endpoint)
            kind = event.event if event.event != "message" else data.get("type", "")
            if kind == "ping":
                continue
            if kind == "error":
                error = data.get("error") or {}
                what = _ERROR_WORDS.get(error.get("type", ""), "reported an error")
                detail = self.endpoint.redact(" ".join(str(error.get("message", "")).split()))
                kind = self.endpoint.redact(str(error.get("type", "error")))
                raise errors.ServerError(f"Anthropic {what} ({kind}: {detail[:200]}).")
            if kind == "message_start":
                u = (data.get("message") or {}).get("usage") or {}
                usage.input_tokens = u.get("input_tokens")
                usage.output_tokens = u.get("output_tokens")
            elif kind == "content_block_delta":
                delta = data.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield TextDelta(delta["text"])
            elif kind == "message_delta":
                u = data.get("usage") or {}
                if u.get("output_tokens") is not None:
                    usage.output_tokens = u["output_tokens"]
                if u.get("input_tokens") is not None:
                    usage.input_tokens = u["input_tokens"]
            elif kind == "message_stop":
                finished = True
                break
        if not seen_any:
            raise errors.StreamError("Anthropic answered with an empty stream.")
        if usage.input_tokens is not None or usage.output_tokens is not None:
            yield usage
        if not finished and not cancel.is_set():
            raise errors.StreamError(
                "The answer from Anthropic ended early; the text that arrived was kept."
            )
