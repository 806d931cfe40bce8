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
    tool_call    a call the model asked for (data: id, name, arguments; when the user changed
                 the arguments before it ran: arguments are those that ran, and
                 original_arguments the model's)
    tool_result  what the tool returned (data: call_id, name, is_error; edited when the user
                 changed the arguments: the text's first line says so)
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
    """Token counts (and cost) as the service reported them (``None`` where it did not).

    ``input_tokens`` counts every prompt token, cached or not (as OpenAI counts them; for
    Anthropic, which reports them apart, the sum of its three figures); ``cache_read_tokens``
    and ``cache_write_tokens`` are the part of them read from or written to the provider's
    prompt cache. ``cost`` is what the server says the call cost (OpenRouter), in dollars.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
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


# --- what the store keeps: records in, records out ----------------------------------------------

#: How a turn ended. ``cut_off``: at the token limit; ``filtered``: by the provider's filter;
#: ``refused``: the model declined.
STATUSES = ("pending", "complete", "cut_off", "filtered", "refused", "interrupted", "error")


@dataclass
class ConversationRecord:
    """A saved conversation's own row; ``head`` is the turn the conversation goes on from."""

    id: str
    title: str | None
    title_source: str | None
    model: str
    system: str | None
    created: str
    updated: str
    head: str | None = None
    forked_from: str | None = None


@dataclass
class ConversationSummary(ConversationRecord):
    """A row of a listing: the conversation, the turns on its current path, tokens of all turns."""

    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class CallRecord:
    """One model call within a turn (a turn that runs tools makes several).

    ``cache_read_tokens`` and ``cache_write_tokens``: input tokens read from, and written to,
    the provider's prompt cache (part of ``input_tokens``), where the provider said.
    """

    index: int
    model: str
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost: float | None = None
    duration_ms: int | None = None
    ttft_ms: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


@dataclass
class TurnRecord:
    """One saved turn: the user's prompt and what the model produced, in typed parts.

    ``prompt`` and ``response`` repeat the prompt text and the answer text of the parts, for
    listing and search. ``kind`` is ``turn``, or ``summary`` for a compaction summary.
    """

    id: str
    conversation_id: str
    parent_id: str | None
    model: str
    prompt: str
    system: str | None
    response: str
    options: dict[str, Any]
    input_tokens: int | None
    output_tokens: int | None
    status: str
    error: str | None
    started: str
    duration_ms: int | None
    ttft_ms: int | None
    parts: list[Part] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    kind: str = "turn"


@dataclass
class TreeNode:
    """A turn as the tree view shows it."""

    id: str
    parent_id: str | None
    prompt: str
    status: str
    started: str
    kind: str = "turn"


@dataclass
class SearchHit:
    """A search result: the turn, its conversation and a snippet with marks around hits."""

    conversation_id: str
    title: str | None
    response_id: str
    started: str
    snippet: str


def answer_parts(parts: list[Part]) -> list[Part]:
    """A turn's parts as its answer reads: the text of a continued answer (``/continue``: a
    later call carrying on a call that ended in text, no tool call between) joined to the text
    it continues, as the model is sent it."""
    out: list[Part] = []
    last: int | None = None  # where the last answer part (not reasoning) is in ``out``
    for p in parts:
        if last is not None and p.kind == "text" and p.call > 0:
            before = out[last]
            if before.kind == "text" and before.call != p.call:
                out[last] = Part("text", before.text + p.text, before.data, before.call)
                continue
        out.append(p)
        if p.call > 0 and p.kind != "reasoning":
            last = len(out) - 1
    return out


def linear_parents(turns: list[tuple[str, bool]]) -> tuple[list[str | None], str | None]:
    """Parents for turns kept in a straight line with ``undone`` flags (schema 1, old exports,
    llm's logs), and the head: nothing lost, undone turns become side branches.

    A turn's parent is the last turn before it that was not undone; an undone turn that follows
    another undone turn hangs from it (the user took back several). So a retry (the old answer
    undone, the same prompt asked again) becomes two siblings.

    Args:
        turns: ``(id, undone)`` of each turn, oldest first.
    """
    parents: list[str | None] = []
    head: str | None = None
    previous: tuple[str, bool] | None = None
    for turn_id, undone in turns:
        parents.append(previous[0] if previous and previous[1] and undone else head)
        if not undone:
            head = turn_id
        previous = (turn_id, undone)
    return parents, head
