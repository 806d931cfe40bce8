"""A conversation as Markdown (to read) or JSON (to keep, and to import again losslessly)."""

from __future__ import annotations

import re
from dataclasses import asdict, fields
from datetime import UTC
from typing import Any

from .errors import ChatreplError
from .store import STATUSES, ConversationSummary, TurnRecord
from .text import parse_time

FORMAT_VERSION = 1
_STATUS_NOTE = {
    "interrupted": "*(interrupted: the answer stopped here)*",
    "error": "*(failed: {error})*",
}
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def to_markdown(summary: ConversationSummary, turns: list[TurnRecord]) -> str:
    """A readable Markdown document: title, model, persona, then each turn (undone ones left out)."""
    shown = [t for t in turns if not t.undone]
    models = list(dict.fromkeys(t.model for t in shown)) or [summary.model]
    title = " ".join((summary.title or "").split()) or "Untitled conversation"
    lines = [f"# {title}", ""]
    lines += [
        f"- id: `{summary.id}`",
        f"- model: {', '.join(f'`{m}`' for m in models)}",
        f"- started: {readable_time(summary.created)}",
        f"- turns: {len(shown)}",
    ]
    tokens_in = sum(t.input_tokens or 0 for t in shown)
    tokens_out = sum(t.output_tokens or 0 for t in shown)
    if tokens_in or tokens_out:
        lines.append(f"- tokens: {tokens_in} in, {tokens_out} out")
    lines.append("")
    persona = None
    for turn in shown:
        if turn.system != persona:
            persona = turn.system
            if persona:
                lines += ["> **Persona:** " + persona.rstrip().replace("\n", "\n> "), ""]
            else:
                lines += ["> *(persona cleared)*", ""]
        lines += [f"## User · {readable_time(turn.started)}", "", close_fences(turn.prompt), ""]
        lines += [f"## Assistant · `{turn.model}`", ""]
        if turn.response.strip():
            lines += [close_fences(turn.response), ""]
        if note := status_note(turn):
            lines += [note, ""]
    return "\n".join(lines).rstrip() + "\n"


def status_note(turn: TurnRecord) -> str | None:
    """The italic line that says a turn did not complete, or ``None`` if it did."""
    if turn.status == "pending":
        if turn.response:
            return "*(cut off: chatrepl stopped while this answer streamed)*"
        return "*(no answer was saved)*"
    if note := _STATUS_NOTE.get(turn.status):
        return note.format(error=" ".join((turn.error or "unknown error").split()))
    return None


def close_fences(text: str) -> str:
    """``text`` without trailing blanks, with a code fence left open (a cut-off answer) closed.

    Without this, an answer interrupted inside a code block would swallow the rest of the
    document into that block.
    """
    text = text.rstrip()
    open_fence: str | None = None
    for line in text.splitlines():
        if not (m := _FENCE.match(line)):
            continue
        mark, rest = m.group(1), line[m.end() :].strip()
        if open_fence is None:
            open_fence = mark
        elif mark[0] == open_fence[0] and len(mark) >= len(open_fence) and not rest:
            open_fence = None
    return text + "\n" + open_fence if open_fence else text


def readable_time(iso: str | None) -> str:
    """A stored UTC timestamp as ``2025-01-31 14:02:05 UTC`` (unchanged if it is not ISO)."""
    moment = parse_time(iso)
    if moment is None:
        return iso or "unknown"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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


_TURN_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "model": (str,),
    "prompt": (str,),
    "system": (str, type(None)),
    "response": (str,),
    "options": (dict,),
    "input_tokens": (int, type(None)),
    "output_tokens": (int, type(None)),
    "status": (str,),
    "error": (str, type(None)),
    "started": (str,),
    "duration_ms": (int, type(None)),
    "ttft_ms": (int, type(None)),
    "undone": (bool,),
}
_OPTIONAL = {
    "system": None,
    "response": "",
    "options": {},
    "input_tokens": None,
    "output_tokens": None,
    "status": "complete",
    "error": None,
    "duration_ms": None,
    "ttft_ms": None,
    "undone": False,
}


def from_json(data: Any) -> tuple[ConversationSummary, list[TurnRecord]]:
    """The conversation in an export made by :func:`to_json`.

    Raises:
        ChatreplError: the data is not a chatrepl export, is of a newer format, or is damaged
            (the message names the field).
    """
    if not isinstance(data, dict) or "chatrepl_export" not in data:
        raise ChatreplError("That file is not a chatrepl JSON export.")
    if data["chatrepl_export"] != FORMAT_VERSION:
        raise ChatreplError(
            f"That export has format {data['chatrepl_export']}; this chatrepl reads format "
            f"{FORMAT_VERSION}: upgrade chatrepl."
        )
    c = data.get("conversation")
    if not isinstance(c, dict):
        raise ChatreplError("That chatrepl export has no conversation.")
    for key in ("id", "model", "created", "updated"):
        if not isinstance(c.get(key), str):
            raise ChatreplError(f"That chatrepl export is damaged: the conversation has no {key}.")
    cid = _ulid(c["id"], "the conversation id")
    summary = ConversationSummary(
        cid,
        _opt_str(c, "title"),
        c["model"],
        _opt_str(c, "system"),
        c["created"],
        c["updated"],
        0,
        0,
        0,
        _opt_str(c, "title_source"),
    )
    raw_turns = data.get("turns")
    if not isinstance(raw_turns, list):
        raise ChatreplError("That chatrepl export is damaged: it has no list of turns.")
    names = {f.name for f in fields(TurnRecord)} - {"conversation_id"}
    turns = []
    for n, t in enumerate(raw_turns, 1):
        if not isinstance(t, dict):
            raise ChatreplError(f"That chatrepl export is damaged: turn {n} is not an object.")
        row = {**_OPTIONAL, **{k: v for k, v in t.items() if k in names}}
        for key, types in _TURN_TYPES.items():
            if key not in row:
                raise ChatreplError(f"That chatrepl export is damaged: turn {n} has no {key}.")
            value = row[key]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise ChatreplError(f"That chatrepl export is damaged: turn {n} has a wrong {key}.")
        if row["status"] not in STATUSES:
            raise ChatreplError(
                f"That chatrepl export is damaged: turn {n} has an unknown status "
                f"'{row['status']}'."
            )
        row["id"] = _ulid(row["id"], f"the id of turn {n}")
        turns.append(TurnRecord(conversation_id=cid, **row))
    return summary, turns


def _opt_str(d: dict[str, Any], key: str) -> str | None:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise ChatreplError(f"That chatrepl export is damaged: its {key} is not text.")
    return value


def _ulid(value: str, what: str) -> str:
    from ulid import ULID

    try:
        return str(ULID.from_str(value.strip().upper()))
    except (ValueError, TypeError, AttributeError):
        raise ChatreplError(f"That chatrepl export is damaged: {what} is not a ULID.") from None
