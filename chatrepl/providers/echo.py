"""``echo``: the built-in offline model. Deterministic: it answers with the prompt it was given."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..records import Event, Message, TextDelta, ToolSpec, Usage
from .base import Backend


@dataclass
class EchoBackend(Backend):
    """Streams the last user message back word by word; counts words as tokens.

    The option ``delay`` (seconds between pieces) makes it slow, for demos of interrupting.
    """

    def stream(
        self,
        messages: list[Message],
        options: dict[str, Any],
        cancel: threading.Event,
        tools: list[ToolSpec] | None = None,
    ) -> Iterator[Event]:
        prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
        delay = float(options.get("delay", self.options.get("delay", 0)))
        pieces = re.findall(r"\s*\S+|\s+", prompt) or [""]
        for piece in pieces:
            if cancel.is_set():
                return
            if delay:
                time.sleep(delay)
            yield TextDelta(piece)
        words_in = sum(len(m.content.split()) for m in messages)
        yield Usage(words_in, len(prompt.split()))
