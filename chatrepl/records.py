"""Plain records every layer shares: the parts of a turn, the messages sent to a model, the
tools offered to it, and the events a provider streams back.

Nothing here does I/O or imports another chatrepl module: providers, the store, the tools and
the conversation all speak in these records.

Part kinds, in the order they appear in a turn:

    prompt       the user's text
    attachment   a file sent with the prompt (data: sha256, name, mime, size)
    reasoning    the model's thinking (data: signature, redacted, provider)
    text         answer text
    refusal      the model declined (its own words)
    tool_call    a call the model asked for (data: id, name, arguments)
    tool_result  what the tool returned (data: call_id, name, is_error)
    notice       how the call ended when not normally (data: reason)
    summary      a compaction summary standing for earlier turns
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PART_KINDS = (
    "prompt",
    "attachment",
    "reasoning",
    "text",
    "refusal",
    "tool_call",
    "tool_result",
    "notice",
    "summary",
)

#: How a model call ended, as recorded: the finish reasons chatrepl tells apart.
FINISH_REASONS = ("stop", "length", "tool_calls", "filtered", "refused")


@dataclass
class Part:
    """One typed piece of a turn.

    Args:
        kind: one of PART_KINDS.
        text: the human-readable text of the part (empty for a bare attachment or call).
        data: what the kind needs besides text (ids, arguments, signatures, hashes).
        call: which model call of the turn produced it (0 for the user's own parts).
    """

    kind: str
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    call: int = 0


@dataclass(frozen=True)
class Message:
    """One message sent to a model.

    Args:
        role: ``system``, ``user``, ``assistant`` or ``tool``.
        content: its text (for ``assistant``, the answer text; empty for ``tool``).
        parts: the non-text parts in order: attachments of a user message; reasoning and
            tool calls of an assistant message; tool results of a ``tool`` message.
    """

    role: str
    content: str = ""
    parts: tuple[Part, ...] = ()


@dataclass(frozen=True)
class ToolSpec:
    """A tool as offered to a model: its name, what it does, and a JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass
class Usage:
    """Token counts (and cost) as the service reported them (``None`` where it did not)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    cost: float | None = None


# --- what a provider streams: one of these at a time --------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    """More answer text."""

    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    """More reasoning text; ``signature`` or ``redacted`` close a block the provider wants back.

    ``provider`` names the wire format that can take the block back (``"anthropic"``), or is
    ``None`` when reasoning must never be sent back: store it as the part's data["provider"].
    """

    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    provider: str | None = None


@dataclass(frozen=True)
class RefusalDelta:
    """More of a refusal in the model's own words."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """A whole tool call the model asked for (sent once its arguments are complete).

    ``arguments`` is the parsed JSON object; ``raw`` keeps the text when it was not valid JSON.
    """

    id: str
    name: str
    arguments: dict[str, Any]
    raw: str | None = None


@dataclass(frozen=True)
class Finish:
    """How the call ended: one of FINISH_REASONS; ``raw`` is what the server said."""

    reason: str
    raw: str = ""


Event = TextDelta | ReasoningDelta | RefusalDelta | ToolCall | Usage | Finish
