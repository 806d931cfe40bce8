"""ULIDs: the ids of conversations and turns (26 Crockford base32 characters, time first)."""

from __future__ import annotations

import os
import re
import threading
import time

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_CHARS = re.compile(r"^[0-9A-HJKMNP-TV-Z]+$")  # an id or a prefix of one, upper case
LENGTH = 26

_last = [0, 0]  # milliseconds and randomness of the last id made here
_lock = threading.Lock()


def new_id() -> str:
    """A new ULID, monotonic within the process (as python-ulid's ``ULID()`` is).

    Made here rather than with python-ulid: importing it costs ~45 ms of start-up, and every
    chat starts by making an id.
    """
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last[0]:
            # The same millisecond: count up from the last id by a random step, so ids made
            # together still differ early enough for a short prefix to tell them apart.
            ms, randomness = _last[0], _last[1] + 1 + int.from_bytes(os.urandom(8), "big")
            if randomness >= 1 << 80:
                ms, randomness = ms + 1, int.from_bytes(os.urandom(10), "big") >> 1
        else:
            randomness = int.from_bytes(os.urandom(10), "big")
        _last[:] = ms, randomness
    n = ms << 80 | randomness
    return "".join(CROCKFORD[n >> shift & 31] for shift in range(125, -1, -5))


def parse_id(text: object) -> str:
    """``text`` as a ULID in canonical (upper) case.

    Raises:
        ValueError: it is not one.
    """
    if not isinstance(text, str):
        raise ValueError("not text")
    value = text.strip().upper()
    if len(value) != LENGTH or not ID_CHARS.match(value) or value[0] > "7":
        raise ValueError("not a ULID")
    return value
