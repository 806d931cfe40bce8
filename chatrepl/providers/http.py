"""What the HTTP providers share: one client, retries before the first token, errors as sentences."""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
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
        proxy: the proxy URL for this provider (else the environment's ``HTTPS_PROXY`` …).
        ca_bundle: a file of certificates to trust instead of the system's.
        key_required: the server surely refuses a request without a key, so none is sent
            without one (a compatible server elsewhere may need none: it is asked).
        provider: the provider's name in config.toml, for messages that say what to set.
    """

    label: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)  # never in a repr, log or traceback
    key_env: str | None = None
    unreachable_hint: str = "check the base URL and your network"
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_retries: int = MAX_RETRIES
    proxy: str | None = field(default=None, repr=False)  # may hold user:password
    ca_bundle: str | None = None
    key_required: bool = False
    provider: str = ""

    def url(self, path: str, root: bool = False) -> str:
        """The address of ``path`` under the base URL (its query, e.g. ``?key=``, kept at the end).

        ``root`` puts ``path`` at the server's root instead (Ollama's ``/api``, llama.cpp's
        ``/props`` live beside ``/v1``, not under it).
        """
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.base_url)
        base = parts.path.rstrip("/")
        if root and base.endswith("/v1"):
            base = base[: -len("/v1")]
        return urlunsplit(parts._replace(path=base + "/" + path.lstrip("/")))

    @property
    def shown_url(self) -> str:
        """The base URL fit to show (:func:`~chatrepl.text.public_url`)."""
        from ..text import public_url

        return public_url(self.base_url)

    def secrets(self) -> list[str]:
        """Every secret this endpoint holds (the key, the base URL's and the proxy's
        credentials and secret query values), longest first."""
        from ..text import SHORTEST_SECRET, url_secrets

        found = [self.api_key or "", *url_secrets(self.base_url), *url_secrets(self.proxy or "")]
        return sorted({f for f in found if len(f) >= SHORTEST_SECRET}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` from the server, fit to quote in a message: the key and any credentials of
        the base URL blanked out, terminal controls made visible (an error body must not clear
        the screen either) and lone surrogates replaced."""
        from ..text import make_safe, scrub

        return make_safe(scrub(text, self.secrets()))


class HTTPBackendMixin:
    """What an HTTP backend talks through: the session's client for its host
    (:mod:`~chatrepl.providers.connections`), shared with every other backend there."""

    endpoint: Endpoint

    def client(self) -> httpx.Client:
        from .connections import client_for

        return client_for(self.endpoint)

    def require_key(self, provider: str) -> None:
        """Refuse, before any network use, a request that cannot succeed for want of a key."""
        e = self.endpoint
        if e.key_required and not e.api_key:
            raise errors.AuthError(
                f"No key for {provider}: set {e.key_env} (or chatrepl keys set {provider})."
            )


def post_stream(
    client: httpx.Client,
    endpoint: Endpoint,
    path: str,
    headers: dict[str, str],
    body: dict[str, Any] | Any,
    model: str,
    cancel: threading.Event,
) -> httpx.Response | None:
    """POST ``body`` and return the open streaming response once the status is good.

    Retries connection failures, 408, 409, 429 and 5xx up to ``endpoint.max_retries`` times,
    honouring ``retry-after-ms`` and ``Retry-After``, else backing off ``min(0.5·2ⁿ, 8)`` s with
    jitter. A kept connection that the server closed as the request went out is replaced at
    once, quietly (once per request). Returns ``None`` if ``cancel`` was set while waiting. The
    caller closes the response (after reading it to its end, so the connection can be reused).
    """
    import httpx

    from .connections import timeout_of

    url = endpoint.url(path)
    attempt = 0
    reconnected = False
    while True:
        wait: float | None = None
        try:
            if isinstance(body, dict):
                request = client.build_request(
                    "POST", url, headers=headers, json=body, timeout=timeout_of(endpoint)
                )
            else:  # a body streamed as it is sent (attachments: providers.attach_wire)
                request = client.build_request(
                    "POST",
                    url,
                    headers={**headers, **body.headers()},
                    content=body,
                    timeout=timeout_of(endpoint),
                )
            response = client.send(request, stream=True)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            if not reconnected:  # a kept connection the server had closed: a new one
                reconnected = True
                continue
            error: errors.ProviderError = errors.ConnectError(_unreachable(endpoint))
        except httpx.TimeoutException:
            error = errors.ResponseTimeoutError(
                f"{endpoint.label} did not answer at {endpoint.shown_url} within "
                f"{endpoint.connect_timeout:g} s: {endpoint.unreachable_hint}"
            )
        except httpx.TransportError as exc:
            if (untrusted := certificate_error(exc, endpoint)) is not None:
                raise untrusted from None  # waiting will not make it trusted
            error = errors.ConnectError(_unreachable(endpoint))
        else:
            if response.status_code < 400:
                if response.headers.get("content-type", "").startswith("text/html"):
                    response.close()  # a login portal or a web server at the wrong address
                    raise errors.StreamError(
                        f"{endpoint.label} answered with a web page instead of a stream "
                        f"(HTTP {response.status_code}): check the base URL {endpoint.shown_url}."
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


def certificate_error(exc: BaseException, endpoint: Endpoint) -> errors.ConnectError | None:
    """When ``exc`` is a failed certificate check: one sentence naming the host and both fixes;
    else ``None``."""
    import ssl
    from urllib.parse import urlsplit

    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    from ..text import make_safe

    host = urlsplit(endpoint.base_url).hostname or endpoint.label
    why = make_safe(getattr(cause, "verify_message", "") or "")
    said = f" ({why})" if why else ""
    where = f"[providers.{endpoint.provider}]" if endpoint.provider else "the provider's table"
    return errors.ConnectError(
        f'The certificate of {host} could not be verified{said}: set ca_bundle = "PATH" '
        f"(a PEM file of the certificates to trust) in {where} of config.toml, or add the "
        "certificate to the system's certificate store."
    )


def _unreachable(endpoint: Endpoint) -> str:
    hint = endpoint.unreachable_hint
    end = "?" if hint.startswith("is ") else "."
    return f"Cannot reach {endpoint.shown_url}: {hint}{end}"


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
    """The human part of an error body (OpenAI, Anthropic, Ollama and plain-text shapes), as one
    short line, or ``""`` (an HTML page or noise: the status says more than it would)."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        if not text or text[0] in "<{[" or "<html" in text[:500].lower():
            return ""
        return one_line(text)
    return one_line(error_message(data))


def error_message(data: Any) -> str:
    """The message inside an error object of any vendor's shape; only text is taken, so a
    number, list or object where text should be never shows up as ``{...}``."""
    for _ in range(4):  # {"error": {"message": ...}} nests at most a few levels
        if isinstance(data, str):
            return data
        if isinstance(data, list) and data:
            data = data[0]
        elif isinstance(data, dict):
            for key in ("error", "message", "detail", "msg", "type", "code"):
                if data.get(key) not in (None, "", [], {}):
                    data = data[key]
                    break
            else:
                return ""
        elif isinstance(data, int | float) and not isinstance(data, bool):
            return str(data)
        else:
            return ""
    return data if isinstance(data, str) else ""


def error_code(raw: bytes | Any) -> str:
    """The machine-readable kind of an error body (``insufficient_quota`` …), or ``""``."""
    data = raw
    if isinstance(raw, bytes):
        try:
            data = json.loads(raw.decode("utf-8", "replace"))
        except ValueError:
            return ""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        data = data["error"]
    if not isinstance(data, dict):
        return ""
    words = [data.get("code"), data.get("type")]
    return " ".join(w for w in words if isinstance(w, str))


def one_line(text: str, width: int = 300) -> str:
    """``text`` as one line of at most ``width`` characters, lone surrogates replaced (other
    controls stay, for ``Endpoint.redact`` to make visible: a hostile body is shown, not obeyed)."""
    from ..text import valid_text

    line = " ".join(valid_text(text).split())
    return line if len(line) <= width else line[: width - 1] + "…"


def clause(text: str, last: bool = False) -> str:
    """A server's words fit to quote in a sentence of ours: without the blank space around
    them or the mark that closed them, since ours follows; a "?" or an ellipsis (text cut
    short) stays, and so does a "!" when the words end the sentence (``last``)."""
    return text.strip().rstrip(" .;:," if last else " .!;:,")


def sentence(text: str) -> str:
    """``text`` closed with a full stop, unless a quoted "!", "?" or "…" closes it already."""
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def quota_error(endpoint: Endpoint, status: int, detail: str) -> errors.QuotaError:
    """The account has no credit left: waiting will not help, so it is not retried."""
    said = f": {detail}" if detail else ""
    return errors.QuotaError(
        f"{endpoint.label} says the account has run out of quota or credit (HTTP {status}){said}: "
        "check the plan and billing, or use another provider.",
        status,
    )


def error_for_status(
    endpoint: Endpoint, status: int, raw: bytes, model: str, wait: float | None = None
) -> errors.ProviderError:
    """The error for an HTTP status and body, as one sentence without the key.

    ``wait`` is the Retry-After the server sent: when it is too long to wait for, it is said.
    """
    quoted = endpoint.redact(error_detail(raw))
    detail = clause(quoted)
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
        return errors.AuthError(sentence(msg), status)
    if status == 404:
        return errors.ModelNotFoundError(
            f"{label} has no model '{model}' at {endpoint.shown_url} (HTTP 404){said}: "
            "check the name with `chatrepl models` and the base URL.",
            status,
        )
    if status == 413 or (status == 400 and any(word in detail.lower() for word in _CONTEXT_WORDS)):
        return errors.ContextTooLongError(
            f"The conversation is too long for '{model}' (HTTP {status}){said}: "
            "start a /new conversation or /undo some turns.",
            status,
        )
    if status == 402 or (status == 429 and "insufficient_quota" in error_code(raw)):
        return quota_error(endpoint, status, detail)
    if status == 429:
        return errors.RateLimitError(
            f"{label} is limiting requests (HTTP 429){said}: "
            f"{later or 'wait a little and try again'}.",
            status,
        )
    if status in RETRY_STATUSES or status >= 500:
        known = status in HTTPStatus._value2member_map_
        reason = f" {HTTPStatus(status).phrase}" if known else ""  # 529 has no phrase
        then = later or "try again shortly"
        return errors.ServerError(
            f"{label} failed with HTTP {status}{reason}{said}: {then}.", status
        )
    said = f": {clause(quoted, last=True)}" if detail else ""
    return errors.BadRequestError(
        sentence(f"{label} refused the request for '{model}' (HTTP {status}){said}"), status
    )


def _duration(seconds: float) -> str:
    """``45 s``, ``60 min`` or ``3 h``: a wait as a person would say it."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def fetch_json(
    client: httpx.Client,
    endpoint: Endpoint,
    method: str,
    path: str,
    headers: dict[str, str],
    body: dict[str, Any] | None = None,
    root: bool = False,
) -> Any:
    """One small request for facts about the server (its models, its context size): the JSON
    answer, or ``None`` on any failure (these facts are nice to have, never worth an error)."""
    import httpx

    from .connections import timeout_of

    try:
        response = client.request(
            method,
            endpoint.url(path, root=root),
            headers=headers,
            json=body,
            timeout=timeout_of(endpoint, read=min(endpoint.read_timeout, 10.0)),
        )
        if response.status_code >= 400:
            return None
        return json.loads(response.content[: 16 * 1024 * 1024].decode("utf-8", "replace"))
    except (httpx.HTTPError, httpx.InvalidURL, ValueError):
        return None


_NO_TOOLS_WORDS = (
    "support tool",
    "support function",
    "tools are not supported",
    "tools is not supported",
    "tool use is not supported",
    "tool calls are not supported",
    "tool calling is not supported",
    "auto-tool-choice",
    "requires --jinja",
)


def tools_refused(error: errors.ProviderError, endpoint: Endpoint, model: str) -> bool:
    """Whether ``error`` says that the model or server takes no tools."""
    said = str(error).lower()
    return isinstance(error, errors.BadRequestError | errors.ServerError) and any(
        word in said for word in _NO_TOOLS_WORDS
    )


def tools_unsupported(endpoint: Endpoint, model: str) -> errors.ToolsUnsupportedError:
    """The sentence for a model that refused the tools it was offered."""
    return errors.ToolsUnsupportedError(
        f"'{model}' at {endpoint.label} does not support tools: ask again without tools "
        "(turn them off with /tools off) or pick a model that supports them.",
        400,
    )


def refusal_of(
    error: errors.ProviderError,
    endpoint: Endpoint,
    model: str,
    tools: list[Any] | None,
    messages: list[Any],
    who: str,
) -> errors.ChatreplError | None:
    """The one sentence for a request refused for the tools offered or the files attached
    (``who`` names the model in it), or ``None`` when ``error`` is about something else."""
    from .attach_wire import rejected

    if tools and tools_refused(error, endpoint, model):
        return tools_unsupported(endpoint, model)
    return rejected(error, messages, who)
