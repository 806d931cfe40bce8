"""import-llm keeps llm's tool calls, tool results and reasoning, in both of llm's layouts.

The databases are written by a real llm with the offline ``echo`` model (llm-echo asks for
the tool calls a JSON prompt names, and llm runs them from a ``--functions`` file), and each
imported turn is compared with ``llm logs --json``: llm's own reading of its calls, results
and reasoning. Shapes the CLI does not write (ids, provider-run tools, bad arguments, a
reasoning token count) are built into databases made by llm's own migrations.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sqlite3
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from test_import_llm import (  # the llm CLI, copies, llm's own view, llm 0.31 in a folder
    add_message,
    copy_of,
    import_llm,
    llm,
    llm_view,
    old_llm,  # noqa: F401  (a fixture)
    old_schema,
    snapshot,
)

from chatrepl import manage
from chatrepl.conversation import Conversation
from chatrepl.importers.llm import read_conversations
from chatrepl.records import TurnRecord
from chatrepl.store import Store

pytestmark = pytest.mark.skipif(
    not (importlib.util.find_spec("llm") and importlib.util.find_spec("llm_echo")),
    reason="needs llm and llm-echo (pip install -e '.[dev]')",
)

TOOLS = """
def clock() -> str:
    "What time it is"
    return "It is NOON in Paris"


def add(a: int, b: int) -> int:
    "Add two numbers"
    return a + b


def boom(why: str) -> str:
    "Always fails"
    raise ValueError("kaboom " + why)
"""

TIME = {"prompt": "what time", "tool_calls": [
    {"name": "clock"}, {"name": "add", "arguments": {"a": 2, "b": 3}}]}  # fmt: skip
BREAK = {"prompt": "break it", "tool_calls": [{"name": "boom", "arguments": {"why": "now"}}]}


def write_tool_history(
    folder: Path, pythonpath: Path | None = None, thinking: bool = False
) -> Path:
    """Two tool chains written by a real llm: two calls then a follow-up turn; a failing call."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tools.py").write_text(TOOLS)
    kw = {"pythonpath": pythonpath}
    functions = ("--functions", str(folder / "tools.py"))
    llm(folder, "-m", "echo", *functions, json.dumps(TIME), **kw)
    llm(folder, "-c", "thanks", **kw)
    extra = ("-o", "thinking", "1") if thinking else ()
    llm(folder, "-m", "echo", *functions, *extra, json.dumps(BREAK), **kw)
    return folder / "logs.db"


@pytest.fixture(scope="session")
def new_tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tool chains in the layout of the installed llm (0.32 or later), with reasoning."""
    return write_tool_history(tmp_path_factory.mktemp("llm-tools-new"), thinking=True)


@pytest.fixture(scope="session")
def old_tools(tmp_path_factory: pytest.TempPathFactory, old_llm: Path) -> Path:  # noqa: F811
    """Tool chains as llm 0.31 logged them: tool_calls and tool_results beside responses."""
    db = write_tool_history(tmp_path_factory.mktemp("llm-tools-old"), pythonpath=old_llm)
    with sqlite3.connect(db) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        assert con.execute("SELECT count(*) FROM tool_results").fetchone()[0] == 3
    assert "turns" not in tables
    return db


def chains(view: list[dict[str, Any]]) -> dict[str, list[list[dict[str, Any]]]]:
    """llm's responses by conversation, in order, cut where a prompt has text."""
    out: dict[str, list[list[dict[str, Any]]]] = {}
    for row in sorted(view, key=lambda r: (r["datetime_utc"], r["id"])):
        turns = out.setdefault(row["conversation_id"].upper(), [])
        if row["prompt"] or not turns:
            turns.append([row])
        else:
            turns[-1].append(row)
    return out


def compare_with_llm(chat_db: Path, view: list[dict[str, Any]], ids_kept: bool) -> int:
    """Every llm response is one call of a chatrepl turn, its parts llm's own calls, results
    and reasoning, in llm's order. Returns how many tool results were compared."""
    store = Store(chat_db, create=False)
    results = 0
    for cid, turns in chains(view).items():
        saved = store.turns(cid, all_branches=True)
        assert len(saved) == len(turns)
        for t, responses in zip(saved, turns, strict=True):
            assert t.id == responses[0]["id"].upper()
            assert t.parts[0].kind == "prompt" and t.parts[0].text == responses[0]["prompt"]
            assert [c.index for c in t.calls] == list(range(1, len(responses) + 1))
            for n, r in enumerate(responses, 1):
                call = t.calls[n - 1]
                assert (call.input_tokens, call.output_tokens) == (
                    r["input_tokens"],
                    r["output_tokens"],
                )
                assert call.model == "echo:echo" and call.duration_ms == r["duration_ms"]
                assert call.finish_reason == ("tool_calls" if r["tool_calls"] else "stop")
                own = [p for p in t.parts if p.call == n]
                made = [p for p in own if p.kind != "tool_result"]
                expected = [("reasoning", r["reasoning"])] if r.get("reasoning") else []
                expected.append(("text", r["response"]))
                expected += [("tool_call", c["name"]) for c in r["tool_calls"]]
                assert [(p.kind, p.text or p.data.get("name")) for p in made] == expected
                asked = [p for p in made if p.kind == "tool_call"]
                for p, c in zip(asked, r["tool_calls"], strict=True):
                    assert p.data["arguments"] == c["arguments"]
                    if ids_kept:
                        assert p.data["id"] == c["tool_call_id"]
                # what the next response was sent answers this call's tool calls, in order
                sent = responses[n]["tool_results"] if n < len(responses) else []
                got = [p for p in own if p.kind == "tool_result"]
                assert [(p.data["name"], p.text, p.data["is_error"]) for p in got] == [
                    (x["name"], x["output"], x["exception"] is not None) for x in sent
                ]
                calls = [p.data["id"] for p in made if p.kind == "tool_call"]
                assert [p.data["call_id"] for p in got] == calls[: len(got)]
                results += len(got)
            assert t.response == "".join(r["response"] for r in responses)
            assert t.input_tokens == sum(r["input_tokens"] for r in responses)
    return results


def the_tool_turn(chat_db: Path) -> tuple[str, TurnRecord]:
    store = Store(chat_db, create=False)
    s = next(s for s in store.recent() if s.title and "what time" in s.title)
    return s.id, store.turns(s.id)[0]


def run(*args: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert manage.main(list(args)) == 0
    return out.getvalue()


# --- written by the installed llm (threads, turns, messages and their parts) --------------------


def test_new_layout_tool_calls_results_and_reasoning(
    new_tools: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    db = copy_of(new_tools, tmp_path)
    before = snapshot(db.parent)
    chat = tmp_path / "chat.db"
    out = import_llm(db, chat, capsys)
    assert out == f"Imported 2 conversations (3 turns) from {db}.\n"  # 5 calls of llm
    assert snapshot(db.parent) == before
    assert compare_with_llm(chat, llm_view(db, tmp_path), ids_kept=True) == 3
    cid, turn = the_tool_turn(chat)
    assert [(p.kind, p.call) for p in turn.parts] == [
        ("prompt", 0),
        ("text", 1),
        ("tool_call", 1),
        ("tool_call", 1),
        ("tool_result", 1),
        ("tool_result", 1),
        ("text", 2),
    ]
    clock, add = turn.parts[2].data, turn.parts[3].data
    assert (clock["name"], clock["arguments"], add["arguments"]) == ("clock", {}, {"a": 2, "b": 3})
    assert [p.text for p in turn.parts[4:6]] == ["It is NOON in Paris", "5"]
    store = Store(chat)
    (failed,) = [t for s in store.recent() for t in store.turns(s.id) if "break it" in t.prompt]
    (result,) = [p for p in failed.parts if p.kind == "tool_result"]
    assert result.text == "Error: kaboom now" and result.data["is_error"] is True
    assert [p.kind for p in failed.parts if p.kind == "reasoning"] == ["reasoning"] * 2
    # and the conversation goes on in chatrepl with that history
    c = Conversation.load(store, cid)
    r = c.prompt("and now?")
    sent = c.messages_for(r)
    roles = ["user", "assistant", "tool", "assistant", "user", "assistant", "user"]
    assert [m.role for m in sent] == roles
    assert [p.data["name"] for p in sent[1].parts] == ["clock", "add"]
    assert [p.text for p in sent[2].parts] == ["It is NOON in Paris", "5"]
    assert r.text() == "and now?"


def test_importing_tools_twice_gives_the_same_records(
    new_tools: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    db = copy_of(new_tools, tmp_path)
    assert read_conversations(db, ()) == read_conversations(db, ())
    chat = tmp_path / "chat.db"
    import_llm(db, chat, capsys)
    again = import_llm(db, chat, capsys)
    assert again.startswith("Imported 0 conversations (0 turns), 2 conversations already here")
    assert Store(chat, create=False).count() == (2, 3)


def test_export_show_and_search_see_the_tools(new_tools: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = copy_of(new_tools, tmp_path)
    chat = tmp_path / "chat.db"
    import_llm(db, chat, capsys)
    cid, _ = the_tool_turn(chat)
    exported = json.loads(run("export", cid, "--format", "json", "--db", str(chat)))
    parts = exported["turns"][0]["parts"]
    calls = [p for p in parts if p["kind"] == "tool_call"]
    results = [p for p in parts if p["kind"] == "tool_result"]
    assert [(c["data"]["name"], c["data"]["arguments"]) for c in calls] == [
        ("clock", {}),
        ("add", {"a": 2, "b": 3}),
    ]
    assert [(r["text"], r["data"]["call_id"]) for r in results] == [
        ("It is NOON in Paris", calls[0]["data"]["id"]),
        ("5", calls[1]["data"]["id"]),
    ]
    assert [c["index"] for c in exported["turns"][0]["calls"]] == [1, 2]
    # an export imports again into another database as it was
    again = tmp_path / "again.db"
    (tmp_path / "x.json").write_text(json.dumps(exported))
    run("import", str(tmp_path / "x.json"), "--db", str(again))
    assert (
        Store(again, create=False).turns(cid)[0].parts
        == Store(chat, create=False).turns(cid)[0].parts
    )
    shown = run("show", cid, "--db", str(chat))  # not a terminal: Markdown
    assert "tool call `clock`" in shown and 'tool call `add`: `{"a": 2, "b": 3}`' in shown
    assert "result of `clock`" in shown and "It is NOON in Paris" in shown
    hits = json.loads(run("search", "NOON", "--json", "--db", str(chat)))
    assert [h["conversation_id"] for h in hits] == [cid]


# --- written by llm 0.31 (responses, tool_calls, tool_results) -----------------------------------


def test_old_layout_tool_calls_and_results(old_tools: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = copy_of(old_tools, tmp_path)
    chat = tmp_path / "chat.db"
    assert import_llm(db, chat, capsys) == f"Imported 2 conversations (3 turns) from {db}.\n"
    # llm 0.31 logged the calls without ids: each gets one, and its result points to it
    assert compare_with_llm(chat, llm_view(db, tmp_path), ids_kept=False) == 3
    _, turn = the_tool_turn(chat)
    ids = [p.data["id"] for p in turn.parts if p.kind == "tool_call"]
    assert len(set(ids)) == 2 and all(i.startswith("llm_") for i in ids)
    fresh = tmp_path / "fresh.db"
    import_llm(db, fresh, capsys)
    assert the_tool_turn(fresh)[1].parts == turn.parts  # the same ids on every import
    assert import_llm(db, chat, capsys).startswith("Imported 0 conversations (0 turns), 2 ")


def test_an_upgraded_database_keeps_the_old_tool_calls(
    old_tools: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    db = copy_of(old_tools, tmp_path)
    (db.parent / "tools.py").write_text(TOOLS)
    # the installed llm migrates the database and logs a new chain into its message store
    llm(db.parent, "-m", "echo", "--functions", str(db.parent / "tools.py"), json.dumps(BREAK))
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM turns").fetchone()[0] == 2
    chat = tmp_path / "chat.db"
    assert import_llm(db, chat, capsys) == f"Imported 3 conversations (4 turns) from {db}.\n"
    view = llm_view(db, tmp_path)
    assert compare_with_llm(chat, view, ids_kept=False) == 4


# --- shapes built into llm's own schemas -------------------------------------------------------


def test_old_layout_ids_reasoning_and_odd_arguments(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """As llm 0.31 logged a real model: call ids, bad JSON, reasoning, two calls of one tool."""
    db = tmp_path / "llm" / "logs.db"
    db.parent.mkdir()
    with old_schema(db) as con:
        con.execute("INSERT INTO conversations VALUES ('01hq0000000000000000000000', 'W', 'o3')")
        rows = [
            ("01hq0000000000000000000001", "Weather in Paris and Rome?", "", "I should look.",
             '{"completion_tokens_details": {"reasoning_tokens": 7}}', "2024-02-01T10:00:00"),
            ("01hq0000000000000000000002", "", "Paris is sunny, Rome failed.", None, None,
             "2024-02-01T10:00:01"),
        ]  # fmt: skip
        for rid, prompt, response, reasoning, details, when in rows:
            con.execute(
                "INSERT INTO responses (id, model, prompt, response, reasoning, token_details,"
                " conversation_id, duration_ms, datetime_utc, input_tokens, output_tokens)"
                " VALUES (?, 'o3', ?, ?, ?, ?, '01hq0000000000000000000000', 50, ?, 10, 20)",
                (rid, prompt, response, reasoning, details, when),
            )
        calls = [
            ("weather", '{"city": "Paris"}', "call_a"),
            ("weather", '{"city": "Rome"}', "call_b"),
            ("weather", "{not json", None),
            ("weather", "[1, 2]", None),
        ]
        for name, arguments, call_id in calls:
            con.execute(
                "INSERT INTO tool_calls (response_id, name, arguments, tool_call_id)"
                " VALUES ('01hq0000000000000000000001', ?, ?, ?)",
                (name, arguments, call_id),
            )
        results = [  # in another order than the calls: matched by id
            ("weather", "timeout", "call_b", "TimeoutError: 5s"),
            ("weather", "sunny", "call_a", None),
            ("weather", "", None, "ValueError: bad arguments"),
        ]
        for name, output, call_id, exception in results:
            con.execute(
                "INSERT INTO tool_results (response_id, name, output, tool_call_id, exception)"
                " VALUES ('01hq0000000000000000000002', ?, ?, ?, ?)",
                (name, output, call_id, exception),
            )
    chat = tmp_path / "chat.db"
    assert import_llm(db, chat, capsys) == f"Imported 1 conversation (1 turn) from {db}.\n"
    (t,) = Store(chat, create=False).turns("01HQ0000000000000000000000")
    assert [(p.kind, p.call) for p in t.parts] == [("prompt", 0), ("reasoning", 1)] + [
        ("tool_call", 1)
    ] * 4 + [("tool_result", 1)] * 3 + [("text", 2)]
    calls_ = [p.data for p in t.parts if p.kind == "tool_call"]
    assert [c["arguments"] for c in calls_] == [{"city": "Paris"}, {"city": "Rome"}, {}, {}]
    assert [c.get("raw") for c in calls_] == [None, None, "{not json", "[1, 2]"]
    assert calls_[0]["id"] == "call_a" and calls_[1]["id"] == "call_b"
    res = [p for p in t.parts if p.kind == "tool_result"]
    assert [(r.data["call_id"], r.text, r.data["is_error"]) for r in res] == [
        ("call_b", "timeout", True),
        ("call_a", "sunny", False),
        (calls_[2]["id"], "Error: ValueError: bad arguments", True),  # the first left unanswered
    ]
    assert t.parts[1].text == "I should look."
    assert [(c.reasoning_tokens, c.finish_reason) for c in t.calls] == [
        (7, "tool_calls"),
        (None, "stop"),
    ]
    assert t.response == "Paris is sunny, Rome failed." and t.model == "openai:o3"


def test_new_layout_provider_tools_and_fragments(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A call the provider ran itself (both parts in the answer), reasoning from a fragment."""
    import sqlite_utils
    from llm.migrations import migrate

    db = tmp_path / "logs.db"
    migrate(sqlite_utils.Database(db))
    with sqlite3.connect(db) as con:
        con.execute("INSERT INTO fragments (id, hash, content) VALUES (3, 'h', 'LONG THOUGHT')")
        q = add_message(con, None, "user", "Search the web")
        answer = "test:answer"
        con.execute("INSERT INTO messages (hash, parent_hash, role) VALUES (?, ?, 'assistant')",
                    (answer, q))  # fmt: skip
        parts = [
            ("reasoning", None, None, {"text_ref": [{"literal": "A "}, {"fragment": 3}]}),
            ("tool_call", "web_search", None, {"name": "web_search", "arguments": {"q": "x"},
             "tool_call_id": "srv_1", "server_executed": True}),
            ("tool_result", "web_search", None, {"name": "web_search", "output": "found x",
             "tool_call_id": "srv_1", "server_executed": True}),
            ("text", None, "Found it.", None),
        ]  # fmt: skip
        for n, (kind, name, text, payload) in enumerate(parts):
            con.execute(
                "INSERT INTO parts (message_hash, position, type, tool_name, text, payload)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (answer, n, kind, name, text, json.dumps(payload) if payload else None),
            )
        con.execute("INSERT INTO threads (id, name, tip_message_hash, datetime_utc)"
                    " VALUES ('01m85g00000000000000000020', 'web', ?, '2030-01-01')", (answer,))  # fmt: skip
        con.execute(
            "INSERT INTO turns (id, thread_id, parent_message_hash, tip_message_hash, model,"
            " input_tokens, output_tokens, duration_ms, datetime_utc) VALUES"
            " ('01m85g00000000000000000021', '01m85g00000000000000000020', ?, ?,"
            " 'claude-sonnet-4', 3, 4, 9, '2030-01-01T00:00:01')",
            (q, answer),
        )
    chat = tmp_path / "chat.db"
    import_llm(db, chat, capsys)
    (t,) = Store(chat, create=False).turns("01M85G00000000000000000020")
    assert [(p.kind, p.text, p.call) for p in t.parts] == [
        ("prompt", "Search the web", 0),
        ("reasoning", "A LONG THOUGHT", 1),
        ("tool_call", "", 1),
        ("tool_result", "found x", 1),
        ("text", "Found it.", 1),
    ]
    assert t.parts[3].data == {"call_id": "srv_1", "name": "web_search", "is_error": False}
    assert t.response == "Found it." and len(t.calls) == 1
    assert t.calls[0].finish_reason == "stop"  # the provider ran it: nothing left for llm


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
