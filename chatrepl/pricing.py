"""What a model call costs: prices per provider and model, and the cost of a call's tokens.

Prices are dollars per million tokens: input, output, cache read and cache write. They come
from config.toml first, then from a small built-in table of the vendors' published prices
(dated: prices change, and the table is a snapshot). A call whose server reported its own cost
(OpenRouter's ``usage.cost``) costs that; the conversation layer decides which applies.

config.toml::

    [prices."openai:gpt-4o"]
    input = 2.5
    output = 10
    cache_read = 1.25     # optional: the input price when missing
    cache_write = 2.5     # optional: the input price when missing

The older form, a ``prices`` table in a provider's section (``[providers.NAME] prices =
{input = …, output = …}``, or a table of such by model name), is read as well.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeGuard

from .errors import ConfigError

if TYPE_CHECKING:
    from .records import CallRecord

#: When the built-in table was taken from the vendors' price pages. Amounts are US dollars.
AS_OF = "2026-06"

#: Dollars per million tokens: input, output, cache read, cache write. OpenAI charges nothing
#: extra to write its automatic cache (the input price); Anthropic charges 1.25× input for a
#: 5-minute cache write and 0.1× for a read.
BUILTIN: dict[str, tuple[float, float, float, float]] = {
    "openai:gpt-4o": (2.50, 10.00, 1.25, 2.50),
    "openai:gpt-4o-mini": (0.15, 0.60, 0.075, 0.15),
    "openai:gpt-4.1": (2.00, 8.00, 0.50, 2.00),
    "openai:gpt-4.1-mini": (0.40, 1.60, 0.10, 0.40),
    "openai:gpt-4.1-nano": (0.10, 0.40, 0.025, 0.10),
    "openai:o1": (15.00, 60.00, 7.50, 15.00),
    "openai:o1-mini": (1.10, 4.40, 0.55, 1.10),
    "openai:o3": (2.00, 8.00, 0.50, 2.00),
    "openai:o3-mini": (1.10, 4.40, 0.55, 1.10),
    "openai:o4-mini": (1.10, 4.40, 0.275, 1.10),
    "anthropic:claude-opus-4-0": (15.00, 75.00, 1.50, 18.75),
    "anthropic:claude-opus-4-1": (15.00, 75.00, 1.50, 18.75),
    "anthropic:claude-opus-4-5": (5.00, 25.00, 0.50, 6.25),
    "anthropic:claude-opus-4-6": (5.00, 25.00, 0.50, 6.25),
    "anthropic:claude-opus-4-7": (5.00, 25.00, 0.50, 6.25),
    "anthropic:claude-sonnet-4-0": (3.00, 15.00, 0.30, 3.75),
    "anthropic:claude-sonnet-4-5": (3.00, 15.00, 0.30, 3.75),
    "anthropic:claude-sonnet-4-6": (3.00, 15.00, 0.30, 3.75),
    "anthropic:claude-haiku-4-5": (1.00, 5.00, 0.10, 1.25),
    "anthropic:claude-3-5-haiku": (0.80, 4.00, 0.08, 1.00),
    "anthropic:claude-3-7-sonnet": (3.00, 15.00, 0.30, 3.75),
}
#: Other names of the same models: Anthropic's ``claude-opus-4-20250514`` is ``claude-opus-4-0``.
_SAME = {"claude-opus-4": "claude-opus-4-0", "claude-sonnet-4": "claude-sonnet-4-0"}
#: A dated snapshot's suffix (``-20250514``, ``-2024-08-06``) or ``-latest``.
_DATED = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|latest)$")
#: The price fields of a config entry, in Price's order.
FIELDS = ("input", "output", "cache_read", "cache_write")


class Price(NamedTuple):
    """Dollars per million tokens of one model, and where the figures come from."""

    input: float
    output: float
    cache_read: float
    cache_write: float
    source: str  # "config.toml", or "the built-in table of 2026-06"

    def cost(
        self,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
    ) -> float:
        """Dollars for a call's tokens; ``input_tokens`` counts every prompt token (uncached,
        cache reads and cache writes), as the conversation records it."""
        read, write = cache_read_tokens or 0, cache_write_tokens or 0
        uncached = max((input_tokens or 0) - read - write, 0)
        return (
            uncached * self.input
            + read * self.cache_read
            + write * self.cache_write
            + (output_tokens or 0) * self.output
        ) / 1_000_000


def price_of(model: str, config: dict[str, Any] | None = None) -> Price | None:
    """The price of ``provider:model``: config.toml's, else the built-in table's, else ``None``.

    ``config`` is the parsed config.toml (read from the home when not given).

    Raises:
        ConfigError: the config's entry for this model is not a table of prices.
    """
    if config is None:
        config = _config()
    found = _configured(model, config)
    if found is not None:
        return Price(*found, "config.toml")
    provider, _, name = model.partition(":")
    if _runs_here(provider, config):
        return Price(0.0, 0.0, 0.0, 0.0, "free: it runs on this computer")
    for candidate in _names(name):
        row = BUILTIN.get(f"{provider}:{candidate}")
        if row is not None:
            return Price(*row, f"the built-in table of {AS_OF}")
    return None


#: Providers whose models run on this computer (the offline echo, the local model): free.
FREE_TYPES = ("echo", "local")


def _runs_here(provider: str, config: dict[str, Any]) -> bool:
    """Whether ``provider`` is the built-in echo or local one, or configured as one of them."""
    section = config.get("providers", {})
    entry = section.get(provider) if isinstance(section, dict) else None
    kind = entry.get("type") if isinstance(entry, dict) else None
    return (kind or provider) in FREE_TYPES


def priced(call: CallRecord) -> float | None:
    """What a model call's tokens cost by the price table (whatever cost it carries), or
    ``None``: no tokens, no price, or a price config.toml gets wrong (said at start)."""
    if call.input_tokens is None and call.output_tokens is None:
        return None
    try:
        price = price_of(call.model)
    except ConfigError:
        return None
    if price is None:
        return None
    return price.cost(
        call.input_tokens, call.output_tokens, call.cache_read_tokens, call.cache_write_tokens
    )


def call_cost(call: CallRecord) -> float | None:
    """What a saved model call cost: its saved cost, else its tokens priced now."""
    return call.cost if call.cost is not None else priced(call)


def calls_cost(calls: Iterable[CallRecord]) -> float | None:
    """What these calls cost together, or ``None`` when no call's cost is known."""
    costs = [c for call in calls if (c := call_cost(call)) is not None]
    return sum(costs) if costs else None


def check_prices(config: dict[str, Any]) -> None:
    """Raise a ConfigError (one sentence) for the first malformed ``[prices]`` entry."""
    table = config.get("prices", {})
    if not isinstance(table, dict):
        raise ConfigError('config.toml: [prices] must be a table of "provider:model" tables.')
    for model, entry in table.items():
        _entry(entry, f'config.toml: [prices."{_shown(model)}"]')


def _names(name: str) -> list[str]:
    """``name``, and the names it may be listed under: without a date, by its other name."""
    names = [name]
    bare = _DATED.sub("", name)
    if bare != name:
        names.append(bare)
    names += [_SAME[n] for n in names if n in _SAME]
    return names


def _configured(model: str, config: dict[str, Any]) -> tuple[float, float, float, float] | None:
    table = config.get("prices")
    if isinstance(table, dict) and model in table:
        return _entry(table[model], f'config.toml: [prices."{_shown(model)}"]')
    provider, _, name = model.partition(":")
    section = config.get("providers", {})
    legacy = section.get(provider, {}).get("prices") if isinstance(section, dict) else None
    if not isinstance(legacy, dict):
        return None
    if isinstance(legacy.get(name), dict):
        legacy = legacy[name]
    if "input" not in legacy and "output" not in legacy:
        return None  # a table by model name that does not list this one
    return _entry(legacy, f"config.toml: the prices of provider {_shown(provider)}")


def _entry(entry: Any, where: str) -> tuple[float, float, float, float]:
    """A config entry's four prices; cache prices default to the input price."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table such as {{input = 2.5, output = 10}}.")
    values: dict[str, float] = {}
    for name in FIELDS:
        value = entry.get(name)
        if value is None and name.startswith("cache_"):
            continue
        if not is_amount(value):
            raise ConfigError(
                f"{where}: {name} must be a number of dollars per million tokens (0 or more)."
            )
        values[name] = float(value)
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown price {_shown(unknown[0])} (known: {', '.join(FIELDS)})."
        )
    return (
        values["input"],
        values["output"],
        values.get("cache_read", values["input"]),
        values.get("cache_write", values["input"]),
    )


def money(amount: float) -> str:
    """Dollars as chatrepl shows them: ``$0.0123`` under a dollar, ``$12.30`` from one up."""
    return f"${amount:.4f}" if abs(amount) < 1 else f"${amount:,.2f}"


_CACHE: dict[str, Any] = {}


def _config() -> dict[str, Any]:
    """config.toml, parsed once per change of the file (a call is priced many times a turn)."""
    import os

    from .settings import home, load_config

    path = home() / "config.toml"
    try:
        stamp: Any = (str(path), os.stat(path).st_mtime_ns)
    except OSError:
        stamp = (str(path), None)
    if _CACHE.get("stamp") != stamp:
        _CACHE["config"], _CACHE["stamp"] = load_config(path.parent), stamp
    config: dict[str, Any] = _CACHE["config"]
    return config


def _shown(value: object) -> str:
    from .text import make_safe, shorten

    return make_safe(shorten(str(value), 60))


def is_amount(value: object) -> TypeGuard[float]:
    """Whether ``value`` (read from config.toml) is an amount of money: a finite number, 0 or more."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )
