"""Every number and URL a user gives (config.toml, the environment, the command line, the REPL)
is checked, and a bad one is one sentence: never a traceback, never a hang, never a request."""

from __future__ import annotations

import io
import sys

import pytest

from chatrepl.cli import main
from chatrepl.errors import ConfigError
from chatrepl.providers.registry import get_backend

BAD_NUMBERS = ["nan", "inf", "-inf", "-1", "0", "1e400", "-0.0", "true", '"ten"', "[1]", "1e30"]


class Stream(io.StringIO):
    def isatty(self) -> bool:
        return False


def run(monkeypatch, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = Stream(), Stream()
    with monkeypatch.context() as mp:
        mp.setattr(sys, "stdout", out)
        mp.setattr(sys, "stderr", err)
        mp.setattr(sys, "stdin", io.StringIO(stdin))
        try:
            status = main(list(argv))
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 2
    return status, out.getvalue(), err.getvalue()


def one_sentence(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def configure(home, body: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(body, "utf-8")


@pytest.mark.parametrize(
    "setting, value",
    [
        (setting, value)
        for setting in ("read_timeout", "connect_timeout", "max_retries")
        for value in BAD_NUMBERS
        if (setting, value) != ("max_retries", "0")  # no retries is a fine choice
    ],
)
def test_a_bad_numeric_setting_is_one_sentence(home, server, setting, value):
    configure(
        home,
        f'[providers.p]\ntype = "openai"\nbase_url = "{server.openai_url}"\n'
        f"needs_key = false\n{setting} = {value}\n",
    )
    with pytest.raises(ConfigError) as caught:
        get_backend("p:m")
    said = str(caught.value)
    assert said.startswith("config.toml: [providers.p] " + setting) and said.endswith(".")
    assert "\n" not in said
    assert server.requests == []


def test_zero_retries_and_fractional_timeouts_are_fine(home, server):
    configure(
        home,
        f'[providers.p]\ntype = "openai"\nbase_url = "{server.openai_url}"\nneeds_key = false\n'
        "max_retries = 0\nread_timeout = 0.5\nconnect_timeout = 2\n",
    )
    model = get_backend("p:m")
    assert model.endpoint.max_retries == 0 and model.endpoint.read_timeout == 0.5


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "0", "1e999", "soon", "10 s", "１e400"])
def test_a_bad_chatrepl_timeout_is_one_sentence(openai_env, monkeypatch, tmp_path, value):
    monkeypatch.setenv("CHATREPL_TIMEOUT", value)
    status, out, err = run(monkeypatch, "-m", "openai:g", "-p", "hi", "--db", str(tmp_path / "d"))
    assert status == 1
    assert one_sentence(err).startswith("chatrepl: CHATREPL_TIMEOUT must be")
    assert openai_env.requests == []


@pytest.mark.parametrize("option", ["max_tokens = -1", "max_tokens = 0", "temperature = nan"])
def test_a_bad_numeric_option_is_one_sentence(home, server, option):
    configure(
        home,
        f'[providers.p]\ntype = "openai"\nbase_url = "{server.openai_url}"\nneeds_key = false\n'
        f"[providers.p.options]\n{option}\n",
    )
    with pytest.raises(ConfigError, match=r"^config.toml: \[providers.p.options\] "):
        get_backend("p:m")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/v1",
        "file:///etc/passwd",
        "http://",
        "https:///v1",
        "http://exa mple.com",
        "http://example.com:99999/v1",
        "http://example.com:port/v1",
        "http://[::1/v1",
        "javascript:alert(1)",
    ],
)
def test_a_bad_base_url_is_one_sentence(home, monkeypatch, tmp_path, url):
    configure(home, f'[providers.p]\ntype = "openai"\nbase_url = "{url}"\nneeds_key = false\n')
    status, _, err = run(monkeypatch, "-m", "p:m", "-p", "hi", "--db", str(tmp_path / "d"))
    assert status == 1
    line = one_sentence(err)
    assert "base URL" in line and "config.toml [providers.p] base_url" in line, line


@pytest.mark.parametrize("url", ["ftp://x", "http://", "http://h:0"])
def test_a_bad_base_url_in_the_environment_names_the_variable(monkeypatch, tmp_path, url):
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    status, _, err = run(monkeypatch, "-m", "openai:g", "-p", "hi", "--db", str(tmp_path / "d"))
    assert status == 1 and "OPENAI_BASE_URL" in one_sentence(err)


def test_a_host_without_a_scheme_still_works(server, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{server.port}")
    assert get_backend("ollama:llama3.2").endpoint.base_url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("n", ["-1", "x", "nan", "1.5", "", "9" * 5000])
def test_a_bad_count_on_the_command_line_is_a_usage_error(monkeypatch, tmp_path, n):
    for argv in (("list", "-n", n), ("search", "goat", "-n", n)):
        status, _, err = run(monkeypatch, *argv, "--db", str(tmp_path / "d"))
        assert status == 2 and "Traceback" not in err
        assert err.strip().splitlines()[-1].startswith("chatrepl ")
        assert len(err) < 1000  # a huge argument is not quoted back whole


def test_a_huge_count_lists_everything(monkeypatch, tmp_path):
    from chatrepl.store import Store

    Store(tmp_path / "d").close()
    for argv in (("list", "-n", "9" * 40), ("search", "goat", "-n", "9" * 40)):
        status, _, err = run(monkeypatch, *argv, "--db", str(tmp_path / "d"))
        assert status == 0, err
