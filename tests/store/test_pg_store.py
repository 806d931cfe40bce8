"""The PostgreSQL store against a real server: the store tests SQLite passes, run again on
PostgreSQL, and what only a server brings (credentials, a server that is down, many machines)."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import test_store
from conftest import child_env, module_of_tests, run_chatrepl
from fakeserver import Reply

import chatrepl
from chatrepl import errors
from chatrepl.conversation import Conversation
from chatrepl.store import Store

pytest_plugins = ("pgserver",)
test_conversation = module_of_tests("conversation/test_conversation.py")
pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[postgres]'")

#: Credentials for a server that does not exist (the down-server test).
USER, PASSWORD = "chatter", "S3cret-pa55word"


def credentials(url: str) -> tuple[str, str]:
    """The user and password in a test database's URL (the test skips if it has none)."""
    parts = urlsplit(url)
    if not parts.password:
        pytest.skip("the test server's URL holds no password to keep secret")
    return unquote(parts.username or ""), unquote(parts.password)


def shows(text: str, user: str, password: str) -> bool:
    """Whether ``text`` shows the user name or the password (the scheme aside)."""
    return password in text or user in text.replace("postgresql", "")


#: Tests of tests/store/test_store.py and tests/conversation/test_conversation.py that ask the store only through
#: its methods: run again here with every ``Store(path)`` they open made a PostgreSQL database.
SHARED = [
    test_store.test_prefix_resolution,
    test_store.test_recent_lists_newest_first_with_counts,
    test_store.test_search_finds_prompts_and_answers,
    test_store.test_search_follows_deletes_and_updates,
    test_store.test_search_ranks_the_better_match_first,
    test_conversation.test_store_load_continues_with_history_and_persona,
    test_conversation.test_every_round_trip_is_saved_with_usage_and_timings,
    test_conversation.test_error_turn_is_saved_with_its_sentence,
    test_conversation.test_prompt_is_saved_before_the_request,
    test_conversation.test_cancel_before_streaming_finishes_the_turn,
    test_conversation.test_a_turn_left_pending_by_a_crash_is_readable_and_in_the_history,
]


@pytest.mark.parametrize("test", SHARED, ids=lambda t: f"{t.__module__}.{t.__name__}")
def test_store_tests_pass_on_postgres(test, pg_server, request, monkeypatch):
    databases: dict[str, str] = {}

    def on_postgres(path, **kwargs):  # one database per path the test names
        url = databases.setdefault(str(path), pg_server.new_database())
        return Store(url, **kwargs)

    monkeypatch.setattr(sys.modules[test.__module__], "Store", on_postgres)
    args = {name: request.getfixturevalue(name) for name in inspect.signature(test).parameters}
    test(**args)
    assert databases, "the test opened no store: it does not belong in SHARED"


def chat(store: Store, *prompts: str, model: str = "echo"):
    c = chatrepl.get_model(model).conversation(store=store)
    for p in prompts:
        c.prompt(p).text()
    return c


# --- the schema ---------------------------------------------------------------------------------


def test_fresh_database_gets_the_current_schema_once(pg_url, pg_server):
    Store(pg_url).close()
    Store(pg_url).close()  # opening again applies nothing twice
    name = pg_url.rsplit("/", 1)[1]
    rows = pg_server.admin("SELECT name FROM chatrepl._migrations ORDER BY name", database=name)
    assert [r[0] for r in rows] == [
        "m001_initial", "m002_tree", "m003_by_conversation", "m004_cache_tokens",
        "m005_each_text_once", "m006_search_index_merged",
    ]  # fmt: skip
    tables = pg_server.admin(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'chatrepl' ORDER BY 1", database=name
    )
    assert [r[0] for r in tables] == [
        "_migrations",
        "attachments",
        "calls",
        "conversations",
        "parts",
        "turns",
    ]


def test_newer_schema_is_refused_untouched(pg_url, pg_server):
    store = Store(pg_url)
    chat(store, "written before")
    store.close()
    name = pg_url.rsplit("/", 1)[1]
    pg_server.admin(
        "INSERT INTO chatrepl._migrations VALUES ('m003_future', 'later')", database=name
    )
    with pytest.raises(errors.NewerDatabaseError, match="newer chatrepl"):
        Store(pg_url)
    rows = pg_server.admin("SELECT count(*) FROM chatrepl.turns", database=name)
    assert rows == [(1,)]


def test_missing_database_is_not_created_when_asked_not_to(pg_url, pg_server):
    with pytest.raises(errors.StoreError, match="no chatrepl database"):
        Store(pg_url, create=False)
    name = pg_url.rsplit("/", 1)[1]
    assert pg_server.admin("SELECT to_regclass('chatrepl.turns')", database=name) == [(None,)]


def test_two_processes_racing_to_create_the_schema_both_succeed(pg_url):
    code = "import sys, chatrepl; chatrepl.Store(sys.argv[1]).close()"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, pg_url], env=child_env()) for _ in range(4)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    assert Store(pg_url).count() == (0, 0)


# --- search ---------------------------------------------------------------------------------------


def test_search_needs_every_word_matches_prefixes_and_ignores_accents(pg_url):
    store = Store(pg_url)
    cafe = chat(store, "Un café crème à Besançon")
    goats = chat(store, "goats climb trees in Morocco")
    assert [h.conversation_id for h in store.search("cafe creme")] == [cafe.id]
    assert [h.conversation_id for h in store.search("besancon")] == [cafe.id]
    assert [h.conversation_id for h in store.search("goat")] == [goats.id]  # a prefix
    assert store.search("goats Besançon") == []  # every word must match
    (hit,) = store.search("morocco", marks=("<<", ">>"))
    assert "<<Morocco>>" in hit.snippet
    assert store.search("'&|!:*()<->") == []  # user text never breaks tsquery syntax
    assert store.search('weird "quote (syntax') == []


def test_text_postgresql_cannot_hold_is_saved_without_failing(pg_url):
    store = Store(pg_url)
    c = chat(store, "nul\x00byte")
    assert store.turns(c.id)[0].prompt == "nul\ufffdbyte"


# --- credentials and servers that fail ----------------------------------------------------------


def test_the_url_shown_has_no_credentials(pg_url):
    user, password = credentials(pg_url)
    store = Store(pg_url)
    assert str(store.path).startswith("postgresql://")
    assert not shows(str(store.path), user, password)


def test_a_server_that_is_down_is_one_sentence_without_credentials(tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/chat"
    with pytest.raises(errors.StoreError) as info:
        Store(url)
    message = str(info.value)
    assert message.startswith(f"Cannot reach the PostgreSQL server at 127.0.0.1:{port}")
    assert PASSWORD not in message and USER not in message and "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__

    out = run_chatrepl("-m", "echo", "-p", "keep me", "--db", url)
    assert out.returncode == 1
    assert out.stderr.startswith("chatrepl: Cannot reach the PostgreSQL server at")
    assert PASSWORD not in out.stderr + out.stdout and USER not in out.stderr + out.stdout
    assert "Traceback" not in out.stderr


def test_a_wrong_password_is_one_sentence_without_credentials(pg_url, pg_server):
    user, password = credentials(pg_url)
    wrong = pg_url.replace(f":{password}@", ":not-the-Pa55word@")
    for args in (["list", "--db", wrong], ["-m", "echo", "-p", "hello", "--db", wrong]):
        out = run_chatrepl(*args)
        assert out.returncode == 1, out
        assert "refused the user name or password" in out.stderr
        assert f"{pg_server.host}:{pg_server.port}" in out.stderr
        assert not shows(out.stderr + out.stdout, user, "not-the-Pa55word")
        assert not shows(out.stderr + out.stdout, user, password)
        assert "Traceback" not in out.stderr


def test_missing_database_on_the_server_is_one_sentence(pg_server, pg_url):
    url = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    user, password = credentials(url)
    out = run_chatrepl("list", "--db", url)
    assert out.returncode == 1
    assert "has no database no_such_database" in out.stderr
    assert not shows(out.stderr, user, password)


def test_credentials_never_reach_output_history_or_exports(pg_url, openai_env, tmp_path):
    user, password = credentials(pg_url)
    out = run_chatrepl("-m", "openai:gpt-test", "-p", "a saved prompt", "--db", pg_url)
    assert out.returncode == 0, out.stderr
    (summary,) = Store(pg_url).recent()
    seen = [out.stdout + out.stderr]
    for args in (
        ["list"],
        ["list", "--json"],
        ["show", summary.id, "--json"],
        ["search", "saved"],
        ["export", summary.id, "--format", "json"],
        ["export", summary.id],
    ):
        result = run_chatrepl(*args, "--db", pg_url)
        assert result.returncode == 0, result.stderr
        seen.append(result.stdout + result.stderr)
    turns = Store(pg_url).turns(summary.id)
    seen.append(repr(turns) + repr(summary))
    for text in seen:
        assert not shows(text, user, password)


def test_a_server_restart_is_one_error_then_the_store_works_again(pg_server, pg_url):
    if pg_server.folder is None:
        pytest.skip("CHATREPL_TEST_PG names a server these tests may not restart")
    store = Store(pg_url)
    c = chat(store, "before the restart")
    pg_server.pause()
    try:
        with pytest.raises(errors.StoreError) as info:
            c.prompt("while it is down").text()
        assert f"{pg_server.host}:{pg_server.port}" in str(info.value)
        assert not shows(str(info.value), *credentials(pg_url))
    finally:
        pg_server.start_again()
    c.prompt("after the restart").text()
    assert [t.prompt for t in store.turns(c.id)] == ["before the restart", "after the restart"]


# --- many writers ---------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, chatrepl
    store = chatrepl.Store(sys.argv[1])
    for i in range(int(sys.argv[3])):
        c = chatrepl.get_model("echo").conversation(store=store)
        c.prompt(f"{sys.argv[2]} prompt {i}").text()
        c.prompt(f"{sys.argv[2]} again {i}").text()
    """
)


def test_twelve_processes_writing_at_once_lose_nothing(pg_url, pg_server):
    Store(pg_url).close()
    names = [f"writer{n}x" for n in range(12)]  # none the start of another: search takes prefixes
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, pg_url, name, "15"], env=child_env())
        for name in names
    ]
    assert [p.wait(timeout=240) for p in procs] == [0] * 12
    store = Store(pg_url)
    assert store.count() == (12 * 15, 12 * 30)
    for name in names:
        hits = store.search(f"{name} again", n=100)
        assert len(hits) == 15
    for summary in store.recent(12 * 15):
        first, second = store.turns(summary.id)
        assert second.parent_id == first.id
        assert (first.status, second.status) == ("complete", "complete")
        assert first.response == first.prompt and second.response == second.prompt


def test_two_machines_on_one_conversation_make_two_branches(pg_url, openai_env):
    """Two sessions go on from the same turn at once: both answers are kept, as two branches."""
    model = "openai:gpt-test"
    a_store, b_store = Store(pg_url), Store(pg_url)
    a = chat(a_store, "shared start", model=model)
    b = Conversation.load(b_store, a.id)
    openai_env.push(Reply("slow answer from A", delay=0.05), Reply("answer from B"))
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(lambda: a.prompt("from A").text())
        time.sleep(0.2)
        fast = pool.submit(lambda: b.prompt("from B").text())
        assert slow.result(timeout=60) and fast.result(timeout=60)
    every = Store(pg_url).turns(a.id, all_branches=True)
    assert [t.prompt for t in every] == ["shared start", "from A", "from B"]
    assert every[1].parent_id == every[2].parent_id == every[0].id
    assert {t.status for t in every} == {"complete"}


STREAMER = textwrap.dedent(
    """
    import sys, chatrepl
    store = chatrepl.Store(sys.argv[1])
    c = chatrepl.get_model("openai:gpt-test").conversation(store=store)
    for chunk in c.prompt("a prompt that must survive"):
        pass
    """
)


def test_killed_mid_stream_keeps_prompt_and_flushed_text(pg_url, openai_env):
    Store(pg_url).close()
    words = " ".join(f"w{i}" for i in range(200))
    openai_env.push(Reply(words, delay=0.02))
    proc = subprocess.Popen([sys.executable, "-c", STREAMER, pg_url], env=child_env())
    store = Store(pg_url)
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline and len(text) < 40:
        time.sleep(0.1)
        recent = store.recent(1)
        text = store.turns(recent[0].id)[0].response if recent else ""
    proc.kill()
    proc.wait()
    (turn,) = store.turns(store.recent(1)[0].id)
    assert turn.prompt == "a prompt that must survive"
    assert turn.status == "pending"
    assert len(turn.response) >= 40 and words.startswith(turn.response)


def test_attachments_are_kept_once(pg_url):
    store = Store(pg_url)
    data = bytes(range(256)) * 10
    store.put_attachment("ab" * 32, "application/octet-stream", data)
    store.put_attachment("ab" * 32, "application/octet-stream", data)
    assert store.attachment("ab" * 32) == data
    assert store.attachment("cd" * 32) is None


def test_config_names_the_database(pg_url, home: Path):
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'db = "{pg_url}"\n')
    out = run_chatrepl("-m", "echo", "-p", "kept on the server")
    assert out.returncode == 0, out.stderr
    assert [s.title for s in Store(pg_url).recent()] == ["kept on the server"]
    assert not (home / "chatrepl.db").exists()


def test_an_sqlite_store_never_imports_psycopg(tmp_path):
    """peewee would import psycopg whenever it is installed: ~90 ms at every start for nothing."""
    code = (
        "import sys, chatrepl; chatrepl.Store(sys.argv[1]).count(); "
        "print(sorted(m for m in sys.modules if m.startswith('psycopg')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        env=child_env(),
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_twelve_one_shot_commands_at_once_lose_nothing(pg_url, openai_env):
    """As tests/promises/test_concurrency.py on SQLite: 12 `chatrepl -p` at once, each then
    continuing its own conversation while the others still stream."""
    Store(pg_url).close()
    slots = 12
    openai_env.push(*[Reply(None, delay=0.015) for _ in range(2 * slots)])

    def slot(i: int) -> str:
        first = f"slot{i}x " + " ".join(f"word{j}" for j in range(20))
        out = run_chatrepl("-m", "openai:gpt-test", "-p", first, "--db", pg_url, timeout=120)
        assert out.returncode == 0, out.stderr
        (hit,) = Store(pg_url).search(f"slot{i}x")
        again = f"slot{i}x again"
        out = run_chatrepl("-r", hit.conversation_id, "-p", again, "--db", pg_url, timeout=120)
        assert out.returncode == 0, out.stderr
        return hit.conversation_id

    with ThreadPoolExecutor(slots) as pool:
        ids = list(pool.map(slot, range(slots)))
    store = Store(pg_url)
    assert store.count() == (slots, 2 * slots)
    for i, cid in enumerate(ids):
        first, second = store.turns(cid)
        assert first.prompt.startswith(f"slot{i}x ") and second.prompt == f"slot{i}x again"
        assert (first.status, second.status) == ("complete", "complete")
        assert first.response == f"You said: {first.prompt} (messages: 1)"
        assert second.response == f"You said: slot{i}x again (messages: 3)"


def test_the_repl_says_one_sentence_while_the_server_is_down_and_keeps_what_was_typed(
    pg_server, pg_url, home
):
    """The server goes away under an interactive session: the prompt typed then is refused in
    one sentence, stays in the input history (Up brings it back), and is sent once the server
    is back; the session never ends."""
    if pg_server.folder is None:
        pytest.skip("CHATREPL_TEST_PG names a server these tests may not restart")
    from terminal import Terminal

    user, password = credentials(pg_url)
    argv = [sys.executable, "-m", "chatrepl", "-m", "echo", "--db", pg_url]
    with Terminal(argv, child_env(TERM="xterm")) as t:
        t.wait_prompt(30)
        t.line("before the server went away")
        t.wait_for("> before the server went away\nbefore the server went away", 20)
        pg_server.pause()
        try:
            t.line("typed while it is down")
            t.wait_for(f"PostgreSQL server at {pg_server.host}:{pg_server.port}", 30)
        finally:
            pg_server.start_again()
        t.wait_prompt(10)
        t.key("up")
        t.wait_for(r"^> typed while it is down *\n(?![\s\S]*^>)", 10)  # the input line
        t.key("enter")
        t.wait_for("> typed while it is down\ntyped while it is down", 30)
        assert not shows(t.scrollback(), user, password)
        t.line("/exit")
        assert t.wait_exit(20) == 0
    store = Store(pg_url)
    (summary,) = store.recent()
    assert [x.prompt for x in store.turns(summary.id)] == [
        "before the server went away",
        "typed while it is down",
    ]


def test_export_and_import_through_postgres(pg_server, pg_url, tmp_path, monkeypatch):
    store = Store(pg_url)
    c = chat(store, "exported from one server", "and a second turn")
    out = run_chatrepl(
        "export", c.id, "--format", "json", "-o", str(tmp_path / "c.json"), "--db", pg_url
    )
    assert out.returncode == 0, out.stderr
    other = pg_server.new_database()
    monkeypatch.setenv("CHATREPL_DB", other)  # the environment names the database this time
    for expected in (f"Imported {c.id} (2 turns)", f"Already here, nothing imported: {c.id}"):
        out = run_chatrepl("import", str(tmp_path / "c.json"), env=child_env())
        assert out.returncode == 0, out.stderr
        assert expected in out.stdout
    assert [t.prompt for t in Store(other).turns(c.id)] == [
        "exported from one server",
        "and a second turn",
    ]


def test_switching_to_a_branch_that_branches_lands_at_its_newest_turn(pg_url):
    switching = module_of_tests("repl/test_repl_branch_switch.py")
    store = Store(pg_url)
    try:
        c = Conversation(chatrepl.get_model("echo"), store=store)
        ids = switching.branched(c)
        c.switch(ids["one"])
        assert c.turns[-1].id == ids["three-b"]  # not two-b, one's newest child
    finally:
        store.close()
