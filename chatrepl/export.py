"""A conversation as Markdown (to read) or JSON (to keep, and to import again losslessly)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from dataclasses import asdict, fields
from datetime import UTC
from typing import Any

from .errors import ChatreplError
from .ids import parse_id
from .records import (
    STATUSES,
    CallRecord,
    ConversationSummary,
    Part,
    TurnRecord,
    answer_parts,
    linear_parents,
)
from .text import parse_time

FORMAT_VERSION = 2  # 2: a tree of turns with parts and calls; 1: a straight line, still read
_STATUS_NOTE = {
    "interrupted": "*(interrupted: the answer stopped here)*",
    "error": "*(failed: {error})*",
    "cut_off": "*(cut off at the token limit)*",
    "filtered": "*(stopped by the provider's content filter)*",
    "refused": "*(the model refused)*",
}
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^( {0,3})(#{1,6})(?=\s|$)", re.MULTILINE)


def to_markdown(
    summary: ConversationSummary,
    turns: list[TurnRecord],
    all_turns: list[TurnRecord] | None = None,
    reasoning: bool = False,
) -> str:
    """A readable Markdown document: title, model, persona, then each turn of the path.

    The model's reasoning is left out unless ``reasoning``. With ``all_turns`` (every turn of
    the conversation), the branches off the path follow, each
    under a heading that says where it branches off.
    """
    models = list(dict.fromkeys(t.model for t in turns)) or [summary.model]
    title = " ".join((summary.title or "").split()) or "Untitled conversation"
    lines = [f"# {title}", ""]
    lines += [
        f"- id: `{summary.id}`",
        f"- model: {', '.join(f'`{m}`' for m in models)}",
        f"- started: {readable_time(summary.created)}",
        f"- turns: {len(turns)}",
    ]
    tokens_in = sum(t.input_tokens or 0 for t in turns)
    tokens_out = sum(t.output_tokens or 0 for t in turns)
    if tokens_in or tokens_out:
        lines.append(f"- tokens: {tokens_in} in, {tokens_out} out")
    lines.append("")
    lines += _turns_markdown(turns, "##", reasoning)
    if all_turns:
        on_path = {t.id for t in turns}
        number = {t.id: n for n, t in enumerate(all_turns, 1)}
        others = [t for t in all_turns if t.id not in on_path]
        if others:
            lines += ["## Other branches", ""]
            for t in others:
                where = (
                    f"after turn {number[t.parent_id]}" if t.parent_id in number else "at the start"
                )
                lines += [f"### Branch {number[t.id]} ({where})", ""]
                lines += _turns_markdown([t], "####", reasoning)
    return "\n".join(lines).rstrip() + "\n"


def _turns_markdown(turns: list[TurnRecord], level: str, reasoning: bool = False) -> list[str]:
    lines: list[str] = []
    persona = None
    for turn in turns:
        if turn.system != persona:
            persona = turn.system
            if persona:
                lines += ["> **Persona:** " + persona.rstrip().replace("\n", "\n> "), ""]
            else:
                lines += ["> *(persona cleared)*", ""]
        lines += [f"{level} User · {readable_time(turn.started)}", ""]
        lines += [_below(close_fences(turn.prompt), level), ""]
        for p in turn.parts:
            if p.kind == "attachment" and "command" in p.data:  # !CMD: its output, as sent
                lines += [fenced(p.text, "console"), ""]
            elif p.kind == "attachment":
                lines += [_attached(p), ""]
        lines += [f"{level} Assistant · `{turn.model}`", ""]
        for p in answer_parts(turn.parts):
            if p.kind == "reasoning" and reasoning and p.text.strip():
                lines += ["> *Reasoning:* " + p.text.strip().replace("\n", "\n> "), ""]
            elif p.kind == "text" and p.text.strip():
                lines += [_below(close_fences(p.text), level), ""]
            elif p.kind == "refusal":
                lines += ["> *Refused:* " + " ".join(p.text.split()), ""]
            elif p.kind == "tool_call":
                args = p.data.get("raw") or _compact(p.data.get("arguments", {}))
                lines += [f"- tool call `{p.data.get('name')}`: `{args}`", ""]
            elif p.kind == "tool_result":
                lines += [
                    f"- result of `{p.data.get('name')}`:",
                    "",
                    "```",
                    p.text.rstrip(),
                    "```",
                    "",
                ]
            elif p.kind == "summary":
                lines += ["*Summary of the earlier turns:*", "", _below(p.text, level), ""]
        if not turn.parts and turn.response.strip():
            lines += [_below(close_fences(turn.response), level), ""]
        if note := status_note(turn):
            lines += [note, ""]
    return lines


def _attached(p: Part) -> str:
    """The line of an attached file: its name, kind, size and hash (by which the JSON export
    carries its bytes, under ``attachments``)."""
    name = str(p.data.get("name") or "file").replace("`", "'")
    sha = str(p.data.get("sha256", ""))
    size = p.data.get("size")
    about = [str(p.data.get("mime", "")), f"{size} bytes" if size else "", f"sha256 {sha[:16]}"]
    return f"- attached: `{name}` ({', '.join(x for x in about if x and x != 'sha256 ')})"


def fenced(text: str, info: str = "") -> str:
    """``text`` as a fenced code block whose fence no line of it can close."""
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{info}\n{text.rstrip()}\n{fence}"


def _below(text: str, level: str) -> str:
    """``text`` with its own Markdown headings pushed below ``level``, so a prompt's headings
    never pose as turns."""
    depth = len(level)
    out, fence = [], None
    for line in text.split("\n"):
        if m := _FENCE.match(line):  # headings inside a code block are code: left as they are
            mark = m.group(1)
            if fence is None:
                fence = mark
            elif mark[0] == fence[0] and len(mark) >= len(fence) and not line[m.end() :].strip():
                fence = None
        elif fence is None:
            line = _HEADING.sub(lambda h: h.group(1) + "#" * min(6, len(h.group(2)) + depth), line)
        out.append(line)
    return "\n".join(out)


def _compact(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, sort_keys=True)


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


def to_json(
    summary: ConversationSummary,
    turns: list[TurnRecord],
    attachment: Callable[[str], bytes | None] | None = None,
) -> dict[str, Any]:
    """Everything saved about a conversation (every branch, every part) as plain JSON data.

    With ``attachment`` (the store's: sha256 → bytes), the attached files go in too, once each,
    under ``attachments``: sha256 → ``{"mime", "base64"}``.
    """
    conversation = {
        k: v
        for k, v in asdict(summary).items()
        if k not in ("turns", "input_tokens", "output_tokens")
    }
    data: dict[str, Any] = {
        "chatrepl_export": FORMAT_VERSION,
        "conversation": conversation,
        "turns": [{k: v for k, v in asdict(t).items() if k != "conversation_id"} for t in turns],
    }
    if attachment is not None:
        files: dict[str, dict[str, str]] = {}
        for t in turns:
            for p in t.parts:
                sha = str(p.data.get("sha256", ""))
                if p.kind != "attachment" or sha in files:
                    continue
                if (content := attachment(sha)) is not None:
                    encoded = base64.b64encode(content).decode("ascii")
                    files[sha] = {"mime": str(p.data.get("mime", "")), "base64": encoded}
        if files:
            data["attachments"] = files
    return data


def spending_json(calls: list[CallRecord]) -> dict[str, Any]:
    """What ``calls`` used and cost, as ``show --json`` gives a conversation's (every branch):
    ``usage`` (``input``, ``output``, ``cache_read``, ``cache_write`` tokens and the
    ``cached_share`` of the input) and ``cost`` (dollars; ``null`` when no call's is known).
    """
    from .pricing import calls_cost

    def added(name: str) -> int:
        return sum(getattr(c, name) or 0 for c in calls)

    tokens_in, read = added("input_tokens"), added("cache_read_tokens")
    usage = {
        "input": tokens_in,
        "output": added("output_tokens"),
        "cache_read": read,
        "cache_write": added("cache_write_tokens"),
        "cached_share": round(read / tokens_in, 4) if tokens_in else None,
    }
    cost = calls_cost(calls)
    return {"usage": usage, "cost": None if cost is None else round(cost, 6)}


def attachments_in(data: Any) -> dict[str, tuple[str, bytes]]:
    """The attached files an export carries (sha256 → mime and bytes), each checked against its
    hash.

    Raises:
        ChatreplError: the ``attachments`` map is damaged.
    """
    files = data.get("attachments", {}) if isinstance(data, dict) else {}
    if not isinstance(files, dict):
        raise ChatreplError("That chatrepl export is damaged: its attachments are not a map.")
    out: dict[str, tuple[str, bytes]] = {}
    for sha, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("base64"), str):
            raise ChatreplError("That chatrepl export is damaged: an attachment is wrong.")
        try:
            content = base64.b64decode(entry["base64"], validate=True)
        except ValueError:
            raise ChatreplError(
                "That chatrepl export is damaged: an attachment is not base64."
            ) from None
        if hashlib.sha256(content).hexdigest() != sha:
            raise ChatreplError(
                "That chatrepl export is damaged: an attachment does not match its hash."
            )
        out[sha] = (str(entry.get("mime") or "application/octet-stream"), content)
    return out


_TURN_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "parent_id": (str, type(None)),
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
    "parts": (list,),
    "calls": (list,),
    "kind": (str,),
}
_OPTIONAL: dict[str, Any] = {
    "parent_id": None,
    "system": None,
    "response": "",
    "options": {},
    "input_tokens": None,
    "output_tokens": None,
    "status": "complete",
    "error": None,
    "duration_ms": None,
    "ttft_ms": None,
    "parts": [],
    "calls": [],
    "kind": "turn",
}


def from_json(data: Any) -> tuple[ConversationSummary, list[TurnRecord]]:
    """The conversation in an export made by :func:`to_json` (this format or format 1).

    Raises:
        ChatreplError: the data is not a chatrepl export, is of a newer format, or is damaged
            (the message names the field).
    """
    if not isinstance(data, dict) or "chatrepl_export" not in data:
        raise ChatreplError("That file is not a chatrepl JSON export.")
    version = data["chatrepl_export"]
    if version not in (1, FORMAT_VERSION) or isinstance(version, bool):
        raise ChatreplError(
            f"That export has format {_said(version)}; this chatrepl reads formats 1 to "
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
        id=cid,
        title=_opt_str(c, "title"),
        title_source=_opt_str(c, "title_source"),
        model=c["model"],
        system=_opt_str(c, "system"),
        created=c["created"],
        updated=c["updated"],
        head=_opt_str(c, "head"),
        forked_from=_opt_str(c, "forked_from"),
    )
    raw_turns = data.get("turns")
    if not isinstance(raw_turns, list):
        raise ChatreplError("That chatrepl export is damaged: it has no list of turns.")
    names = {f.name for f in fields(TurnRecord)} - {"conversation_id"}
    turns, undone = [], []
    for n, t in enumerate(raw_turns, 1):
        if not isinstance(t, dict):
            raise ChatreplError(f"That chatrepl export is damaged: turn {n} is not an object.")
        row = {**_OPTIONAL, **{k: v for k, v in t.items() if k in names}}
        for key, types in _TURN_TYPES.items():
            if key not in row:
                raise ChatreplError(f"That chatrepl export is damaged: turn {n} has no {key}.")
            value = row[key]
            if not isinstance(value, types) or isinstance(value, bool):
                raise ChatreplError(f"That chatrepl export is damaged: turn {n} has a wrong {key}.")
        if row["status"] not in STATUSES:
            raise ChatreplError(
                f"That chatrepl export is damaged: turn {n} has an unknown status "
                f"'{_said(row['status'])}'."
            )
        row["id"] = _ulid(row["id"], f"the id of turn {n}")
        if row["parent_id"] is not None:
            row["parent_id"] = _ulid(row["parent_id"], f"the parent of turn {n}")
        row["parts"] = [_part(p, n) for p in row["parts"]]
        row["calls"] = [_call(c, n) for c in row["calls"]]
        turn = TurnRecord(conversation_id=cid, **row)
        if not turn.parts:  # format 1: the prompt and the answer only
            turn.parts = [Part("prompt", turn.prompt)]
            if turn.response:
                turn.parts.append(Part("text", turn.response, call=1))
        turns.append(turn)
        undone.append(t.get("undone") is True)
    if version == 1:
        parents, summary.head = linear_parents(
            [(t.id, u) for t, u in zip(turns, undone, strict=True)]
        )
        for turn, parent in zip(turns, parents, strict=True):
            turn.parent_id = parent
    ids = {t.id for t in turns}
    if summary.head is not None and summary.head not in ids:
        raise ChatreplError("That chatrepl export is damaged: its head is not one of its turns.")
    for n, t in enumerate(turns, 1):
        if t.parent_id is not None and t.parent_id not in ids:
            raise ChatreplError(f"That chatrepl export is damaged: turn {n} has an unknown parent.")
    return summary, turns


def _part(value: Any, n: int) -> Part:
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        raise ChatreplError(f"That chatrepl export is damaged: a part of turn {n} is wrong.")
    text, data, call = value.get("text", ""), value.get("data", {}), value.get("call", 0)
    if not isinstance(text, str) or not isinstance(data, dict) or type(call) is not int:
        raise ChatreplError(f"That chatrepl export is damaged: a part of turn {n} is wrong.")
    return Part(value["kind"], text, data, call)


def _call(value: Any, n: int) -> CallRecord:
    names = [f.name for f in fields(CallRecord)]
    if (
        not isinstance(value, dict)
        or type(value.get("index")) is not int
        or not isinstance(value.get("model"), str)
    ):
        raise ChatreplError(f"That chatrepl export is damaged: a model call of turn {n} is wrong.")
    for key in names[2:]:
        v = value.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, str))):
            raise ChatreplError(
                f"That chatrepl export is damaged: a model call of turn {n} is wrong."
            )
    return CallRecord(**{k: value.get(k) for k in names})


def _said(value: Any) -> str:
    from .text import make_safe, shorten

    return make_safe(shorten(str(value), 40))


def _opt_str(d: dict[str, Any], key: str) -> str | None:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise ChatreplError(f"That chatrepl export is damaged: its {key} is not text.")
    return value


def _ulid(value: str, what: str) -> str:
    try:
        return parse_id(value)
    except ValueError:
        raise ChatreplError(f"That chatrepl export is damaged: {what} is not a ULID.") from None
