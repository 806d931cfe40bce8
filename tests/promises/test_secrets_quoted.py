"""A key is never stored or shown: not when a server quotes it back in a normal answer or an
error, not when it sits in a base URL (user:password, a query parameter), in messages, the
database, exports, listings or ``chatrepl models``."""

from __future__ import annotations

import pytest
from conftest import child_env, run_chatrepl
from fakeserver import Answer, Status, Text

KEY = "sk-proxy-SECRETKEY-0123456789abcdef"
PASSWORD = "hunter2PASSWORD"
QUERY = "AIzaQUERYSECRET42"
SECRETS = (KEY[3:], PASSWORD, QUERY)


def configure(home, url: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'default_model = "proxy:m"\n[providers.proxy]\ntype = "openai"\nbase_url = "{url}"\n'
        'api_key_env = "PROXY_KEY"\nmodels = ["m"]\n',
        "utf-8",
    )


def assert_nowhere(*texts: str, secrets: tuple[str, ...] = SECRETS) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, (secret, text[:2000])


def everything_on_disk(folder) -> str:
    """Every file under ``folder`` (the database with its -wal, exports), as text."""
    files = [folder] if folder.is_file() else [p for p in folder.rglob("*") if p.is_file()]
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in files)


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:{pw}@127.0.0.1:{port}/v1",
        "http://127.0.0.1:{port}/v1?key={q}",
        "http://alice:{pw}@127.0.0.1:{port}/v1?key={q}&other=1",
    ],
)
def test_secrets_reach_no_message_file_export_or_listing(server, home, tmp_path, url):
    configure(home, url.format(pw=PASSWORD, q=QUERY, port=server.port))
    env = child_env(PROXY_KEY=KEY)
    db = tmp_path / "data" / "chat.db"
    server.push(Answer(Text("Your key is ", KEY, f", your password {PASSWORD}, query {QUERY}.")))
    ok = run_chatrepl("--db", str(db), "-p", "what are my secrets?", env=env)
    assert ok.returncode == 0, ok.stderr
    server.push(Status(401, {"error": {"message": f"bad key {KEY} for {QUERY}"}}))
    failed = run_chatrepl("--db", str(db), "-c", "-p", "again", env=env)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    outputs = [ok.stdout, ok.stderr, failed.stdout, failed.stderr]
    listed = run_chatrepl("list", "--db", str(db), env=env)
    cid = listed.stdout.split("\t")[0]
    for argv in (
        ("list", "--json"),
        ("show", cid),
        ("show", cid, "--json"),
        ("export", cid),
        ("export", cid, "--format", "json"),
        ("search", "key"),
        ("models",),
        ("models", "--json"),
    ):
        out = (
            run_chatrepl(*argv, "--db", str(db), env=env)
            if argv[0] != "models"
            else (run_chatrepl(*argv, env=env))
        )
        assert out.returncode == 0, (argv, out.stderr)
        outputs += [out.stdout, out.stderr]
    secrets = tuple(s for s in SECRETS if s in url.format(pw=PASSWORD, q=QUERY, port=0)) + (
        KEY[3:],
    )
    files = everything_on_disk(tmp_path / "data") + everything_on_disk(home / "keys.json")
    assert_nowhere(*outputs, files, secrets=secrets)


def test_a_built_in_provider_pointed_elsewhere_is_named_by_its_host_without_credentials(
    server, home, tmp_path
):
    url = f"http://alice:{PASSWORD}@127.0.0.1:{server.port}/v1?key={QUERY}"
    env = child_env(OPENAI_BASE_URL=url, OPENAI_API_KEY=KEY)
    server.push(Status(401))
    out = run_chatrepl("--db", str(tmp_path / "c.db"), "-m", "openai:gpt", "-p", "hi", env=env)
    assert out.returncode == 1
    line = out.stderr.strip()
    assert line.startswith("chatrepl: Server 127.0.0.1:") and "OpenAI" not in line, line
    assert_nowhere(out.stdout, out.stderr)


def test_a_bad_base_url_is_one_sentence_that_does_not_quote_it(home, tmp_path):
    configure(home, f"ftp://alice:{PASSWORD}@example.com/v1?key={QUERY}")
    out = run_chatrepl("--db", str(tmp_path / "c.db"), "-p", "hi", env=child_env(PROXY_KEY=KEY))
    assert out.returncode == 1 and len(out.stderr.splitlines()) == 1, out.stderr
    assert "http:// or https://" in out.stderr
    assert_nowhere(out.stdout, out.stderr)
