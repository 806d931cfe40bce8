"""One-shot mode: ``chatrepl -p`` and a prompt on stdin, as a user runs them."""

from __future__ import annotations

from conftest import child_env, run_chatrepl
from fakeserver import Reply

from chatrepl.store import Store


def chatrepl(*args, input=None, env=None):
    return run_chatrepl(*args, input=input, text=False, env=env)


def test_version():
    out = chatrepl("--version")
    assert out.returncode == 0
    assert out.stdout.decode().startswith("chatrepl 0.")


def test_offline_answer_is_saved_and_explained(home):
    out = chatrepl("-p", "hello")
    assert out.returncode == 0
    assert out.stdout.decode() == "hello\n"
    assert "offline" in out.stderr.decode() and "OPENAI_API_KEY" in out.stderr.decode()
    store = Store(home / "chatrepl.db")
    (summary,) = store.recent()
    assert summary.model == "echo:echo"
    assert [t.response for t in store.turns(summary.id)] == ["hello"]


def test_prompt_from_stdin_and_invalid_utf8(home):
    out = chatrepl(input=b"caf\xe9 au lait\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == "caf\ufffd au lait\n"


def test_empty_stdin_is_a_usage_error():
    out = chatrepl(input=b"  \n")
    assert out.returncode == 2
    assert b"empty" in out.stderr


def test_continue_and_resume_carry_history(openai_env, tmp_path):
    server = openai_env
    db = str(tmp_path / "h.db")
    env = child_env()
    assert (
        chatrepl(
            "-m", "openai:gpt-test", "-s", "Be a pirate", "-p", "one", "--db", db, env=env
        ).returncode
        == 0
    )
    assert chatrepl("-c", "-p", "two", "--db", db, env=env).returncode == 0
    messages = server.last["json"]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == "Be a pirate"
    store = Store(db)
    cid = store.last_id()
    chatrepl("-m", "anthropic:claude-test", "-p", "new one", "--db", db, env=env)
    out = chatrepl("-r", cid.lower(), "-p", "three", "--db", db, env=env)
    assert out.returncode == 0, out.stderr
    assert [t.prompt for t in store.turns(cid)] == ["one", "two", "three"]
    assert server.last["vendor"] == "openai"


def test_db_from_environment(openai_env, tmp_path):
    db = tmp_path / "env.db"
    out = chatrepl("-m", "openai:gpt-test", "-p", "x", env=child_env(CHATREPL_DB=str(db)))
    assert out.returncode == 0
    assert Store(db).count() == (1, 1)


def test_errors_are_one_line_and_exit_1(openai_env, tmp_path):
    server = openai_env
    server.api_key = "another"
    out = chatrepl("-m", "openai:gpt-test", "-p", "hi", "--db", str(tmp_path / "e.db"))
    assert out.returncode == 1
    err = out.stderr.decode()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "OPENAI_API_KEY" in err and "0123456789" not in err
    assert Store(tmp_path / "e.db").turns(Store(tmp_path / "e.db").last_id())[0].status == "error"


def test_partial_answer_then_drop(openai_env, tmp_path):
    openai_env.push(Reply("one two three four", drop_after=2))
    out = chatrepl("-m", "openai:gpt-test", "-p", "hi", "--db", str(tmp_path / "d.db"))
    assert out.returncode == 1
    assert out.stdout.decode() == "one two\n"
    assert "dropped" in out.stderr.decode()


def test_bad_model_and_bad_id(tmp_path):
    out = chatrepl("-m", "nosuch:thing", "-p", "x", "--db", str(tmp_path / "b.db"))
    assert out.returncode == 1 and b"Unknown provider" in out.stderr
    out = chatrepl("-r", "01ZZZ", "-p", "x", "--db", str(tmp_path / "b.db"))
    assert out.returncode == 1 and b"No conversation" in out.stderr
    assert b"Traceback" not in out.stderr


def test_usage_error_exits_2():
    out = chatrepl("-c", "-r", "X", "-p", "x")
    assert out.returncode == 2


def test_model_escape_sequences_are_raw_in_a_pipe_but_stored_whole(
    openai_env, tmp_path, store: Store
):
    openai_env.push(Reply("evil \x1b[2J text"))
    out = chatrepl("-m", "openai:gpt-test", "-p", "x", "--db", str(tmp_path / "s.db"))
    assert out.returncode == 0
    assert out.stdout == b"evil \x1b[2J text\n"  # a pipe gets the data as it is
    assert store.turns(store.last_id())[0].response == "evil \x1b[2J text"


def test_continue_a_conversation_whose_model_is_gone(tmp_path):
    db = str(tmp_path / "g.db")
    assert chatrepl("-p", "first", "--db", db).returncode == 0
    store = Store(db)
    store.db.execute_sql("UPDATE conversations SET model = 'llm:gone-model'")
    out = chatrepl("-c", "-p", "second", "--db", db)
    assert out.returncode == 0, out.stderr
    assert b"Continuing with echo:echo" in out.stderr
    assert [t.prompt for t in store.turns(store.last_id())] == ["first", "second"]


def test_db_before_a_subcommand(tmp_path):
    db = str(tmp_path / "s.db")
    chatrepl("-p", "listed", "--db", db)
    out = chatrepl("--db", db, "list", "--json")
    assert out.returncode == 0, out.stderr
    assert b"listed" in out.stdout
