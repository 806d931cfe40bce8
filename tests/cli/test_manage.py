"""The sub-commands on saved conversations: every one, in every output form, and their errors."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import child_env, run_chatrepl

from chatrepl import manage
from chatrepl.conversation import Conversation
from chatrepl.errors import ProviderError, ServerError
from chatrepl.export import to_json, to_markdown
from chatrepl.providers.base import Backend
from chatrepl.providers.registry import get_backend
from chatrepl.records import TextDelta
from chatrepl.store import Store

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)")
EVIL = "\x1b]0;pwned\x07\x1b[2J"  # sets the window title, clears the screen


class Stream(io.StringIO):
    def __init__(self, text: str = "", tty: bool = False):
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@dataclass
class Result:
    status: int
    out: str
    err: str

    @property
    def plain(self) -> str:
        """The output with rich's own styling removed."""
        return ANSI.sub("", self.out)


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``run(*argv, tty=False, stdin="", stdin_tty=False)``: chatrepl.manage.main in-process."""
    monkeypatch.setenv("COLUMNS", "160")

    def call(*argv: str, tty: bool = False, stdin: str = "", stdin_tty: bool = False) -> Result:
        out, err = Stream(tty=tty), Stream()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sys, "stdout", out)
            mp.setattr(sys, "stderr", err)
            mp.setattr(sys, "stdin", Stream(stdin, tty=stdin_tty))
            status = manage.main(list(argv))
        return Result(status, out.getvalue(), err.getvalue())

    return call


class Broken(Backend):
    """A model that fails after a few words."""

    def stream(self, messages, options, cancel) -> Iterator[TextDelta]:  # type: ignore[no-untyped-def]
        yield TextDelta("partial ")
        raise ServerError("The server failed (HTTP 500): try again.")


@dataclass
class History:
    path: Path
    goat: str  # 2 turns, a persona, a title; a third turn taken back (on a branch)
    cut: str  # an interrupted answer
    failed: str  # a failed turn
    evil: str  # control characters in the prompt, the answer and the title

    def db(self) -> tuple[str, str]:
        return ("--db", str(self.path))


@pytest.fixture
def history(tmp_path: Path) -> History:
    """A database written by the real Conversation with the offline model."""
    path = tmp_path / "chat.db"
    store = Store(path)
    echo = get_backend("echo")

    goat = Conversation(echo, system="You are a goat", store=store)
    goat.prompt("Three names for a pet goat").text()
    goat.prompt("Two more, fit for a capybara").text()
    goat.prompt("take this one back").text()
    goat.undo()
    goat.set_title("Goat names")

    cut = Conversation(echo, store=store)
    r = cut.prompt("count slowly one two three four five six seven")
    for _ in r:
        r.cancel()
    assert r.status == "interrupted"

    failed = Conversation(Broken("broken", "test"), store=store)
    with pytest.raises(ProviderError):
        failed.prompt("this will fail").text()

    evil = Conversation(echo, store=store)
    evil.prompt(f"{EVIL}hello terminal").text()
    store.close()
    return History(path, goat.id, cut.id, failed.id, evil.id)


def all_ids(h: History) -> list[str]:
    return [h.evil, h.failed, h.cut, h.goat]  # newest first


# --- list ----------------------------------------------------------------------------------------


def test_list_json_has_the_documented_fields(run, history: History) -> None:  # type: ignore[no-untyped-def]
    r = run("list", "--json", *history.db())
    assert r.status == 0 and r.err == ""
    rows = json.loads(r.out)
    assert [row["id"] for row in rows] == all_ids(history)
    assert all(list(row) == list(manage.SUMMARY_FIELDS) for row in rows)
    goat = rows[-1]
    assert goat["title"] == "Goat names"
    assert goat["model"] == "echo:echo"
    assert goat["system"] == "You are a goat"
    assert goat["turns"] == 2  # the turns of the current path
    assert goat["input_tokens"] > 0 and goat["output_tokens"] == 16  # every turn's, branches too
    assert goat["created"] <= goat["updated"] and goat["updated"].endswith("+00:00")


def test_list_into_a_pipe_is_tab_separated(run, history: History) -> None:  # type: ignore[no-untyped-def]
    r = run("list", *history.db())
    lines = r.out.splitlines()
    assert [line.split("\t")[0] for line in lines] == all_ids(history)
    goat = lines[-1].split("\t")
    assert goat[2:] == ["2", "echo:echo", "Goat names"]
    assert goat[1].endswith("+00:00")
    assert all(line.count("\t") == 4 for line in lines)


def test_list_on_a_terminal_is_a_table_with_safe_titles(run, history: History) -> None:  # type: ignore[no-untyped-def]
    r = run("list", *history.db(), tty=True)
    assert r.status == 0
    assert "\x1b]0;" not in r.out and "\x1b[2J" not in r.out
    text = r.plain
    header = text.splitlines()[0].split()
    assert header == ["id", "title", "model", "turns", "last", "active"]
    goat = next(line for line in text.splitlines() if line.startswith(history.goat))
    assert "Goat names" in goat and "echo:echo" in goat and " 2 " in goat
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d$", goat)
    evil = next(line for line in text.splitlines() if line.startswith(history.evil))
    assert "^[]0;pwned^G^[[2J" in evil


def test_list_n_limits_and_zero_means_all(run, history: History) -> None:  # type: ignore[no-untyped-def]
    assert len(json.loads(run("list", "-n", "2", "--json", *history.db()).out)) == 2
    assert len(json.loads(run("list", "-n", "0", "--json", *history.db()).out)) == 4
    bad = run("list", "-n", "-3", *history.db())
    assert bad.status == 2 and "cannot be negative" in bad.err


def test_list_of_an_empty_database(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    Store(tmp_path / "empty.db").close()
    db = ("--db", str(tmp_path / "empty.db"))
    assert run("list", "--json", *db).out == "[]\n"
    assert run("list", *db).out == ""
    r = run("list", *db, tty=True)
    assert r.status == 0 and "No conversations yet" in r.out


# --- show ----------------------------------------------------------------------------------------


def test_show_json_is_the_json_export(run, history: History) -> None:  # type: ignore[no-untyped-def]
    r = run("show", history.goat, "--json", *history.db())
    data = json.loads(r.out)
    store = Store(history.path, create=False)
    # the export, and what the conversation used and cost (tests/test_cost.py checks them)
    spent = {k: data["conversation"].pop(k) for k in ("usage", "cost")}
    assert set(spent["usage"]) == {"input", "output", "cache_read", "cache_write", "cached_share"}
    assert data == to_json(store.summary(history.goat), store.turns(history.goat, True))
    assert len(data["turns"]) == 3 and data["conversation"]["head"] == data["turns"][1]["id"]


def test_last_names_the_most_recently_active_conversation(run, history: History) -> None:  # type: ignore[no-untyped-def]
    # as the REPL's `/resume last` and `-c`: show, export, title and delete take it (any case)
    newest = all_ids(history)[0]
    shown = run("show", "last", "--json", *history.db())
    assert shown.status == 0 and json.loads(shown.out)["conversation"]["id"] == newest
    exported = json.loads(run("export", "LAST", "--format", "json", *history.db()).out)
    assert exported["conversation"]["id"] == newest
    assert run("title", "last", "Newest", *history.db()).status == 0
    assert Store(history.path, create=False).summary(newest).title == "Newest"
    assert run("delete", "last", "--yes", *history.db()).status == 0
    assert [s.id for s in Store(history.path, create=False).recent(10)] == all_ids(history)[1:]


def test_last_in_an_empty_database_is_one_sentence(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    Store(tmp_path / "chat.db").close()
    r = run("show", "last", "--db", str(tmp_path / "chat.db"))
    assert r.status == 1 and r.err == "chatrepl: There is no saved conversation yet.\n"


def test_show_markdown_and_a_pipe_give_the_markdown_export(run, history: History) -> None:  # type: ignore[no-untyped-def]
    store = Store(history.path, create=False)
    expected = to_markdown(store.summary(history.cut), store.turns(history.cut, True))
    assert run("show", history.cut, "--markdown", *history.db()).out == expected
    assert run("show", history.cut, *history.db()).out == expected
    assert "*(interrupted: the answer stopped here)*" in expected


def test_show_on_a_terminal_renders_each_turn(run, history: History) -> None:  # type: ignore[no-untyped-def]
    text = run("show", history.goat[:12], *history.db(), tty=True).plain
    assert text.splitlines()[0].startswith("Goat names ─")
    assert history.goat in text and "2 turns" in text
    assert "persona: You are a goat" in text
    assert text.index("Three names for a pet goat") < text.index("Two more, fit for a capybara")
    assert "take this one back" not in text
    failed = run("show", history.failed, *history.db(), tty=True).plain
    assert "partial" in failed and "failed: The server failed (HTTP 500): try again." in failed


def test_show_never_sends_control_characters_from_a_model_to_a_terminal(
    run, history: History
) -> None:  # type: ignore[no-untyped-def]
    for form in ((), ("--markdown",)):
        r = run("show", history.evil, *form, *history.db(), tty=True)
        assert "\x1b]0;" not in r.out and "\x1b[2J" not in r.out and "\x07" not in r.out
        assert "^[]0;pwned^G" in r.out
    raw = run("show", history.evil, "--markdown", *history.db())  # a pipe gets the text as it is
    assert EVIL in raw.out


# --- search --------------------------------------------------------------------------------------


def test_search_json_gives_hits_with_snippets(run, history: History) -> None:  # type: ignore[no-untyped-def]
    r = run("search", "capybara", "--json", *history.db())
    hits = json.loads(r.out)
    assert len(hits) == 1 and list(hits[0]) == list(manage.HIT_FIELDS)
    assert hits[0]["conversation_id"] == history.goat
    assert hits[0]["title"] == "Goat names"
    assert "[capybara]" in hits[0]["snippet"]
    two = json.loads(run("search", "goat", "--json", *history.db()).out)
    assert {h["conversation_id"] for h in two} == {history.goat}
    assert json.loads(run("search", "goat", "-n", "1", "--json", *history.db()).out) == two[:1]


def test_search_finds_turns_off_the_current_path_too(run, history: History) -> None:  # type: ignore[no-untyped-def]
    (hit,) = json.loads(run("search", "back", "--json", *history.db()).out)
    assert hit["conversation_id"] == history.goat and "[back]" in hit["snippet"]


def test_search_into_a_pipe_and_on_a_terminal(run, history: History) -> None:  # type: ignore[no-untyped-def]
    line = run("search", "pet", "goat", *history.db()).out.splitlines()
    assert len(line) == 1  # one hit per turn, its prompt or its answer
    cells = line[0].split("\t")
    assert cells[0] == history.goat and cells[3] == "Goat names" and "[pet]" in cells[4]
    r = run("search", "capybara", *history.db(), tty=True)
    assert "\x1b[1;33mcapybara" in r.out or "\x1b[33;1mcapybara" in r.out  # highlighted
    assert history.goat in r.plain and "Goat names" in r.plain
    none = run("search", "zebra", *history.db(), tty=True)
    assert none.status == 0 and "No turn matches 'zebra'" in none.out


def test_search_keeps_brackets_of_the_text(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "b.db")
    Conversation(get_backend("echo"), store=store).prompt("an array [] and [x] of llamas").text()
    r = run("search", "llamas", "--db", str(tmp_path / "b.db"), tty=True)
    assert "an array [] and [x] of llamas" in r.plain


def test_search_needs_words(run, history: History) -> None:  # type: ignore[no-untyped-def]
    r = run("search", "  ", *history.db())
    assert r.status == 2 and r.err.startswith("chatrepl: search for what?")


# --- export --------------------------------------------------------------------------------------


def test_export_markdown_and_json_to_stdout(run, history: History) -> None:  # type: ignore[no-untyped-def]
    md = run("export", history.goat, *history.db())
    assert md.status == 0 and md.out.startswith("# Goat names\n")
    js = run("export", history.goat, "--format", "json", *history.db())
    assert json.loads(js.out)["conversation"]["id"] == history.goat


def test_export_to_a_private_file(run, history: History, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "out" / "goat.json"
    r = run("export", history.goat.lower(), "--format", "json", "-o", str(target), *history.db())
    assert r.status == 0 and r.out == ""
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert json.loads(target.read_text())["conversation"]["title"] == "Goat names"
    target.chmod(0o644)
    run("export", history.goat, "-o", str(target), *history.db())  # overwritten, private again
    assert target.read_text().startswith("# Goat names")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    folder = run("export", history.goat, "-o", str(tmp_path), *history.db())
    assert folder.status == 1 and "is a folder" in folder.err


# --- title, delete -------------------------------------------------------------------------------


def test_title_sets_the_title(run, history: History) -> None:  # type: ignore[no-untyped-def]
    r = run("title", history.cut[:20], "Counting", "  slowly ", *history.db())
    assert r.status == 0 and r.out == ""
    rows = json.loads(run("list", "--json", *history.db()).out)
    assert next(row for row in rows if row["id"] == history.cut)["title"] == "Counting slowly"
    said = run("title", history.cut, "Counting", *history.db(), tty=True)
    assert said.out == f"{history.cut} is now titled: Counting\n"
    empty = run("title", history.cut, " ", *history.db())
    assert empty.status == 2 and "the title is empty" in empty.err


def test_delete_with_yes(run, history: History) -> None:  # type: ignore[no-untyped-def]
    r = run("delete", history.goat, history.cut[:22], "--yes", *history.db())
    assert r.status == 0
    ids = [row["id"] for row in json.loads(run("list", "--json", *history.db()).out)]
    assert ids == [history.evil, history.failed]
    assert json.loads(run("search", "goat", "--json", *history.db()).out) == []
    store = Store(history.path, create=False)
    assert store.count() == (2, 2)


def test_delete_asks_on_a_terminal(run, history: History) -> None:  # type: ignore[no-untyped-def]
    no = run("delete", history.goat, *history.db(), stdin="n\n", stdin_tty=True)
    assert no.status == 0
    assert "Goat names  (2 turns)" in no.err and "all its turns? [y/N]" in no.err
    assert "Nothing was deleted." in no.err
    assert len(json.loads(run("list", "--json", *history.db()).out)) == 4
    empty = run("delete", history.goat, *history.db(), stdin="", stdin_tty=True)  # Ctrl-D
    assert empty.status == 0 and len(json.loads(run("list", "--json", *history.db()).out)) == 4
    yes = run("delete", history.goat, *history.db(), stdin="y\n", stdin_tty=True, tty=True)
    assert yes.status == 0 and yes.out == "Deleted 1 conversation.\n"
    assert len(json.loads(run("list", "--json", *history.db()).out)) == 3


def test_delete_refuses_without_a_terminal_and_without_yes(run, history: History) -> None:  # type: ignore[no-untyped-def]
    r = run("delete", history.goat, *history.db(), stdin="y\n")
    assert r.status == 2
    assert r.err == (
        "chatrepl: not deleting without a confirmation: add --yes (stdin is not a terminal).\n"
    )
    assert len(json.loads(run("list", "--json", *history.db()).out)) == 4


def test_delete_deletes_nothing_when_one_id_is_wrong(run, history: History) -> None:  # type: ignore[no-untyped-def]
    r = run("delete", history.goat, "01ZZZZZZ", "--yes", *history.db())
    assert r.status == 1 and "No conversation has an id starting with '01ZZZZZZ'" in r.err
    assert len(json.loads(run("list", "--json", *history.db()).out)) == 4


# --- ids: bad, unknown, ambiguous ----------------------------------------------------------------

ID_COMMANDS = [
    ("show", "{id}"),
    ("show", "{id}", "--json"),
    ("export", "{id}"),
    ("export", "{id}", "--format", "json"),
    ("title", "{id}", "New title"),
    ("delete", "{id}", "--yes"),
]


@pytest.mark.parametrize("argv", ID_COMMANDS, ids=lambda a: " ".join(a))
def test_bad_unknown_and_ambiguous_ids_are_one_clear_line(run, history: History, argv) -> None:  # type: ignore[no-untyped-def]
    common = os.path.commonprefix(all_ids(history))
    cases = {
        "not-an-id!": "'not-an-id!' is not a conversation id",
        "01ZZZZZZZZZZZZZZZZZZZZZZZZ": "No conversation has an id starting with",
        common: f"'{common}' matches several conversations",
    }
    for bad, message in cases.items():
        r = run(*[a.format(id=bad) for a in argv], *history.db())
        assert r.status == 1, (bad, r)
        assert r.out == ""
        assert r.err.startswith("chatrepl: ") and message in r.err and r.err.count("\n") == 1
    assert len(json.loads(run("list", "--json", *history.db()).out)) == 4


# --- a missing database: a sentence, and no empty database left behind ---------------------------

READ_COMMANDS = [
    ("list",),
    ("list", "--json"),
    ("show", "01JD8X"),
    ("show", "01JD8X", "--json"),
    ("search", "goat"),
    ("search", "goat", "--json"),
    ("export", "01JD8X"),
    ("title", "01JD8X", "x"),
    ("delete", "01JD8X", "--yes"),
]


@pytest.mark.parametrize("argv", READ_COMMANDS, ids=lambda a: " ".join(a))
def test_a_missing_database_is_a_sentence_and_stays_missing(run, tmp_path: Path, argv) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "nothing" / "chat.db"
    r = run(*argv, "--db", str(db))
    assert r.status == 1 and r.out == ""
    assert r.err == f"chatrepl: There is no chatrepl database at {db} yet: nothing saved.\n"
    assert not db.exists() and not db.parent.exists()


def test_the_default_database_is_not_created_either(run, home: Path) -> None:  # type: ignore[no-untyped-def]
    r = run("list")
    assert r.status == 1 and "There is no chatrepl database" in r.err
    assert not home.exists()


def test_an_empty_database_answers_every_read(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    Store(tmp_path / "e.db").close()
    db = ("--db", str(tmp_path / "e.db"))
    assert run("search", "goat", "--json", *db).out == "[]\n"
    assert run("search", "goat", *db).out == ""
    r = run("show", "01JD8X", *db)
    assert r.status == 1 and "No conversation has an id starting with '01JD8X'" in r.err


def test_a_file_that_is_not_a_database(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    r = run("list", "--db", str(junk))
    assert r.status == 1 and r.err.startswith("chatrepl: ") and "corrupt" in r.err
    assert junk.read_bytes() == b"this is not sqlite at all" * 100


# --- models --------------------------------------------------------------------------------------


@pytest.fixture
def configured(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        'default_model = "fast"\n'
        "[providers.openrouter]\n"
        'type = "openai"\n'
        'base_url = "https://user:pw@openrouter.example/api/v1"\n'
        'api_key_env = "OPENROUTER_API_KEY"\n'
        'models = ["meta-llama/llama-3.3-70b-instruct"]\n'
        "[aliases]\n"
        'fast = "openai:gpt-4o-mini"\n'
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-0123456789")


def test_models_json(run, configured: None) -> None:  # type: ignore[no-untyped-def]
    r = run("models", "--json")
    assert r.status == 0 and "sk-very-secret" not in r.out and ":pw@" not in r.out
    info = json.loads(r.out)
    assert info["default"] == "fast" and info["default_resolved"] == "openai:gpt-4o-mini"
    assert info["offline_fallback"] is False
    assert info["aliases"] == {"fast": "openai:gpt-4o-mini"}
    by = {p["name"]: p for p in info["providers"]}
    assert list(by)[:4] == ["openai", "anthropic", "ollama", "echo"]
    assert list(by)[-1] == "openrouter"  # configured providers come after the built-in ones
    assert by["openai"]["key"] == "set" and by["openai"]["usable"] is True
    assert by["anthropic"]["key"] == "missing" and by["anthropic"]["usable"] is False
    assert by["anthropic"]["key_env"] == "ANTHROPIC_API_KEY"
    assert by["ollama"]["key"] == "not needed"
    assert by["openrouter"]["models"] == ["openrouter:meta-llama/llama-3.3-70b-instruct"]
    # credentials in the configured URL shown by the one rule for URLs: as ***
    assert by["openrouter"]["base_url"] == "https://***@openrouter.example/api/v1"
    assert "openai:gpt-4o-mini" in by["openai"]["models"]
    assert set(by["echo"]) == {
        *("name", "type", "key", "key_env", "usable", "status", "why", "base_url", "models")
    }
    assert by["echo"]["status"] == "ready" and by["anthropic"]["status"] == "no-key"
    assert by["ollama"]["status"] == "unreachable" and by["ollama"]["usable"] is False


def test_models_on_a_terminal_and_into_a_pipe(run, configured: None) -> None:  # type: ignore[no-untyped-def]
    text = run("models", tty=True).plain
    assert re.search(r"openai\s+set\s+ready\s+openai:gpt-4o-mini", text)
    assert re.search(r"ollama\s+not needed\s+unreachable\s+ollama:llama3.2", text)
    assert re.search(r"anthropic\s+missing \(ANTHROPIC_API_KEY\)", text)
    assert "alias fast → openai:gpt-4o-mini" in text
    assert "default: fast (openai:gpt-4o-mini)" in text
    lines = run("models").out.splitlines()
    assert "openai:gpt-4o-mini\tready\tdefault" in lines
    assert "anthropic:claude-sonnet-4-5\tno-key\t" in lines
    assert "echo:echo\tready\t" in lines
    assert "fast\tready\talias of openai:gpt-4o-mini" in lines


def test_models_without_any_key_names_the_offline_default(run) -> None:  # type: ignore[no-untyped-def]
    info = json.loads(run("models", "--json").out)
    assert info["default"] == "echo:echo" and info["offline_fallback"] is True
    assert "the offline model" in run("models", tty=True).plain


def test_models_with_a_broken_config_is_one_line(run, home: Path) -> None:  # type: ignore[no-untyped-def]
    home.mkdir(parents=True)
    (home / "config.toml").write_text("default_model = [unclosed\n")
    r = run("models")
    assert r.status == 1 and r.err.startswith("chatrepl: ") and "not valid TOML" in r.err


# --- import --------------------------------------------------------------------------------------


def test_export_then_import_is_identical(run, history: History, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for cid in all_ids(history):
        target = tmp_path / f"{cid}.json"
        assert run("export", cid, "--format", "json", "-o", str(target), *history.db()).status == 0
        other = ("--db", str(tmp_path / "other.db"))
        r = run("import", str(target), *other)
        assert r.status == 0 and r.out.startswith(f"Imported {cid} (")
        again = run("export", cid, "--format", "json", *other).out
        assert again == target.read_text()
        assert (
            run("show", cid, "--markdown", *other).out
            == run("show", cid, "--markdown", *history.db()).out
        )


def test_import_twice_imports_nothing_twice(run, history: History, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    exported = run("export", history.goat, "--format", "json", *history.db()).out
    r = run("import", "-", *history.db(), stdin=exported)
    assert (
        r.status == 0 and r.out == f"Already here, nothing imported: {history.goat} (Goat names)\n"
    )
    assert Store(history.path, create=False).count() == (4, 6)


def test_import_refuses_what_is_not_an_export(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = ("--db", str(tmp_path / "chat.db"))
    (tmp_path / "notes.md").write_text("# not json\n")
    r = run("import", str(tmp_path / "notes.md"), *db)
    assert r.status == 1 and r.err.startswith(
        f"chatrepl: {tmp_path / 'notes.md'} is not a chatrepl"
    )
    (tmp_path / "other.json").write_text('{"hello": 1}')
    r = run("import", str(tmp_path / "other.json"), *db)
    assert r.status == 1 and "not a chatrepl JSON export" in r.err
    r = run("import", str(tmp_path / "missing.json"), *db)
    assert r.status == 1 and "Cannot read" in r.err
    assert not (tmp_path / "chat.db").exists()  # nothing to import, nothing created


# --- usage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [("show",), ("list", "--bogus"), ("export", "X", "--format", "pdf"), ("title", "X")],
)
def test_usage_errors_exit_2(run, argv) -> None:  # type: ignore[no-untyped-def]
    r = run(*argv)
    assert r.status == 2 and "usage: chatrepl" in r.err


def test_help_has_an_example_for_every_command(run) -> None:  # type: ignore[no-untyped-def]
    for name in ("list", "show", "search", "export", "title", "delete", "models", "import"):
        r = run(name, "--help")
        assert r.status == 0 and f"example: chatrepl {name}" in r.out
    assert "example: chatrepl import-llm" in run("import-llm", "--help").out


# --- the real program: through cli.py, in a pipe and on a pseudo-terminal ------------------------


def chatrepl(*argv: str, **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return run_chatrepl(*argv, **kw)


def test_the_program_exits_1_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    db = tmp_path / "none.db"
    p = chatrepl("show", "01JD8X", "--db", str(db))
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr == f"chatrepl: There is no chatrepl database at {db} yet: nothing saved.\n"
    assert not db.exists()
    assert chatrepl("list", "--nope").returncode == 2


def test_the_program_in_a_pipe_that_closes_early(history: History) -> None:
    p = subprocess.run(
        f"{sys.executable} -m chatrepl list --db {history.path} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert p.stdout.startswith(history.evil) and "Traceback" not in p.stderr


def test_output_cut_short_by_its_reader_ends_quietly(history: History) -> None:
    # `true` leaves without reading: every write of chatrepl meets a closed pipe (`head`
    # would not do here: some machines' pipes hold megabytes).
    for argv in (f"list --db {history.path}", f"show {history.goat} --db {history.path}"):
        p = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {sys.executable} -m chatrepl {argv} | true"],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=60,
        )
        assert p.stderr == "" and p.returncode == 141, argv


def test_delete_on_a_real_terminal(history: History) -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "chatrepl", "delete", history.goat[:16], "--db", str(history.path)],
        env=child_env(COLUMNS="120"),
        encoding="utf-8",
        timeout=30,
    )
    child.expect(r"Delete this conversation and all its turns\? \[y/N\] ")
    assert "Goat names" in child.before
    child.sendline("y")
    child.expect("Deleted 1 conversation.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert Store(history.path, create=False).count()[0] == 3


def test_list_on_a_real_terminal(history: History) -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "chatrepl", "list", "--db", str(history.path)],
        env=child_env(COLUMNS="120"),
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 120),
    )
    child.expect(pexpect.EOF)
    child.close()
    text = ANSI.sub("", child.before)
    assert child.exitstatus == 0
    assert text.split()[:6] == ["id", "title", "model", "turns", "last", "active"]
    assert re.search(rf"{history.goat}\s+Goat names\s+echo:echo\s+2\s", text)
    assert "\x1b]0;pwned" not in child.before
