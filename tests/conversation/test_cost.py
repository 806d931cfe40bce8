"""Cost that accounts for caching, and budgets (issue 24, items 3 and 4).

Prices from config.toml and the dated built-in table; each model call's cache reads and writes
and its cost (the server's, else the table's) saved and summed; `chatrepl usage` by model, local
day and conversation; `/info`, the toolbar and `show --json`; a request that would pass a budget
is not sent (over the fake server, REPL and one-shot), its prompt saved as a failed turn.
"""

from __future__ import annotations

import io
import json

import pytest
from conftest import child_env, run_chatrepl, saved_rows
from fakeserver import Answer, Text
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatrepl.budgets import Budget
from chatrepl.conversation import Conversation
from chatrepl.errors import BudgetError, ConfigError
from chatrepl.models import get_model
from chatrepl.pricing import AS_OF, check_prices, price_of
from chatrepl.records import CallRecord, ConversationRecord, Part, TurnRecord
from chatrepl.repl.app import Repl
from chatrepl.spending import summed
from chatrepl.store import Store

pytestmark = pytest.mark.timeout(60)

#: An OpenAI-shaped provider on the fake server, priced in config.toml (dollars per million).
PRICED = """\
[providers.fake]
type = "openai"
base_url = "{url}"
needs_key = false

[prices."fake:m"]
input = 2.0
output = 10.0
cache_read = 0.5
"""
#: 1,000 prompt tokens, 800 of them read from the cache, and 100 out: 200 × $2 + 800 × $0.5
#: + 100 × $10 per million = $0.0018.
CACHED = {
    "prompt_tokens": 1000,
    "completion_tokens": 100,
    "prompt_tokens_details": {"cached_tokens": 800},
}
CACHED_COST = (200 * 2.0 + 800 * 0.5 + 100 * 10.0) / 1e6


def asked(server) -> int:
    """The requests for an answer the server received (not model listings)."""
    return sum("vendor" in r for r in server.requests)


def configure(home, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


def repl_for(store: Store, name: str) -> Repl:
    from chatrepl.frontend import session_budget

    console = Console(file=io.StringIO(), width=200, color_system=None)
    c = Conversation(get_model(name), store=store)
    c.budget = session_budget(store)
    return Repl(store, c, console=console, output=DummyOutput(), history=InMemoryHistory())


def said(repl: Repl, line: str) -> str:
    repl.console.file.seek(0)
    repl.console.file.truncate()
    repl.handle(line)
    return repl.console.file.getvalue()


# --- prices ---------------------------------------------------------------------------------------


def test_the_built_in_table_knows_dated_and_other_names_of_a_model():
    opus = price_of("anthropic:claude-opus-4-20250514", {})
    assert opus is not None and opus[:4] == (15.0, 75.0, 1.5, 18.75)
    assert opus.source == f"the built-in table of {AS_OF}"
    assert price_of("anthropic:claude-sonnet-4-5-20250929", {})[:2] == (3.0, 15.0)
    assert price_of("openai:gpt-4o-2024-08-06", {})[:3] == (2.5, 10.0, 1.25)
    assert price_of("openai:gpt-4o-mini", {})[:2] == (0.15, 0.60)  # not gpt-4o's
    assert price_of("anthropic:claude-opus-4-6-preview", {}) is None  # never a guess
    assert price_of("ollama:llama3.2", {}) is None
    assert price_of("myproxy:gpt-4o", {}) is None  # the table is the vendors' own


def test_config_prices_come_first_and_cache_prices_default_to_the_input_price():
    config = {"prices": {"openai:gpt-4o": {"input": 1, "output": 2}}}
    price = price_of("openai:gpt-4o", config)
    assert price[:4] == (1.0, 2.0, 1.0, 1.0) and price.source == "config.toml"
    # the older form: prices in the provider's own section, by model or for all
    legacy = {"providers": {"p": {"prices": {"big": {"input": 3, "output": 15}}}}}
    assert price_of("p:big", legacy)[:2] == (3.0, 15.0)
    assert price_of("p:small", legacy) is None


def test_a_price_is_charged_for_uncached_input_cache_reads_writes_and_output():
    price = price_of("anthropic:claude-sonnet-4-5", {})
    # 10,000 prompt tokens: 6,000 read from the cache, 3,000 written to it, 1,000 uncached
    cost = price.cost(10_000, 500, cache_read_tokens=6_000, cache_write_tokens=3_000)
    assert cost == pytest.approx((1_000 * 3 + 6_000 * 0.3 + 3_000 * 3.75 + 500 * 15) / 1e6)


@pytest.mark.parametrize(
    ("config", "said"),
    [
        ({"prices": {"x:y": 3}}, 'config.toml: [prices."x:y"] must be a table'),
        ({"prices": {"x:y": {"input": -1, "output": 1}}}, "input must be a number of dollars"),
        ({"prices": {"x:y": {"input": 1}}}, "output must be a number of dollars"),
        ({"prices": {"x:y": {"input": 1, "output": 1, "cached": 1}}}, "unknown price cached"),
        ({"prices": {"x:y": {"input": True, "output": 1}}}, "input must be a number"),
    ],
)
def test_a_malformed_price_is_one_sentence(config, said):
    with pytest.raises(ConfigError, match=said.replace("[", r"\[").replace("]", r"\]")):
        check_prices(config)


# --- each call's tokens and cost -----------------------------------------------------------------


def test_a_call_saves_its_cache_reads_and_its_cost_by_the_table(home, server, tmp_path):
    configure(home, PRICED.format(url=server.openai_url))
    server.push(Answer(Text("ok"), usage=CACHED))
    store = Store(tmp_path / "c.db")
    c = Conversation(get_model("fake:m"), store=store)
    c.prompt("hi").text()
    call = store.turns(c.id)[0].calls[0]
    assert (call.input_tokens, call.cache_read_tokens, call.output_tokens) == (1000, 800, 100)
    assert call.cost == pytest.approx(CACHED_COST)
    tokens = Conversation.load(store, c.id).tokens  # read back from the store
    assert (tokens.input_tokens, tokens.cache_read_tokens, tokens.output_tokens) == (1000, 800, 100)
    assert tokens.cost == pytest.approx(CACHED_COST)


def test_the_cost_the_server_reports_wins_over_the_table(home, server, tmp_path):
    configure(home, PRICED.format(url=server.openai_url))
    server.push(Answer(Text("ok"), usage={**CACHED, "cost": 0.5}))
    c = Conversation(get_model("fake:m"))
    response = c.prompt("hi")
    response.text()
    assert response.calls[0].cost == 0.5 and c.tokens.cost == 0.5


def test_a_model_without_a_price_has_no_cost(home, server):
    configure(home, PRICED.format(url=server.openai_url).split("[prices")[0])
    server.push(Answer(Text("ok"), usage=CACHED))
    c = Conversation(get_model("fake:m"))
    c.prompt("hi").text()
    assert c.turns[0].calls[0].cost is None and c.tokens.cost is None


# --- /info, the toolbar, show --json ---------------------------------------------------------------


def test_info_and_the_toolbar_show_the_cached_share_and_the_cost(home, server, tmp_path):
    configure(home, PRICED.format(url=server.openai_url) + "\n[budget]\nday = 5\n")
    server.push(Answer(Text("ok"), usage=CACHED))
    repl = repl_for(Store(tmp_path / "i.db"), "fake:m")
    said(repl, "hi")
    assert repl.toolbar.endswith("│ 1.1k tok · 80% cached · $0.0018")
    info = said(repl, "/info")
    assert "1,000 in (80% cached: 800 read, 0 written), 100 out" in info
    assert "cost      $0.0018" in info
    assert "budget    $0.0018 of $5.00 today" in info


def test_show_json_gives_the_tokens_the_cached_share_and_the_cost(home, server, tmp_path):
    configure(home, PRICED.format(url=server.openai_url))
    server.push(Answer(Text("ok"), usage=CACHED), Answer(Text("again"), usage=CACHED))
    db = tmp_path / "s.db"
    c = Conversation(get_model("fake:m"), store=Store(db))
    c.prompt("one").text()
    c.retry().text()  # a second branch: its cost is the conversation's too
    out = run_chatrepl("show", c.id, "--json", "--db", str(db))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)["conversation"]
    assert data["usage"] == {
        "input": 2000,
        "output": 200,
        "cache_read": 1600,
        "cache_write": 0,
        "cached_share": 0.8,
    }
    assert data["cost"] == pytest.approx(2 * CACHED_COST)


# --- chatrepl usage -------------------------------------------------------------------------------

DAY1, DAY2 = "2026-11-30", "2026-12-01"


def seed(db, tmp_path) -> tuple[str, str]:
    """Two conversations: gpt-4o-mini on day 1 and 2 (one call saved without a cost, priced
    by the built-in table), claude on day 2 (a cost saved), and a model with no price."""
    store = Store(db)
    ids = []
    for n, calls in enumerate(
        [
            [
                (f"{DAY1}T10:00:00.000+00:00", "openai:gpt-4o-mini", 1_000_000, 0, 0, 0.15),
                (f"{DAY2}T10:00:00.000+00:00", "openai:gpt-4o-mini", 1_000_000, 500_000, 0, None),
            ],
            [
                (f"{DAY2}T11:00:00.000+00:00", "anthropic:claude-sonnet-4-5", 2000, 1500, 10, 1.0),
                (f"{DAY2}T12:00:00.000+00:00", "ollama:llama3.2", 100, 0, 10, None),
            ],
        ]
    ):
        cid = f"01JD8X0000AAAABBBBCCCCD{n}00"
        ids.append(cid)
        turns, parent = [], None
        for i, (started, model, tin, read, tout, cost) in enumerate(calls):
            tid = f"01JD8X0000AAAABBBBCCCCD{n}{i + 1:02d}"
            call = CallRecord(1, model, "stop", tin, tout, None, cost, 10, 5, read, 0)
            turns.append(
                TurnRecord(
                    tid,
                    cid,
                    parent,
                    model,
                    "p",
                    None,
                    "a",
                    {},
                    tin,
                    tout,
                    "complete",
                    None,
                    started,
                    10,
                    5,
                    [Part("prompt", "p")],
                    [call],
                )  # fmt: skip
            )
            parent = tid
        updated = f"{DAY2}T12:00:00.000+00:00"
        record = ConversationRecord(cid, f"talk {n}", "user", model, None, DAY1, updated, parent)
        store.import_conversation(record, turns)
    store.close()
    return ids[0], ids[1]


def usage(db, *args: str, tz: str = "UTC") -> dict:
    out = run_chatrepl("usage", "--db", str(db), "--json", *args, env=child_env(TZ=tz))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_usage_sums_by_model(tmp_path):
    db = tmp_path / "u.db"
    seed(db, tmp_path)
    data = usage(db)
    rows = {r["model"]: r for r in data["rows"]}
    mini = rows["openai:gpt-4o-mini"]
    # day 2's call was saved without a cost: 500,000 cached at $0.075, 500,000 at $0.15
    assert mini["cost"] == pytest.approx(0.15 + 0.5 * 0.075 + 0.5 * 0.15)
    assert (mini["calls"], mini["input_tokens"], mini["cache_read_tokens"]) == (
        2,
        2_000_000,
        500_000,
    )
    assert mini["cached_share"] == 0.25
    assert rows["anthropic:claude-sonnet-4-5"]["cost"] == 1.0
    assert rows["ollama:llama3.2"]["unpriced_calls"] == 1 and rows["ollama:llama3.2"]["cost"] == 0
    assert [r["model"] for r in data["rows"]][0] == "anthropic:claude-sonnet-4-5"  # costliest
    total = data["total"]
    assert total["calls"] == 4 and total["unpriced_calls"] == 1
    assert total["cost"] == pytest.approx(mini["cost"] + 1.0)
    assert data["currency"] == "USD" and data["by"] == "model" and data["since"] is None


def test_usage_by_conversation_and_since_a_date(tmp_path):
    db = tmp_path / "u.db"
    first, second = seed(db, tmp_path)
    rows = {r["conversation_id"]: r for r in usage(db, "--by", "conversation")["rows"]}
    assert rows[first]["title"] == "talk 0" and rows[first]["calls"] == 2
    assert rows[second]["cost"] == 1.0
    since = usage(db, "--by", "conversation", "--since", DAY2)
    assert since["since"] == DAY2
    assert {r["conversation_id"]: r["calls"] for r in since["rows"]} == {first: 1, second: 2}


def test_usage_by_day_counts_the_local_calendar_day(tmp_path):
    db = tmp_path / "u.db"
    seed(db, tmp_path)
    days = {r["day"]: r["calls"] for r in usage(db, "--by", "day")["rows"]}
    assert days == {DAY1: 1, DAY2: 3}
    # In UTC−11, 10:00 UTC is 23:00 the day before; 11:00 UTC is midnight
    west = {r["day"]: r["calls"] for r in usage(db, "--by", "day", tz="Etc/GMT+11")["rows"]}
    assert west == {"2026-11-29": 1, DAY1: 1, DAY2: 2}


def test_a_local_midnight_on_the_half_hour_splits_the_days_where_it_falls(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30: midnight is 18:30 UTC
    time.tzset()
    try:
        rows = [
            ("c", "t", "m:x", "2026-12-01T18", quarter, True, 1, 1, 1, 0, 0, 0.0)
            for quarter in (1, 2)  # 18:15 UTC (23:45 there), 18:30 UTC (00:00 the next day)
        ]
        assert {s.key: s.calls for s in summed(rows, "day")} == {"2026-12-01": 1, "2026-12-02": 1}
    finally:
        monkeypatch.undo()
        time.tzset()


def test_usage_into_a_pipe_and_on_a_terminal(tmp_path):
    db = tmp_path / "u.db"
    seed(db, tmp_path)
    out = run_chatrepl("usage", "--db", str(db))
    lines = [line.split("\t") for line in out.stdout.splitlines()]
    assert lines[0][0] == "anthropic:claude-sonnet-4-5" and lines[0][-2] == "1.000000"
    assert len(lines) == 3 and all(len(cells) == 9 for cells in lines)
    bad = run_chatrepl("usage", "--db", str(db), "--since", "yesterday-ish")
    assert bad.returncode == 2 and "is not a date: give it as YYYY-MM-DD" in bad.stderr


def test_usage_of_an_empty_history(tmp_path):
    db = tmp_path / "e.db"
    Store(db).close()
    data = usage(db)
    assert data["rows"] == [] and data["total"]["calls"] == 0 and data["total"]["cost"] == 0


def test_summed_prices_a_call_saved_without_a_cost_only_once_per_model():
    rows = [
        ("c", "t", "openai:gpt-4o", "2026-12-01T10", 0, False, 2, 2_000_000, 0, 0, 0, None),
        ("c", "t", "openai:gpt-4o", "2026-12-01T10", 1, True, 1, 10, 10, 0, 0, 0.25),
    ]
    (one,) = summed(rows, "model")
    assert one.calls == 3 and one.cost == pytest.approx(2 * 2.5 + 0.25)


# --- budgets ------------------------------------------------------------------------------------


def test_a_one_shot_request_over_the_conversation_budget_is_not_sent(home, server, tmp_path):
    # 1,000 tokens at $2/M, 100 out at $10/M: $0.0030 (no cache here: usage without details)
    usage_ = {"prompt_tokens": 1000, "completion_tokens": 100}
    configure(home, PRICED.format(url=server.openai_url) + "\n[budget]\nconversation = 0.012\n")
    server.push(Answer(Text("first"), usage=usage_))
    db = tmp_path / "b.db"
    first = run_chatrepl("-m", "fake:m", "-p", "hello", "--db", str(db))
    assert first.returncode == 0, first.stderr
    # next: $0.0030 spent + a few input tokens + 1,024 out at $10/M ($0.01024) > $0.012
    second = run_chatrepl("-c", "-p", "and again", "--db", str(db))
    assert second.returncode == 1
    assert second.stderr.strip() == (
        "chatrepl: Not sent: this request (up to $0.0103) would pass the conversation budget "
        "of $0.0120, with $0.0030 spent in this conversation; raise it in config.toml "
        "([budget] conversation = …) to go on."
    )
    assert asked(server) == 1  # nothing went out
    rows = saved_rows(db)
    assert rows[-1]["prompt"] == "and again" and rows[-1]["status"] == "error"
    assert "would pass the conversation budget" in rows[-1]["error"]
    # a smaller max_tokens fits: $0.0030 + about $0.00001 in + 100 × $10/M
    third = run_chatrepl("-c", "-p", "short", "-o", "max_tokens", "100", "--db", str(db))
    assert third.returncode == 0, third.stderr


def test_the_day_budget_counts_every_conversation_of_the_local_day(home, server, tmp_path):
    usage_ = {"prompt_tokens": 1000, "completion_tokens": 100}
    configure(home, PRICED.format(url=server.openai_url) + "\n[budget]\nday = 0.012\n")
    server.push(Answer(Text("first"), usage=usage_))
    db = tmp_path / "d.db"
    assert run_chatrepl("-m", "fake:m", "-p", "one", "--db", str(db)).returncode == 0
    other = run_chatrepl("-m", "fake:m", "-p", "a new conversation", "--db", str(db))
    assert other.returncode == 1
    assert "would pass the day budget of $0.0120, with $0.0030 spent today" in other.stderr
    assert "[budget] day = …" in other.stderr
    assert asked(server) == 1


def test_the_repl_refuses_a_request_over_budget_and_keeps_the_prompt(home, server, tmp_path):
    configure(home, PRICED.format(url=server.openai_url) + "\n[budget]\nconversation = 0.005\n")
    store = Store(tmp_path / "r.db")
    repl = repl_for(store, "fake:m")
    shown = said(repl, "a question")
    assert "Not sent: this request (up to $0.0102) would pass the conversation budget" in shown
    assert "Traceback" not in shown and asked(server) == 0
    (turn,) = store.turns(repl.conversation.id)
    assert turn.prompt == "a question" and turn.status == "error"
    # the session goes on: a cheaper request is sent
    repl.conversation.options["max_tokens"] = 50
    said(repl, "a short one")
    assert asked(server) == 1


def test_a_model_without_a_price_is_not_limited_and_that_is_said_once(home, server, tmp_path):
    text = PRICED.format(url=server.openai_url).split("[prices")[0] + "[budget]\nday = 0\n"
    configure(home, text)
    repl = repl_for(Store(tmp_path / "n.db"), "fake:m")
    first = said(repl, "one")
    assert "No price is known for fake:m: the budgets do not limit it" in first
    assert "You said: one" in first
    assert "No price is known" not in said(repl, "two")
    assert asked(server) == 2


def test_an_unsaved_conversation_counts_for_the_session_only(home, server):
    usage_ = {"prompt_tokens": 1000, "completion_tokens": 100}
    configure(home, PRICED.format(url=server.openai_url))
    server.push(Answer(Text("ok"), usage=usage_))
    c = Conversation(get_model("fake:m"))  # no store: like -n
    c.budget = Budget({"conversation": 0.012, "day": 1.0})
    c.prompt("one", max_tokens=10).text()
    assert c.budget.spent("conversation", c.id, saved=False) == pytest.approx(0.003)
    assert c.budget.spent("day", c.id, saved=False) == pytest.approx(0.003)
    with pytest.raises(BudgetError, match="conversation budget of \\$0.0120"):
        c.prompt("two").text()
    assert asked(server) == 1 and c.turns[-1].status == "error"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[budget]\nweek = 3\n", "config.toml: [budget] has no setting week"),
        ('[budget]\nday = "lots"\n', "config.toml: [budget] day must be an amount of dollars"),
        ("budget = 3\n", "config.toml: [budget] must be a table"),
        ('[prices."x:y"]\ninput = 1\n', 'config.toml: [prices."x:y"]: output must be a number'),
    ],
)
def test_a_malformed_budget_or_price_stops_before_anything_is_sent(home, server, text, said):
    configure(home, text)
    out = run_chatrepl("-m", "echo", "-p", "hi")
    assert out.returncode == 1 and out.stderr.startswith(f"chatrepl: {said}")
    assert "Traceback" not in out.stderr
