"""The bottom toolbar: model, short id, title, context and cost, computed once per turn or command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..text import make_safe, shorten

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..conversation import Conversation
    from ..records import Part

SHORT_ID = 10  # a ULID's first 10 characters are its millisecond: enough to tell apart
SEPARATOR = " │ "


def toolbar_text(
    conversation: Conversation,
    staged: Sequence[Part] = (),
    window: int | None = None,
    no_log: bool = False,
) -> str:
    """The toolbar's text for ``conversation`` and the files ``staged`` for the next prompt;
    call after each turn or command, not per keystroke. ``no_log``: ``-n`` is on, said after
    the id.

    After the title: the tokens the context holds, their share of the model's context
    ``window`` (when known) and the cost so far (when known): ``12.3k tok · 9% of 128k · $0.01``.
    """
    from ..context import describe

    parts = [conversation.model.full_name, conversation.id[:SHORT_ID]]
    if no_log:
        parts.append("not saved (-n)")
    if staged:
        names = ", ".join(make_safe(shorten(str(p.data.get("name", "file")), 24)) for p in staged)
        parts.append(f"+{len(staged)} attached: {shorten(names, 60)}")
    parts.append(make_safe(shorten(conversation.title, 50)) if conversation.title else "new")
    if used := describe(conversation, window):
        parts.append(used)
    return " " + SEPARATOR.join(parts)


def fit(text: str, width: int, hint: str = "/help ") -> str:
    """``text`` cut to ``width`` columns, with ``hint`` at the right when there is room."""
    if len(text) + len(hint) + 2 <= width:
        return text + " " * (width - len(text) - len(hint)) + hint
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"
