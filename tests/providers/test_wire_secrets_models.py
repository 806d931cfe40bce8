"""Keys never shown (quoted back in an answer, in a base URL); what a server serves and how
much context it takes."""

from __future__ import annotations

import pytest
from fakeserver import Answer, Call, Status, Text
from wirehelp import ANTHROPIC_KEY, KEY, events, joined, of

from chatrepl import errors
from chatrepl.providers.registry import get_backend
from chatrepl.records import ToolCall


@pytest.mark.parametrize("name, key", [("openai:g", KEY), ("anthropic:c", ANTHROPIC_KEY)])
def test_a_key_quoted_back_in_the_answer_is_blanked_even_when_split(openai_env, server, name, key):
    half = len(key) // 2
    server.push(
        Answer(
            Text("Your key is ", key[:3], key[3:half], key[half:], "; again: " + key, "."),
            Call("save", '{"k": "' + key[:5], key[5:] + '"}', id="c1"),
        )
    )
    got = events(get_backend(name))
    text = joined(got)
    assert key[3:] not in text and text == "Your key is sk-***; again: ***."  # "sk-" is public
    (call,) = of(got, ToolCall)
    assert call.arguments == {"k": "***"}


def test_a_prefix_of_the_key_at_the_end_is_not_lost(openai_env, server):
    server.push(Answer(Text("ends with sk-te")))
    assert joined(events(get_backend("openai:g"))) == "ends with sk-te"


def configured(home, url: str, name: str = "proxy") -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[providers.{name}]\ntype = "openai"\nbase_url = "{url}"\nneeds_key = false\n'
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:hunter2secret@127.0.0.1:{port}/v1",
        "http://127.0.0.1:{port}/v1?key=AIzaQUERYSECRET",
    ],
)
def test_credentials_in_a_base_url_never_reach_a_message(server, home, url):
    configured(home, url.format(port=server.port))
    server.push(Status(404), Answer(Text("fine")))
    with pytest.raises(errors.ModelNotFoundError) as info:
        events(get_backend("proxy:m"))
    message = str(info.value)
    assert "hunter2secret" not in message and "QUERYSECRET" not in message
    assert "***" in message
    # the request still goes to the right place, the query kept at the end
    assert server.last["path"].startswith("/v1/chat/completions")
    assert joined(events(get_backend("proxy:m"))) == "fine"
    if "key=" in url:
        assert server.last["path"] == "/v1/chat/completions?key=AIzaQUERYSECRET"


def test_a_base_url_is_shown_as_every_other_url_is(server, home):
    """One rule for showing a URL: a secret-named query value hidden, the others kept (the
    message names the API version the user asked for)."""
    url = f"http://127.0.0.1:{server.port}/v1?api-version=2024-06-01&api_key=AIzaQUERYSECRET"
    configured(home, url)
    server.push(Status(404))
    with pytest.raises(errors.ModelNotFoundError) as info:
        events(get_backend("proxy:m"))
    assert f"127.0.0.1:{server.port}/v1?api-version=2024-06-01&api_key=***" in str(info.value)


def test_credentials_in_an_unreachable_base_url(home):
    configured(home, "http://bob:pa55word@127.0.0.1:9/v1")
    with pytest.raises(errors.ConnectError) as info:
        events(get_backend("proxy:m"))
    assert "pa55word" not in str(info.value)


MODELS = [
    {"id": "gpt-test", "object": "model", "owned_by": "openai"},
    {"id": "router/big", "context_length": 200000, "pricing": {"prompt": "0.000003"}},
    {"id": "served-by-vllm", "max_model_len": 32768},
    {"id": 5},
]


def test_available_models_asks_once(openai_env, server):
    server.models = MODELS
    model = get_backend("openai:gpt-test")
    assert model.available_models() == ["gpt-test", "router/big", "served-by-vllm"]
    assert model.available_models() == ["gpt-test", "router/big", "served-by-vllm"]
    assert [r["path"] for r in server.requests] == ["/v1/models"]


@pytest.mark.parametrize("name, window", [("router/big", 200000), ("served-by-vllm", 32768)])
def test_context_window_from_the_model_list(openai_env, server, name, window):
    server.models = MODELS
    assert get_backend(f"openai:{name}").context_window() == window


def test_pricing_from_openrouters_list(openai_env, server):
    server.models = MODELS
    assert get_backend("openai:router/big").pricing() == {"prompt": 0.000003}


def test_context_window_from_llamacpp_props(openai_env, server):
    server.models = [{"id": "local.gguf", "owned_by": "llamacpp", "meta": {"n_ctx_train": 1}}]
    server.props = {"default_generation_settings": {"n_ctx": 4096}}
    model = get_backend("openai:local.gguf")
    assert model.context_window() == 4096
    assert model.context_window() == 4096
    assert [r["path"] for r in server.requests] == ["/v1/models", "/props"]


def test_context_window_from_ollama_show(server, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", server.base_url)
    server.show = {"model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960}}
    assert get_backend("ollama:qwen3:4b").context_window() == 40960
    assert server.last["path"] == "/api/show" and server.last["json"] == {"model": "qwen3:4b"}


def test_context_window_falls_back_to_the_known_table(openai_env, server):
    assert get_backend("openai:gpt-4o-mini").context_window() == 128000
    assert get_backend("anthropic:claude-sonnet-4-5").context_window() == 200000
    assert get_backend("openai:never-heard-of-it").context_window() is None


def test_facts_fail_soft_when_the_server_is_down(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "k" * 20)
    model = get_backend("openai:gpt-4o")
    assert model.available_models() is None
    assert model.context_window() == 128000
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k" * 20)
    assert get_backend("anthropic:x").available_models() is None


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 9])
def test_a_key_split_after_a_few_characters_is_still_blanked(openai_env, server, cut):
    server.push(Answer(Text("key: ", KEY[:cut], KEY[cut:], " done")))
    text = joined(events(get_backend("openai:g")))
    assert KEY[3:] not in text and text.endswith("*** done")
    assert text in ("key: ***" + " done", "key: " + KEY[:cut] + "***" + " done")


def test_a_short_public_prefix_is_not_held_back(openai_env, server):
    """A reader that stops after "partial words" must have all of it: nothing waits for a
    possible key that begins with "s"."""
    import threading

    server.push(Answer(Text("partial", " words", " sk")))
    stream = get_backend("openai:g").stream([], {}, threading.Event())
    got = ""
    for event in stream:
        got += getattr(event, "text", "")
        if got.endswith("words"):
            break
    stream.close()
    assert got == "partial words"
