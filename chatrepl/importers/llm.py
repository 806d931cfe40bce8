"""Conversations from the ``llm`` tool's ``logs.db`` (simonw/llm), read without writing to it.

llm has logged in two layouts, and a database that lived through an upgrade holds both:

- up to llm 0.31: ``conversations`` (id, name, model) and ``responses`` (one row per prompt:
  prompt, system, response, options_json, tokens, datetime_utc, duration_ms, with fragments
  in ``prompt_fragments`` / ``system_fragments``);
- from llm 0.32: ``threads`` (a conversation), ``turns`` (one model call) and a
  content-addressed tree of ``messages`` and their ``parts``: a turn's input is the chain
  ending at ``parent_message_hash``, its output the messages after that up to
  ``tip_message_hash``. Text that borrows a fragment is stored as a ``text_ref`` list.

A thread continued after the upgrade keeps the id of its legacy conversation, so both are
merged by id; a legacy response that was also logged as a turn (same id) is read once.

How llm's history becomes chatrepl's:

- ids stay (upper-cased) where they are ULIDs; others get a ULID derived from the id and
  the time, the same on every run, so importing twice imports nothing twice;
- a turn's persona is the system prompt it was sent with: for the new layout the last
  system message of its chain; for the old one its own ``system``, else the persona of
  the turn before (llm's OpenAI models send an earlier system prompt again with ``-c``);
- fragments are put back into the prompt and persona, as the model saw them;
- a turn without prompt text (a step of a tool chain) is folded into the turn before: each
  llm response or turn becomes one model call (a CallRecord) of the chatrepl turn, and its
  reasoning, text, tool calls and the tool results it was sent become typed parts (see
  :func:`_assemble`). Tool calls come from ``tool_calls`` / ``tool_results`` (llm 0.26-0.31)
  or from the ``tool_call`` / ``tool_result`` parts of the message store (0.32 on);
- llm's model ids become ``provider:model`` (see :func:`model_name`);
- llm logs only answers that completed, so every turn is ``complete``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ChatreplError
from ..files import user_path
from ..records import CallRecord, ConversationSummary, Part, TurnRecord, linear_parents

_OPENAI = re.compile(r"^(gpt-|chatgpt-|o\d|text-|davinci|babbage|ft:)")


@dataclass
class _Turn:
    """One round trip as read from llm, before it becomes a TurnRecord."""

    id: str
    model: str
    prompt: str
    system: str | None
    response: str
    options: dict[str, Any]
    input_tokens: int | None
    output_tokens: int | None
    started: str
    duration_ms: int | None
    legacy: bool = False
    undone: bool = False
    reasoning_tokens: int | None = None
    given: list[Part] = field(default_factory=list)  # the tool results this call was sent
    out: list[Part] = field(default_factory=list)  # what the call produced, in order


@dataclass
class _Conversation:
    llm_id: str
    names: list[str] = field(default_factory=list)  # best first
    turns: list[_Turn] = field(default_factory=list)


def read_conversations(
    path: Path, known_providers: Iterable[str] | None = None
) -> list[tuple[ConversationSummary, list[TurnRecord]]]:
    """Every conversation in llm's database at ``path``, oldest first.

    Args:
        path: llm's ``logs.db``.
        known_providers: provider names that model ids like ``name/model`` may start with
            (default: the providers chatrepl knows, from config.toml too).

    Raises:
        ChatreplError: the file is missing, not SQLite, or not llm's.
    """
    if known_providers is None:
        from ..providers.registry import providers

        known_providers = providers().keys()
    known = set(known_providers)
    con = connect_read_only(path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        current = {"turns", "threads", "messages", "parts"} <= tables
        legacy = "responses" in tables and {"datetime_utc", "response"} <= _columns(
            con, "responses"
        )
        if not (current or legacy):
            raise ChatreplError(
                f"{path} is an SQLite database but not llm's logs (it has neither llm's "
                "responses nor its turns)."
            )
        conversations: dict[str, _Conversation] = {}
        turn_ids: set[str] = set()
        if current:
            turn_ids = _read_current(con, tables, conversations)
        if legacy:
            _read_legacy(con, tables, conversations, turn_ids)
    except sqlite3.DatabaseError as exc:
        raise ChatreplError(f"Cannot read the llm database {path}: {exc}.") from exc
    finally:
        con.close()
    out = [_finish(c, known) for c in conversations.values() if c.turns]
    out.sort(key=lambda pair: (pair[0].created, pair[0].id))
    return out


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to the SQLite file ``path`` (which must exist)."""
    path = user_path(path)
    if not path.is_file():
        raise ChatreplError(
            f"There is no llm database at {path}: give the path of llm's logs.db "
            "(`llm logs path` prints it)."
        )
    uri = path.resolve().as_uri()
    try:
        try:
            con = _probe(f"{uri}?mode=ro")
        except sqlite3.OperationalError:
            # A WAL database in a folder we may not write to: read it as it is on disk.
            con = _probe(f"{uri}?mode=ro&immutable=1")
    except sqlite3.DatabaseError as exc:
        raise ChatreplError(f"{path} is not an SQLite database ({exc}).") from exc
    con.row_factory = sqlite3.Row
    return con


def _probe(uri: str) -> sqlite3.Connection:
    con = sqlite3.connect(uri, uri=True, timeout=10)
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError:
        con.close()
        raise
    return con


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in con.execute(f'PRAGMA table_info("{table}")')}


def _select(con: sqlite3.Connection, table: str, wanted: Iterable[str]) -> str:
    """``col, ...`` with NULL for the columns an older llm did not have yet."""
    have = _columns(con, table)
    return ", ".join(f'"{c}"' if c in have else f'NULL AS "{c}"' for c in wanted)


# --- llm up to 0.31: conversations and responses ------------------------------------------------


def _read_legacy(
    con: sqlite3.Connection,
    tables: set[str],
    conversations: dict[str, _Conversation],
    skip: set[str],
) -> None:
    names: dict[str, str] = {}
    if "conversations" in tables:
        for row in con.execute("SELECT id, name FROM conversations"):
            if row["name"]:
                names[str(row["id"])] = row["name"]
    fragments = _legacy_fragments(con, tables)
    wanted = (
        "id",
        "model",
        "prompt",
        "system",
        "options_json",
        "response",
        "conversation_id",
        "duration_ms",
        "datetime_utc",
        "input_tokens",
        "output_tokens",
        "token_details",
        "reasoning",
    )
    calls, results = _legacy_tools(con, tables)
    sql = f"SELECT {_select(con, 'responses', wanted)} FROM responses ORDER BY rowid"
    for row in con.execute(sql):
        rid = str(row["id"])
        if rid in skip:  # also logged as a turn by a newer llm: read there
            continue
        prompt_bits = [*fragments.get(("prompt", rid), []), row["prompt"] or ""]
        prompt = "\n".join(b for b in prompt_bits if b)
        system_bits = [*fragments.get(("system", rid), []), row["system"] or ""]
        system = "\n\n".join(b.strip() for b in system_bits if b and b.strip()) or None
        cid = str(row["conversation_id"]) if row["conversation_id"] else f"response:{rid}"
        c = conversations.setdefault(cid, _Conversation(cid))
        if cid in names and names[cid] not in c.names:
            c.names.insert(0, names[cid])  # the legacy name is the original one
        out = []
        if row["reasoning"]:
            out.append(Part("reasoning", row["reasoning"]))
        if row["response"]:
            out.append(Part("text", row["response"]))
        out += [
            _tool_call(name, arguments, call_id, f"{rid}:{n}")
            for n, (name, arguments, call_id) in enumerate(calls.get(rid, []))
        ]
        c.turns.append(
            _Turn(
                id=rid,
                model=row["model"] or "",
                prompt=prompt,
                system=system,
                response=row["response"] or "",
                options=_options(row["options_json"]),
                input_tokens=row["input_tokens"],
                output_tokens=row["output_tokens"],
                started=row["datetime_utc"] or "",
                duration_ms=row["duration_ms"],
                legacy=True,
                reasoning_tokens=_reasoning_tokens(row["token_details"]),
                given=results.get(rid, []),
                out=out,
            )
        )


def _legacy_tools(
    con: sqlite3.Connection, tables: set[str]
) -> tuple[dict[str, list[tuple[str, Any, str | None]]], dict[str, list[Part]]]:
    """The tool calls each response asked for (name, arguments, id) and the tool results each
    was sent (llm 0.26-0.31's ``tool_calls`` and ``tool_results``)."""
    calls: dict[str, list[tuple[str, Any, str | None]]] = {}
    results: dict[str, list[Part]] = {}
    if "tool_calls" in tables:
        wanted = ("response_id", "name", "arguments", "tool_call_id")
        for row in con.execute(f"SELECT {_select(con, 'tool_calls', wanted)} FROM tool_calls"
                               " ORDER BY id"):  # fmt: skip
            calls.setdefault(str(row["response_id"]), []).append(
                (row["name"] or "", row["arguments"], row["tool_call_id"])
            )
    if "tool_results" in tables:
        wanted = ("response_id", "name", "output", "tool_call_id", "exception")
        for row in con.execute(f"SELECT {_select(con, 'tool_results', wanted)}"
                               " FROM tool_results ORDER BY id"):  # fmt: skip
            results.setdefault(str(row["response_id"]), []).append(
                _tool_result(row["name"], row["output"], row["tool_call_id"], row["exception"])
            )
    return calls, results


def _legacy_fragments(
    con: sqlite3.Connection, tables: set[str]
) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    if "fragments" not in tables:
        return out
    for kind in ("prompt", "system"):
        table = f"{kind}_fragments"
        if table not in tables:
            continue
        sql = f"""SELECT l.response_id, f.content FROM "{table}" l
                  JOIN fragments f ON f.id = l.fragment_id ORDER BY l.response_id, l."order\""""
        for row in con.execute(sql):
            out.setdefault((kind, str(row[0])), []).append(row[1] or "")
    return out


# --- llm from 0.32: threads, turns, messages, parts ---------------------------------------------


def _read_current(
    con: sqlite3.Connection, tables: set[str], conversations: dict[str, _Conversation]
) -> set[str]:
    """Read every thread into ``conversations``; returns the ids of all turns."""
    parents: dict[str, str | None] = {}
    roles: dict[str, str] = {}
    for row in con.execute("SELECT hash, parent_hash, role FROM messages"):
        parents[row[0]] = row[1]
        roles[row[0]] = row[2]
    contents = _message_parts(con, tables)
    texts = {
        h: "".join(str(part.get("text") or "") for part in ps if part["type"] == "text")
        for h, ps in contents.items()
    }

    persona_memo: dict[str | None, str | None] = {None: None}

    def persona_at(h: str | None) -> str | None:
        """The last system message on the chain ending at ``h``."""
        path = []
        while h not in persona_memo and h in parents:
            path.append(h)
            if roles.get(h) == "system":
                break
            h = parents[h]
        found = persona_memo.get(h) if h in persona_memo else None
        for node in reversed(path):
            if roles.get(node) == "system":
                found = texts.get(node, "") or None
            persona_memo[node] = found
        return found

    def chain(tip: str | None) -> list[str]:
        out, seen = [], set()
        while tip is not None and tip in parents and tip not in seen:
            seen.add(tip)
            out.append(tip)
            tip = parents[tip]
        return out[::-1]

    threads = {
        row["id"]: row
        for row in con.execute(
            f"SELECT {_select(con, 'threads', ('id', 'name', 'tip_message_hash', 'forked_from'))}"
            " FROM threads"
        )
    }
    wanted = (
        "id",
        "thread_id",
        "parent_message_hash",
        "tip_message_hash",
        "model",
        "options_json",
        "input_tokens",
        "output_tokens",
        "duration_ms",
        "datetime_utc",
        "token_details",
    )
    rows = list(
        con.execute(f"SELECT {_select(con, 'turns', wanted)} FROM turns ORDER BY datetime_utc, id")
    )
    turns: dict[str, _Turn] = {}
    for row in rows:
        parent, tip = row["parent_message_hash"], row["tip_message_hash"]
        sent: list[str] = []  # the messages this call added to the history: prompt, results
        h = parent
        while h is not None and h in parents and roles.get(h) not in ("assistant", "system"):
            sent.append(h)
            h = parents[h]
        sent.reverse()
        answer: list[str] = []  # the messages it produced
        h, seen = tip, set()
        while h is not None and h != parent and h in parents and h not in seen:
            seen.add(h)
            answer.append(h)
            h = parents[h]
        answer.reverse()
        turn_id = str(row["id"])
        given = [
            _stored_part(part, "")
            for h in sent
            for part in contents.get(h, [])
            if part["type"] == "tool_result"
        ]
        produced = [
            part
            for h in answer
            if roles.get(h) != "user"
            for part in contents.get(h, [])
            if part["type"] in ("reasoning", "text", "tool_call", "tool_result")
        ]
        out = [_stored_part(part, f"{turn_id}:{n}") for n, part in enumerate(produced)]
        turns[turn_id] = _Turn(
            id=turn_id,
            model=row["model"] or "",
            prompt="\n\n".join(texts[h] for h in sent if roles.get(h) == "user" and texts.get(h)),
            system=persona_at(parent),
            response="".join(texts.get(h, "") for h in answer if roles.get(h) == "assistant"),
            options=_options(row["options_json"]),
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            started=row["datetime_utc"] or "",
            duration_ms=row["duration_ms"],
            reasoning_tokens=_reasoning_tokens(row["token_details"]),
            given=given,
            out=[p for p in out if p.text or p.kind in ("tool_call", "tool_result")],
        )
    tips = {row["id"]: row["tip_message_hash"] for row in rows}
    by_thread: dict[str, list[_Turn]] = {}
    for row in rows:
        by_thread.setdefault(row["thread_id"], []).append(turns[row["id"]])
    for tid, thread in threads.items():
        on_chain = set(chain(thread["tip_message_hash"]))
        own = by_thread.get(tid, [])
        c = conversations.setdefault(tid, _Conversation(tid))
        if thread["name"]:
            c.names.append(thread["name"])
        inherited: list[_Turn] = []
        ancestor, seen = thread["forked_from"], {tid}
        while ancestor and ancestor in threads and ancestor not in seen:
            # A fork shares its start with the thread it came from: copy those turns in.
            seen.add(ancestor)
            for row in rows:
                if row["thread_id"] == ancestor and row["tip_message_hash"] in on_chain:
                    t = turns[row["id"]]
                    inherited.append(_Turn(**{**vars(t), "id": f"fork:{tid}:{t.id}"}))
            ancestor = threads[ancestor]["forked_from"]
        for t in own:
            if thread["tip_message_hash"] and tips[t.id] not in on_chain:
                t.undone = True  # no longer on the thread's history
        c.turns.extend(inherited + own)
    return set(turns)


def _message_parts(con: sqlite3.Connection, tables: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The parts of every message in order, as llm's ``Part.to_dict()``: ``type``, ``text``
    (fragment references resolved) and the rest of the payload (name, arguments, output…)."""
    fragments: dict[int, str] = {}
    if "fragments" in tables:
        fragments = {r[0]: r[1] or "" for r in con.execute("SELECT id, content FROM fragments")}
    out: dict[str, list[dict[str, Any]]] = {}
    sql = """SELECT message_hash, type, tool_name, text, payload FROM parts
             ORDER BY message_hash, position"""
    for h, kind, tool_name, text, payload in con.execute(sql):
        try:
            part = json.loads(payload) if payload else {}
        except ValueError:
            part = {}
        if not isinstance(part, dict):
            part = {}
        refs = part.pop("text_ref", None)
        if text is None and isinstance(refs, list):
            text = "".join(
                str(r.get("literal", ""))
                if "literal" in r
                else fragments.get(r.get("fragment"), "")  # type: ignore[arg-type]
                for r in refs
                if isinstance(r, dict)
            )
        if text is not None:
            part["text"] = text
        part["type"] = kind
        if tool_name and not part.get("name"):
            part["name"] = tool_name
        out.setdefault(h, []).append(part)
    return out


def _stored_part(part: dict[str, Any], fallback_id: str) -> Part:
    """One of llm's stored parts as a chatrepl Part (its ``call`` set later)."""
    kind = part["type"]
    if kind == "tool_call":
        return _tool_call(part.get("name"), part.get("arguments"), part.get("tool_call_id"),
                          fallback_id)  # fmt: skip
    if kind == "tool_result":
        return _tool_result(
            part.get("name"), part.get("output"), part.get("tool_call_id"), part.get("exception")
        )
    return Part(kind, _string(part.get("text")))


# --- tool calls and results, from either layout -------------------------------------------------


def _tool_call(name: Any, arguments: Any, call_id: Any, fallback_id: str) -> Part:
    """A ``tool_call`` part; ``arguments`` as llm kept them (a JSON text or a value).

    A call llm logged without an id (llm 0.31 with models that give none) gets one derived
    from where it was logged, the same on every import.
    """
    raw = None
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            value, raw = {}, arguments
    else:
        value = {} if arguments is None else arguments
    if not isinstance(value, dict):
        value, raw = {}, raw if raw is not None else json.dumps(value)
    data: dict[str, Any] = {
        "id": _string(call_id) or _derived_call_id(fallback_id),
        "name": _string(name),
        "arguments": value,
    }
    if raw is not None:
        data["raw"] = raw
    return Part("tool_call", "", data)


def _derived_call_id(where: str) -> str:
    """A call id for a call logged without one: ``llm_`` and where it was logged, in the
    characters and length every provider accepts."""
    tail = re.sub(r"[^A-Za-z0-9_-]", "_", where)
    if len(tail) > 36:
        tail = hashlib.blake2b(where.encode("utf-8"), digest_size=16).hexdigest()
    return f"llm_{tail}"


def _tool_result(name: Any, output: Any, call_id: Any, exception: Any) -> Part:
    """A ``tool_result`` part: the output the model was sent, ``is_error`` when the tool raised.

    ``call_id`` may be empty (llm 0.31): :func:`_assemble` then pairs it with its call.
    """
    text = _string(output) if isinstance(output, str) or output is None else json.dumps(output)
    if not text and exception:
        text = f"Error: {exception}"
    data = {"call_id": _string(call_id), "name": _string(name), "is_error": bool(exception)}
    return Part("tool_result", text, data)


def _string(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _reasoning_tokens(details: str | None) -> int | None:
    """The reasoning token count in llm's ``token_details`` (a provider's usage details)."""
    if not details:
        return None
    try:
        value = json.loads(details)
    except ValueError:
        return None
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found = item.get("reasoning_tokens")
            if isinstance(found, int) and not isinstance(found, bool):
                return found
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


# --- into chatrepl's shape ----------------------------------------------------------------------


def _finish(c: _Conversation, known: set[str]) -> tuple[ConversationSummary, list[TurnRecord]]:
    from ..text import shorten

    seen: set[str] = set()
    turns = []
    for t in sorted(c.turns, key=lambda t: (_iso(t.started, t.id), t.id)):
        if t.id not in seen:
            seen.add(t.id)
            turns.append(t)
    groups: list[list[_Turn]] = []  # a turn and the tool-chain steps that continue it
    persona: str | None = None
    for t in turns:
        if t.legacy and not t.system:
            t.system = persona
        if not t.undone:
            persona = t.system
        prev = next((g for g in reversed(groups) if not g[0].undone), None)
        if not t.prompt.strip() and prev is not None and not t.undone:
            prev.append(t)  # a tool-chain step continues the turn before it
            continue
        groups.append([t])
    merged = [g[0] for g in groups]
    cid = ulid_for(c.llm_id, _iso(merged[0].started, merged[0].id))
    ids = [ulid_for(t.id, _iso(t.started, t.id)) for t in merged]
    parents, head = linear_parents([(i, t.undone) for i, t in zip(ids, merged, strict=True)])
    records = []
    for turn_id, parent, group in zip(ids, parents, groups, strict=True):
        t = group[0]
        parts, calls = _assemble(group, known)
        records.append(
            TurnRecord(
                id=turn_id,
                conversation_id=cid,
                parent_id=parent,
                model=model_name(t.model, known),
                prompt=t.prompt,
                system=t.system,
                response="".join(step.response for step in group),
                options=t.options,
                input_tokens=_total(step.input_tokens for step in group),
                output_tokens=_total(step.output_tokens for step in group),
                status="complete",
                error=None,
                started=_iso(t.started, t.id),
                duration_ms=_total(step.duration_ms for step in group),
                ttft_ms=None,
                parts=parts,
                calls=calls,
            )
        )
    live = [r for r, t in zip(records, merged, strict=True) if not t.undone] or records
    title = next((n for n in c.names if n and n.strip()), None)
    if title is None:
        title = shorten(live[0].prompt, 60) or None
    summary = ConversationSummary(
        id=cid,
        title=title,
        model=live[-1].model,
        system=live[-1].system,
        created=min(r.started for r in records),
        updated=max(r.started for r in records),
        turns=len(live),
        input_tokens=sum(r.input_tokens or 0 for r in live),
        output_tokens=sum(r.output_tokens or 0 for r in live),
        title_source="prompt" if title else None,
        head=head,
    )
    return summary, records


def _assemble(group: list[_Turn], known: set[str]) -> tuple[list[Part], list[CallRecord]]:
    """The parts and calls of one chatrepl turn made of llm's calls ``group``.

    Call ``n`` (from 1) is the n-th llm response or turn: its reasoning, text and tool calls
    carry ``call=n``; the tool results llm sent with call ``n + 1`` answer the calls of call
    ``n``, so they carry ``call=n`` too, as chatrepl records a tool-running turn. A result
    logged without a call id is paired with the first unanswered call of the same name.
    """
    parts = [Part("prompt", group[0].prompt)]
    calls: list[CallRecord] = []
    unanswered: list[dict[str, Any]] = []
    for n, step in enumerate(group, 1):
        for r in step.given:
            parts.append(_answering(r, unanswered, n - 1))
        for p in step.out:
            if p.kind == "tool_result":  # a call the provider ran itself, answered at once
                parts.append(_answering(p, unanswered, n))
                continue
            part = Part(p.kind, p.text, dict(p.data), n)
            if p.kind == "tool_call":
                unanswered.append({"call": n, **part.data})
            parts.append(part)
        asked = any(c.get("call") == n for c in unanswered)  # left for llm to run
        calls.append(
            CallRecord(
                index=n,
                model=model_name(step.model, known),
                finish_reason="tool_calls" if asked else "stop",
                input_tokens=step.input_tokens,
                output_tokens=step.output_tokens,
                reasoning_tokens=step.reasoning_tokens,
                duration_ms=step.duration_ms,
            )
        )
    return parts, calls


def _answering(result: Part, unanswered: list[dict[str, Any]], call: int) -> Part:
    """A copy of ``result`` for call ``call``, its ``call_id`` found when llm logged none."""
    data = dict(result.data)
    wanted = data.get("call_id")
    match = next(
        (c for c in unanswered if c["id"] == wanted)
        if wanted
        else (c for c in unanswered if c["name"] == data.get("name")),
        None,
    )
    if match is not None:
        unanswered.remove(match)
        data["call_id"] = match["id"]
    return Part("tool_result", result.text, data, call)


def model_name(model_id: str, known: Iterable[str] = ()) -> str:
    """llm's model id as a chatrepl name.

    ``echo`` → ``echo:echo``; ``gpt-…``, ``o1…``, ``chatgpt-…`` → ``openai:…``; ``claude-…`` →
    ``anthropic:…``; ``NAME/model`` → ``NAME:model`` when NAME is a provider chatrepl knows;
    anything else → ``llm:ID`` (resume those with ``-m``).
    """
    m = (model_id or "").strip()
    if not m:
        return "llm:unknown"
    if m == "echo":
        return "echo:echo"
    prefix, slash, rest = m.partition("/")
    if slash and rest and prefix in set(known):
        return f"{prefix}:{rest}"
    if _OPENAI.match(m):
        return f"openai:{m}"
    if m.startswith("claude-"):
        return f"anthropic:{m}"
    return f"llm:{m}"


def ulid_for(raw_id: str, started: str) -> str:
    """``raw_id`` as a chatrepl id: itself upper-cased if it is a ULID, else a derived one.

    A derived id carries the time ``started`` and a hash of ``raw_id``, so it is the same on
    every import.
    """
    from ulid import ULID

    try:
        return str(ULID.from_str(raw_id.strip().upper()))
    except ValueError:
        pass
    try:
        ms = int(datetime.fromisoformat(started).timestamp() * 1000)
    except ValueError:
        ms = 0
    digest = hashlib.blake2b(raw_id.encode("utf-8"), digest_size=10).digest()
    return str(ULID.from_bytes(max(ms, 0).to_bytes(6, "big") + digest))


def _iso(value: str, fallback_id: str = "") -> str:
    """llm's timestamp (UTC, with or without zone, ``T`` or space) in chatrepl's form."""
    moment = None
    if value:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
    if moment is None:
        from ulid import ULID

        try:
            moment = ULID.from_str(fallback_id.upper()).datetime
        except ValueError:
            moment = datetime.fromtimestamp(0, UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _options(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _total(values: Iterable[int | None]) -> int | None:
    """The sum of the numbers known, or ``None`` if none is."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None
