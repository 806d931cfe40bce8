"""What the saved history cost: the store's sums of model calls, by model, local day or
conversation, with the calls saved without a cost priced from the price table where it can.

Days are local calendar days: the store sums calls by quarter of an hour in UTC (every time
zone's midnight falls on a quarter) and each quarter is put in the local day it falls in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

#: What ``chatrepl usage --by`` groups by.
GROUPINGS = ("model", "day", "conversation")


@dataclass
class Spend:
    """The model calls of one model, day or conversation (or of everything), summed.

    ``input_tokens`` counts every prompt token, cache reads and writes included; ``cost`` is in
    the price table's currency (US dollars for the built-in one) and leaves out the
    ``unpriced_calls``, whose cost nobody knows.
    """

    key: str
    title: str | None = None
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost: float = 0.0
    unpriced_calls: int = 0

    @property
    def cached_share(self) -> float | None:
        """The share of the input tokens read from a cache (0 to 1), or ``None`` without input."""
        return self.cache_read_tokens / self.input_tokens if self.input_tokens else None

    def add(self, other: Spend) -> None:
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.cost += other.cost
        self.unpriced_calls += other.unpriced_calls

    def as_json(self, key_name: str | None) -> dict[str, Any]:
        """The sums as ``usage --json`` gives them, the key under ``key_name`` (none: a total)."""
        data: dict[str, Any] = {key_name: self.key} if key_name else {}
        if key_name == "conversation_id":
            data["title"] = self.title
        share = self.cached_share
        data |= {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cached_share": None if share is None else round(share, 4),
            "cost": round(self.cost, 6),
            "unpriced_calls": self.unpriced_calls,
        }
        return data


def local_midnight(day: date | None = None) -> str:
    """The start of the local calendar ``day`` (default: today) as the store writes times."""
    day = day or datetime.now().astimezone().date()
    start = datetime.combine(day, time()).astimezone()  # the local zone of that date
    return start.astimezone(UTC).isoformat(timespec="milliseconds")


def summed(rows: list[tuple[Any, ...]], by: str | None = None) -> list[Spend]:
    """The store's rows summed by ``by`` (one of GROUPINGS), or into one total (``None``),
    calls saved without a cost priced by the price table where it has their model.

    Ordered: by cost, the most first (days: the newest first).
    """
    from .errors import ConfigError
    from .pricing import price_of

    groups: dict[str, Spend] = {}
    prices: dict[str, Any] = {}
    for cid, title, model, hour, quarter, costed, calls, tin, tout, read, write, cost in rows:
        if by == "model":
            key = model
        elif by == "day":
            key = _local_day(hour, quarter)
        elif by == "conversation":
            key = cid
        else:
            key = "total"
        part = Spend(key, title, calls, tin or 0, tout or 0, read or 0, write or 0)
        if costed:
            part.cost = float(cost or 0)
        elif tin or tout:  # saved without a cost: priced now, where the table knows the model
            if model not in prices:
                try:
                    prices[model] = price_of(model)
                except ConfigError:
                    prices[model] = None
            if prices[model] is None:
                part.unpriced_calls = calls
            else:
                part.cost = prices[model].cost(tin, tout, read, write)
        group = groups.setdefault(key, Spend(key, title))
        group.add(part)
    out = list(groups.values())
    if by == "day":
        return sorted(out, key=lambda s: s.key, reverse=True)
    return sorted(out, key=lambda s: (-s.cost, -s.calls, s.key))


def total(rows: list[tuple[Any, ...]]) -> Spend:
    """Everything in the store's rows, as one Spend."""
    found = summed(rows)
    return found[0] if found else Spend("total")


def _local_day(hour: str, quarter: int) -> str:
    """The local date of a UTC quarter of an hour (``2026-12-07T23``, 2 → 23:30 UTC)."""
    try:
        moment = datetime.fromisoformat(f"{hour}:00:00+00:00") + timedelta(minutes=15 * quarter)
    except ValueError:
        return str(hour)[:10]  # a time written by another program: its own date
    return moment.astimezone().date().isoformat()
