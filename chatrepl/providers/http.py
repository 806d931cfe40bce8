"""What the HTTP providers share: one client, retries before the first token, errors as sentences."""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from .. import errors

if TYPE_CHECKING:  # httpx is imported where a request is made: ~100 ms of start-up
    import httpx

MAX_RETRIES = 2
RETRY_STATUSES = {408, 409, 429}
LONGEST_RETRY_WAIT = 60.0
_CONTEXT_WORDS = (
    "context length",
    "context_length",
    "too long",
    "maximum context",
    "too many tokens",
)


@dataclass
class Endpoint:
    """Where and how to reach one provider.

    Args:
        label: the provider's name as users know it ("OpenAI", "Ollama", a config name).
        base_url: the API root, e.g. ``https://api.openai.com/v1``.
        api_key: the key, or ``None``; never shown in a message.
        key_env: the environment variable a user sets for the key, for messages.
        unreachable_hint: what to say when the server cannot be reached.
    """

    label: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)  # never in a repr, log or traceback
    key_env: str | None = None
    unreachable_hint: str = "check the base URL and your network"
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_retries: int = MAX_RETRIES

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def redact(self, text: str) -> str:
        """``text`` from the server, fit to quote in a message: the API key blanked out and
        terminal controls made visible (an error body must not clear the screen either)."""
        from ..text import make_safe

        if self.api_key and len(self.api_key) >= 4:
            text = text.replace(self.api_key, "***")
        return make_safe(text)


class HTTPModelMixin:
    """An httpx client kept per model, closed by ``close()``."""

    endpoint: Endpoint
    _client: httpx.Client | None = None

    def client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            e = self.endpoint
            self._client = httpx.Client(
                timeout=httpx.Timeout(e.read_timeout, connect=e.connect_timeout),
                follow_redirects=True,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def post_stream(
    client: httpx.Client,
    endpoint: Endpoint,
    path: str,
    headers: dict[str, str],
    body: dict[str, Any],
    model: str,
    cancel: threading.Event,
) -> httpx.Response | None:
    """POST ``body`` and return the open streaming response once the status is good.

    Retries connection failures, 408, 409, 429 and 5xx up to ``endpoint.max_retries`` times,
    honouring ``retry-after-ms`` and ``Retry-After``, else backing off ``min(0.5·2ⁿ, 8)`` s with
    jitter. Returns ``None`` if ``cancel`` was set while waiting. The caller closes the response.
    """
    import httpx

    url = endpoint.url(path)
    attempt = 0
    while True:
        wait: float | None = None
        try:
            response = client.send(
                client.build_request("POST", url, headers=headers, json=body), stream=True
            )
        except httpx.TimeoutException:
            error: errors.ProviderError = errors.TimeoutError(
                f"{endpoint.label} did not answer at {endpoint.base_url} within "
                f"{endpoint.connect_timeout:g} s: {endpoint.unreachable_hint}"
            )
        except httpx.TransportError:
            error = errors.ConnectError(
                f"Cannot reach {endpoint.base_url}: {endpoint.unreachable_hint}?"
                if endpoint.unreachable_hint.startswith("is ")
                else f"Cannot reach {endpoint.base_url}: {endpoint.unreachable_hint}."
            )
        else:
            if response.status_code < 400:
                if response.headers.get("content-type", "").startswith("text/html"):
                    response.close()  # a login portal or a web server at the wrong address
                    raise errors.StreamError(
                        f"{endpoint.label} answered with a web page instead of a stream "
                        f"(HTTP {response.status_code}): check the base URL {endpoint.base_url}."
                    )
                return response
            try:
                raw = response.read()[:65536]
            except httpx.HTTPError:
                raw = b""
            finally:
                response.close()
            wait = retry_after(response.headers)
            error = error_for_status(endpoint, response.status_code, raw, model, wait)
        if not error.retryable or attempt >= endpoint.max_retries:
            raise error
        if wait is None:
            wait = min(0.5 * 2**attempt, 8.0) * random.uniform(0.75, 1.0)
        if wait > LONGEST_RETRY_WAIT:
            raise error
        if cancel.wait(wait):
            return None
        attempt += 1


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``Retry-After``."""
    if value := headers.get("retry-after-ms"):
        try:
            return max(float(value) / 1000, 0.0)
        except ValueError:
            pass
    if value := headers.get("retry-after"):
        try:
            return max(float(value), 0.0)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value).timestamp()
            except (TypeError, ValueError):
                return None
            return max(when - time.time(), 0.0)
    return None


def error_detail(raw: bytes) -> str:
    """The human part of an error body (OpenAI, Anthropic and Ollama shapes), or ``""``."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return ""  # an HTML page or plain noise: the status says more than it would
    message: Any = data
    if isinstance(data, dict):
        message = data.get("error", data.get("message", data.get("detail", "")))
        if isinstance(message, dict):
            message = message.get("message") or message.get("type") or ""
    message = " ".join(str(message).split())
    return message[:300]


def error_for_status(
    endpoint: Endpoint, status: int, raw: bytes, model: str, wait: float | None = None
) -> errors.ProviderError:
    """The error for an HTTP status and body, as one sentence without the key.

    ``wait`` is the Retry-After the server sent: when it is too long to wait for, it is said.
    """
    detail = endpoint.redact(error_detail(raw))
    said = f": {detail}" if detail else ""
    label = endpoint.label
    later = f"try again in {_duration(wait)}" if wait and wait > LONGEST_RETRY_WAIT else ""
    if status in (401, 403):
        if not endpoint.api_key and endpoint.key_env:
            msg = f"{label} needs an API key (HTTP {status}){said}: set {endpoint.key_env}"
        elif status == 401:
            fix = f"set {endpoint.key_env}" if endpoint.key_env else "check its API key"
            msg = f"{label} rejected the API key (HTTP 401){said}: {fix}"
        else:
            msg = (
                f"{label} refused access to '{model}' (HTTP 403){said}: check the key's permissions"
            )
        return errors.AuthError(msg + ".", status)
    if status == 404:
        return errors.ModelNotFoundError(
            f"{label} has no model '{model}' at {endpoint.base_url} (HTTP 404){said}: "
            "check the name with `chatrepl models` and the base URL.",
            status,
        )
    if status == 413 or (status == 400 and any(word in detail.lower() for word in _CONTEXT_WORDS)):
        return errors.ContextTooLongError(
            f"The conversation is too long for '{model}' (HTTP {status}){said}: "
            "start a /new conversation or /undo some turns.",
            status,
        )
    if status == 429:
        return errors.RateLimitError(
            f"{label} is limiting requests (HTTP 429){said}: "
            f"{later or 'wait a little and try again'}.",
            status,
        )
    if status in RETRY_STATUSES or status >= 500:
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        then = later or "try again shortly"
        err = errors.ServerError(
            f"{label} failed with HTTP {status} {reason}{said}: {then}.".replace("  ", " "),
            status,
        )
        return err
    return errors.BadRequestError(
        f"{label} refused the request for '{model}' (HTTP {status}){said}.", status
    )


def _duration(seconds: float) -> str:
    """``45 s``, ``60 min`` or ``3 h``: a wait as a person would say it."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def iter_lines(response: httpx.Response, endpoint: Endpoint) -> Iterator[str]:
    """The body's lines, with transport failures turned into chatrepl errors."""
    import httpx

    try:
        yield from response.iter_lines()
    except httpx.TimeoutException as exc:
        raise errors.TimeoutError(
            f"{endpoint.label} stopped answering for {endpoint.read_timeout:g} s; "
            "the text that arrived was kept."
        ) from exc
    except httpx.HTTPError as exc:
        raise errors.StreamError(
            f"The connection to {endpoint.label} dropped mid-answer; the text that arrived was kept."
        ) from exc


def parse_json(data: str, endpoint: Endpoint) -> Any:
    """One SSE data payload as JSON, or a StreamError saying the stream is malformed."""
    try:
        return json.loads(data)
    except ValueError as exc:
        raise errors.StreamError(
            f"{endpoint.label} sent a malformed stream (not JSON: {endpoint.redact(data)[:60]!r})."
        ) from exc
