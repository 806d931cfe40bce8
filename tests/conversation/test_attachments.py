"""Attachments: loading and limits, the store, both wire formats over the fake server, the
history rules, search, export and import, the command line and /attach."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import os
import sqlite3
import stat
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import child_env, run_chatrepl
from fakeserver import FakeLLMServer, Status
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatrepl import attachments
from chatrepl.attachments import Settings, stage
from chatrepl.conversation import Conversation
from chatrepl.errors import AttachmentError, ChatreplError
from chatrepl.export import attachments_in, from_json, to_json, to_markdown
from chatrepl.providers.attach_wire import Base64Data, StreamedJSON
from chatrepl.providers.registry import get_backend
from chatrepl.records import Part
from chatrepl.store import Store

pytestmark = pytest.mark.timeout(60)
VENDORS = ["openai:gpt-test", "anthropic:claude-test"]


# --- real files, made here ---------------------------------------------------------------------


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A valid PNG image of grey pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def pdf_bytes(padding: int = 0) -> bytes:
    """A minimal valid PDF (one empty page), with a stream of ``padding`` bytes to make it big."""
    stream = b"%" + b"0" * max(padding - 1, 0) if padding else b""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "files"
    folder.mkdir()
    made = {
        "png": ("photo.png", png_bytes()),
        "jpeg": ("pic.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256))),
        "gif": ("anim.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
        "webp": ("img.webp", b"RIFF\x1a\x00\x00\x00WEBPVP8 " + b"\x00" * 14),
        "pdf": ("report.pdf", pdf_bytes()),
        "text": ("notes.md", "# Notes\nthe café opens at nine\n".encode()),
    }
    out = {}
    for key, (name, content) in made.items():
        (folder / name).write_bytes(content)
        out[key] = folder / name
    return out


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "chat.db")


def decode_data_url(url: str) -> tuple[str, bytes]:
    head, _, data = url.partition(",")
    return head.removeprefix("data:").removesuffix(";base64"), base64.b64decode(data)


# --- loading -----------------------------------------------------------------------------------


def test_kinds_by_magic_bytes_then_content(files: dict[str, Path]) -> None:
    mimes = {key: attachments.load(str(path)).part.data["mime"] for key, path in files.items()}
    assert mimes == {
        "png": "image/png",
        "jpeg": "image/jpeg",
        "gif": "image/gif",
        "webp": "image/webp",
        "pdf": "application/pdf",
        "text": "text/markdown",
    }
    loaded = attachments.load(str(files["png"]))
    assert loaded.part.kind == "attachment" and loaded.part.call == 0
    assert loaded.part.data == {
        "sha256": hashlib.sha256(files["png"].read_bytes()).hexdigest(),
        "name": "photo.png",
        "mime": "image/png",
        "size": files["png"].stat().st_size,
    }
    assert loaded.content == files["png"].read_bytes()


def test_a_png_named_txt_is_still_an_image_and_a_text_named_png_is_refused(
    tmp_path: Path,
) -> None:
    (tmp_path / "really.txt").write_bytes(png_bytes())
    assert attachments.load(str(tmp_path / "really.txt")).part.data["mime"] == "image/png"
    (tmp_path / "fake.png").write_text("not an image")
    with pytest.raises(AttachmentError, match="named like a PNG image but its content is not"):
        attachments.load(str(tmp_path / "fake.png"))


def test_other_binary_kinds_missing_files_and_folders_get_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "prog.bin").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(200))
    cases = {
        str(tmp_path / "prog.bin"): "binary file of a kind chatrepl cannot send",
        str(tmp_path / "nothing.png"): "There is no file",
        str(tmp_path): "is a folder",
        "ftp://example.com/x.png": "only http and https URLs",
    }
    for source, words in cases.items():
        with pytest.raises(AttachmentError) as caught:
            attachments.load(source)
        message = str(caught.value)
        assert words in message and "\n" not in message, message


def test_size_and_count_limits_from_config(home: Path, files: dict[str, Path]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("[attachments]\nmax_size_mb = 0.0001\nmax_files = 2\n")
    limits = attachments.settings()
    assert limits.max_bytes == 104 and limits.max_files == 2
    with pytest.raises(AttachmentError, match=r"larger than the limit of 104 B.*max_size_mb"):
        stage(str(files["pdf"]), None)
    staged = [stage(str(files["gif"]), None), stage(str(files["webp"]), None)]
    with pytest.raises(AttachmentError, match=r"At most 2 files go with one prompt"):
        stage(str(files["gif"]), None, staged)
    (home / "config.toml").write_text('[attachments]\nresend = "some"\n')
    with pytest.raises(attachments.ConfigError, match='resend must be "all" or "last"'):
        attachments.settings()


def test_stdin_is_read_as_bytes_within_the_limit() -> None:
    loaded = attachments.load("-", Settings(), stdin=io.BytesIO(png_bytes()))
    assert loaded.part.data["mime"] == "image/png" and loaded.part.data["name"] == "stdin"
    with pytest.raises(AttachmentError, match="What came on stdin is larger"):
        attachments.load("-", Settings(max_bytes=10), stdin=io.BytesIO(png_bytes()))


class _FileServer:
    """A plain HTTP server on a loopback port serving ``pages`` (path → bytes)."""

    def __init__(self, pages: dict[str, bytes], length: bool = True):
        pages_ = pages
        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                hits.append(self.path)
                body = pages_.get(self.path.partition("?")[0])
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                if length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("length", [True, False])
def test_a_url_is_fetched_once_when_staged_within_the_size_limit(length: bool) -> None:
    big = pdf_bytes(padding=5000)
    web = _FileServer({"/img/cat.png": png_bytes(), "/big.pdf": big}, length=length)
    try:
        loaded = attachments.load(web.url + "/img/cat.png?size=2")
        assert loaded.part.data["name"] == "cat.png" and loaded.content == png_bytes()
        with pytest.raises(AttachmentError, match="larger than the limit"):
            attachments.load(web.url + "/big.pdf", Settings(max_bytes=1000))
        with pytest.raises(AttachmentError, match="answered HTTP 404"):
            attachments.load(web.url + "/gone.png")
        assert web.hits == ["/img/cat.png?size=2", "/big.pdf", "/gone.png"]
    finally:
        web.close()


# --- the store ---------------------------------------------------------------------------------


def test_kept_once_by_hash_and_never_in_the_parts(
    store: Store, files: dict[str, Path], tmp_path: Path
) -> None:
    c = Conversation(get_backend("echo"), store=store)
    for _ in range(2):
        c.prompt("look", attachments=[stage(str(files["png"]), store)]).text()
    db = sqlite3.connect(tmp_path / "chat.db")
    try:
        rows = db.execute("SELECT sha256, mime, size FROM attachments").fetchall()
        parts = [r[0] for r in db.execute("SELECT data FROM parts")]
    finally:
        db.close()
    sha = hashlib.sha256(files["png"].read_bytes()).hexdigest()
    assert rows == [(sha, "image/png", files["png"].stat().st_size)]
    encoded = base64.b64encode(files["png"].read_bytes()).decode()
    assert sum(sha in p for p in parts) == 2
    assert not any(encoded[:20] in p or "content" in json.loads(p) for p in parts)
    assert stat.S_IMODE(os.stat(tmp_path / "chat.db").st_mode) == 0o600
    turn = store.turns(c.id)[0]
    assert [p.data["name"] for p in turn.parts if p.kind == "attachment"] == ["photo.png"]


def test_search_finds_a_turn_by_the_file_name(store: Store, files: dict[str, Path]) -> None:
    c = Conversation(get_backend("echo"), store=store)
    c.prompt("what is this", attachments=[stage(str(files["pdf"]), store)]).text()
    c.prompt("unrelated").text()
    hits = store.search("report")
    assert [h.response_id for h in hits] == [c.turns[0].id]


# --- over the wire -----------------------------------------------------------------------------


@pytest.fixture
def vendor(request: pytest.FixtureRequest, openai_env: FakeLLMServer) -> Iterator[str]:
    yield request.param


def _content(server: FakeLLMServer, index: int = -1) -> list[dict]:
    return server.last["json"]["messages"][index]["content"]


@pytest.mark.parametrize("vendor", VENDORS, indirect=True)
def test_each_kind_goes_in_the_provider_form(
    vendor: str, server: FakeLLMServer, store: Store, files: dict[str, Path]
) -> None:
    c = Conversation(get_backend(vendor), store=store)
    parts = [stage(str(files[k]), store) for k in ("png", "pdf", "text")]
    response = c.prompt("describe them", attachments=parts)
    assert response.text().startswith("You said:")
    blocks = _content(server)
    blocks[-1].pop("cache_control", None)  # Anthropic's prompt cache mark: test_wire_prompt_cache
    assert blocks[-1] == {"type": "text", "text": "describe them"}
    if vendor.startswith("openai"):
        image, pdf, text = blocks[:3]
        assert image["type"] == "image_url"
        assert decode_data_url(image["image_url"]["url"]) == ("image/png", png_bytes())
        assert pdf["type"] == "file" and pdf["file"]["filename"] == "report.pdf"
        assert decode_data_url(pdf["file"]["file_data"]) == ("application/pdf", pdf_bytes())
        assert text["type"] == "text" and text["text"].startswith("[file notes.md]\n# Notes")
        assert "café opens at nine" in text["text"]
    else:
        image, pdf, text = blocks[:3]
        assert image["type"] == "image" and image["source"]["media_type"] == "image/png"
        assert base64.b64decode(image["source"]["data"]) == png_bytes()
        assert pdf["type"] == "document" and pdf["title"] == "report.pdf"
        assert pdf["source"]["media_type"] == "application/pdf"
        assert base64.b64decode(pdf["source"]["data"]) == pdf_bytes()
        assert text["type"] == "document" and text["title"] == "notes.md"
        assert text["source"] == {
            "type": "text",
            "media_type": "text/plain",
            "data": "# Notes\nthe café opens at nine\n",
        }
    headers = {k.lower(): v for k, v in server.last["headers"].items()}
    assert "transfer-encoding" not in headers  # sent with its exact length, streamed
    assert int(headers["content-length"]) > len(pdf_bytes())


@pytest.mark.parametrize("vendor", VENDORS, indirect=True)
def test_history_resends_images_or_only_the_last_ones(
    vendor: str, server: FakeLLMServer, store: Store, files: dict[str, Path], home: Path
) -> None:
    c = Conversation(get_backend(vendor), store=store)
    c.prompt("first", attachments=[stage(str(files["png"]), store)]).text()
    c.prompt("second, no file").text()
    c.prompt("third", attachments=[stage(str(files["gif"]), store)]).text()
    c.prompt("fourth").text()
    earlier = _content(server, 0)
    assert earlier[0]["type"] in ("image_url", "image")  # "all": earlier images stay
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text('[attachments]\nresend = "last"\n')
    c.prompt("fifth").text()
    messages = server.last["json"]["messages"]
    assert messages[0]["content"][0] == {
        "type": "text",
        "text": "[photo.png was attached earlier; it is not sent again]",
    }
    third = messages[4]["content"]
    assert third[0]["type"] in ("image_url", "image") and third[-1]["text"] == "third"


def test_ollama_takes_images_and_refuses_a_pdf_in_one_sentence(
    server: FakeLLMServer, store: Store, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", server.base_url)
    c = Conversation(get_backend("ollama:llava"), store=store)
    c.prompt("see", attachments=[stage(str(files["jpeg"]), store)]).text()
    assert _content(server)[0]["image_url"]["url"].startswith("data:image/jpeg;base64,/9j/")
    asked = len(server.requests)
    response = c.prompt("read this", attachments=[stage(str(files["pdf"]), store)])
    with pytest.raises(AttachmentError) as caught:
        response.text()
    message = str(caught.value)
    assert "'llava' at Ollama cannot take the PDF 'report.pdf'" in message
    assert "\n" not in message and "prompt is saved" in message
    assert len(server.requests) == asked  # nothing was sent
    saved = store.turns(c.id)[-1]
    assert saved.prompt == "read this" and saved.status == "error"
    assert [p.data["name"] for p in saved.parts if p.kind == "attachment"] == ["report.pdf"]


@pytest.mark.parametrize("vendor", VENDORS, indirect=True)
def test_a_server_that_rejects_an_image_names_the_file_and_keeps_the_prompt(
    vendor: str, server: FakeLLMServer, store: Store, files: dict[str, Path]
) -> None:
    server.push(Status(400, _error(vendor, "image input is not supported by this model")))
    c = Conversation(get_backend(vendor), store=store)
    response = c.prompt("what is it", attachments=[stage(str(files["png"]), store)])
    with pytest.raises(AttachmentError) as caught:
        response.text()
    message = str(caught.value)
    assert "did not accept the attachment 'photo.png'" in message, message
    assert "image input is not supported" in message and "\n" not in message
    saved = store.turns(c.id)[-1]
    assert saved.prompt == "what is it" and saved.status == "error"


def _error(vendor: str, message: str) -> dict:
    if vendor.startswith("anthropic"):
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return {"error": {"message": message, "type": "invalid_request_error"}}


def test_a_conversation_without_a_store_keeps_the_bytes_in_memory(
    openai_env: FakeLLMServer, files: dict[str, Path]
) -> None:
    c = Conversation(get_backend("openai:gpt-test"))
    c.prompt("hi", attachments=[stage(str(files["webp"]), None)]).text()
    url = _content(openai_env)[0]["image_url"]["url"]
    assert decode_data_url(url) == ("image/webp", files["webp"].read_bytes())


def test_a_part_whose_bytes_are_gone_becomes_a_note(openai_env: FakeLLMServer) -> None:
    part = Part("attachment", "", {"sha256": "0" * 64, "name": "lost.png", "mime": "image/png"})
    Conversation(get_backend("openai:gpt-test")).prompt("hi", attachments=[part]).text()
    assert _content(openai_env)[0]["text"] == (
        "[lost.png was attached, but its content is not available here]"
    )


def test_the_streamed_body_is_the_json_it_stands_for() -> None:
    content = os.urandom(100_001)
    body = {"a": "x\u0000y", "b": [Base64Data(content, "data:image/png;base64,")]}
    streamed = StreamedJSON(body)
    sent = b"".join(streamed)
    assert len(sent) == streamed.length
    assert json.loads(sent) == {
        "a": "x\u0000y",
        "b": ["data:image/png;base64," + base64.b64encode(content).decode()],
    }
    assert b"".join(streamed) == sent  # a retry sends the same bytes


# --- export and import ---------------------------------------------------------------------------


def test_json_export_carries_the_files_and_import_restores_them(
    store: Store, files: dict[str, Path], tmp_path: Path
) -> None:
    c = Conversation(get_backend("echo"), store=store)
    c.prompt("look", attachments=[stage(str(files["png"]), store)]).text()
    data = json.loads(json.dumps(to_json(store.summary(c.id), store.turns(c.id), store.attachment)))
    sha = hashlib.sha256(png_bytes()).hexdigest()
    assert data["attachments"] == {
        sha: {"mime": "image/png", "base64": base64.b64encode(png_bytes()).decode()}
    }
    other = Store(tmp_path / "other.db")
    summary, turns = from_json(data)
    for key, (mime, content) in attachments_in(data).items():
        other.put_attachment(key, mime, content)
    other.import_conversation(summary, turns)
    assert other.attachment(sha) == png_bytes()
    data["attachments"][sha]["base64"] = base64.b64encode(b"tampered").decode()
    with pytest.raises(ChatreplError, match="does not match its hash"):
        attachments_in(data)
    markdown = to_markdown(store.summary(c.id), store.turns(c.id))
    assert f"- attached: `photo.png` (image/png, {len(png_bytes())} bytes, sha256 {sha[:16]})" in (
        markdown
    )


def test_export_and_import_commands_carry_attachments(home: Path, files: dict[str, Path]) -> None:
    out = run_chatrepl("-a", str(files["pdf"]), "-p", "summarise")
    assert out.returncode == 0, out.stderr
    db = home / "chatrepl.db"
    (summary,) = Store(db).recent()
    exported = run_chatrepl("export", summary.id, "--format", "json")
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert list(data["attachments"]) == [hashlib.sha256(pdf_bytes()).hexdigest()]
    path = home.parent / "export.json"
    path.write_text(exported.stdout)
    other = home.parent / "other.db"
    imported = run_chatrepl("--db", str(other), "import", str(path))
    assert imported.returncode == 0, imported.stderr
    assert Store(other).attachment(hashlib.sha256(pdf_bytes()).hexdigest()) == pdf_bytes()


# --- the command line ----------------------------------------------------------------------------


def test_dash_a_attaches_files_and_stdin_in_one_shot(
    openai_env: FakeLLMServer, files: dict[str, Path], home: Path
) -> None:
    env = child_env()
    out = run_chatrepl(
        "-m", "openai:gpt-test", "-a", str(files["png"]), "-a", "-", "-p", "both?",
        input=pdf_bytes(), text=False, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    blocks = _content(openai_env)
    assert blocks[0]["type"] == "image_url" and blocks[1]["type"] == "file"
    assert blocks[1]["file"]["filename"] == "stdin" and blocks[2]["text"] == "both?"
    missing = run_chatrepl("-a", str(files["png"]) + ".nope", "-p", "x")
    assert missing.returncode == 1 and "There is no file" in missing.stderr
    assert "Traceback" not in missing.stderr
    no_prompt = run_chatrepl("-a", "-", input="data")
    assert no_prompt.returncode == 2 and "give the prompt with -p" in no_prompt.stderr


# --- /attach -------------------------------------------------------------------------------------


@pytest.fixture
def repl(store: Store) -> Iterator:
    from chatrepl.repl.app import Repl

    with create_pipe_input() as pipe:
        console = Console(file=io.StringIO(), width=120, color_system=None)
        yield Repl(
            store,
            Conversation(get_backend("echo"), store=store),
            console=console,
            input=pipe,
            output=DummyOutput(),
            history=InMemoryHistory(),
        )


def _run(repl, line: str) -> str:
    repl.console.file.seek(0)
    repl.console.file.truncate()
    repl.handle(line)
    return repl.console.file.getvalue()


def test_attach_stages_shows_in_the_toolbar_and_goes_with_the_next_prompt(
    repl, files: dict[str, Path], store: Store
) -> None:
    assert "Nothing staged" in _run(repl, "/attach")
    said = _run(repl, f"/attach {files['png']}")
    assert "Attached 'photo.png' (image, " in said
    _run(repl, f'/attach "{files["text"]}"')
    assert "+2 attached: photo.png, notes.md" in repl.toolbar
    assert "already staged" in _run(repl, f"/attach {files['png']}")
    listing = _run(repl, "/attach")
    assert "photo.png" in listing and "2 files will go with your next prompt" in listing
    _run(repl, "what are these")
    assert "attached" not in repl.toolbar and repl.staged == []
    turn = store.turns(repl.conversation.id)[-1]
    assert [p.data["name"] for p in turn.parts if p.kind == "attachment"] == [
        "photo.png",
        "notes.md",
    ]
    _run(repl, f"/attach {files['gif']}")
    assert "Unstaged 1 file" in _run(repl, "/attach --clear")
    assert repl.staged == [] and "attached" not in repl.toolbar
    error = _run(repl, "/attach /no/such/file.png").strip()
    assert error == "There is no file '/no/such/file.png'."


def test_tab_completes_paths_after_attach(files: dict[str, Path]) -> None:
    from chatrepl.repl.commands import COMMANDS
    from chatrepl.repl.completion import ChatCompleter

    completer = ChatCompleter(COMMANDS, lambda: [], lambda: [])
    typed = f"/attach {files['png'].parent}/pho"
    found = [
        c.text for c in completer.get_completions(Document(typed, len(typed)), CompleteEvent(True))
    ]
    assert found == ["to.png"]


def test_attach_dash_in_the_repl_is_refused_without_reading_the_keyboard(repl) -> None:
    said = _run(repl, "/attach -")
    assert "/attach - would read stdin, which in the REPL is your keyboard" in said
    assert repl.staged == []


def test_a_file_name_with_a_nul_byte_is_no_file(repl) -> None:
    said = _run(repl, "/attach a\x00b.png").strip()
    assert said.startswith("There is no file") and "went wrong" not in said


def test_a_tilde_of_no_known_user_is_a_path_like_any_other(repl) -> None:
    said = _run(repl, "/attach ~0").strip()
    assert said.startswith("There is no file") and "went wrong" not in said
