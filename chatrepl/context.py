"""How full the context is and what the conversation cost: for the toolbar, /info and the
decision to compact.

Tokens come from the server's usage where it reported them, else an estimate (characters / 4).
Cost is what each call cost as saved (the server's figure, else the price table's: see
``chatrepl.pricing``), else unknown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .text import estimate_tokens

if TYPE_CHECKING:
    from .conversation import Conversation, Response
    from .records import Usage


def turn_chars(turn: Response) -> int:
    """The characters of a turn that are sent again with every later prompt."""
    return sum(
        len(p.text) for p in turn.parts if p.kind in ("prompt", "text", "refusal", "tool_result")
    ) + sum(len(str(p.data.get("arguments", ""))) for p in turn.parts if p.kind == "tool_call")


def since_summary(conversation: Conversation) -> tuple[Response | None, list[Response]]:
    """The last compaction summary on the path (or ``None``) and the turns after it."""
    turns = conversation.turns
    for n in range(len(turns) - 1, -1, -1):
        if turns[n].kind == "summary":
            return turns[n], turns[n + 1 :]
    return None, turns


def context_used(conversation: Conversation, prompt: str = "") -> tuple[int, bool]:
    """Tokens the next request holds (with ``prompt``), and whether that is an estimate.

    The last model call made after the last compaction counts what it read and wrote, as the
    server reported it; what came after it (and ``prompt``) is estimated.
    """
    summary, turns = since_summary(conversation)
    since = summary.started if summary is not None else ""
    base, start, exact = 0, 0, False
    for n in range(len(turns) - 1, -1, -1):
        t = turns[n]
        call = next((c for c in reversed(t.calls) if c.input_tokens), None)
        if call is not None and t.started >= since:  # copies kept by a compaction are older
            base, start, exact = call.input_tokens or 0, n + 1, True
            base += call.output_tokens or 0
            break
    chars = len(prompt) + sum(turn_chars(t) for t in turns[start:])
    if not exact:
        chars += len(conversation.system or "")
        if summary is not None:
            chars += sum(len(p.text) for p in summary.parts if p.kind == "summary")
    return base + estimate_tokens(chars) if chars else base, not exact


def estimated_size(conversation: Conversation, prompt: str = "") -> int:
    """Tokens of the next request (persona, last summary, the turns after it, ``prompt``)
    estimated from characters alone: figures compared with each other are measured alike."""
    summary, turns = since_summary(conversation)
    chars = len(prompt) + len(conversation.system or "") + sum(turn_chars(t) for t in turns)
    if summary is not None:
        chars += sum(len(p.text) for p in summary.parts if p.kind == "summary")
    return estimate_tokens(chars)


def window_of(conversation: Conversation) -> int | None:
    """The model's context window in tokens, or ``None`` when no one says: config's
    ``context_window``, else the one learned from a refusal (``windows``), else what the
    server or the known table says."""
    from .windows import learned

    model = conversation.model
    configured = getattr(model, "context_length", None)
    if isinstance(configured, int) and configured > 0:
        return configured
    try:
        return learned(model.full_name) or model.context_window()
    except Exception:  # a fact that is nice to have: never an error
        return None


def conversation_cost(conversation: Conversation) -> float | None:
    """Dollars spent on the turns of the current path, or ``None`` when nothing is known.

    Each call costs what was saved with it (the server's figure, else the price table's at the
    time); a call saved without one is priced now, where the price table knows its model.
    """
    from .pricing import calls_cost

    return calls_cost(call for turn in conversation.turns for call in turn.calls)


def cached_share(usage: Usage) -> float | None:
    """The share of the input tokens read from a cache (0 to 1), or ``None`` without input."""
    if not usage.input_tokens:
        return None
    return (usage.cache_read_tokens or 0) / usage.input_tokens


def short_count(n: int) -> str:
    """``950``, ``12.3k``, ``128k``, ``1.05M``: a token count as the toolbar shows it."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        k = n / 1000
        return f"{k:.1f}k".replace(".0k", "k") if k < 100 else f"{k:.0f}k"
    return f"{n / 1_000_000:.2f}M".replace(".00M", "M")


def describe(conversation: Conversation, window: int | None) -> str:
    """``12.3k tok · 9% of 128k · 80% cached · $0.0123``: what the context holds, the share of
    the input read from a cache, and the cost so far."""
    used, estimated = context_used(conversation)
    if not used and not conversation.turns:
        return ""
    pieces = [("~" if estimated else "") + f"{short_count(used)} tok"]
    if window:
        pieces.append(f"{100 * used / window:.0f}% of {short_count(window)}")
    share = cached_share(conversation.tokens)
    if share:
        pieces.append(f"{100 * share:.0f}% cached")
    cost = conversation_cost(conversation)
    if cost is not None:
        from .pricing import money

        pieces.append(money(cost))
    return " · ".join(pieces)
