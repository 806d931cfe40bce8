"""OpenAI-compatible ``/chat/completions`` streaming: OpenAI, OpenRouter, Ollama's ``/v1``,
llama.cpp's server, vLLM, DeepSeek …

Messages out: text, ``assistant.tool_calls`` and ``role: tool`` results; reasoning is never sent
back (DeepSeek rejects ``reasoning_content`` in history). Events in: text, reasoning in each
vendor's shape (``reasoning_content``, ``reasoning``, ``reasoning_details``, ``<think>`` at the
start of the text), refusals, tool calls assembled from their fragments, usage and the ending.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import errors
from ..records import (
    Event,
    Finish,
    Message,
    ReasoningDelta,
    RefusalDelta,
    ToolSpec,
    Usage,
)
from . import structured
from .base import Backend
from .http import Endpoint, HTTPBackendMixin, fetch_json, post_stream, refusal_of
from .stream import read_answer
from .wire import (
    ThinkSplitter,
    as_dict,
    as_float,
    as_int,
    as_list,
    as_str,
    finish_stream,
    text_of,
    tool_call,
    usage_total,
)

#: finish_reason → how chatrepl records the ending
FINISH = {
    "stop": "stop",
    "eos": "stop",
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "content_filter": "filtered",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
}
#: options that mean something only to other wire formats
_NOT_OURS = ("thinking_budget",)


@dataclass
class OpenAIBackend(HTTPBackendMixin, Backend):
    """A model behind an OpenAI-compatible server."""

    endpoint: Endpoint = field(default_factory=lambda: Endpoint("OpenAI", ""))
    #: how it answers with a JSON schema (see structured.py)
    structured_output: ClassVar[str] = "response_format"
    #: set to False for servers that reject ``stream_options`` (found out automatically)
    usage_option: bool = True
    #: the context window from config, used when the server does not say
    context_length: int | None = None
    _facts: dict[str, Any] = field(default_factory=dict, repr=False)

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.endpoint.api_key:
            headers["Authorization"] = f"Bearer {self.endpoint.api_key}"
        return headers

    def request_body(
        self, messages: list[Message], options: dict[str, Any], tools: list[ToolSpec] | None
    ) -> dict[str, Any]:
        """The JSON body of a streamed ``/chat/completions`` request."""
        last_user = max((n for n, m in enumerate(messages) if m.role == "user"), default=-1)
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [
                m
                for n, message in enumerate(messages)
                for m in wire_messages(message, self._attachment_rules(n == last_user))
            ],
            "stream": True,
            **self.options,
            **options,
        }
        for name in _NOT_OURS:
            body.pop(name, None)
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters or {"type": "object", "properties": {}},
                    },
                }
                for t in tools
            ]
        if self.usage_option:
            body["stream_options"] = {"include_usage": True}
        if "usage" not in body and self._is_openrouter():
            body["usage"] = {"include": True}  # OpenRouter then reports the call's cost
        return structured.openai_body(body)  # --schema: response_format

    def _is_openrouter(self) -> bool:
        from urllib.parse import urlsplit

        host = (urlsplit(self.endpoint.base_url).hostname or "").lower()
        return host == "openrouter.ai" or host.endswith(".openrouter.ai")

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
        headers = self.headers()

        def post() -> Any:
            content = request_content(body, messages)
            return post_stream(
                self.client(),
                self.endpoint,
                "chat/completions",
                headers,
                content,
                self.name,
                cancel,
            )

        try:
            try:
                response = post()
            except errors.BadRequestError as exc:
                if not (self.usage_option and "stream_options" in str(exc)):
                    raise
                self.usage_option = False  # an older server: ask again without it
                body.pop("stream_options")
                response = post()
        except errors.ProviderError as exc:
            who = f"'{self.name}' at {self.endpoint.label}"
            if refused := refusal_of(exc, self.endpoint, self.name, tools, messages, who):
                raise refused from None
            raise
        if response is None:
            return
        try:
            events = read_answer(response, self.endpoint, cancel, _Reader(), self.name, bool(tools))
            yield from finish_stream(events, self.endpoint.secrets())
        finally:
            response.close()

    def _attachment_rules(self, newest: bool) -> _Rules:
        where = f"'{self.name}' at {self.endpoint.label}"
        return _Rules(files=self.takes_files(), newest=newest, where=where)

    def takes_files(self) -> bool:
        """Whether the server takes PDFs as ``file`` inputs (Ollama and llama.cpp do not)."""
        said = f"{self.provider} {self.endpoint.label}".lower()
        return not (self._is_ollama() or "llama" in said)

    # --- what the server serves ----------------------------------------------------------------

    def _models_list(self) -> list[dict[str, Any]] | None:
        if "models" not in self._facts:
            headers = {k: v for k, v in self.headers().items() if k != "Accept"}
            data = fetch_json(self.client(), self.endpoint, "GET", "models", headers)
            entries = as_list(as_dict(data).get("data")) or as_list(as_dict(data).get("models"))
            entries = [e for e in entries if isinstance(e, dict)]
            self._facts["models"] = entries if data is not None else None
        models: list[dict[str, Any]] | None = self._facts["models"]
        return models

    def available_models(self) -> list[str] | None:
        """The ids ``GET /models`` lists (one call, kept), or ``None`` if it could not be read."""
        entries = self._models_list()
        if entries is None:
            return None
        return [i for e in entries if (i := as_str(e.get("id")) or as_str(e.get("name")))]

    def _entry(self) -> dict[str, Any]:
        for entry in self._models_list() or []:
            if self.name in (as_str(entry.get("id")), as_str(entry.get("name"))):
                return entry
        return {}

    def context_window(self) -> int | None:
        """The context window: as the server says (OpenRouter's and vLLM's model list,
        llama.cpp's ``/props``, Ollama's ``/api/show``), else config, else the known table."""
        if "context" not in self._facts:
            self._facts["context"] = (
                self._server_context() or self.context_length or super().context_window()
            )
        context: int | None = self._facts["context"]
        return context

    def _server_context(self) -> int | None:
        if self._is_ollama():
            return self._ollama_context()
        entry = self._entry()
        for key in ("context_length", "max_model_len", "context_window", "max_context_length"):
            if (n := as_int(entry.get(key))) and n > 0:
                return n
        top = as_int(as_dict(entry.get("top_provider")).get("context_length"))
        if top:
            return top
        if as_str(entry.get("owned_by")) == "llamacpp" or "meta" in entry or not entry:
            return self._llamacpp_context()
        return None

    def _is_ollama(self) -> bool:
        return (
            self.provider == "ollama"
            or self.endpoint.label.lower() == "ollama"
            or ":11434" in self.endpoint.base_url
        )

    def _ollama_context(self) -> int | None:
        headers = {k: v for k, v in self.headers().items() if k != "Accept"}
        data = fetch_json(
            self.client(), self.endpoint, "POST", "api/show", headers, {"model": self.name}, True
        )
        info = as_dict(as_dict(data).get("model_info"))
        for key, value in info.items():
            if key.endswith(".context_length") and (n := as_int(value)):
                return n
        return None

    def _llamacpp_context(self) -> int | None:
        headers = {k: v for k, v in self.headers().items() if k != "Accept"}
        if "props" not in self._facts:
            self._facts["props"] = fetch_json(
                self.client(), self.endpoint, "GET", "props", headers, root=True
            )
        props = as_dict(self._facts["props"])
        settings = as_dict(props.get("default_generation_settings"))
        n = as_int(props.get("n_ctx")) or as_int(settings.get("n_ctx"))
        return n if n and n > 0 else None

    def pricing(self) -> dict[str, float] | None:
        """Dollars per token (``prompt``, ``completion``) from OpenRouter's model list, or ``None``."""
        prices = as_dict(self._entry().get("pricing"))
        found = {
            k: p for k in ("prompt", "completion") if (p := as_float(prices.get(k))) is not None
        }
        return found or None


@dataclass(frozen=True)
class _Rules:
    """How attachments go out: whether PDFs can (``files``), whether this is the prompt being
    asked (``newest``: what cannot go refuses the request; earlier, it becomes a note)."""

    files: bool = True
    newest: bool = True
    where: str = "This model"


def wire_messages(message: Message, rules: _Rules | None = None) -> list[dict[str, Any]]:
    """One chatrepl message as OpenAI chat messages (a tool message becomes one per result)."""
    if message.role == "tool":
        out = []
        for part in message.parts:
            if part.kind != "tool_result":
                continue
            text = part.text
            if part.data.get("is_error") and not text.lower().startswith("error"):
                text = f"Error: {text}"
            out.append(
                {"role": "tool", "tool_call_id": str(part.data.get("call_id", "")), "content": text}
            )
        return out
    calls = [p for p in message.parts if p.kind == "tool_call"]
    if message.role == "assistant" and calls:
        return [
            {
                "role": "assistant",
                "content": message.content or None,
                "tool_calls": [
                    {
                        "id": str(p.data.get("id", "")),
                        "type": "function",
                        "function": {
                            "name": str(p.data.get("name", "")),
                            "arguments": json.dumps(p.data.get("arguments") or {}),
                        },
                    }
                    for p in calls
                ],
            }
        ]
    if message.role == "user" and any(p.kind == "attachment" for p in message.parts):
        return [{"role": "user", "content": user_content(message, rules or _Rules())}]
    return [{"role": message.role, "content": message.content}]


def user_content(message: Message, rules: _Rules) -> list[dict[str, Any]]:
    """A user message with attachments as content parts: images as ``image_url`` data URLs,
    PDFs as ``file`` inputs, text files inlined with their names; then the prompt."""
    from ..attachments import kind, name
    from .attach_wire import Base64Data, inline_text, note, unsupported

    blocks: list[dict[str, Any]] = []
    for part in message.parts:
        if part.kind != "attachment":
            continue
        said = note(part)
        what = kind(part)
        if said is None and what == "pdf" and not rules.files:
            if rules.newest:
                raise unsupported(part, rules.where)
            said = f"[{name(part)} was attached earlier; this model cannot read PDFs]"
        if said is not None:
            blocks.append({"type": "text", "text": said})
        elif what == "image":
            data = Base64Data(part.data["content"], f"data:{part.data['mime']};base64,")
            blocks.append({"type": "image_url", "image_url": {"url": data}})
        elif what == "pdf":
            data = Base64Data(part.data["content"], "data:application/pdf;base64,")
            blocks.append({"type": "file", "file": {"filename": name(part), "file_data": data}})
        else:
            blocks.append({"type": "text", "text": inline_text(part)})
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    return blocks


class _Reader:
    """The state of one streamed answer: text, reasoning, tool-call fragments, usage, ending
    (a :class:`~chatrepl.providers.stream.Reader`)."""

    end_mark: str | None = "[DONE]"

    def __init__(self) -> None:
        self.think = ThinkSplitter()
        self.calls: dict[int, dict[str, str]] = {}  # index → id, name, arguments so far
        self.sent_calls = 0
        self.usage: Usage | None = None
        self.finish_raw: str | None = None
        self.refused = False
        self.done = self.finished = False

    def feed(self, kind: str, data: Any) -> Iterator[Event]:
        """The events of one chunk."""
        if not isinstance(data, dict):
            return
        usage = data.get("usage") or as_dict(data.get("x_groq")).get("usage")  # Groq's place
        if isinstance(usage, dict):
            self.usage = read_usage(usage)
        for choice in as_list(data.get("choices")):
            choice = as_dict(choice)
            if as_int(choice.get("index")) not in (0, None):
                continue  # n > 1: only the first choice is read, never interleaved
            delta = as_dict(choice.get("delta")) or as_dict(choice.get("message"))
            yield from self.reasoning(delta)
            yield from self.content(delta.get("content"))
            if refusal := text_of(delta.get("refusal")):
                self.refused = True
                yield RefusalDelta(refusal)
            for position, fragment in enumerate(as_list(delta.get("tool_calls"))):
                self.add_fragment(as_dict(fragment), position)
            if legacy := as_dict(delta.get("function_call")):
                self.add_fragment({"index": -1, "function": legacy}, 0)
            if reason := choice.get("finish_reason"):
                self.finish_raw = as_str(reason) or str(reason)
                self.done = True
                yield from self.think.finish()
                yield from self.ready_calls()

    def content(self, content: Any) -> Iterator[Event]:
        """Answer text; in a list of blocks, ``thinking`` blocks are reasoning (Magistral:
        ``{"type": "thinking", "thinking": [{"type": "text", "text": ...}]}``), in order."""
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "thinking":
                    thought = block.get("thinking", block.get("text"))
                    if text := text_of(thought):
                        yield ReasoningDelta(text)
                elif text := text_of([block]):
                    yield from self.think.feed(text)
        elif text := text_of(content):
            yield from self.think.feed(text)

    def reasoning(self, delta: dict[str, Any]) -> Iterator[Event]:
        details = as_list(delta.get("reasoning_details"))
        if details:  # OpenRouter sends its text twice: here and in "reasoning"
            for detail in details:
                detail = as_dict(detail)
                kind = as_str(detail.get("type"))
                if kind == "reasoning.encrypted":
                    if data := as_str(detail.get("data")):
                        yield ReasoningDelta(redacted=data)
                    continue
                text = text_of(detail.get("text") if "text" in detail else detail.get("summary"))
                if text:
                    yield ReasoningDelta(text)
                if signature := as_str(detail.get("signature")):
                    yield ReasoningDelta(signature=signature)
            return
        for key in ("reasoning_content", "reasoning", "thinking"):
            value = delta.get(key)
            text = text_of(value) or text_of(as_dict(value).get("content"))
            if text:
                yield ReasoningDelta(text)
                return

    def add_fragment(self, fragment: dict[str, Any], position: int) -> None:
        """One piece of a tool call: ``id`` and ``name`` come first, arguments in pieces."""
        function = as_dict(fragment.get("function"))
        call_id, name = as_str(fragment.get("id")), as_str(function.get("name"))
        index = as_int(fragment.get("index"))
        if index is None:  # servers that send whole calls without an index
            known = [i for i, c in self.calls.items() if call_id and c["id"] == call_id]
            index = known[0] if known else (len(self.calls) if (call_id or name) else position)
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # some servers send the object itself
            arguments = json.dumps(arguments)
        call = self.calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        call["id"] = call["id"] or call_id
        call["name"] = call["name"] or name
        call["arguments"] += text_of(arguments)

    def ready_calls(self) -> Iterator[Event]:
        for index in sorted(self.calls):
            call = self.calls[index]
            if call["name"] or call["arguments"]:
                self.sent_calls += 1
                yield tool_call(call["id"], call["name"], call["arguments"])
        self.calls.clear()

    def usage_so_far(self) -> Iterator[Event]:
        if self.usage is not None and usage_total(self.usage):
            yield self.usage
        self.usage = None

    def end(self) -> Iterator[Event]:
        """What is left once the stream is over: held text, whole calls, usage, the ending."""
        yield from self.think.finish()
        yield from self.ready_calls()
        yield from self.usage_so_far()
        raw = self.finish_raw or ""
        reason = FINISH.get(raw, "stop")
        if self.refused and reason == "stop":
            reason = "refused"
        elif self.sent_calls and reason == "stop":
            reason = "tool_calls"  # servers that say "stop" after calling tools
        yield Finish(reason, raw)

    def whole(self, data: Any) -> Iterator[Event]:
        """A whole ``chat.completion`` object, read like one big chunk."""
        for choice in as_list(data.get("choices")):
            message = as_dict(as_dict(choice).get("message"))
            for position, call in enumerate(as_list(message.get("tool_calls"))):
                if isinstance(call, dict) and "index" not in call:
                    call["index"] = position
        yield from self.feed("message", data)
        self.done = True
        yield from self.end()


def read_usage(u: dict[str, Any]) -> Usage:
    """OpenAI-style usage with the details vendors add: cache reads (OpenAI's and vLLM's
    ``prompt_tokens_details.cached_tokens``, DeepSeek's ``prompt_cache_hit_tokens``, Moonshot's
    ``cached_tokens``), cache writes (OpenRouter's ``cache_write_tokens``), reasoning tokens
    and the cost OpenRouter reports. The input counts every prompt token, cached or not."""
    prompt = as_dict(u.get("prompt_tokens_details"))
    completion = as_dict(u.get("completion_tokens_details"))
    hit, miss = as_int(u.get("prompt_cache_hit_tokens")), as_int(u.get("prompt_cache_miss_tokens"))
    total = as_int(u.get("prompt_tokens"))
    if total is None and (hit is not None or miss is not None):
        total = (hit or 0) + (miss or 0)
    read = as_int(prompt.get("cached_tokens"))
    if read is None:
        read = hit if hit is not None else as_int(u.get("cached_tokens"))
    return Usage(
        input_tokens=total,
        output_tokens=as_int(u.get("completion_tokens")),
        reasoning_tokens=as_int(completion.get("reasoning_tokens")),
        cache_read_tokens=read,
        cache_write_tokens=as_int(prompt.get("cache_write_tokens")),
        cost=as_float(u.get("cost")),
    )
