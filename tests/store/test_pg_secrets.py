"""A PostgreSQL failure never carries the URL's password: not in the sentence, not in the
exception chain a traceback would show, not on stderr; for each way a connection can fail."""

from __future__ import annotations

import socket
import traceback
from urllib.parse import urlsplit

import pytest
from conftest import run_chatrepl

from chatrepl.errors import StoreError
from chatrepl.store import Store

pytest_plugins = ("pgserver",)
pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[postgres]'")

OTHER = "Other-5ecret-77"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bad_urls(pg_server, good: str) -> dict[str, tuple[str, str]]:
    """URLs that fail, by how: (the URL, the password it carries)."""
    from pgserver import PASSWORD, USER

    host = f"{pg_server.host}:{pg_server.port}"
    name = urlsplit(good).path
    return {
        "wrong password": (f"postgresql://{USER}:{OTHER}@{host}{name}", OTHER),
        "no such database": (f"postgresql://{USER}:{PASSWORD}@{host}/nosuchdb", PASSWORD),
        "nothing listening": (
            f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{closed_port()}/x",
            PASSWORD,
        ),
        "a bad option": (f"postgresql://{USER}:{PASSWORD}@{host}{name}?sslmode=bogus", PASSWORD),
        "an unknown parameter": (
            f"postgresql://{USER}:{PASSWORD}@{host}{name}?password={OTHER}&bogus=1",
            OTHER,
        ),
        "the password as a parameter": (
            f"postgresql://{host}{name}?user={USER}&password={OTHER}",
            OTHER,
        ),
    }


@pytest.mark.parametrize(
    "how",
    [
        "wrong password",
        "no such database",
        "nothing listening",
        "a bad option",
        "an unknown parameter",
        "the password as a parameter",
    ],
)
def test_a_failure_never_carries_the_password(pg_server, pg_url, how):
    url, password = bad_urls(pg_server, pg_url)[how]
    with pytest.raises(StoreError) as caught:
        Store(url)
    shown = "".join(traceback.format_exception(caught.value))
    assert password not in shown and password not in repr(caught.value)
    out = run_chatrepl("list", "--db", url)
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert password not in out.stderr + out.stdout


def test_a_failure_after_connecting_never_carries_the_password(pg_server, pg_url):
    from pgserver import PASSWORD

    store = Store(pg_url)
    pg_server.admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
        (urlsplit(pg_url).path.lstrip("/"),),
    )
    pg_server.admin("DROP SCHEMA chatrepl CASCADE", database=urlsplit(pg_url).path.lstrip("/"))
    with pytest.raises(StoreError) as caught:
        store.recent()
    shown = "".join(traceback.format_exception(caught.value))
    assert PASSWORD not in shown
