"""Budgets: ``[budget] conversation = 2.00, day = 10.00`` in config.toml.

Before each model call the request's cost is estimated (its input tokens, about four
characters each, at the input price, plus ``max_tokens``, else 1,024, at the output price); a
call that would take the conversation's or the local calendar day's spend past its budget is
not sent, and :class:`~chatrepl.errors.BudgetError` says which budget, the spend so far and how
to raise it. What was spent comes from the store (every branch, every conversation); calls of a
conversation that is not saved count for this session only. A model with no price is not
limited: ``warn`` says so once per session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import BudgetError, ConfigError
from .pricing import is_amount

if TYPE_CHECKING:
    from .records import Message
    from .store import Store

#: The budgets config.toml's ``[budget]`` may set, and what each one covers.
KINDS = {"conversation": "in this conversation", "day": "today"}
#: The output tokens a request is assumed to ask for when it sets no ``max_tokens``.
DEFAULT_OUTPUT = 1024
#: Options that cap the output tokens, by provider.
_OUTPUT_CAPS = ("max_tokens", "max_output_tokens", "max_completion_tokens")


class Budget:
    """The budgets of one session (a REPL, a one-shot answer): the limits, the store that
    knows what was spent, and what was spent here without being saved.

    Args:
        limits: dollars by kind (``conversation``, ``day``); a kind missing is not limited.
        store: the session's store (the day's spend); ``None``: nothing saved to count.
        warn: says once per model that it has no price and so is not limited.
    """

    def __init__(
        self,
        limits: dict[str, float],
        store: Store | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.limits = limits
        self.store = store
        self.warn = warn or (lambda message: None)
        self._unsaved: list[tuple[str, str, float]] = []  # conversation id, local day, dollars
        self._said: set[str] = set()

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        store: Store | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> Budget | None:
        """The budgets config.toml sets, or ``None`` when it sets none.

        Raises:
            ConfigError: ``[budget]`` is not a table of amounts.
        """
        table = config.get("budget")
        if table is None:
            return None
        if not isinstance(table, dict):
            raise ConfigError("config.toml: [budget] must be a table: conversation = 2.00 …")
        limits: dict[str, float] = {}
        for name, value in table.items():
            if name not in KINDS:
                raise ConfigError(
                    f"config.toml: [budget] has no setting {_shown(name)} "
                    f"(known: {', '.join(KINDS)})."
                )
            if not is_amount(value):
                raise ConfigError(
                    f"config.toml: [budget] {name} must be an amount of dollars, such as 2.00."
                )
            limits[name] = float(value)
        return cls(limits, store, warn) if limits else None

    def check(
        self,
        conversation_id: str,
        model: str,
        messages: list[Message],
        options: dict[str, Any],
        saved: bool,
    ) -> None:
        """Refuse (raise BudgetError) a request that would pass a budget.

        Args:
            conversation_id: the conversation asking.
            model: ``provider:model`` answering.
            messages: what would be sent.
            options: the request's options (``max_tokens``).
            saved: whether the conversation is saved in the store.

        Raises:
            BudgetError: the request would pass a budget (nothing is sent).
            ConfigError: config.toml's price of the model is malformed.
        """
        from .pricing import money, price_of

        price = price_of(model)
        if price is None:
            if model not in self._said:
                self._said.add(model)
                self.warn(
                    f"No price is known for {_shown(model)}: the budgets do not limit it "
                    f'(give it one in config.toml: [prices."{_shown(model)}"]).'
                )
            return
        estimate = price.cost(input_estimate(messages), output_cap(options))
        for kind, limit in self.limits.items():
            so_far = self.spent(kind, conversation_id, saved)
            if so_far + estimate > limit:
                raise BudgetError(
                    f"Not sent: this request (up to {money(estimate)}) would pass the {kind} "
                    f"budget of {money(limit)}, with {money(so_far)} spent {KINDS[kind]}; "
                    f"raise it in config.toml ([budget] {kind} = …) to go on."
                )

    def spent(self, kind: str, conversation_id: str, saved: bool) -> float:
        """Dollars spent so far: in the conversation (``kind`` ``conversation``) or today."""
        from .spending import local_midnight, total

        today = local_midnight()
        if kind == "conversation":
            rows = (
                self.store.spending(conversation_id=conversation_id)
                if saved and self.store is not None
                else []
            )
            here = sum(c for cid, _, c in self._unsaved if cid == conversation_id)
        else:
            rows = self.store.spending(since=today) if self.store is not None else []
            here = sum(c for _, day, c in self._unsaved if day == today)
        return total(rows).cost + here

    def record(self, conversation_id: str, cost: float | None, saved: bool) -> None:
        """Count a model call's ``cost`` made in a conversation that is not saved."""
        if not saved and cost:
            from .spending import local_midnight

            self._unsaved.append((conversation_id, local_midnight(), cost))


def input_estimate(messages: list[Message]) -> int:
    """The input tokens of ``messages``, estimated from their text (attachments left out)."""
    from .text import estimate_tokens

    chars = 0
    for m in messages:
        chars += len(m.content)
        for p in m.parts:
            if p.kind != "attachment":
                chars += len(p.text) + len(str(p.data.get("arguments", "")))
    return estimate_tokens(chars)


def output_cap(options: dict[str, Any]) -> int:
    """The output tokens a request may produce: its ``max_tokens`` (or the like), else 1,024."""
    for name in _OUTPUT_CAPS:
        value = options.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_OUTPUT


def _shown(value: object) -> str:
    from .text import make_safe, shorten

    return make_safe(shorten(str(value), 60))
