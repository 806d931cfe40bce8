"""The small interface every provider implements: messages in, a stream of events out."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..records import Event, Message, ToolSpec


@dataclass
class Backend:
    """A model at a provider that streams events: what answers a conversation. Subclasses
    implement :meth:`stream` (one per wire protocol). The public ``chatrepl.Model`` wraps one.

    Args:
        name: the model's name at the provider, e.g. ``gpt-4o-mini``.
        provider: the provider's name, e.g. ``openai`` or a name from config.toml.
    """

    name: str
    provider: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    #: Where a provider says what it is doing while the user waits (loading a model): the
    #: front ends set it; the library stays silent.
    progress: ClassVar[Callable[[str], None] | None] = None
    #: The API takes a trailing assistant message as the start of the answer (a prefill).
    prefill: ClassVar[bool] = False

    @property
    def full_name(self) -> str:
        """The name a user types: ``provider:model``."""
        return f"{self.provider}:{self.name}"

    def stream(
        self,
        messages: list[Message],
        options: dict[str, Any],
        cancel: threading.Event,
        tools: list[ToolSpec] | None = None,
    ) -> Iterator[Event]:
        """Send ``messages`` and yield the answer's events as they arrive (text, reasoning,
        tool calls, usage, how it finished); stop soon after ``cancel`` is set.

        Raises:
            ProviderError: any failure, as one sentence a user can act on.
        """
        raise NotImplementedError

    def available_models(self) -> list[str] | None:
        """The models the service really serves, or ``None`` when it cannot say."""
        return None

    def context_window(self) -> int | None:
        """How many tokens fit in one request to this model (``None`` when unknown)."""
        from .catalog import known_context_window

        return known_context_window(self.name)

    def close(self) -> None:
        """Release connections or loaded weights; the model may be used again afterwards."""

    def __str__(self) -> str:
        return self.full_name
