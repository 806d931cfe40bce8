"""A conversation as Markdown (to read) or JSON (to keep, and to import again losslessly)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from .errors import ChatreplError
from .store import ConversationSummary, TurnRecord

FORMAT_VERSION = 1
_STATUS_NOTE = {
    "interrupted": "*(interrupted: the answer stopped here)*",
    "error": "*(failed: {error})*",
    "pending": "*(no answer was saved)*",
}


def to_markdown(summary: ConversationSummary, turns: list[TurnRecord]) -> str:
    """A readable Markdown document: title, model, persona, then each turn (undone ones left out)."""
    lines = [f"# {summary.title or 'Untitled conversation'}", ""]
    lines += [
        f"- id: `{summary.id}`",
        f"- model: `{summary.model}`",
        f"- started: {summary.created}",
        "",
    ]
    persona = None
    for turn in turns:
        if turn.undone:
            continue
        if turn.system != persona:
            persona = turn.system
            if persona:
                lines += ["> **Persona:** " + persona.replace("\n", "\n> "), ""]
            else:
                lines += ["> *(persona cleared)*", ""]
        lines += [f"## User ({turn.started})", "", turn.prompt.rstrip(), ""]
        lines += [f"## Assistant (`{turn.model}`)", ""]
        if turn.response:
            lines += [turn.response.rstrip(), ""]
        if note := _STATUS_NOTE.get(turn.status):
            lines += [note.format(error=turn.error or "unknown error"), ""]
    return "\n".join(lines).rstrip() + "\n"


def to_json(summary: ConversationSummary, turns: list[TurnRecord]) -> dict[str, Any]:
    """Everything saved about a conversation, undone turns included, as plain JSON data."""
    conversation = {
        k: v
        for k, v in asdict(summary).items()
        if k not in ("turns", "input_tokens", "output_tokens")
    }
    return {
        "chatrepl_export": FORMAT_VERSION,
        "conversation": conversation,
        "turns": [{k: v for k, v in asdict(t).items() if k != "conversation_id"} for t in turns],
    }


def from_json(data: Any) -> tuple[ConversationSummary, list[TurnRecord]]:
    """The conversation in an export made by :func:`to_json`."""
    if not isinstance(data, dict) or "chatrepl_export" not in data:
        raise ChatreplError("That file is not a chatrepl JSON export.")
    if data["chatrepl_export"] != FORMAT_VERSION:
        raise ChatreplError(
            f"That export has format {data['chatrepl_export']}; this chatrepl reads format "
            f"{FORMAT_VERSION}: upgrade chatrepl."
        )
    try:
        c = data["conversation"]
        summary = ConversationSummary(
            c["id"],
            c.get("title"),
            c["model"],
            c.get("system"),
            c["created"],
            c["updated"],
            0,
            0,
            0,
        )
        names = {f.name for f in fields(TurnRecord)}
        turns = [
            TurnRecord(**{**{k: v for k, v in t.items() if k in names}, "conversation_id": c["id"]})
            for t in data["turns"]
        ]
    except (KeyError, TypeError) as exc:
        raise ChatreplError(f"That chatrepl export is incomplete (missing {exc}).") from exc
    return summary, turns
