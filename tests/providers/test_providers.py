"""The OpenAI and Anthropic providers over a real socket, against the fake vendor server."""

from __future__ import annotations

import threading
import time

import pytest
from fakeserver import Raw, Reply, Status

from chatrepl import errors
from chatrepl.providers.registry import get_backend
from chatrepl.records import Message, TextDelta, Usage

KEY = "sk-test-key-0123456789"
VENDORS = ["openai:gpt-test", "anthropic:claude-test"]


def run(model, prompt="hello world", cancel=None):
    """Stream one prompt; return (text, usage of the last usage chunk)."""
    text, usage = "", None
    for event in model.stream([Message("user", prompt)], {}, cancel or threading.Event()):
        if isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, Usage):
            usage = event
    return text, usage


@pytest.fixture(params=VENDORS)
def model(request, openai_env):
    m = get_backend(request.param)
    yield m
    m.close()


def test_streams_the_answer_with_usage(model, server):
    server.push(Reply("The quick brown fox"))
    text, usage = run(model)
    assert text == "The quick brown fox"
    assert usage.output_tokens == 4
    assert usage.input_tokens == 2  # "hello world"


def test_frames_split_across_reads_multiline_data_and_keepalives(model, server):
    server.push(Reply("one two three four", split_frames=True, multiline=True, comments=True))
    assert run(model)[0] == "one two three four"


def test_sends_the_key_and_the_model(model, server):
    run(model)
    request = server.last
    if request["vendor"] == "openai":
        assert request["headers"]["Authorization"] == f"Bearer {KEY}"
        assert request["json"]["stream_options"] == {"include_usage": True}
        assert request["json"]["model"] == "gpt-test"
    else:
        assert request["headers"]["x-api-key"].startswith("sk-ant-")
        assert request["headers"]["anthropic-version"] == "2023-06-01"
        assert request["json"]["model"] == "claude-test"
    assert request["json"]["stream"] is True


def test_anthropic_gets_the_persona_as_system(openai_env, server):
    model = get_backend("anthropic:claude-test")
    messages = [Message("system", "Be GlaDOS"), Message("user", "hi")]
    list(model.stream(messages, {}, threading.Event()))
    cached = {"cache_control": {"type": "ephemeral"}}  # marked for the prompt cache
    assert server.last["json"]["system"] == [{"type": "text", "text": "Be GlaDOS", **cached}]
    assert server.last["json"]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi", **cached}]}
    ]


def test_rejected_key_is_one_sentence_without_the_key(openai_env, server, monkeypatch):
    server.api_key = "the-right-key"
    for name, env in (("openai:x", "OPENAI_API_KEY"), ("anthropic:x", "ANTHROPIC_API_KEY")):
        with pytest.raises(errors.AuthError) as info:
            run(get_backend(name))
        message = str(info.value)
        assert env in message
        assert "0123456789" not in message  # the fake server quotes the key back; we must not
        assert "\n" not in message


def test_missing_key_says_which_variable_to_set(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
    server.api_key = "needed"
    with pytest.raises(errors.AuthError, match="needs an API key.*set OPENAI_API_KEY"):
        run(get_backend("openai:x"))


def test_unknown_model_is_404(model, server):
    server.push(Status(404))
    with pytest.raises(errors.ModelNotFoundError, match="has no model"):
        run(model)


def test_429_with_retry_after_then_success(model, server):
    server.push(Status(429, headers={"Retry-After": "1"}), Reply("finally"))
    start = time.monotonic()
    assert run(model)[0] == "finally"
    assert time.monotonic() - start >= 0.9  # it waited as asked
    assert len(server.requests) == 2


def test_500_then_success(model, server):
    server.push(
        Status(500),
        Status(503, body="<html><body>Bad gateway</body></html>", content_type="text/html"),
        Reply("ok now"),
    )
    assert run(model)[0] == "ok now"
    assert len(server.requests) == 3


def test_gives_up_after_two_retries(model, server):
    server.push(Status(500), Status(500), Status(500), Reply("never"))
    with pytest.raises(errors.ServerError, match="HTTP 500"):
        run(model)
    assert len(server.requests) == 3


def test_html_error_page_is_not_shown(model, server):
    server.push(
        Status(502, body="<html><h1>502 Bad Gateway</h1></html>", content_type="text/html"),
        Status(502, body="<html></html>", content_type="text/html"),
        Status(502, body="<html></html>", content_type="text/html"),
    )
    with pytest.raises(errors.ServerError) as info:
        run(model)
    assert "<html" not in str(info.value)
    assert "502" in str(info.value)


def test_400_is_not_retried(model, server):
    server.push(Status(400), Reply("never"))
    with pytest.raises(errors.BadRequestError):
        run(model)
    assert len(server.requests) == 1


def test_context_too_long(model, server):
    server.push(Status(413))
    with pytest.raises(errors.ContextTooLongError, match="too long"):
        run(model)


def test_error_event_mid_stream(model, server):
    server.push(
        Reply("partial answer", error_event={"type": "overloaded_error", "message": "Overloaded"})
    )
    got = []
    with pytest.raises(errors.ServerError, match="(?i)overloaded"):
        for chunk in model.stream([Message("user", "x")], {}, threading.Event()):
            got.append(getattr(chunk, "text", ""))
    assert "".join(got) == "partial answer"


def test_connection_dropped_mid_stream_keeps_partial_text(model, server):
    server.push(Reply("a b c d e f g h", drop_after=3))
    got = []
    with pytest.raises(errors.StreamError, match="dropped|ended early"):
        for chunk in model.stream([Message("user", "x")], {}, threading.Event()):
            got.append(getattr(chunk, "text", ""))
    assert "".join(got) == "a b c"


def test_stream_without_end_is_an_error(model, server):
    server.push(Reply("a b", done=False))
    with pytest.raises(errors.StreamError, match="ended early"):
        run(model)


def test_empty_stream(model, server):
    server.push(Raw(b""))
    with pytest.raises(errors.StreamError, match="empty"):
        run(model)


def test_invalid_json_frame(model, server):
    server.push(Raw(b"data: {not json\n\n"))
    with pytest.raises(errors.StreamError, match="malformed"):
        run(model)


def test_server_down_says_what_to_do(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    with pytest.raises(
        errors.ConnectError, match=r"Cannot reach http://127.0.0.1:9/v1: is Ollama running\?"
    ):
        run(get_backend("ollama:llama3.2"))


def test_read_timeout_mid_stream(openai_env, server, monkeypatch):
    monkeypatch.setenv("CHATREPL_TIMEOUT", "0.5")
    server.push(Reply("a b c d", stall_after=2))
    got = []
    with pytest.raises(errors.ResponseTimeoutError, match="stopped answering"):
        for chunk in get_backend("openai:x").stream([Message("user", "x")], {}, threading.Event()):
            got.append(getattr(chunk, "text", ""))
    assert "".join(got) == "a b"


def test_cancel_during_backoff_returns_quickly(model, server):
    server.push(Status(429, headers={"Retry-After": "30"}))
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    start = time.monotonic()
    assert run(model, cancel=cancel)[0] == ""
    assert time.monotonic() - start < 5


def test_openai_server_without_stream_options(openai_env, server):
    server.push(
        Status(400, {"error": {"message": "Unrecognized request argument: stream_options"}})
    )
    model = get_backend("openai:old")
    assert run(model)[0].startswith("You said: hello world")
    assert "stream_options" not in server.last["json"]


def test_ollama_speaks_openai_without_a_key(server, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", server.base_url)
    assert run(get_backend("ollama:llama3.2"), "hi")[0] == "You said: hi (messages: 1)"
    assert "Authorization" not in server.last["headers"]


def test_configured_provider_and_alias(server, home, monkeypatch):
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'''
[providers.router]
type = "openai"
base_url = "{server.openai_url}"
api_key_env = "ROUTER_KEY"
[aliases]
fast = "router:meta/llama"
'''
    )
    monkeypatch.setenv("ROUTER_KEY", "rk-1234567")
    model = get_backend("fast")
    assert model.full_name == "router:meta/llama"
    assert run(model, "hey")[0].startswith("You said: hey")
    assert server.last["headers"]["Authorization"] == "Bearer rk-1234567"


def test_unknown_provider_and_bad_names():
    with pytest.raises(errors.ConfigError, match="Unknown provider 'nope'"):
        get_backend("nope:model")
    with pytest.raises(errors.ConfigError, match="Unknown model"):
        get_backend("gpt4")


def test_malformed_config_is_one_sentence(home):
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("default_model = \n[[")
    with pytest.raises(errors.ConfigError, match="not valid TOML"):
        get_backend()
