"""The HTTP connections of a session: one client per host, proxy and TLS settings, kept for
the whole process, so every request to a provider (turns, tool round trips, titles,
compaction, model listings) goes over the connection the last one used.

A connection is reused only when the previous response was read to its end (the stream loop
reads past the vendor's end mark for that); a response stopped early (Ctrl-C) closes its
connection, and the next request opens a new one. A connection the server closed while idle is
noticed before reuse and replaced quietly. The clients are closed when the process exits.
"""

from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # httpx is imported when the first client is made: ~100 ms of start-up
    import ssl

    import httpx


class Endpoint(Protocol):
    """What a client is made for (``providers.http.Endpoint`` is one)."""

    base_url: str
    proxy: str | None
    ca_bundle: str | None
    provider: str
    connect_timeout: float
    read_timeout: float


#: Seconds an idle connection is kept. Long enough to span a person's turns, shorter than the
#: idle time-outs of common NAT gateways and proxies (about 4-6 minutes), which drop a
#: connection without telling either end.
KEEPALIVE_EXPIRY = 120.0

_CLIENTS: dict[tuple[Any, ...], httpx.Client] = {}
_LOCK = threading.Lock()
_CLOSED_AT_EXIT: list[bool] = []


def key_of(endpoint: Endpoint) -> tuple[Any, ...]:
    """What decides which client serves ``endpoint``: its origin, proxy and TLS settings."""
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint.base_url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return (scheme, (parts.hostname or "").lower(), port, endpoint.proxy, endpoint.ca_bundle)


def client_for(endpoint: Endpoint) -> httpx.Client:
    """The session's client for ``endpoint``'s host, made on first use."""
    key = key_of(endpoint)
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is None or client.is_closed:
            if not _CLOSED_AT_EXIT:
                atexit.register(close_all)
                _CLOSED_AT_EXIT.append(True)
            client = _CLIENTS[key] = _new_client(endpoint, https=key[0] == "https")
        return client


def _new_client(endpoint: Endpoint, https: bool) -> httpx.Client:
    import httpx

    options: dict[str, Any] = {}
    if https or endpoint.ca_bundle:
        options["verify"] = tls_context(endpoint)
    if endpoint.proxy:
        options["proxy"] = endpoint.proxy
    return httpx.Client(
        timeout=timeout_of(endpoint),
        follow_redirects=True,
        limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY),
        trust_env=True,  # HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY
        **options,
    )


def tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    """Certificates to trust: ``ca_bundle`` when the provider names one, else the operating
    system's store (``truststore``), else Python's default ones."""
    import ssl

    if endpoint.ca_bundle:
        try:
            return ssl.create_default_context(cafile=endpoint.ca_bundle)
        except (OSError, ssl.SSLError, ValueError):
            from ..errors import ConnectError
            from ..text import make_safe

            where = f"[providers.{endpoint.provider}]" if endpoint.provider else "config.toml"
            raise ConnectError(  # a provider's failure: the turn ends with this sentence
                f"The ca_bundle of {where} holds no certificate chatrepl can read "
                f"({make_safe(endpoint.ca_bundle)}): give a PEM file of certificates."
            ) from None
    try:
        import truststore
    except ImportError:  # a wheel installed without it: certifi's bundle, as httpx does
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def timeout_of(endpoint: Endpoint, read: float | None = None) -> httpx.Timeout:
    """The time-outs of one request to ``endpoint`` (``read`` overrides its read time-out)."""
    import httpx

    return httpx.Timeout(
        endpoint.read_timeout if read is None else read, connect=endpoint.connect_timeout
    )


def close_all() -> None:
    """Close every client (at exit; tests call it to start from no connections)."""
    with _LOCK:
        clients = list(_CLIENTS.values())
        _CLIENTS.clear()
    for client in clients:
        client.close()
