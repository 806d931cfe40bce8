"""TLS and proxies: a provider behind a self-signed certificate is trusted through its
``ca_bundle``, a failed check is one sentence naming the host and both fixes, a provider's own
``proxy`` carries its requests, and truststore is imported only for an https client."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import child_env
from fakeserver import FakeLLMServer
from wirehelp import events, joined

from chatrepl import errors
from chatrepl.providers.registry import get_backend

cryptography = pytest.importorskip("cryptography")


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself, and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chatrepl test server")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextmanager
def tls_server(folder: Path) -> Iterator[tuple[FakeLLMServer, Path]]:
    """The fake server over TLS with a self-signed certificate (made in ``folder``), and that
    certificate."""
    cert, key = self_signed(folder)
    server = FakeLLMServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(
        server.httpd.socket, server_side=True, do_handshake_on_connect=False
    )
    with server:
        yield server, cert


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[FakeLLMServer, Path]]:
    with tls_server(tmp_path) as served:
        yield served


def configure(home: Path, server: FakeLLMServer, **settings: str) -> None:
    url = f"https://127.0.0.1:{server.port}/v1"
    lines = ["[providers.corp]", 'type = "openai"', f'base_url = "{url}"', 'api_key = "sk-k"']
    lines += [f'{k} = "{v}"' for k, v in settings.items()]
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("\n".join(lines) + "\n")


def test_a_ca_bundle_makes_a_self_signed_server_trusted(
    tls: tuple[FakeLLMServer, Path], home: Path
) -> None:
    server, cert = tls
    configure(home, server, ca_bundle=str(cert))
    assert joined(events(get_backend("corp:m"))).startswith("You said: hello world")
    assert server.connections == 1


def test_an_untrusted_certificate_is_one_sentence_with_both_fixes(
    tls: tuple[FakeLLMServer, Path], home: Path
) -> None:
    server, _ = tls
    configure(home, server)
    with pytest.raises(errors.ConnectError) as caught:
        events(get_backend("corp:m"))
    said = str(caught.value)
    assert said.startswith("The certificate of 127.0.0.1 could not be verified")
    assert 'set ca_bundle = "PATH"' in said and "[providers.corp] of config.toml" in said
    assert "system's certificate store" in said and "\n" not in said
    assert server.requests == []  # not retried: waiting does not make it trusted


def test_a_ca_bundle_that_is_not_a_file_is_one_sentence(home: Path, tmp_path: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        '[providers.corp]\ntype = "openai"\nbase_url = "https://x.example/v1"\n'
        f'api_key = "k"\nca_bundle = "{tmp_path}/missing.pem"\n'
    )
    with pytest.raises(errors.ConfigError, match=r"ca_bundle .* is not a file: .*missing\.pem"):
        get_backend("corp:m")


def test_a_providers_own_proxy_carries_its_requests(
    server: FakeLLMServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake server answers as the proxy would: its request line holds the whole URL.
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        '[providers.corp]\ntype = "openai"\nbase_url = "http://api.corp.invalid/v1"\n'
        f'api_key = "sk-k"\nproxy = "{server.base_url}"\n'
    )
    monkeypatch.setenv("NO_PROXY", "")
    assert joined(events(get_backend("corp:m"))).startswith("You said: hello world")
    assert server.requests[-1]["target"] == "http://api.corp.invalid/v1/chat/completions"


def test_a_malformed_proxy_is_one_sentence(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        '[providers.corp]\ntype = "openai"\nbase_url = "https://x.example/v1"\n'
        'api_key = "k"\nproxy = "user:secret@nowhere"\n'
    )
    with pytest.raises(errors.ConfigError) as caught:
        get_backend("corp:m")
    assert "must be a URL" in str(caught.value) and "secret" not in str(caught.value)


def test_truststore_is_imported_only_for_an_https_client(server: FakeLLMServer) -> None:
    code = (
        "import sys, threading\n"
        "from chatrepl.providers.registry import get_backend\n"
        "from chatrepl.records import Message\n"
        "b = get_backend('openai:m')\n"
        "list(b.stream([Message('user', 'hi')], {}, threading.Event()))\n"
        "assert 'truststore' not in sys.modules, 'imported for http'\n"
        "from chatrepl.providers.connections import client_for\n"
        "from chatrepl.providers.http import Endpoint\n"
        "client_for(Endpoint('X', 'https://example.invalid/v1'))\n"
        "assert 'truststore' in sys.modules\n"
    )
    env = child_env(OPENAI_BASE_URL=server.openai_url, OPENAI_API_KEY="sk-k")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
