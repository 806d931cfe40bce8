"""Bad input: always one clear sentence, and the session goes on.

Fuzzed with hypothesis: the slash-command dispatcher (any command, any argument: unknown
names, wrong arguments, control characters, ids that do not exist or are ambiguous) and
``Store.resolve``. Through the real process: invalid UTF-8 on the command line, control
characters and a 1 MB paste on stdin, bad and ambiguous ids.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

import pytest
from conftest import child_env, run_chatrepl
from fakeserver import Reply
from harness import Harness, make
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prompt_toolkit.input import create_pipe_input
from pty_repl import chatrepl as repl
from pty_repl import say

from chatrepl import errors, get_model
from chatrepl.repl import commands
from chatrepl.store import Store

CONTROL = "".join(map(chr, [*range(0, 9), *range(11, 32), 127, *range(0x80, 0xA0)]))
BROKEN = "Something went wrong inside chatrepl"


def chatrepl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return run_chatrepl(*args, input=input, text=False)


def one_line(text: str) -> str:
    text = text.strip()
    assert text and "\n" not in text, text
    assert not set(text) & set(CONTROL), text  # shown as ^[ and friends, never raw
    return text


def populate(store: Store, n: int = 12) -> list[str]:
    """``n`` conversations made in the same moment: their ids share long prefixes."""
    ids = []
    for i in range(n):
        c = get_model("echo").conversation(store=store)
        c.prompt(f"conversation number {i}").text()
        ids.append(c.id)
    return ids


# --- Store.resolve ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crowded(tmp_path_factory) -> tuple[Store, list[str]]:
    store = Store(tmp_path_factory.mktemp("resolve") / "ids.db")
    return store, populate(store, 30)


def ids_and_noise(ids: list[str]):
    prefix = st.builds(lambda i, n: i[:n], st.sampled_from(ids), st.integers(0, 27))
    return st.one_of(
        st.text(max_size=40),
        st.text(alphabet="0123456789ABCDEFGHJKMNPQRSTVWXYZabcILOU ", max_size=30),
        prefix,
        prefix.map(str.lower),
        prefix.map(lambda p: f"  {p}\t"),
        st.builds(lambda p, c: p + c, prefix, st.text(alphabet=CONTROL, min_size=1, max_size=3)),
    )


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_resolve_finds_one_id_or_says_why_in_one_sentence(crowded, data):
    store, ids = crowded
    text = data.draw(ids_and_noise(ids))
    try:
        found = store.resolve(text)
    except errors.AmbiguousIdError as exc:
        message = one_line(str(exc))
        assert "matches several conversations" in message and len(message) < 300
        assert len(exc.candidates) >= 2
        assert all(c.startswith(text.strip().upper()) for c in exc.candidates)
    except errors.NotFoundError as exc:
        message = one_line(str(exc))
        assert len(message) < 300
        assert not any(i.startswith(text.strip().upper()) for i in ids if text.strip())
    else:
        assert found in ids and found.startswith(text.strip().upper())


# --- the slash-command dispatcher ---------------------------------------------------------------

NAMES = sorted(set(commands.names()) - {"export"})  # /export FILE is fuzzed apart: it writes


@pytest.fixture
def repl_session(tmp_path, monkeypatch):
    """A REPL on a crowded database, an editor that saves what it was given, a closed network."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDITOR", "true")
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "OLLAMA_HOST"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # a model switched to fails fast
    store = Store(tmp_path / "fuzz.db")
    ids = populate(store)
    with create_pipe_input() as pipe:
        h = Harness(make(store, pipe=pipe), pipe)
        h.repl.console.width = 2000  # a sentence is one line; the screen's wrapping is not ours
        h.run("a first message")
        yield h, ids


def command_lines(ids: list[str]):
    prefix = st.builds(lambda i, n: i[:n], st.sampled_from(ids), st.integers(1, 26))
    argument = st.one_of(
        st.just(""),
        st.text(max_size=60),
        st.text(alphabet=CONTROL + "ab [/]", max_size=20),
        st.sampled_from(["last", "0", "1", "3", "999", "-1", "code", "--clear", "echo", "[bold]x"]),
        prefix,
        st.integers(-5, 10**12).map(str),
        st.sampled_from(["echo:echo", "nosuch:model", "openai", "openai:gpt-test", ":", "a:"]),
    )
    name = st.one_of(
        st.sampled_from(NAMES), st.sampled_from(NAMES).map(str.upper), st.text(max_size=12)
    )
    space = st.sampled_from([" ", "  ", "\t", "\n"])
    return st.builds(lambda n, s, a: f"/{n}{s}{a}", name, space, argument)


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_slash_command_line_is_handled_and_the_session_goes_on(repl_session, data):
    h, ids = repl_session
    line = data.draw(command_lines(ids))
    name, _ = commands.split(line)
    h.pipe.send_text("n\r")  # should it ask (/delete): no
    out = h.run(line)
    assert BROKEN not in out, (line, out)
    assert "Traceback" not in out
    assert "\x1b[" not in out.replace("\x1b]52;", "")  # nothing typed is echoed raw
    if commands.lookup(name) is None and not line.startswith("//"):  # // sends a message
        assert one_line(out).startswith(("Unknown command /", "A command goes right after"))
    # Whatever it was, the session still answers, in a conversation that is saved.
    h.repl.conversation.set_model(get_model("echo"))
    h.repl.running = True
    assert "still here" in h.run("still here")
    assert h.store.turns(h.repl.conversation.id)[-1].prompt == "still here"


BAD_ARGUMENTS = [
    "/list many",
    "/list -3",
    "/resume 999",
    "/resume ZZZZZZZZ",
    "/resume 0",
    "/resume !!",
    "/resume \x1b[2J",
    "/delete ZZZZZZZZ",
    "/model nosuch:thing",
    "/model :",
    "/model openai:",
    "/copy everything",
    "/export .",
    "/export fuzz.db/inside/a/file.md",
    "/help nosuch",
    "/nosuch",
    "/",
    "/\x00\x07",
    "/" + "x" * 10_000,
]


def test_each_wrong_argument_is_one_sentence(repl_session):
    h, ids = repl_session
    h.run("/resume " + ids[0][:26])  # a conversation with a turn, for /copy
    for line in [*BAD_ARGUMENTS, "/resume " + ids[0][:4], "/delete " + ids[0][:4]]:
        out = h.run(line).strip()
        assert out.count("\n") == 0 and BROKEN not in out and len(out) < 300, (line, out)
        one_line(out)
    assert "matches several conversations" in h.run("/resume " + ids[0][:4])
    assert "still here" in h.run("still here")


def test_a_megabyte_message_and_control_characters_in_the_repl(repl_session):
    h, _ = repl_session
    big = " ".join(f"word{i}" for i in range(150_000))[:1_000_000]
    out = h.run(big)
    assert BROKEN not in out
    assert h.store.turns(h.repl.conversation.id)[-1].prompt == big.strip()
    assert h.store.turns(h.repl.conversation.id)[-1].response == big.strip()
    weird = "a\x00b\x07c\x1b[2Jd\x7fe\x9bf\rg"
    out = h.run(weird)
    assert "\x1b[2J" not in out and "^[[2J" in out
    assert h.store.turns(h.repl.conversation.id)[-1].prompt == weird  # saved as typed


# --- through the process ----------------------------------------------------------------------


def test_invalid_utf8_in_the_arguments(tmp_path):
    """argv that is not UTF-8 (a file name from an old disk, a stray byte) is not a traceback."""
    db = str(tmp_path / "bytes.db")
    out = subprocess.run(
        [
            sys.executable.encode(),
            b"-m",
            b"chatrepl",
            b"-p",
            b"caf\xe9 \xff\xfe",
            b"--db",
            db.encode(),
        ],
        capture_output=True,
        env=child_env(),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert b"Traceback" not in out.stderr
    assert out.stdout.decode() == "caf\ufffd \ufffd\ufffd\n"
    con = sqlite3.connect(db)
    assert con.execute("SELECT prompt, response FROM turn_texts").fetchone() == (
        "caf\ufffd \ufffd\ufffd",
        "caf\ufffd \ufffd\ufffd",
    )
    out = subprocess.run(
        [
            sys.executable.encode(),
            b"-m",
            b"chatrepl",
            b"-s",
            b"\xff persona",
            b"-p",
            b"x",
            b"--db",
            db.encode(),
        ],
        capture_output=True,
        env=child_env(),
        timeout=60,
    )
    assert out.returncode == 0 and b"Traceback" not in out.stderr, out.stderr
    for args in ([b"-r", b"\xff\xfe"], [b"-m", b"\xffmodel"]):
        out = subprocess.run(
            [sys.executable.encode(), b"-m", b"chatrepl", *args, b"-p", b"x", b"--db", db.encode()],
            capture_output=True,
            env=child_env(),
            timeout=60,
        )
        assert out.returncode == 1, out.stderr
        assert out.stderr.count(b"\n") == 1 and b"Traceback" not in out.stderr


def test_control_characters_and_a_megabyte_on_stdin(tmp_path):
    db = tmp_path / "stdin.db"
    weird = "nul\x00 bell\x07 esc\x1b[2J del\x7f c1\x9b cr\r done"
    out = chatrepl("-m", "echo", "--db", str(db), input=weird.encode())
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == weird + "\n"  # a pipe gets the text as it is
    big = ("x" * 99 + "\n") * 10_000  # 1 MB in 10,000 lines
    out = chatrepl("-m", "echo", "--db", str(db), input=big.encode())
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == big.strip() + "\n"
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT x.prompt, x.response, t.status FROM turns t "
        "JOIN turn_texts x ON x.seq = t.seq ORDER BY t.seq"
    ).fetchall()
    assert rows == [(weird, weird, "complete"), (big.strip(), big.strip(), "complete")]


def test_ids_that_do_not_exist_or_are_ambiguous(tmp_path):
    db = tmp_path / "ids.db"
    ids = populate(Store(db), 3)
    cases = {
        ("-r", ids[0][:2]): "matches several conversations",
        ("-r", ""): "not a conversation id",  # `-r "$ID"` with $ID unset
        ("-r", "ZZZZZZZZZZ"): "No conversation",
        ("-r", "hello world"): "not a conversation id",
        ("-r", "x" * 100): "not a conversation id",
        ("-r", "01ab\x1b[2J"): "not a conversation id",
        ("show", ids[0][:2]): "matches several conversations",
        ("export", "ZZZZ"): "No conversation",
        ("title", "!!", "new"): "not a conversation id",
        ("delete", "ZZZZ", "--yes"): "No conversation",
    }
    for args, says in cases.items():
        extra = ["-p", "hi"] if args[0] == "-r" else []
        out = chatrepl(*args, *extra, "--db", str(db))
        err = out.stderr.decode()
        assert out.returncode == 1, (args, err)
        assert one_line(err).startswith("chatrepl: ") and says in err, (args, err)
    assert Store(db).count() == (3, 3)  # nothing was added or deleted


# --- typed into the real REPL -----------------------------------------------------------------


def test_bad_input_typed_and_pasted_into_the_repl(home, openai_env):
    """Bytes that are not UTF-8, control characters, unknown commands and a 1 MB paste, in a
    pseudo-terminal: each gets an answer or one sentence, and the session goes on."""
    big = ("y" * 99 + "\n") * 10_000
    with repl(home) as t:
        t.child.send(b"caf\xe9 \xff\xfe")  # a terminal set to Latin-1, or a stray byte
        t.line("")
        t.wait_for("You said: caf\ufffd \ufffd\ufffd")
        t.wait_prompt()
        for line, answer in (
            (b"/system \xff persona", "Persona set from the next turn on: \ufffd persona"),
            (b"/title caf\xe9", "Title: caf\ufffd"),
            (b"/search caf\xe9", "caf\ufffd"),
            (b"/resume \xff", "'\ufffd' is not a conversation id"),
        ):
            t.child.send(line)
            t.line("")
            t.wait_for(re.escape(answer))
            t.wait_prompt()
        t.paste("bell\x07 nul\x00 esc\x1b[2J del\x7f")
        t.line("")
        t.wait_for(r"You said: bell\^G nul\^@ esc\^\[\[2J del\^\?")
        t.wait_prompt()
        for line, answer in (
            ("/nosuch", "Unknown command /nosuch: see /help"),
            ("/resum 1", "Unknown command /resum: did you mean /resume?"),
            ("/list lots", "'lots' is not a number"),
            ("/" + "z" * 5000, "Unknown command /zzzz"),
        ):
            say(t, line, answer)
        # The answer is kept short: this is about the input (a long single-paragraph answer
        # streamed over the network is slow to render; see README-reliability.md).
        openai_env.push(Reply("got the big one"))
        t.paste(big)
        t.wait_for("^· y")
        t.settle(quiet=0.5, timeout=30)
        t.line("")
        t.wait_for("got the big one", timeout=60)
        t.wait_prompt()
        assert len(openai_env.last["json"]["messages"][-1]["content"]) == len(big.strip())
        say(t, "still here?", "You said: still here?")
        screen = t.scrollback()
        t.key("ctrl-d")
        assert t.wait_exit() == 0
    assert BROKEN not in screen and "Traceback" not in screen
    assert screen.count("Unknown command /") == 3  # /nosuch, /resum, /zzz…
    assert "did you mean /resume?" in screen
    store = Store(home / "chatrepl.db")
    cid = store.last_id()
    summary = store.summary(cid)
    assert (summary.title, summary.system) == ("caf\ufffd", "\ufffd persona")
    prompts = [turn.prompt for turn in store.turns(cid)]
    assert prompts == [
        "caf\ufffd \ufffd\ufffd",
        "bell\x07 nul\x00 esc\x1b[2J del\x7f",
        big.strip(),
        "still here?",
    ]
    assert all(turn.status == "complete" for turn in store.turns(cid))
