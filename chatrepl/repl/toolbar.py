"""The bottom toolbar: model, short id, title, context and cost, computed once per turn or command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..text import make_safe, shorten

if TYPE_CHECKING:
    from ..conversation import Conversation

SHORT_ID = 10  # a ULID's first 10 characters are its millisecond: enough to tell apart
SEPARATOR = " │ "


def toolbar_text(conversation: Conversation, window: int | None = None) -> str:
    """The toolbar's text for ``conversation``; call after each turn, not per keystroke.

    After the title: the tokens the context holds, their share of the model's context
    ``window`` (when known) and the cost so far (when known): ``12.3k tok · 9% of 128k · $0.01``.
    """
    from ..context import describe

    parts = [conversation.model.full_name, conversation.id[:SHORT_ID]]
    parts.append(make_safe(shorten(conversation.title, 50)) if conversation.title else "new")
    if used := describe(conversation, window):
        parts.append(used)
    return " " + SEPARATOR.join(parts)


def fit(text: str, width: int, hint: str = "/help ") -> str:
    """``text`` cut to ``width`` columns, with ``hint`` at the right when there is room."""
    if len(text) + len(hint) + 2 <= width:
        return text + " " * (width - len(text) - len(hint)) + hint
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"
