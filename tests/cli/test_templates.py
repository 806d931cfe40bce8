"""Templates on the command line: ``--save`` writes one without sending, ``-t`` uses one (its
persona, model, options, prompt with ``$input`` and ``$params``), ``chatrepl templates`` lists,
shows, edits them, and each way a template can be wrong is one sentence."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml
from conftest import child_env, run_chatrepl
from fakeserver import FakeLLMServer, Reply


def user_text(body: dict) -> str:
    return body["messages"][-1]["content"]


def test_save_writes_the_command_as_a_template_and_sends_nothing(
    home: Path, openai_env: FakeLLMServer
) -> None:
    out = run_chatrepl(
        "--save", "joke", "-m", "openai:gpt-test", "-s", "You are a comedian",
        "-o", "temperature", "0.9", "-T", "now", "-p", "A joke about $topic",
        "--schema", "setup, punchline", "--param", "topic", "goats",
    )  # fmt: skip
    path = home / "templates" / "joke.yaml"
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"Saved the template joke: {path}\n"
    assert openai_env.requests == []
    assert not (home / "chatrepl.db").exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text()) == {
        "system": "You are a comedian",
        "prompt": "A joke about $topic",
        "model": "openai:gpt-test",
        "options": {"temperature": 0.9},
        "defaults": {"topic": "goats"},
        "tools": ["now"],
        "schema_object": {
            "type": "object",
            "properties": {"setup": {"type": "string"}, "punchline": {"type": "string"}},
            "required": ["setup", "punchline"],
        },
    }
    again = run_chatrepl("--save", "joke", "-s", "Shorter")
    assert again.stdout == f"Replaced the template joke: {path}\n"


def test_a_template_gives_persona_model_options_and_prompt(
    home: Path, openai_env: FakeLLMServer
) -> None:
    folder = home / "templates"
    folder.mkdir(parents=True)
    (folder / "fr.yaml").write_text(
        "system: You translate into $lang.\n"
        "prompt: 'Translate: $input'\n"
        "model: openai:gpt-test\n"
        "options: {temperature: 0.1}\n"
        "defaults: {lang: French}\n"
    )
    out = run_chatrepl("-t", "fr", "-p", "good morning")
    assert out.returncode == 0, out.stderr
    body = openai_env.last["json"]
    assert body["model"] == "gpt-test" and body["temperature"] == 0.1
    assert body["messages"][0] == {"role": "system", "content": "You translate into French."}
    assert user_text(body) == "Translate: good morning"
    # a --param wins over the defaults, -s and -o over the template; stdin is $input too
    run_chatrepl("-t", "fr", "--param", "lang", "Welsh", "-o", "temperature", "0.5", input="hi")
    body = openai_env.last["json"]
    assert body["messages"][0]["content"] == "You translate into Welsh."
    assert body["temperature"] == 0.5 and user_text(body) == "Translate: hi"
    run_chatrepl("-t", "fr", "-s", "Be terse.", "-p", "x")
    assert openai_env.last["json"]["messages"][0] == {"role": "system", "content": "Be terse."}


def test_a_prompt_without_input_answers_at_once_and_takes_text_after_it(
    home: Path, openai_env: FakeLLMServer
) -> None:
    folder = home / "templates"
    folder.mkdir(parents=True)
    (folder / "joke.yaml").write_text("prompt: Tell a joke about $topic\nmodel: openai:gpt-test\n")
    out = run_chatrepl("-t", "joke", "--param", "topic", "owls", input="")
    assert out.returncode == 0, out.stderr
    assert user_text(openai_env.last["json"]) == "Tell a joke about owls"
    run_chatrepl("-t", "joke", "--param", "topic", "owls", "-p", "Keep it short")
    assert user_text(openai_env.last["json"]) == "Tell a joke about owls\nKeep it short"


def test_a_template_can_extract_and_ask_for_a_schema(home: Path, openai_env: FakeLLMServer) -> None:
    folder = home / "templates"
    folder.mkdir(parents=True)
    (folder / "code.yaml").write_text("model: openai:gpt-test\nextract: true\n")
    (folder / "person.yaml").write_text(
        "model: openai:gpt-test\nschema_object: {type: object, properties: {name: {type: string}}}\n"
    )
    openai_env.push(Reply(text="Here:\n\n```\nls -la\n```\n"), Reply(text='{"name": "Ada"}'))
    assert run_chatrepl("-t", "code", "-p", "list files").stdout == "ls -la\n"
    out = run_chatrepl("-t", "person", "-p", "who?")
    assert json.loads(out.stdout) == {"name": "Ada"}
    assert openai_env.last["json"]["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize(
    ("content", "args", "said"),
    [
        (None, ["-t", "nope"], "No template named nope: `chatrepl templates list` shows them."),
        ("system: [oops\n", ["-t", "t"], "Template t is not valid YAML (line 2): "),
        ("sytem: hi\n", ["-t", "t"], "Template t has an unknown field 'sytem': the fields are "),
        ("fragments: [a.txt]\n", ["-t", "t"], "Template t uses llm's fragments (fragments)"),
        ("options: 3\n", ["-t", "t"], "Template t: options must be a mapping"),
        (
            "prompt: About $topic and $input\n",
            ["-t", "t", "-p", "x"],
            "Template t needs a value for $topic: give it with --param topic VALUE.",
        ),
        ("options: {temperature: 9}\n", ["-t", "t", "-p", "x"], "Template t: temperature must be"),
    ],
)
def test_what_is_wrong_with_a_template_is_one_sentence(
    home: Path, content: str | None, args: list[str], said: str
) -> None:
    if content is not None:
        (home / "templates").mkdir(parents=True)
        (home / "templates" / "t.yaml").write_text(content)
    out = run_chatrepl(*args, "-p", "hi") if "-p" not in args else run_chatrepl(*args)
    assert out.returncode == 1
    assert out.stderr.startswith("chatrepl: " + said), out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--param", "a", "b", "-p", "x"],
            "--param fills a template's $params: use it with -t NAME.",
        ),
        (["--save", "x", "-c"], "--save cannot be used with -c."),
        (["--save", "../x"], "'../x' cannot name a template"),
    ],
)
def test_usage_errors(home: Path, args: list[str], said: str) -> None:
    out = run_chatrepl(*args)
    assert out.returncode in (1, 2)
    assert out.returncode == (1 if "cannot name" in said else 2)
    assert said in out.stderr


def test_templates_list_show_path_and_edit(home: Path, tmp_path: Path) -> None:
    run_chatrepl("--save", "review", "-s", "You review code carefully", "-m", "echo")
    run_chatrepl("--save", "ask", "-p", "Question: $input")
    out = run_chatrepl("templates", "list")
    assert out.stdout == (
        "ask\tprompt\tQuestion: $input\nreview\tpersona\tYou review code carefully\n"
    )
    listed = json.loads(run_chatrepl("templates", "list", "--json").stdout)
    assert listed == [
        {"name": "ask", "prompt": "Question: $input"},
        {"name": "review", "system": "You review code carefully", "model": "echo"},
    ]
    shown = json.loads(run_chatrepl("templates", "show", "review", "--json").stdout)
    assert shown["path"] == str(home / "templates" / "review.yaml")
    assert run_chatrepl("templates", "path").stdout == f"{home / 'templates'}\n"
    text = run_chatrepl("templates", "show", "review").stdout
    assert "system: You review code carefully" in text

    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf "system: Edited persona\\n" > "$1"\n')
    editor.chmod(0o755)
    env = child_env(EDITOR=str(editor))
    edited = run_chatrepl("templates", "edit", "fresh", env=env)
    assert edited.returncode == 0, edited.stderr
    assert (home / "templates" / "fresh.yaml").read_text() == "system: Edited persona\n"
    editor.write_text('#!/bin/sh\nprintf "colour: blue\\n" > "$1"\n')
    broken = run_chatrepl("templates", "edit", "fresh", env=env)
    assert broken.returncode == 1
    assert "unknown field 'colour'" in broken.stderr
    missing = run_chatrepl("templates", "show", "nope")
    assert (missing.returncode, missing.stdout) == (1, "")
