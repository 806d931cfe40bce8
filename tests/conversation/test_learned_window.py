"""A context window learned from a refusal (issue 23, item 6): the limit the server states (else
the size refused) is kept per provider:model in the home folder, later runs compact before
sending instead of being refused again, and the compaction report compares like with like."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from conftest import child_env, run_chatrepl
from fakeserver import FakeLLMServer, Status
from pty_repl import db

from chatrepl.windows import learn, learned, stated_limit

pytestmark = pytest.mark.timeout(120)

REFUSAL = (
    "This model's maximum context length is 1000 tokens. However, your messages resulted in "
    "{n} tokens. Please reduce the length of the messages."
)


def refusal(n: int = 1900) -> Status:
    return Status(
        400,
        {
            "error": {
                "message": REFUSAL.format(n=n),
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            }
        },
    )


def words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def ask(*args: str):
    return run_chatrepl("-m", "openai:test", *args, env=child_env())


def posts(server: FakeLLMServer) -> list[dict]:
    return [r["json"] for r in server.requests if r.get("json")]


def test_a_refusal_teaches_the_window_and_later_runs_compact_first(
    home: Path, openai_env: FakeLLMServer
) -> None:
    server = openai_env
    first = ask("-p", words(400, "a"))  # ~2,400 characters, answered (echoed) in full
    assert first.returncode == 0, first.stderr

    # the second run is refused: the window is learned, the turns compacted, the prompt re-sent
    server.push(refusal())
    second = ask("-c", "-p", words(400, "b"))
    assert second.returncode == 0, second.stderr
    saved = home / "context_windows.json"
    assert json.loads(saved.read_text()) == {"openai:test": 1000}
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    report = re.search(r"~([\d,]+) → ~([\d,]+) tokens", second.stderr)
    assert report, second.stderr
    before, after = (int(x.replace(",", "")) for x in report.groups())
    assert after < before  # both estimates of the same thing: the request that goes out

    # the third run knows the window: it compacts before sending, and nothing is refused
    server.requests.clear()
    third = ask("-c", "-p", words(400, "c"))
    assert third.returncode == 0, third.stderr
    assert "nears the context window" in third.stderr and "of 1,000 tokens" in third.stderr
    assert "too long" not in third.stderr
    sent = posts(server)
    assert len(sent) >= 2  # a summary request, then the prompt
    assert "Summarise this part" in json.dumps(sent[0]) and "c399" in json.dumps(sent[-1])
    turns = db(home).turns(db(home).recent()[0].id, all_branches=True)
    assert [t.status for t in turns].count("error") == 1  # the one refusal, never again


def test_a_configured_window_wins_over_the_learned_one(
    home: Path, openai_env: FakeLLMServer
) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "context_windows.json").write_text(json.dumps({"openai:test": 1000}))
    (home / "config.toml").write_text("[providers.openai]\ncontext_window = 500000\n")
    first = ask("-p", words(400, "a"))
    second = ask("-c", "-p", words(400, "b"))
    assert first.returncode == second.returncode == 0
    assert "compact" not in second.stderr.lower()


def test_the_stated_limit_is_read_from_each_vendors_wording() -> None:
    assert stated_limit(REFUSAL.format(n=9000)) == 1000
    llama = "request (5000 tokens) exceeds the available context size (4096 tokens)"
    assert stated_limit(llama) == 4096
    assert stated_limit("prompt is too long: 210000 tokens > 200000 maximum") == 200000
    assert stated_limit("input length and max_tokens exceed context limit: 1 + 2 > 8,192") == 8192
    assert stated_limit("The conversation is too long for 'gpt-4-32k' (HTTP 413)") is None


def test_without_a_stated_limit_the_refused_size_is_kept_and_only_shrinks(home: Path) -> None:
    assert learn("x:m", "too long", 5000) == 5000
    assert learn("x:m", "too long", 7000) == 5000  # a bigger refusal says nothing new
    assert learn("x:m", "maximum context length is 4096 tokens", 7000) == 4096
    # refused again below the stated window: the estimate undercounts, the refused size wins
    assert learn("x:m", "maximum context length is 4096 tokens", 3000) == 3000
    assert learned("x:m") == 3000 and learned("y:m") is None


def test_the_repl_learns_the_window_from_a_refusal_for_its_next_turns(
    home: Path, openai_env: FakeLLMServer, tmp_path: Path
) -> None:
    from harness import Harness, make

    from chatrepl.providers.registry import get_backend
    from chatrepl.store import Store

    server = openai_env
    h = Harness(make(Store(tmp_path / "r.db"), get_backend("openai:test")), None)
    h.run(words(400, "a"))
    server.push(refusal())
    out = h.run(words(400, "b"))
    assert "compacting, then asking again" in out
    assert h.repl.window() == 1000  # known at once, for the toolbar and the next turn
    assert "of 1k" in h.repl.toolbar
    server.requests.clear()
    out = h.run(words(400, "c"))
    assert "nears the context window" in out and "too long" not in out
    assert "Summarise this part" in json.dumps(posts(server)[0])
