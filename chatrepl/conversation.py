"""Conversation and Response: the history, the persona and the turns, with or without a store.

A ``Response`` is lazy: the request goes out when it is first iterated (or ``text()`` is
called). With a store, its row is written when the prompt is made, the text is flushed while it
streams (at least once a second, from a small background thread) and finalised at the end,
whatever the end is: complete, interrupted (``cancel()``, Ctrl-C, leaving the loop early) or
an error.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import ChatreplError, ProviderError
from .providers.base import Model
from .records import Message, TextDelta, Usage

if TYPE_CHECKING:
    from .store import Store, TurnRecord

FLUSH_INTERVAL = 0.5  # seconds; the spec asks for at least once a second

_OVER = threading.Event()  # the cancel signal of every response loaded finished from a store
_OVER.set()


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # base32 as ULIDs are written
_last_id = [0, 0]  # milliseconds and randomness of the last id made here
_id_lock = threading.Lock()


def _new_id() -> str:
    """A new ULID, monotonic within the process as python-ulid's ``ULID()`` is.

    Made here: importing python-ulid costs ~45 ms of start-up (it reads its own version
    through importlib.metadata), and every chat starts by making an id.
    """
    with _id_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_id[0]:  # the same millisecond: count up from the last id
            ms, randomness = _last_id[0], _last_id[1] + 1
        else:
            randomness = int.from_bytes(os.urandom(10), "big")
        _last_id[:] = ms, randomness
    n = ms << 80 | randomness
    return "".join(_CROCKFORD[n >> shift & 31] for shift in range(125, -1, -5))


def _now() -> str:
    from .store import now

    return now()


class Response:
    """One round trip: a prompt and the answer streaming back.

    Iterate it for the text as it arrives; ``text()`` waits for all of it. After the end,
    ``status`` is ``complete``, ``interrupted`` or ``error`` (with ``error`` the sentence).
    """

    def __init__(
        self,
        conversation: Conversation,
        prompt: str,
        system: str | None,
        options: dict[str, Any],
        model: Model,
    ):
        self.conversation = conversation
        self.prompt = prompt
        self.system = system
        self.options = options
        self.model = model
        self.model_name = model.full_name
        self.id = _new_id()
        self.started = _now()
        self.status = "pending"
        self.error: str | None = None
        self.usage = Usage()
        self.duration: float | None = None
        self.time_to_first_token: float | None = None
        self.undone = False
        self._chunks: list[str] = []
        self._cancel = threading.Event()
        self._begun = False  # iteration has started (or the response was cancelled first)
        self._streaming = False  # iteration is under way right now

    @classmethod
    def from_record(cls, conversation: Conversation, t: TurnRecord) -> Response:
        """A finished response rebuilt from its saved row."""
        r = cls.__new__(cls)
        r.conversation, r.prompt, r.system, r.options = conversation, t.prompt, t.system, t.options
        r.model, r.model_name = conversation.model, t.model
        r.id, r.started, r.status, r.error = t.id, t.started, t.status, t.error
        r.usage = Usage(t.input_tokens, t.output_tokens)
        r.duration = None if t.duration_ms is None else t.duration_ms / 1000
        r.time_to_first_token = None if t.ttft_ms is None else t.ttft_ms / 1000
        r.undone = t.undone
        r._chunks = [t.response] if t.response else []
        r._cancel = _OVER  # a finished response never streams: no Event of its own to build
        r._begun, r._streaming = True, False
        return r

    # --- reading the answer -------------------------------------------------------------------

    @property
    def text_so_far(self) -> str:
        """The text that has arrived so far."""
        return "".join(self._chunks)

    @property
    def done(self) -> bool:
        return self.status != "pending"

    def __iter__(self) -> Iterator[str]:
        if self._begun:
            if self._streaming:
                raise RuntimeError("this response is already being streamed")
            if self._chunks:
                yield self.text_so_far
            return
        self._begun = self._streaming = True
        try:
            yield from self._stream()
        finally:
            self._streaming = False

    def text(self) -> str:
        """The whole answer (streaming it first if needed); raises if the request failed."""
        for _ in self:
            pass
        if self.status == "error" and not self._chunks and self.error:
            raise ProviderError(self.error)
        return self.text_so_far

    def cancel(self) -> None:
        """Stop the answer; what arrived is kept and the response is marked interrupted.

        A response cancelled before it began streaming is finished (and saved) at once.
        """
        self._cancel.set()
        if not self._begun:
            self._begun = True
            self.status, self.duration = "interrupted", 0.0
            if self.conversation.store:
                self.conversation.store.finish_response(self)

    # --- streaming ----------------------------------------------------------------------------

    def _stream(self) -> Iterator[str]:
        store = self.conversation.store
        flusher = None
        start = time.monotonic()
        try:
            messages = self.conversation.messages_for(self)
            flusher = _Flusher(store, self) if store else None
            for event in self.model.stream(messages, self.options, self._cancel):
                if isinstance(event, Usage):
                    if event.input_tokens is not None:
                        self.usage.input_tokens = event.input_tokens
                    if event.output_tokens is not None:
                        self.usage.output_tokens = event.output_tokens
                elif isinstance(event, TextDelta) and event.text:
                    if self.time_to_first_token is None:
                        self.time_to_first_token = time.monotonic() - start
                    self._chunks.append(event.text)
                    if flusher:
                        flusher.dirty.set()
                    yield event.text
                if self._cancel.is_set():
                    break
            self.status = "interrupted" if self._cancel.is_set() else "complete"
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
            if flusher:
                flusher.stop()
            if store:
                store.finish_response(self)

    def __repr__(self) -> str:
        return f"<Response {self.id} {self.status} {self.text_so_far[:30]!r}>"


class _Flusher(threading.Thread):
    """Writes the text that has arrived to the store every FLUSH_INTERVAL while it changes."""

    def __init__(self, store: Store, response: Response):
        super().__init__(name=f"flush-{response.id}", daemon=True)
        self.store, self.response = store, response
        self.dirty = threading.Event()
        self.stopped = threading.Event()
        self.start()

    def run(self) -> None:
        try:
            while not self.stopped.is_set():
                if self.dirty.wait(FLUSH_INTERVAL) and not self.stopped.is_set():
                    self.dirty.clear()
                    # A failed flush is not fatal: the final write says so if the database is gone.
                    with contextlib.suppress(ChatreplError):
                        self.store.flush_response(self.response.id, self.response.text_so_far)
                    self.stopped.wait(FLUSH_INTERVAL)
        finally:
            self.store.close()  # this thread's own connection

    def stop(self) -> None:
        self.stopped.set()
        self.dirty.set()
        self.join()


class Conversation:
    """A chat with a model: its persona, its turns, and (optionally) the store that keeps them.

    Args:
        model: the model answering; can be switched between turns.
        system: the persona, sent first with every turn from now on.
        store: where every round trip is saved; ``None`` keeps it in memory only.
    """

    def __init__(
        self,
        model: Model,
        system: str | None = None,
        store: Store | None = None,
        id: str | None = None,  # noqa: A002 - the conversation's id is called id everywhere
    ):
        self.model = model
        self.system = system or None
        self.store = store
        self.id = id or _new_id()
        self.title: str | None = None
        self.title_source: str | None = None
        self.created = _now()
        self.responses: list[Response] = []

    # --- turns --------------------------------------------------------------------------------

    @property
    def turns(self) -> list[Response]:
        """The responses that count: every one not undone."""
        return [r for r in self.responses if not r.undone]

    def prompt(self, text: str, system: str | None = None, **options: Any) -> Response:
        """Ask ``text``; ``system`` (if given) becomes the persona from this turn on.

        The prompt is saved (with a store) before this returns; the answer streams when the
        returned Response is iterated.
        """
        from .text import shorten, valid_text

        text = valid_text(text)
        if system is not None:
            self.system = valid_text(system) or None
        if self.title is None and text.strip():
            self.title, self.title_source = shorten(text, 60), "prompt"
        response = Response(self, text, self.system, dict(options), self.model)
        if self.store:
            self.store.begin_response(response)  # a prompt that cannot be saved is not asked
        self.responses.append(response)
        return response

    def messages_for(self, response: Response) -> list[Message]:
        """What is sent for ``response``: the persona, the earlier turns, then its prompt."""
        messages = [Message("system", response.system)] if response.system else []
        for earlier in self.turns:
            if earlier is response:
                break
            answer = earlier.text_so_far
            if not answer:
                continue  # a failed, pending or empty turn is not part of the history
            messages += [Message("user", earlier.prompt), Message("assistant", answer)]
        messages.append(Message("user", response.prompt))
        return messages

    def undo(self) -> Response | None:
        """Take back the last turn; it stays saved but is no longer sent."""
        turns = self.turns
        if not turns:
            return None
        last = turns[-1]
        last.undone = True
        if self.store:
            self.store.set_undone(last.id)
        return last

    def retry(self, **options: Any) -> Response | None:
        """Ask the last prompt again: the last turn is undone and a new one takes its place."""
        last = self.undo()
        if last is None:
            return None
        return self.prompt(last.prompt, **{**last.options, **options})

    # --- conversation state -------------------------------------------------------------------

    def set_system(self, system: str | None) -> None:
        """Set the persona from the next turn on; ``None`` or ``""`` clears it."""
        from .text import valid_text

        self.system = valid_text(system or "") or None
        self._save()

    def set_model(self, model: Model) -> None:
        """Answer with ``model`` from the next turn on; the history stays."""
        self.model = model
        self._save()

    def set_title(self, title: str, source: str = "user") -> None:
        """Set the title; ``source`` is who chose it: ``user``, ``model`` or ``prompt``."""
        from .text import valid_text

        self.title, self.title_source = valid_text(title), source
        self._save(title=True)

    def _save(self, title: bool = False) -> None:
        """Save the conversation's row once it has one; ``title``: this is a rename."""
        if self.store and self.responses:
            self.store.save_conversation(self, title=title)

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
        return shorten(title.strip().strip("\"'*#").strip(), 60)

    @property
    def tokens(self) -> Usage:
        """Input and output tokens of all turns so far."""
        return Usage(
            sum(t.usage.input_tokens or 0 for t in self.turns),
            sum(t.usage.output_tokens or 0 for t in self.turns),
        )

    def __repr__(self) -> str:
        return f"<Conversation {self.id} {self.model.full_name} turns={len(self.turns)}>"
