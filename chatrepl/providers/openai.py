"""OpenAI-compatible ``/chat/completions`` streaming: OpenAI, Ollama, llama.cpp, vLLM, OpenRouter …"""

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


@dataclass
class OpenAIModel(HTTPModelMixin, Model):
    """A model behind an OpenAI-compatible server."""

    endpoint: Endpoint = field(default_factory=lambda: Endpoint("OpenAI", ""))
    #: set to False for servers that reject ``stream_options`` (found out automatically)
    usage_option: bool = True

    def stream(
        self,
        messages: list[Message],
        options: dict[str, Any],
        cancel: threading.Event,
        tools: list[ToolSpec] | None = None,
    ) -> Iterator[Event]:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            **self.options,
            **options,
        }
        if self.usage_option:
            body["stream_options"] = {"include_usage": True}
        headers = {"Accept": "text/event-stream"}
        if self.endpoint.api_key:
            headers["Authorization"] = f"Bearer {self.endpoint.api_key}"
        try:
            response = post_stream(
                self.client(), self.endpoint, "chat/completions", headers, body, self.name, cancel
            )
        except errors.BadRequestError as exc:
            if not (self.usage_option and "stream_options" in str(exc)):
                raise
            self.usage_option = False  # an older server: ask again without it
            body.pop("stream_options")
            response = post_stream(
                self.client(), self.endpoint, "chat/completions", headers, body, self.name, cancel
            )
        if response is None:
            return
        try:
            yield from self._read(response, cancel)
        finally:
            response.close()

    def _read(self, response: Any, cancel: threading.Event) -> Iterator[Event]:
        finished = False
        seen_any = False
        for event in iter_events(iter_lines(response, self.endpoint)):
            if cancel.is_set():
                return
            seen_any = True
            if event.data.strip() == "[DONE]":
                finished = True
                break
            data = parse_json(event.data, self.endpoint)
            if not isinstance(data, dict):
                continue
            if "error" in data:
                error = data["error"]
                message = error.get("message", "") if isinstance(error, dict) else str(error)
                raise errors.ServerError(
                    f"{self.endpoint.label} reported an error mid-answer: "
                    f"{self.endpoint.redact(' '.join(str(message).split())[:300])}."
                )
            usage = None
            if isinstance(data.get("usage"), dict):
                u = data["usage"]
                usage = Usage(u.get("prompt_tokens"), u.get("completion_tokens"))
            text = ""
            for choice in data.get("choices") or []:
                delta = choice.get("delta") or {}
                text += delta.get("content") or ""
                if choice.get("finish_reason"):
                    finished = True
            if text:
                yield TextDelta(text)
            if usage:
                yield usage
        if not seen_any:
            raise errors.StreamError(f"{self.endpoint.label} answered with an empty stream.")
        if not finished and not cancel.is_set():
            raise errors.StreamError(
                f"The answer from {self.endpoint.label} ended early; the text that arrived was kept."
            )
