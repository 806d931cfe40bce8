"""The one loop that reads a streamed answer, for every HTTP wire format, and the one sentence
for each way a stream can end badly.

A wire format gives a :class:`Reader` (its events in, chatrepl's events out); :func:`read_answer`
drives it over the body's event stream (or a plain JSON body where a stream was asked for)
and says what went wrong in the same words for every vendor:

    empty stream        the server sent nothing at all
    ended early         the body ended before the vendor's end mark (text so far kept)
    dropped             the connection broke mid-answer (text so far kept)
    stalled             nothing arrived for the read time-out (text so far kept)
    malformed           a frame that is not JSON
    unreadable          a whole JSON answer that is not an object
    error event         the server reported an error inside the stream (its words quoted)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from .. import errors
from ..records import Event
from .sse import iter_events

if TYPE_CHECKING:
    import httpx

    from .http import Endpoint

#: Bytes read after the end mark so the connection can serve the next request; a server that
#: sends more than this after its answer is not worth keeping a connection to.
DRAIN_LIMIT = 1024 * 1024

#: An error's type (any vendor's word) → what the user can do about it.
_ERROR_ADVICE = {
    "overloaded_error": "try again shortly",
    "rate_limit_error": "wait a little and try again",
    "api_error": "try again shortly",
    "server_error": "try again shortly",
    "internal_server_error": "try again shortly",
}


class Reader(Protocol):
    """What one wire format does with a stream (``openai._Reader``, ``anthropic._Reader``)."""

    #: the answer ended as the format says it should (a finish reason, ``message_stop``)
    done: bool
    #: nothing more is to be read (OpenAI's ``[DONE]``, Anthropic's ``message_stop``)
    finished: bool
    #: an event whose data is exactly this ends the stream (``[DONE]``), or ``None``
    end_mark: str | None

    def feed(self, kind: str, data: Any) -> Iterator[Event]:
        """The events of one stream event (``kind`` is its ``event:`` name, ``message`` if none)."""
        ...

    def whole(self, data: Any) -> Iterator[Event]:
        """The events of a whole JSON answer, ending included."""
        ...

    def usage_so_far(self) -> Iterator[Event]:
        """The usage reported so far (yielded before an error, so none is lost)."""
        ...

    def end(self) -> Iterator[Event]:
        """What is left once the stream is over: held text, whole calls, usage, the ending."""
        ...


def read_answer(
    response: httpx.Response,
    endpoint: Endpoint,
    cancel: threading.Event,
    reader: Reader,
    model: str = "",
    tools: bool = False,
) -> Iterator[Event]:
    """The events of one streamed answer, read by ``reader``; stops quietly once ``cancel`` is
    set. After the end mark the rest of the body is read, so the connection can be used again.

    Raises:
        StreamError, ResponseTimeoutError, ServerError, QuotaError, ToolsUnsupportedError: the stream
            ended badly, as one sentence (the events that arrived were yielded first).
    """
    whole, lines = whole_body(iter_lines(response, endpoint))
    if whole is not None:  # a plain JSON answer where a stream was asked for
        data = parse_json(whole, endpoint)
        if not isinstance(data, dict):
            raise unreadable(endpoint)
        if is_error(data):
            raise error_event(endpoint, data, model, tools)
        yield from reader.whole(data)
        return
    seen_any = False
    events = iter_events(lines)
    for event in events:
        if cancel.is_set():
            return
        seen_any = True
        if reader.end_mark is not None and event.data.strip() == reader.end_mark:
            reader.done = reader.finished = True
        else:
            if event.event == "error":  # its words, even when they are not JSON
                try:
                    data = json.loads(event.data)
                except ValueError:
                    data = {"message": event.data}
            else:
                data = parse_json(event.data, endpoint)
            if event.event == "error" or is_error(data):
                yield from reader.usage_so_far()
                raise error_event(endpoint, data, model, tools)
            yield from reader.feed(event.event, data)
        if reader.finished:
            drain(events, cancel)
            break
    if not seen_any:
        raise empty_stream(endpoint)
    if cancel.is_set():
        return
    if not reader.done:
        yield from reader.usage_so_far()
        raise ended_early(endpoint)
    yield from reader.end()


def drain(events: Iterable[Any], cancel: threading.Event) -> None:
    """Read what follows the end mark (usually just the body's end), as the vendors' own SDKs
    do, so that the connection goes back to the pool; a failure here changes nothing."""
    size = 0
    try:
        for event in events:
            size += len(event.data)
            if cancel.is_set() or size > DRAIN_LIMIT:
                return
    except errors.ProviderError:
        return


def is_error(data: Any) -> bool:
    """Whether a stream event's JSON reports an error (OpenAI's ``error`` key, Anthropic's
    ``type: error``)."""
    if not isinstance(data, dict):
        return False
    return data.get("type") == "error" or data.get("error") not in (None, "", {}, [])


# --- the sentences -------------------------------------------------------------------------


def empty_stream(endpoint: Endpoint) -> errors.StreamError:
    return errors.StreamError(f"{endpoint.label} answered with an empty stream.")


def ended_early(endpoint: Endpoint) -> errors.StreamError:
    return errors.StreamError(
        f"The answer from {endpoint.label} ended early; the text that arrived was kept."
    )


def dropped(endpoint: Endpoint) -> errors.StreamError:
    return errors.StreamError(
        f"The connection to {endpoint.label} dropped mid-answer; the text that arrived was kept."
    )


def stalled(endpoint: Endpoint) -> errors.ResponseTimeoutError:
    return errors.ResponseTimeoutError(
        f"{endpoint.label} stopped answering for {endpoint.read_timeout:g} s; "
        "the text that arrived was kept."
    )


def malformed(endpoint: Endpoint, data: str) -> errors.StreamError:
    return errors.StreamError(
        f"{endpoint.label} sent a malformed stream (not JSON: {endpoint.redact(data)[:60]!r})."
    )


def unreadable(endpoint: Endpoint) -> errors.StreamError:
    return errors.StreamError(
        f"{endpoint.label} sent an answer chatrepl cannot read (not a JSON object)."
    )


def error_event(
    endpoint: Endpoint, data: Any, model: str = "", tools: bool = False
) -> errors.ProviderError:
    """An error the server reported inside its answer, in any vendor's shape, as one sentence:
    its words quoted (secrets blanked), with advice when its type says what helps."""
    from .http import (
        clause,
        error_code,
        error_message,
        one_line,
        quota_error,
        sentence,
        tools_unsupported,
    )

    error = data.get("error", data) if isinstance(data, dict) else data
    quoted = endpoint.redact(one_line(error_message(error), 300))
    said = clause(quoted)
    kinds = error_code({"error": error} if isinstance(error, dict) else {}).split()
    if any("insufficient_quota" in k or "billing" in k for k in kinds):
        return quota_error(endpoint, 429, said)
    if tools and any(w in said.lower() for w in ("support tool", "tools are not")):
        return tools_unsupported(endpoint, model)
    advice = next((_ERROR_ADVICE[k] for k in kinds if k in _ERROR_ADVICE), "")
    if advice:
        kind = endpoint.redact(one_line(next(k for k in kinds if k in _ERROR_ADVICE), 60))
        detail = f" ({kind}: {said})" if said and said != kind else f" ({kind})"
        return errors.ServerError(
            f"{endpoint.label} reported an error mid-answer{detail}: {advice}."
        )
    said = clause(quoted, last=True)
    return errors.ServerError(
        sentence(f"{endpoint.label} reported an error mid-answer{': ' + said if said else ''}")
    )


# --- reading the body ----------------------------------------------------------------------


def split_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The lines of a byte stream, split at CR, LF or CRLF only (the event-stream rule).

    Not ``str.splitlines``: it also splits at U+2028, U+2029, U+0085 and form feeds, which
    valid JSON may hold inside a string. Each line is decoded on its own, invalid UTF-8 as
    U+FFFD (CR and LF never occur inside a UTF-8 sequence, so splitting bytes first is safe).
    """
    import re

    ends = re.compile(rb"\r\n|\r|\n")
    pending: list[bytes] = []  # the pieces of an unfinished line (only new bytes are searched)
    after_cr = False  # the last chunk ended at CR: a LF starting the next one belongs to it
    for chunk in chunks:
        if not chunk:
            continue
        if after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        after_cr = False
        start = 0
        for match in ends.finditer(chunk):
            pending.append(chunk[start : match.start()])
            yield b"".join(pending).decode("utf-8", "replace")
            pending = []
            start = match.end()
        if start < len(chunk):
            pending.append(chunk[start:])
        after_cr = chunk[-1:] == b"\r"
    if pending and any(pending):
        yield b"".join(pending).decode("utf-8", "replace")


def iter_lines(response: httpx.Response, endpoint: Endpoint) -> Iterator[str]:
    """The body's lines, with transport failures turned into chatrepl errors."""
    import httpx

    try:
        yield from split_lines(response.iter_bytes())
    except httpx.TimeoutException as exc:
        raise stalled(endpoint) from exc
    except httpx.HTTPError as exc:
        raise dropped(endpoint) from exc


def parse_json(data: str, endpoint: Endpoint) -> Any:
    """One event's data as JSON, or the malformed-stream error."""
    try:
        return json.loads(data)
    except ValueError as exc:
        raise malformed(endpoint, data) from exc


def whole_body(lines: Iterator[str]) -> tuple[str | None, Iterator[str]]:
    """A plain JSON answer where a stream was asked for: its text, or ``None`` and the lines
    (untouched) when the body is an event stream."""
    import itertools

    first = []
    for line in lines:
        first.append(line)
        if line.strip():
            break
    head = first[-1].lstrip("\ufeff").lstrip() if first else ""
    if head.startswith(("{", "[")):
        return "\n".join(itertools.chain(first, lines)), iter(())
    return None, itertools.chain(first, lines)
