"""Compaction: older turns summarised into one, so a conversation can outgrow the context window.

The shape in the tree: a turn of kind ``summary`` hangs from the last turn it summarises, and
copies of the turns kept verbatim (the last few) hang from it; the head moves to the last copy.
The path from the root to the head still reads in order (the old turns, the summary, the recent
turns), ``messages_for`` sends the persona, the summary and the turns after it, and the original
turns stay where they were: saved, searchable, exportable, one ``/alt`` away.

The summary request can never overflow: the transcript is cut into chunks that fit the window
with room to spare, each chunk is summarised, and the summaries are merged (again in chunks)
until one is left. Each summary is capped in tokens (and cut to its cap in characters, whatever
the model sends) and asks for no reasoning. When the model cannot summarise, a plain digest of
the turns takes its place, so a conversation past the limit can always go on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .context import context_used, estimated_size, since_summary, turn_chars
from .errors import ChatreplError, ContextTooLongError, ProviderError
from .ids import new_id
from .records import CallRecord, Finish, Message, Part, TextDelta, TurnRecord, Usage
from .text import CHARS_PER_TOKEN, estimate_tokens, shorten

if TYPE_CHECKING:
    from .conversation import Conversation, Response

KEEP_TURNS = 4  # the last turns kept verbatim
SUMMARY_TOKENS = 1024  # the cap of one summary's output
CHUNK_TOKENS = 12_000  # the most transcript one summary request carries
TURN_CHARS = 16_000  # the most of one turn a transcript holds (its start and its end)
#: share of the window kept free for the answer when no max_tokens is set
ANSWER_SHARE = 0.15
_CONTEXT_WORDS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "too many tokens",
    "is too long for",
    "prompt is too long",
    "exceeds the context",
)

SYSTEM = (
    "You write the summary that replaces the earlier part of a conversation between a user "
    "and an assistant, so that the conversation can go on without it. Keep every fact, "
    "decision, name, number, file, code identifier, preference and open question that may "
    "matter later; drop greetings and repetition. Write in the conversation's language, as "
    "compact notes, at most {words} words. Do not answer or continue the conversation."
)
CHUNK_ASK = "Summarise this part of the conversation:\n\n<transcript>\n{text}\n</transcript>"
MERGE_ASK = (
    "These are summaries of consecutive parts of one conversation, oldest first. Merge them "
    "into one summary:\n\n{text}"
)


@dataclass
class Compacted:
    """What a compaction did: the summary turn, how many turns it stands for, how many were
    kept verbatim, the summary requests made, and whether a plain digest had to stand in."""

    summary: TurnRecord
    replaced: int
    kept: int
    requests: int
    fallback: bool = False
    tokens_before: int = 0
    tokens_after: int = 0
    notes: list[str] = field(default_factory=list)

    def sentence(self, why: str = "") -> str:
        """What happened, told to the user in one line."""
        said = f"{why}: " if why else ""
        how = "a plain digest (the model could not summarise)" if self.fallback else "one summary"
        return (
            f"{said}{self.replaced} earlier turn{'s' if self.replaced != 1 else ''} compacted into "
            f"{how}, the last {self.kept} kept as they were (~{self.tokens_before:,} → "
            f"~{self.tokens_after:,} tokens); the originals stay saved (/tree, /alt)."
        )


def context_error(message: str | None) -> bool:
    """Whether an error sentence says the request did not fit the model's context."""
    said = (message or "").lower()
    return any(word in said for word in _CONTEXT_WORDS)


def answer_room(conversation: Conversation, window: int) -> int:
    """Tokens kept free for the answer: max_tokens if set, else a share of the window."""
    asked = conversation.options.get("max_tokens")
    if isinstance(asked, int) and not isinstance(asked, bool) and 0 < asked < window:
        return asked
    return int(window * ANSWER_SHARE)


def needs_room(conversation: Conversation, prompt: str, window: int | None) -> bool:
    """Whether sending ``prompt`` next would not fit ``window`` with room for the answer."""
    if not window or not conversation.turns:
        return False
    used, _ = context_used(conversation, prompt)
    return used + answer_room(conversation, window) > window


def make_room(
    conversation: Conversation,
    prompt: str,
    window: int | None,
    notify: Callable[[str], None],
) -> Compacted | None:
    """Compact before sending ``prompt`` if it would not fit ``window``; ``notify`` is told."""
    if not needs_room(conversation, prompt, window):
        return None
    assert window is not None
    used, _ = context_used(conversation, prompt)
    notify(
        f"The conversation nears the context window (~{used:,} of {window:,} tokens): compacting…"
    )
    try:
        done = compact(conversation, window=window)
    except ChatreplError as exc:
        notify(f"Could not compact ({exc}); sending as it is.")
        return None
    if done is not None:
        notify(done.sentence("Compacted"))
    return done


def recover(
    conversation: Conversation,
    failed: Response,
    window: int | None,
    notify: Callable[[str], None],
) -> Response | None:
    """After ``failed`` (the head) was refused as too long for the context: learn the model's
    window from the refusal (kept for later runs, so later turns are compacted before they are
    sent), compact, and ask the same prompt again once. The failed turn stays in the tree.
    ``None``: nothing to do."""
    if failed.status != "error" or not context_error(failed.error):
        return None
    if not conversation.turns or conversation.turns[-1] is not failed:
        return None
    from .context import window_of
    from .windows import learn

    learn(conversation.model.full_name, failed.error or "", estimated_size(conversation))
    if not any(t.kind != "summary" for t in since_summary(conversation)[1][:-1]):
        return None  # nothing before it to compact: the prompt alone is too long
    window = window_of(conversation) or window  # asks the server only when it will be used
    conversation.undo()
    notify("The request was too long for the model's context: compacting, then asking again…")
    done = compact(conversation, window=window, keep=KEEP_TURNS // 2, force=True)
    if done is None:  # not reached: there is a turn to compact
        conversation.switch(failed.id)
        return None
    notify(done.sentence("Compacted"))
    attachments = [p for p in failed.parts if p.kind == "attachment"]
    return conversation.prompt(failed.prompt, attachments=attachments, **failed.options)


# --- compacting ---------------------------------------------------------------------------------


def compact(
    conversation: Conversation,
    *,
    window: int | None = None,
    keep: int = KEEP_TURNS,
    force: bool = False,
    cancel: threading.Event | None = None,
) -> Compacted | None:
    """Summarise the turns of the path before the last ``keep`` into one summary turn.

    Returns ``None`` when there is nothing to summarise (no more turns than ``keep``). The last
    turns are kept verbatim unless they alone would crowd the window; ``force`` summarises at
    least one turn even then. With a store, the summary and the copies are saved and the head
    moves; nothing is deleted.
    """
    previous, turns = since_summary(conversation)
    turns = [t for t in turns if t.status != "pending"]
    window = window or _window(conversation)
    keep = _kept(turns, keep, window)
    if force and keep >= len(turns) and turns:
        keep = len(turns) - 1
    if len(turns) <= keep:
        return None
    old, kept = turns[: len(turns) - keep], turns[len(turns) - keep :]
    before = estimated_size(conversation)
    began = time.monotonic()
    earlier = _joined(previous.parts, "summary") if previous is not None else ""
    summarizer = _Summarizer(conversation, window, cancel or threading.Event())
    text = summarizer.run(transcript(old, earlier))
    record = _summary_record(conversation, old, text, summarizer, time.monotonic() - began)
    copies = _copies(conversation, kept, record.id)
    _save(conversation, [record, *copies])
    after = estimated_size(conversation)
    return Compacted(
        summary=record,
        replaced=len(old),
        kept=len(kept),
        requests=summarizer.requests,
        fallback=summarizer.fallback,
        tokens_before=before,
        tokens_after=after,
        notes=summarizer.notes,
    )


def _window(conversation: Conversation) -> int | None:
    from .context import window_of

    return window_of(conversation)


def _kept(turns: list[Response], keep: int, window: int | None) -> int:
    """How many of the last turns stay verbatim: at most ``keep``, and at most half the window."""
    keep = max(0, min(keep, len(turns)))
    if window:
        while keep and estimate_tokens(sum(turn_chars(t) for t in turns[-keep:])) > window // 2:
            keep -= 1
    return keep


def transcript(turns: list[Response], earlier: str = "") -> list[str]:
    """The turns to summarise as transcript pieces, one per turn (a long turn keeps its start
    and its end), after the summary they continue from."""
    pieces = [f"[Summary of what came before]\n{earlier}"] if earlier else []
    for turn in turns:
        lines = []
        for p in turn.parts:
            if p.kind == "prompt" and p.text:
                lines.append(f"User: {p.text}")
            elif p.kind == "attachment":
                lines.append(f"User attached: {p.data.get('name', 'a file')}")
            elif p.kind in ("text", "refusal") and p.text:
                lines.append(f"Assistant: {p.text}")
            elif p.kind == "tool_call":
                lines.append(f"Assistant called {p.data.get('name')}({p.data.get('arguments')})")
            elif p.kind == "tool_result":
                lines.append(f"Tool {p.data.get('name')} returned: {shorten(p.text, 2000)}")
        text = "\n".join(lines)
        if len(text) > TURN_CHARS:
            half = TURN_CHARS // 2
            text = text[:half] + "\n[…]\n" + text[-half:]
        if text:
            pieces.append(text)
    return pieces


def chunks(pieces: list[str], limit: int) -> Iterator[str]:
    """``pieces`` joined into texts of at most ``limit`` characters (a longer piece is cut)."""
    current: list[str] = []
    size = 0
    for piece in pieces:
        piece = piece[:limit]
        if current and size + len(piece) + 2 > limit:
            yield "\n\n".join(current)
            current, size = [], 0
        current.append(piece)
        size += len(piece) + 2
    if current:
        yield "\n\n".join(current)


class _Summarizer:
    """Summary requests to the conversation's model, bounded by its window."""

    def __init__(self, conversation: Conversation, window: int | None, cancel: threading.Event):
        self.model = conversation.model
        self.user_options = conversation.options
        self.cancel = cancel
        window = window or 32_768  # unknown: a size nearly every model takes
        self.out_tokens = max(128, min(SUMMARY_TOKENS, window // 8))
        room = window - self.out_tokens - estimate_tokens(SYSTEM) - 256
        self.chunk_chars = max(1000, min(CHUNK_TOKENS, room // 2) * CHARS_PER_TOKEN)
        self.out_chars = self.out_tokens * CHARS_PER_TOKEN
        self.calls: list[CallRecord] = []
        self.requests = 0
        self.fallback = False
        self.notes: list[str] = []
        self._options: dict[str, Any] | None = None

    def run(self, pieces: list[str]) -> str:
        """One summary of ``pieces``: each chunk summarised, then the summaries merged."""
        summaries = [self.one(CHUNK_ASK.format(text=c)) for c in chunks(pieces, self.chunk_chars)]
        while len(summaries) > 1:
            groups = list(chunks(summaries, self.chunk_chars))
            if len(groups) >= len(summaries):  # cannot shrink further: keep them all
                return "\n\n".join(summaries)[: self.chunk_chars]
            summaries = [self.one(MERGE_ASK.format(text=g)) for g in groups]
        return summaries[0] if summaries else ""

    def options(self) -> dict[str, Any]:
        """A capped answer, and as little reasoning as the server allows."""
        if self._options is None:
            self._options = {"max_tokens": self.out_tokens}
            if "reasoning_effort" in self.user_options:  # the server takes the option
                self._options["reasoning_effort"] = "low"
        return self._options

    def one(self, ask: str) -> str:
        """One summary request; a plain digest of ``ask`` if the model cannot give one."""
        words = self.out_tokens * 3 // 4
        messages = [Message("system", SYSTEM.format(words=words)), Message("user", ask)]
        for attempt in range(2):
            self.requests += 1
            try:
                text = self._ask(messages, self.options())
            except ContextTooLongError:
                self.chunk_chars = max(1000, self.chunk_chars // 2)
                break
            except ProviderError as exc:
                if attempt == 0 and self._options:  # perhaps an option it does not take
                    self._options = {}
                    continue
                self.notes.append(str(exc))
                break
            if text.strip():
                return text.strip()[: self.out_chars]
            break
        self.fallback = True
        return digest(ask, self.out_chars)

    def _ask(self, messages: list[Message], options: dict[str, Any]) -> str:
        call = CallRecord(len(self.calls) + 1, self.model.full_name)
        began = time.monotonic()
        self.calls.append(call)
        pieces: list[str] = []
        try:
            for event in self.model.stream(messages, options, self.cancel):
                if isinstance(event, TextDelta):
                    pieces.append(event.text)
                elif isinstance(event, Usage):
                    for name in ("input_tokens", "output_tokens", "reasoning_tokens", "cost"):
                        if (value := getattr(event, name)) is not None:
                            setattr(call, name, value)
                elif isinstance(event, Finish):
                    call.finish_reason = event.reason
        finally:
            call.duration_ms = round((time.monotonic() - began) * 1000)
        return "".join(pieces)


def digest(text: str, limit: int) -> str:
    """A plain, bounded digest of a transcript: each line's start, as many as fit."""
    lines = [shorten(" ".join(line.split()), 160) for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("<transcript>", "</transcript>"))]
    out: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) + 1 > limit:
            break
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


def _summary_record(
    conversation: Conversation,
    old: list[Response],
    text: str,
    summarizer: _Summarizer,
    seconds: float,
) -> TurnRecord:
    from .text import now

    calls = summarizer.calls
    data = {
        "turns": len(old),
        "through": old[-1].id,
        "requests": summarizer.requests,
        "fallback": summarizer.fallback,
    }
    return TurnRecord(
        id=new_id(),
        conversation_id=conversation.id,
        parent_id=old[-1].id,
        model=conversation.model.full_name,
        prompt="",
        system=conversation.system,
        response="",
        options={},
        input_tokens=_total(calls, "input_tokens"),
        output_tokens=_total(calls, "output_tokens"),
        status="complete",
        error=None,
        started=now(),
        duration_ms=round(seconds * 1000),
        ttft_ms=None,
        parts=[Part("summary", text, data, 1)],
        calls=calls,
        kind="summary",
    )


def _total(calls: list[CallRecord], name: str) -> int | None:
    values = [getattr(c, name) for c in calls if getattr(c, name) is not None]
    return sum(values) if values else None


def _copies(conversation: Conversation, kept: list[Response], parent: str) -> list[TurnRecord]:
    """The kept turns again, each under the one before, the first under the summary."""
    copies = []
    for turn in kept:
        t = turn.record()
        t.id, t.conversation_id, t.parent_id = new_id(), conversation.id, parent
        copies.append(t)
        parent = t.id
    return copies


def _save(conversation: Conversation, records: list[TurnRecord]) -> None:
    """Save the summary and the copies, and go on from the last of them."""
    conversation.graft(records)
    if conversation.store:
        conversation.store.add_turns(conversation.record(), records)


def _joined(parts: list[Part], kind: str) -> str:
    return "".join(p.text for p in parts if p.kind == kind)
