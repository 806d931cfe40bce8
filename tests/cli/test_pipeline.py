"""llm's shell-pipeline habits over the fake server: ``--schema`` as each vendor's structured
output, ``-x`` / ``--extract-last``, one-shot ``--json``, and ``-n`` (nothing saved)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_chatrepl
from fakeserver import Answer, Call, FakeLLMServer, Reply, Text

from chatrepl.store import Store

SCHEMA = "name, age int: in years"


def turns(home: Path) -> list:
    store = Store(home / "chatrepl.db", create=False)
    try:
        return [t for s in store.recent() for t in store.turns(s.id)]
    finally:
        store.close()


def test_openai_schema_is_a_strict_response_format_and_the_answer_is_json(
    home: Path, openai_env: FakeLLMServer
) -> None:
    openai_env.push(Reply(text='{"name": "Ada", "age": 36}'))
    out = run_chatrepl(
        "-m", "openai:gpt-test", "-p", "Who wrote the first program?", "--schema", SCHEMA
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"name": "Ada", "age": 36}
    body = openai_env.last["json"]
    assert "schema" not in body  # the option is turned into the vendor's parameter
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "age": {"type": "integer", "description": "in years"},
                },
                "required": ["name", "age"],
                "additionalProperties": False,
            },
        },
    }
    (turn,) = turns(home)
    assert turn.response == '{"name": "Ada", "age": 36}'
    assert turn.options["schema"]["required"] == ["name", "age"]  # saved with the turn


def test_a_reply_that_does_not_match_is_an_error_and_stays_saved(
    home: Path, openai_env: FakeLLMServer
) -> None:
    openai_env.push(Reply(text='{"name": "Ada", "age": "old"}'))
    out = run_chatrepl("-m", "openai:gpt-test", "-p", "Who?", "--schema", SCHEMA)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr == (
        "chatrepl: The answer does not match the schema: the field 'age' should be a whole "
        "number, not text.\n"
    )
    (turn,) = turns(home)
    assert turn.response == '{"name": "Ada", "age": "old"}'


def test_anthropic_schema_is_a_forced_tool_whose_input_is_the_answer(
    home: Path, openai_env: FakeLLMServer
) -> None:
    openai_env.push(Answer(Call("answer", '{"name": "Bo', '", "age": 3}', id="toolu_1")))
    out = run_chatrepl("-m", "anthropic:claude-test", "-p", "A goat?", "--schema", SCHEMA)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"name": "Bo", "age": 3}
    body = openai_env.last["json"]
    assert body["tool_choice"] == {"type": "tool", "name": "answer"}
    (tool,) = body["tools"]
    assert tool["name"] == "answer"
    assert tool["input_schema"]["required"] == ["name", "age"]
    (turn,) = turns(home)
    assert json.loads(turn.response) == {"name": "Bo", "age": 3}
    assert turn.status == "complete"  # the forced tool's ending is a normal one
    # the next turn's history carries the JSON as the assistant's text, no dangling tool call
    openai_env.push(Reply(text="ok"))
    again = run_chatrepl("-c", "-p", "thanks")
    assert again.returncode == 0, again.stderr
    sent = openai_env.last["json"]["messages"]
    assert sent[1] == {"role": "assistant", "content": turn.response}
    assert "tool_choice" not in openai_env.last["json"]  # the schema was for that turn alone


def test_anthropic_schema_with_tools_or_thinking_is_refused_before_sending(
    home: Path, openai_env: FakeLLMServer
) -> None:
    for extra, said in (
        (["-T", "now"], "cannot be combined with other tools (-T)"),
        (["-o", "thinking_budget", "2000"], "cannot think (thinking_budget, reasoning_effort)"),
    ):
        out = run_chatrepl("-m", "anthropic:claude-test", "-p", "Hi", "--schema", SCHEMA, *extra)
        assert out.returncode == 1
        assert said in out.stderr
        assert out.stderr.count("\n") == 1
    assert openai_env.requests == []
    assert turns(home) == []  # nothing was asked, so no prompt was saved


def test_schema_on_a_model_without_structured_output(home: Path) -> None:
    out = run_chatrepl("-m", "echo", "-p", "{}", "--schema", SCHEMA)
    assert out.returncode == 1
    assert "echo:echo cannot give structured output (--schema)" in out.stderr


def test_a_bad_schema_is_one_sentence_and_nothing_is_sent(
    home: Path, openai_env: FakeLLMServer
) -> None:
    out = run_chatrepl("-m", "openai:gpt-test", "-p", "Hi", "--schema", "name, age number")
    assert out.returncode == 1
    assert out.stderr == (
        "chatrepl: The schema field 'age' has the unknown type 'number': use int, float, bool or "
        "str.\n"
    )
    assert openai_env.requests == []


ANSWER = "First:\n\n```python\nprint('one')\n```\n\nThen:\n\n```sh\necho two\n```\n"


def test_extract_prints_only_a_fenced_block(home: Path, openai_env: FakeLLMServer) -> None:
    openai_env.push(Answer(Text(ANSWER)), Answer(Text(ANSWER)), Answer(Text("no code at all")))
    first = run_chatrepl("-m", "openai:gpt-test", "-p", "code", "-x")
    assert (first.returncode, first.stdout) == (0, "print('one')\n")
    last = run_chatrepl("-m", "openai:gpt-test", "-p", "code", "--extract-last")
    assert (last.returncode, last.stdout) == (0, "echo two\n")
    whole = run_chatrepl("-m", "openai:gpt-test", "-p", "code", "--extract")
    assert whole.stdout == "no code at all\n"  # no block: the whole answer, as llm prints it
    assert sorted(t.response for t in turns(home)) == sorted([ANSWER, ANSWER, "no code at all"])


def test_one_shot_json_is_the_whole_response(home: Path, openai_env: FakeLLMServer) -> None:
    openai_env.push(
        Answer(
            Text("Hello ", "there"),
            usage={"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
        )
    )
    out = run_chatrepl("-m", "openai:gpt-test", "-p", "Say hello", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    (turn,) = turns(home)
    assert list(data) == [
        "id",
        "conversation_id",
        "model",
        "text",
        "reasoning",
        "tool_calls",
        "usage",
        "cost",
        "ending",
        "duration_ms",
    ]
    assert data["id"] == turn.id
    assert data["conversation_id"] == turn.conversation_id
    assert data["model"] == "openai:gpt-test"
    assert data["text"] == "Hello there"
    assert data["reasoning"] == "" and data["tool_calls"] == []
    assert data["usage"]["input"] == 12 and data["usage"]["output"] == 2
    assert set(data["usage"]) == {"input", "output", "cache_read", "cache_write"}
    assert data["ending"] == "complete"
    assert isinstance(data["duration_ms"], int)


def test_json_of_an_answer_cut_off_keeps_exit_status_3(
    home: Path, openai_env: FakeLLMServer
) -> None:
    openai_env.push(Answer(Text("and then"), finish="length"))
    out = run_chatrepl("-m", "openai:gpt-test", "-p", "Go on", "--json")
    assert out.returncode == 3
    assert json.loads(out.stdout)["ending"] == "cut_off"


def test_a_cut_off_answer_says_how_to_carry_it_on(home: Path, openai_env: FakeLLMServer) -> None:
    # /continue is the REPL's: the one-shot names the way there, and no way for an unsaved one
    openai_env.push(Answer(Text("and then"), finish="length"))
    out = run_chatrepl("-m", "openai:gpt-test", "-p", "Go on")
    assert out.returncode == 3
    assert out.stderr == (
        "chatrepl: the answer was cut off at the token limit "
        "(chatrepl -c, then /continue, asks for the rest).\n"
    )
    openai_env.push(Answer(Text("and then"), finish="length"))
    out = run_chatrepl("-m", "openai:gpt-test", "-n", "-p", "Go on")
    assert (out.returncode, out.stderr) == (
        3,
        "chatrepl: the answer was cut off at the token limit.\n",
    )


def test_no_log_answers_and_saves_nothing(home: Path, openai_env: FakeLLMServer) -> None:
    out = run_chatrepl("-m", "openai:gpt-test", "-n", "-p", "Secret plans")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "You said: Secret plans (messages: 1)\n"
    assert not (home / "chatrepl.db").exists()
    # with a conversation to continue: its history is sent, the new turn is not written
    run_chatrepl("-m", "openai:gpt-test", "-p", "First")
    before = (home / "chatrepl.db").stat().st_mtime_ns, len(turns(home))
    again = run_chatrepl("-c", "--no-log", "-p", "Second, not kept")
    assert again.returncode == 0, again.stderr
    assert again.stdout == "You said: Second, not kept (messages: 3)\n"
    assert len(turns(home)) == before[1] == 1
    search = run_chatrepl("search", "kept")
    assert "Second" not in search.stdout
