"""Conversation and Response: a tree of turns, the persona, and the model calls of each turn.

A conversation is a tree: every turn has a parent (none for the first), and the conversation a
head. What is sent with a new prompt is the persona, then the path from the root to the head.
``retry`` and ``edit`` make siblings, ``undo`` moves the head back, ``switch`` moves it to
another branch: nothing is deleted.

A ``Response`` (one turn) is lazy: the request goes out when it is first iterated (or
``text()`` is called). With a store, the turn is written when the prompt is made, what arrives
is flushed while it streams (at least once a second, from a small background thread) and the
turn is finalised at the end, whatever the end is.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from .errors import ChatreplError, NotFoundError, ProviderError
from .ids import new_id
from .records import (
    CallRecord,
    ConversationRecord,
    Event,
    Finish,
    Message,
    Part,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolSpec,
    TreeNode,
    TurnRecord,
    Usage,
)
from .text import now, valid_text

if TYPE_CHECKING:
    from .budgets import Budget
    from .providers.base import Backend
    from .store import Store

_OVER = threading.Event()  # the cancel signal of every turn loaded finished from a store
_OVER.set()
_FINISHED = threading.Lock()  # the lock of those turns (only a mark_interrupted writes)

FLUSH_INTERVAL = 0.5  # seconds; the spec asks for at least once a second
CHAIN_LIMIT = 10  # model calls in one turn that runs tools
#: Options that belong to the one turn they were given with (``--schema``): not carried on.
ONE_TURN = ("schema",)

#: The status a turn ends with, by the finish reason of its last model call.
_ENDINGS = {"length": "cut_off", "filtered": "filtered", "refused": "refused"}
#: What a continuation sends after a cut-off answer where the API takes no prefill (it is part
#: of that one request only: never saved, never shown as a turn).
CONTINUE_PROMPT = (
    "Your last answer was cut off at the token limit. Continue it exactly where it stopped, "
    "without repeating anything and without any preamble."
)
#: Parts the model produced that make a turn worth sending again.
_SUBSTANCE = ("text", "refusal", "tool_call")


class Toolbox(Protocol):
    """What a turn that may call tools needs: the tools' specs, and a way to run a call."""

    def specs(self) -> list[ToolSpec]: ...

    def run(self, call: ToolCall, cancel: threading.Event) -> Part:
        """Run ``call`` (after asking, where the user wants to be asked); a tool_result part."""
        ...


@dataclass(frozen=True)
class ToolResult:
    """An event of a turn that runs tools: a tool's result has been added to the turn."""

    part: Part


class Response:
    """One turn: a prompt and what the model produces, across one or more model calls.

    Iterate it for the answer text as it arrives, or ``events()`` for everything (reasoning,
    tool calls and results, how each call finished); ``text()`` waits for the whole answer.
    After the end, ``status`` is ``complete``, ``cut_off``, ``filtered``, ``refused``,
    ``interrupted`` or ``error`` (then ``error`` holds the sentence).
    """

    def __init__(
        self,
        conversation: Conversation,
        prompt: str,
        *,
        parent_id: str | None,
        system: str | None,
        options: dict[str, Any],
        model: Backend,
        attachments: list[Part] | None = None,
        toolbox: Toolbox | None = None,
        chain: bool = False,
        chain_limit: int = CHAIN_LIMIT,
    ):
        self.conversation = conversation
        self.id = new_id()
        self.parent_id = parent_id
        self.prompt = prompt
        self.system = system
        self.options = options
        self.model = model
        self.model_name = model.full_name
        self.kind = "turn"
        self.started = now()
        self.status = "pending"
        self.error: str | None = None
        self.usage = Usage()
        self.duration: float | None = None
        self.time_to_first_token: float | None = None
        self.parts: list[Part] = [Part("prompt", prompt), *(attachments or [])]
        self.calls: list[CallRecord] = []
        self.toolbox = toolbox
        self.chain = chain
        self.chain_limit = chain_limit
        self._cancel = threading.Event()
        self._lock = threading.Lock()  # the parts, between the stream and the flusher
        self._buffer: list[str] = []  # pieces of the part still arriving (the last one)
        self._open = False  # the last part is still arriving
        self._saved = len(self.parts)  # parts before this index are saved for good
        self._begun = False  # streaming has started (or the response was cancelled first)
        self._streaming = False  # streaming is under way right now
        self._continuing = False  # the next model call carries on a cut-off answer
        self._reported: set[int] = set()  # calls whose cost the server reported

    @classmethod
    def from_record(cls, conversation: Conversation, t: TurnRecord) -> Response:
        """A finished turn rebuilt from its saved record."""
        r = cls.__new__(cls)
        r.conversation, r.id, r.parent_id = conversation, t.id, t.parent_id
        r.prompt, r.system, r.options, r.kind = t.prompt, t.system, t.options, t.kind
        r.model, r.model_name = conversation.model, t.model
        r.started, r.status, r.error = t.started, t.status, t.error
        r.usage = Usage(t.input_tokens, t.output_tokens)  # the calls hold the rest
        r.duration = None if t.duration_ms is None else t.duration_ms / 1000
        r.time_to_first_token = None if t.ttft_ms is None else t.ttft_ms / 1000
        r.parts, r.calls = list(t.parts), list(t.calls)
        if not r.parts:
            r.parts = [Part("prompt", t.prompt)] + (
                [Part("text", t.response, call=1)] * bool(t.response)
            )
        r.toolbox, r.chain, r.chain_limit = None, False, CHAIN_LIMIT
        # A finished turn never streams: it shares one cancelled signal and one lock (making
        # an Event and a Lock per turn was a fifth of opening a 1,000-turn conversation).
        r._cancel, r._lock = _OVER, _FINISHED
        r._buffer, r._open, r._saved = [], False, len(r.parts)
        r._begun, r._streaming, r._continuing = (
            True,
            False,
            False,
        )  # never streams: no _reported needed
        return r

    def record(self) -> TurnRecord:
        """The turn as the store keeps it."""
        with self._lock:
            self._sync()
            parts = list(self.parts)
        return TurnRecord(
            id=self.id,
            conversation_id=self.conversation.id,
            parent_id=self.parent_id,
            model=self.model_name,
            prompt=self.prompt,
            system=self.system,
            response=_joined(parts, "text"),
            options=self.options,
            input_tokens=self.usage.input_tokens,
            output_tokens=self.usage.output_tokens,
            status=self.status,
            error=self.error,
            started=self.started,
            duration_ms=_ms(self.duration),
            ttft_ms=_ms(self.time_to_first_token),
            parts=parts,
            calls=list(self.calls),
            kind=self.kind,
        )

    # --- reading what arrived -----------------------------------------------------------------

    @property
    def text_so_far(self) -> str:
        """The answer text that has arrived so far (every call's, in order)."""
        with self._lock:
            self._sync()
            return _joined(self.parts, "text")

    @property
    def reasoning(self) -> str:
        """The reasoning that has arrived so far."""
        with self._lock:
            self._sync()
            return _joined(self.parts, "reasoning", "\n\n")

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls the model asked for in this turn."""
        return [
            ToolCall(str(p.data.get("id", "")), str(p.data.get("name", "")), _arguments(p))
            for p in self.parts
            if p.kind == "tool_call"
        ]

    @property
    def done(self) -> bool:
        return self.status != "pending"

    def __iter__(self) -> Iterator[str]:
        for event in self.events():
            if isinstance(event, TextDelta):
                yield event.text

    def events(self) -> Iterator[Event | ToolResult]:
        """Everything as it arrives: text, reasoning, refusals, tool calls, tool results
        (``ToolResult``), usage, and how each model call finished."""
        if self._begun:
            if self._streaming:
                raise RuntimeError("this response is already being streamed")
            text = self.text_so_far
            if text:
                yield TextDelta(text)
            return
        self._begun = self._streaming = True
        try:
            yield from self._run()
        finally:
            self._streaming = False

    def text(self) -> str:
        """The whole answer (streaming it first if needed); raises if the request failed."""
        for _ in self.events():
            pass
        if self.status == "error" and not self.text_so_far and self.error:
            raise ProviderError(self.error)
        return self.text_so_far

    def cancel(self) -> None:
        """Stop the answer (and any tool running); what arrived is kept, marked interrupted.

        A response cancelled before it began streaming is finished (and saved) at once.
        """
        self._cancel.set()
        if not self._begun:
            self._begun = True
            self.status, self.duration = "interrupted", 0.0
            if self.conversation.store:
                self.conversation.store.finish_turn(self.record())

    def mark_interrupted(self) -> None:
        """Record a finished answer as interrupted: the user stopped it before it was all shown."""
        if self.status in ("pending", "error"):
            return
        self.status = "interrupted"
        if self.conversation.store:
            self.conversation.store.finish_turn(self.record())

    def reopen(self, **options: Any) -> None:
        """Carry on this turn, whose answer was cut off at the token limit: the next iteration
        makes one more model call of the same turn, whose text joins the answer. Where the API
        takes a prefill the cut-off text is sent as the start of the answer; elsewhere a short
        instruction to continue goes with that one request."""
        if self.status != "cut_off":
            raise ChatreplError("The last answer was not cut off: there is nothing to continue.")
        self.options = {**self.options, **options}
        self.model = self.conversation.model
        self._cancel, self._lock = threading.Event(), threading.Lock()
        self._buffer, self._open, self._saved = [], False, len(self.parts)
        self._begun = self._streaming = False
        self._continuing = True
        self.status, self.error = "pending", None

    # --- streaming ----------------------------------------------------------------------------

    def _run(self) -> Iterator[Event | ToolResult]:
        store = self.conversation.store
        flusher = _Flusher(store, self) if store else None
        start = time.monotonic() - (self.duration or 0.0)  # a continuation adds to the turn's
        try:
            if self.toolbox is not None and hasattr(self.toolbox, "start_turn"):
                self.toolbox.start_turn()  # the repeat guard counts per turn
            while True:
                call = CallRecord(len(self.calls) + 1, self.model.full_name)
                self.calls.append(call)
                asked = yield from self._call(call, start, flusher)
                if not (self.chain and asked and self.toolbox) or self._cancel.is_set():
                    break
                for tool_call in asked:
                    part = self.toolbox.run(tool_call, self._cancel)
                    part.call = call.index
                    edited = part.data.pop("edited_arguments", None)
                    if isinstance(edited, dict):
                        self._ran_with(tool_call.id, call.index, edited)
                    self._add(part)
                    if flusher:
                        flusher.dirty.set()
                    yield ToolResult(part)
                    if self._cancel.is_set():
                        break
                if self._cancel.is_set():
                    break
                if len(self.calls) >= self.chain_limit:
                    self._add(
                        Part(
                            "notice",
                            f"Stopped after {self.chain_limit} model calls in one turn "
                            "(the chain limit).",
                            {"reason": "chain_limit"},
                            call.index,
                        )
                    )
                    break
            if self._cancel.is_set():
                self.status = "interrupted"
            else:
                reason = self.calls[-1].finish_reason if self.calls else None
                refused = any(p.kind == "refusal" for p in self.parts)
                self.status = _ENDINGS.get(reason or "", "refused" if refused else "complete")
        except ChatreplError as exc:
            self.status, self.error = "error", str(exc)
            raise
        except BaseException:  # Ctrl-C, GeneratorExit (the caller stopped early), a crash
            self.status = "interrupted"
            raise
        finally:
            if self.status == "pending":
                self.status = "interrupted"
            self.duration = time.monotonic() - start
            with self._lock:
                self._sync()
                self._open = False
                self._close_unanswered()
            if flusher:
                flusher.stop()
            # An answer still open when the interpreter exits (its iterator kept to the end):
            # the flusher, a daemon thread, may have been stopped holding the store's lock, so
            # the turn stays as last flushed (as after kill -9) rather than hang the exit.
            if store and not sys.is_finalizing():
                store.finish_turn(self.record())

    def _call(
        self, call: CallRecord, start: float, flusher: _Flusher | None
    ) -> Generator[Event | ToolResult, None, list[ToolCall]]:
        """One model call; returns the tool calls it asked for."""
        messages = self.conversation.messages_for(self)
        if self._continuing:
            self._continuing = False
            messages = self._continuation(messages)
        specs = self.toolbox.specs() if self.toolbox else None
        budget, saved = self.conversation.budget, self.conversation.store is not None
        if budget is not None:  # a request that would pass a budget is not sent
            budget.check(self.conversation.id, call.model, messages, self.options, saved)
        began = time.monotonic()
        asked: list[ToolCall] = []
        try:
            extra = {"tools": specs} if specs else {}  # a provider without tools needs none
            stream = self.model.stream(messages, self.options, self._cancel, **extra)
            for event in stream:
                if isinstance(event, Usage):
                    self._count(call, event)
                elif isinstance(event, Finish):
                    call.finish_reason = event.reason
                elif isinstance(event, ToolCall):
                    asked.append(event)
                    data = {"id": event.id, "name": event.name, "arguments": event.arguments}
                    if event.raw is not None:
                        data["raw"] = event.raw
                    self._add(Part("tool_call", "", data, call.index))
                else:
                    piece = valid_text(event.text)
                    kind = _KINDS[type(event)]
                    if kind == "text" and piece and self.time_to_first_token is None:
                        self.time_to_first_token = time.monotonic() - start
                    if call.ttft_ms is None and piece:
                        call.ttft_ms = _ms(time.monotonic() - began)
                    self._append(kind, piece, call.index, event)
                if flusher:
                    flusher.dirty.set()
                yield event
                if self._cancel.is_set():
                    break
        finally:
            call.duration_ms = _ms(time.monotonic() - began)
            if budget is not None:
                budget.record(self.conversation.id, call.cost, saved)
        return asked

    def _continuation(self, messages: list[Message]) -> list[Message]:
        """The request that carries on the cut-off answer (the last message, the assistant's):
        that answer as a prefill where the API takes one, else the instruction to continue."""
        if not messages or messages[-1].role != "assistant":
            return [*messages, Message("user", CONTINUE_PROMPT)]
        if not self.model.prefill or self.options.get("thinking_budget"):
            # (Anthropic refuses a prefill when extended thinking is on)
            return [*messages, Message("user", CONTINUE_PROMPT)]
        # A prefill may not end in white space (Anthropic refuses it); the model writes the
        # space again, so the saved text drops it too and the joined answer reads as one.
        with self._lock:
            cut = [p for p in self.parts if p.kind == "text" and p.call == len(self.calls) - 1]
            if cut:
                cut[-1].text = cut[-1].text.rstrip()
                self._saved = min(self._saved, self.parts.index(cut[-1]))
        last = messages[-1]
        return [*messages[:-1], Message("assistant", last.content.rstrip(), last.parts)]

    def _count(self, call: CallRecord, u: Usage) -> None:
        """Take the usage a provider reported into the call's record, and price the call: the
        cost the server reported, else the price table's for its tokens, else none."""
        for name in _COUNTS:
            value = getattr(u, name)
            if value is not None:
                setattr(call, name, value)
        if u.cost is not None:
            call.cost = u.cost
            self._reported.add(call.index)
        elif call.index not in self._reported:  # the price table's, for the tokens so far
            from .pricing import priced

            call.cost = priced(call)
        self.usage = _summed(self.calls)

    # --- parts --------------------------------------------------------------------------------

    def _append(self, kind: str, piece: str, call: int, event: Event) -> None:
        """Add streamed text to the part arriving, or start a new part of ``kind``."""
        with self._lock:
            last = self.parts[-1]
            if not (self._open and last.kind == kind and last.call == call):
                self._sync()
                self.parts.append(Part(kind, "", {}, call))
                self._buffer, self._open = [], True
                last = self.parts[-1]
            if piece:
                self._buffer.append(piece)
            if isinstance(event, ReasoningDelta) and (event.signature or event.redacted):
                if event.signature:
                    last.data["signature"] = event.signature
                if event.redacted:
                    last.data["redacted"] = event.redacted
                if event.provider:
                    last.data["provider"] = event.provider
                self._sync()
                self._open = False  # a signed block is whole: the next one is a new part

    def _add(self, part: Part) -> None:
        with self._lock:
            self._sync()
            self._open = False
            self.parts.append(part)

    def _ran_with(self, call_id: str, call: int, arguments: dict[str, Any]) -> None:
        """The user changed a call's arguments before it ran: its part holds the ones that ran
        (saved, shown, exported and sent from now on), the model's stay as
        ``original_arguments``."""
        with self._lock:
            for n in range(len(self.parts) - 1, -1, -1):
                p = self.parts[n]
                if p.kind == "tool_call" and p.call == call and p.data.get("id") == call_id:
                    p.data.setdefault("original_arguments", p.data.get("arguments"))
                    p.data["arguments"] = dict(arguments)
                    self._saved = min(self._saved, n)  # flushed again with the change
                    return

    def _sync(self) -> None:
        """Write the pieces of the part still arriving into it (the lock is held)."""
        if self._open and self._buffer:
            self.parts[-1].text = "".join(self._buffer)
            self._buffer = [self.parts[-1].text]

    def _close_unanswered(self) -> None:
        """Give every tool call without a result an error result, so the history stays one
        providers accept."""
        if self.chain:
            self.parts += _unanswered(self.parts, "The call was stopped before it ran to the end.")

    def progress(self) -> tuple[str, int, list[Part]]:
        """What to flush: the answer text so far, and the parts from the first unsaved one."""
        with self._lock:
            self._sync()
            start = self._saved
            parts = list(self.parts)
            self._saved = len(parts) - 1 if self._open else len(parts)
            return _joined(parts, "text"), start, parts

    def __repr__(self) -> str:
        return f"<Response {self.id} {self.status} {self.text_so_far[:30]!r}>"


_KINDS: dict[type, str] = {TextDelta: "text", ReasoningDelta: "reasoning", RefusalDelta: "refusal"}


class _Flusher(threading.Thread):
    """Writes what has arrived to the store every FLUSH_INTERVAL while it changes.

    Text that arrives waits FLUSH_INTERVAL before it is written, with whatever follows it: an
    answer over by then is written once, whole, by the end of the turn (one round trip to a
    store far away instead of two), and a long one is flushed twice a second.
    """

    def __init__(self, store: Store, response: Response):
        super().__init__(name=f"flush-{response.id}", daemon=True)
        self.store, self.response = store, response
        self.dirty = threading.Event()
        self.stopped = threading.Event()
        self.start()

    def run(self) -> None:
        try:
            while not self.stopped.is_set():
                if not self.dirty.wait(FLUSH_INTERVAL):
                    continue
                if self.stopped.wait(FLUSH_INTERVAL):  # over: the end writes it all
                    break
                self.dirty.clear()
                text, start, parts = self.response.progress()
                # A failed flush is not fatal: the final write says so if the database is gone.
                with contextlib.suppress(ChatreplError):
                    self.store.save_progress(self.response.id, text, start, parts)
        finally:
            self.store.close()  # this thread's own connection

    def stop(self) -> None:
        self.stopped.set()
        self.dirty.set()
        if not sys.is_finalizing():  # at exit a daemon thread may never end: see Response._run
            self.join()


class Conversation:
    """A chat with a model: its persona, its tree of turns, and (optionally) the store that
    keeps them.

    Args:
        model: the model answering; can be switched between turns.
        system: the persona, sent first with every turn from now on.
        store: where every turn is saved; ``None`` keeps it in memory only.
    """

    def __init__(
        self,
        model: Backend,
        system: str | None = None,
        store: Store | None = None,
        id: str | None = None,  # noqa: A002 - the conversation's id is called id everywhere
    ):
        self.model = _provider_model(model)
        self.system = system or None
        self.store = store
        self.id = id or new_id()
        self.title: str | None = None
        self.title_source: str | None = None
        self.created = now()
        self.forked_from: str | None = None
        self.path: list[Response] = []  # the turns from the root to the head
        #: options sent with every prompt from now on (``-o``, ``/set``); a prompt's own win
        self.options: dict[str, Any] = {}
        self._known: dict[str, Response] = {}  # every turn met: the tree without a store
        #: the session's budgets (``chatrepl.budgets.Budget``): checked before each model call
        self.budget: Budget | None = None

    @classmethod
    def load(cls, store: Store, conversation_id: str, model: Backend | None = None) -> Conversation:
        """A saved conversation (id or unique prefix) at its head, ready to continue.

        It answers with its own model unless ``model`` is given.

        Raises:
            ConfigError: its own model cannot be built here (pass ``model``).
        """
        record, turns = store.conversation_at_head(conversation_id)
        if model is None:
            from .providers.registry import get_backend

            model = get_backend(record.model)
        c = cls(model, system=record.system, store=store, id=record.id)
        c.title, c.title_source, c.created = record.title, record.title_source, record.created
        c.forked_from = record.forked_from
        c._set_path(turns)
        if c.path:  # the options of the last turn go on (a schema was asked for it alone)
            c.options = {k: v for k, v in c.path[-1].options.items() if k not in ONE_TURN}
        return c

    def record(self) -> ConversationRecord:
        """The conversation's own row, as the store keeps it."""
        return ConversationRecord(
            id=self.id,
            title=self.title,
            title_source=self.title_source,
            model=self.model.full_name,
            system=self.system,
            created=self.created,
            updated=now(),
            head=self.head,
            forked_from=self.forked_from,
        )

    # --- the path and the tree ----------------------------------------------------------------

    @property
    def head(self) -> str | None:
        """The id of the turn the next prompt follows (``None``: the start)."""
        return self.path[-1].id if self.path else None

    @property
    def turns(self) -> list[Response]:
        """The turns on the current path, oldest first."""
        return list(self.path)

    #: The same as ``turns`` (the name of the first release).
    responses = turns

    def prompt(
        self,
        text: str,
        system: str | None = None,
        *,
        tools: list[Any] | None = None,
        attachments: list[Part] | None = None,
        **options: Any,
    ) -> Response:
        """Ask ``text`` after the head; ``system`` (if given) becomes the persona from now on.

        With ``tools``, the model may ask for calls (``response.tool_calls``), which are not run.
        The prompt is saved (with a store) before this returns; the answer streams when the
        returned Response is iterated.
        """
        return self._ask(text, system, tools, attachments, options, chain=False)

    def chain(
        self,
        text: str,
        system: str | None = None,
        *,
        tools: list[Any],
        approve: Callable[[ToolCall], Any] | None = None,
        chain_limit: int = CHAIN_LIMIT,
        attachments: list[Part] | None = None,
        **options: Any,
    ) -> Response:
        """Ask ``text`` and run the tool calls the model asks for, sending their results back,
        until it answers without a call (or ``chain_limit`` model calls).

        ``tools`` are plain functions (type hints and a docstring make their schema),
        ``chatrepl.tools.Tool`` objects, or a ready runner (``chatrepl.tools.Runner``).
        ``approve(tool, arguments)`` is asked before each call and returns True (run it), False
        (deny it: the model is told) or a ``chatrepl.tools.Decision`` (which may change the
        arguments); by default every call runs.
        """
        return self._ask(
            text,
            system,
            _runner(tools, approve),
            attachments,
            options,
            chain=True,
            limit=chain_limit,
        )

    def _ask(
        self,
        text: str,
        system: str | None,
        tools: Any,
        attachments: list[Part] | None,
        options: dict[str, Any],
        chain: bool,
        limit: int = CHAIN_LIMIT,
    ) -> Response:
        from .text import shorten, valid_text

        text = valid_text(text)
        if system is not None:
            self.system = valid_text(system) or None
        if self.title is None and text.strip():
            self.title, self.title_source = shorten(text, 60), "prompt"
        if tools is not None and not hasattr(tools, "specs"):
            tools = _runner(tools, None)
        response = Response(
            self,
            text,
            parent_id=self.head,
            system=self.system,
            options={**self.options, **options},
            model=self.model,
            attachments=attachments,
            toolbox=tools,
            chain=chain,
            chain_limit=limit,
        )
        if self.store:  # a prompt that cannot be saved is not asked
            self.store.begin_turn(self.record(), response.record())
        self.path.append(response)
        self._known[response.id] = response
        return response

    def messages_for(self, response: Response) -> list[Message]:
        """What is sent for ``response``: the persona, the path before it, then its prompt and
        what its earlier model calls produced."""
        earlier = self.path[: self.path.index(response)] if response in self.path else self.path
        system = response.system
        start = 0
        for n, turn in enumerate(earlier):
            if turn.kind == "summary":  # a compaction: it stands for every turn before it
                start = n + 1
                summary = _joined(turn.parts, "summary")
                note = f"Summary of the conversation so far:\n{summary}"
                base = response.system  # an earlier summary is stood for by this one too
                system = f"{base}\n\n{note}" if base else note
        messages = [Message("system", system)] if system else []
        for turn in earlier[start:]:
            if turn.kind == "summary" or not any(p.kind in _SUBSTANCE for p in turn.parts):
                continue  # a failed, pending or empty turn is not part of the history
            messages += _turn_messages(turn.parts, closed=True)
        done = [p for p in response.parts if p.call < max(len(response.calls), 1)]
        # closed: an earlier call of this turn left without a result (a cut-off answer of
        # ``prompt(tools=...)`` carried on by /continue) gets one, as providers require
        messages += _turn_messages(done, closed=True)
        from .attachments import resolve  # the attachments' bytes, for this request only

        return resolve(messages, self.store)

    def undo(self) -> Response | None:
        """Go back one turn: the head moves to the turn before (nothing is deleted)."""
        if not self.path:
            return None
        last = self.path.pop()
        self._save_head()
        return last

    def retry(self, **options: Any) -> Response | None:
        """Ask the last prompt again, as a sibling of the last turn (which stays, one step away)."""
        last = self.undo()
        if last is None:
            return None
        attachments = [p for p in last.parts if p.kind == "attachment"]
        return self.prompt(last.prompt, attachments=attachments, **{**last.options, **options})

    def continue_answer(self, **options: Any) -> Response:
        """Carry on the last answer, cut off at the token limit: more of the same turn (its
        text joins the answer), streamed when the returned Response is iterated.

        Raises:
            ChatreplError: the last answer was not cut off.
        """
        if not self.path:
            raise ChatreplError("Nothing to continue yet.")
        turn = self.path[-1]
        turn.reopen(**options)
        return turn

    def edit(self, turn_id: str, text: str, **options: Any) -> Response:
        """Ask ``text`` in place of the prompt of ``turn_id`` (a turn on the path): a new branch
        from that point; the old one stays."""
        index = next((n for n, t in enumerate(self.path) if t.id == turn_id), None)
        if index is None:
            raise NotFoundError("That turn is not on the current path.")
        old = self.path[index]
        del self.path[index:]
        attachments = [p for p in old.parts if p.kind == "attachment"]
        return self.prompt(text, attachments=attachments, **{**old.options, **options})

    def alternatives(self, turn_id: str | None = None) -> list[Response | TurnRecord]:
        """The turns that share a parent with ``turn_id`` (default: the head), itself included,
        oldest first."""
        turn_id = turn_id or self.head
        if turn_id is None:
            return []
        turn = self._turn(turn_id)
        if self.store:
            return list(self.store.children(turn.parent_id, self.id))
        return [t for t in self._known.values() if t.parent_id == turn.parent_id]

    def switch(self, turn_id: str) -> None:
        """Go on from the branch through ``turn_id``: the head moves to its newest leaf."""
        self._turn(turn_id)  # it belongs here
        if self.store:
            leaf = self.store.latest_leaf(turn_id)
            self._set_path(self.store.path_to(leaf, texts=False))
        else:  # the turn made last below it (turns are known in the order they were made)
            below, leaf_id = {turn_id}, turn_id
            for t in self._known.values():
                if t.parent_id in below:
                    below.add(t.id)
                    leaf_id = t.id
            chain = []
            node: Response | None = self._known[leaf_id]
            while node is not None:
                chain.append(node)
                node = self._known.get(node.parent_id or "")
            self.path = chain[::-1]
        self._save_head()

    def tree(self) -> list[TreeNode]:
        """Every turn of the conversation, oldest first, for a tree view."""
        if self.store and self.path:
            return self.store.tree(self.id)
        return [
            TreeNode(t.id, t.parent_id, t.prompt[:200], t.status, t.started, t.kind)
            for t in self._known.values()
        ]

    def fork(self) -> Conversation:
        """A new conversation holding a copy of the current path (saved, with a store)."""
        c = Conversation(self.model, system=self.system, store=self.store)
        c.budget = self.budget
        c.title = f"{self.title} (fork)" if self.title else None
        c.title_source = "user" if self.title else None
        c.forked_from = self.id
        parent = None
        copies = []
        for turn in self.path:
            t = turn.record() if isinstance(turn, Response) else turn
            t.id, t.conversation_id, t.parent_id = new_id(), c.id, parent
            copies.append(t)
            parent = t.id
        if self.store and copies:
            record = c.record()
            record.head = parent
            self.store.import_conversation(record, copies)
        c._set_path(copies)
        return c

    def graft(self, turns: list[TurnRecord]) -> None:
        """Go on from ``turns``: a chain made elsewhere (a compaction) whose first turn hangs
        from a turn of the path. The head moves to the last; saving them is the caller's."""
        if not turns:
            return
        at = next((n for n, t in enumerate(self.path) if t.id == turns[0].parent_id), -1)
        grafted = [Response.from_record(self, t) for t in turns]
        self.path = self.path[: at + 1] + grafted
        self._known.update((r.id, r) for r in grafted)

    def _turn(self, turn_id: str) -> Response | TurnRecord:
        found = self._known.get(turn_id)
        if found is not None:
            return found
        if self.store:
            t = self.store.turn(turn_id)
            if t.conversation_id == self.id:
                return t
        raise NotFoundError("That turn is not part of this conversation.")

    def _set_path(self, records: list[TurnRecord]) -> None:
        self.path = [Response.from_record(self, t) for t in records]
        self._known.update((r.id, r) for r in self.path)

    def _save_head(self) -> None:
        if self.store:
            self.store.set_head(self.id, self.head)

    # --- conversation state -------------------------------------------------------------------

    def set_system(self, system: str | None) -> None:
        """Set the persona from the next turn on; ``None`` or ``""`` clears it."""
        from .text import valid_text

        self.system = valid_text(system or "") or None
        self._save()

    def set_model(self, model: Backend) -> None:
        """Answer with ``model`` from the next turn on; the history stays."""
        self.model = _provider_model(model)
        self._save()

    def set_title(self, title: str, source: str = "user") -> None:
        """Set the title; ``source`` is who chose it: ``user``, ``model`` or ``prompt``."""
        from .text import valid_text

        self.title, self.title_source = valid_text(title), source
        self._save(rename=True)

    def _save(self, rename: bool = False) -> None:
        """Save the conversation's row once it has one; ``rename``: this is a rename."""
        if self.store and self._known:
            self.store.save_conversation(self.record(), rename=rename)

    def propose_title(self) -> str:
        """A short title for the conversation, asked of the model (not saved as a turn)."""
        from .text import shorten

        turns = [t for t in self.turns if t.prompt]
        if not turns:
            return ""
        if self.model.provider == "echo":  # it would only echo the instruction back
            return shorten(turns[0].prompt, 60)
        excerpt = "\n\n".join(
            f"User: {shorten(t.prompt, 300)}\nAssistant: {shorten(t.text_so_far, 300)}"
            for t in turns[:4]
        )
        messages = [
            Message(
                "system",
                "You name conversations. Reply with a title of at most six words, "
                "no quotes, no punctuation at the end.",
            ),
            Message("user", f"Name this conversation:\n\n{excerpt}"),
        ]
        text = "".join(
            e.text
            for e in self.model.stream(messages, {}, threading.Event())
            if isinstance(e, TextDelta)
        )
        title = next((line for line in text.splitlines() if line.strip()), "")
        return shorten(title.strip().strip(" \"'*#").strip(), 60)

    @property
    def tokens(self) -> Usage:
        """The tokens of the turns on the current path (input, output, reasoning, cache reads
        and writes), and their cost where any is known."""
        counts: list[CallRecord | Usage] = []
        for t in self.turns:
            counts += t.calls or [t.usage]  # a turn saved without its calls: its own counts
        return _summed(counts, zero=True)

    def __repr__(self) -> str:
        return f"<Conversation {self.id} {self.model.full_name} turns={len(self.path)}>"


# --- helpers ----------------------------------------------------------------------------------


def _runner(tools: Any, approve: Callable[..., Any] | None) -> Toolbox:
    """A tool runner for ``tools`` (functions, Tool objects, or a runner already)."""
    from .tools import Decision, Runner

    if hasattr(tools, "specs") and hasattr(tools, "run"):
        return cast("Toolbox", tools)
    if approve is None:
        return Runner(tools)

    def hook(tool: Any, arguments: dict[str, Any]) -> Decision:
        said = approve(tool, arguments)
        return said if isinstance(said, Decision) else Decision(bool(said))

    return Runner(tools, approve=hook)


def _provider_model(model: Any) -> Backend:
    """The provider's model behind ``model`` (the public ``chatrepl.Model`` wraps one)."""
    return cast("Backend", getattr(model, "backend", model))


def _joined(parts: list[Part], kind: str, between: str = "") -> str:
    return between.join(p.text for p in parts if p.kind == kind)


def _arguments(p: Part) -> dict[str, Any]:
    value = p.data.get("arguments")
    return value if isinstance(value, dict) else {}


def _turn_messages(parts: list[Part], closed: bool) -> list[Message]:
    """A turn's parts as messages: the user's prompt and attachments, then for each model call
    an assistant message (its text, reasoning and tool calls) and a tool message (its results).

    A tool call left without a result gets one (``closed``: the turn is over), so the history
    stays one that providers accept.
    """
    user = [p for p in parts if p.call == 0]
    prompt = _joined(user, "prompt")
    messages = [Message("user", prompt, tuple(p for p in user if p.kind == "attachment"))]
    calls = sorted({p.call for p in parts if p.call > 0})
    for n in calls:
        own = [p for p in parts if p.call == n]
        text = _joined(own, "text") + _joined(own, "refusal")
        extra = tuple(p for p in own if p.kind in ("reasoning", "tool_call"))
        calling = any(p.kind == "tool_call" for p in extra)
        before = messages[-1]
        if before.role == "assistant" and not any(p.kind == "tool_call" for p in before.parts):
            # a continued answer (/continue): its calls' texts are one answer, sent as one
            messages[-1] = Message("assistant", before.content + text, before.parts + extra)
        elif text or calling:
            messages.append(Message("assistant", text, extra))
        results = [p for p in own if p.kind == "tool_result"]
        if closed:
            results += _unanswered(own, "The call was not run.")
        if results:
            messages.append(Message("tool", "", tuple(results)))
    return messages


def _unanswered(parts: list[Part], text: str) -> list[Part]:
    """An error result saying ``text`` for each tool call in ``parts`` that has no result."""
    answered = {p.data.get("call_id") for p in parts if p.kind == "tool_result"}
    return [
        Part(
            "tool_result",
            text,
            {"call_id": p.data.get("id"), "name": p.data.get("name"), "is_error": True},
            p.call,
        )
        for p in parts
        if p.kind == "tool_call" and p.data.get("id") not in answered
    ]


#: The counts of a provider's Usage that a call's record keeps under the same names.
_COUNTS = (
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)


def _summed(counts: Sequence[CallRecord | Usage], zero: bool = False) -> Usage:
    """The counts and cost of calls (or turns' usage) added up; a count none reported stays
    ``None`` (0 with ``zero``), and so does the cost when none is known."""
    usage = Usage()
    for name in (*_COUNTS, "cost"):
        values = [v for c in counts if (v := getattr(c, name)) is not None]
        setattr(usage, name, sum(values) if values else (0 if zero and name != "cost" else None))
    return usage


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)
