"""Server-Sent Events: turn the lines of an HTTP body into events (WHATWG event-stream rules)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass
class Event:
    """One dispatched event: its type (``message`` unless named) and its data lines joined."""

    event: str
    data: str


def iter_events(lines: Iterable[str]) -> Iterator[Event]:
    """Yield the events found in ``lines`` (already split, without line endings).

    Comments (``:`` lines, used as keep-alives) are skipped; several ``data:`` lines form one
    event joined with newlines; an event is dispatched at a blank line or at the end of input.
    An ``error:`` field (older llama.cpp servers report a failure mid-answer so) makes the
    event an ``error`` event carrying its value.
    """
    event, data = "", list[str]()
    first = True
    for line in lines:
        if first:  # a byte order mark may open the stream
            line, first = line.removeprefix("\ufeff"), False
        if not line:
            if data:
                yield Event(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "error":
            event = "error"
            data.append(value)
    if data:
        yield Event(event or "message", "\n".join(data))
