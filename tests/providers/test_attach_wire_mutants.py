"""Attachments on the wire (``providers/attach_wire.py``), pinned down where mutation testing
found them unguarded: the line a model reads for a file that is not sent, a text file that is
not valid UTF-8, a command's output, the sentence for a server that refused the files (and
when a refusal is not about them), and the streamed body's bytes and headers.

Each test sends a request through a provider backend to a real local server and asserts what
it received or the sentence the caller gets. See benchmarks/mutation/RESULTS.md
(``providers/attach_wire.py``) for the mutants they kill.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fakeserver import Status
from wirehelp import ANTHROPIC_KEY, KEY, events, joined

from chatrepl import errors
from chatrepl.providers.anthropic import AnthropicBackend
from chatrepl.providers.http import Endpoint
from chatrepl.providers.openai import OpenAIBackend
from chatrepl.records import Message, Part

PNG = b"\x89PNG\r\n\x1a\nfake"


def anthropic(url: str, name: str = "claude-test") -> AnthropicBackend:
    endpoint = Endpoint("Anthropic", url, api_key=ANTHROPIC_KEY, max_retries=0)
    return AnthropicBackend(name, "anthropic", {}, endpoint=endpoint, prompt_cache=False)


def openai(url: str) -> OpenAIBackend:
    endpoint = Endpoint("OpenAI", url, api_key=KEY, max_retries=0)
    return OpenAIBackend("gpt-test", "openai", {}, endpoint=endpoint)


def attachment(name: str, mime: str, **data) -> Part:
    return Part("attachment", "", {"name": name, "mime": mime, **data})


def sent_blocks(server) -> list:
    """The content blocks of the last user message the server received."""
    return server.last["json"]["messages"][-1]["content"]


# --- the line a model reads instead of a file ----------------------------------------------------

LOST = "[lost.png was attached, but its content is not available here]"


def test_an_attachment_handed_over_without_its_bytes_is_named_not_sent(server):
    # kills note_5 (a part with neither bytes nor a "missing" mark, as a caller may pass one)
    lost = attachment("lost.png", "image/png", sha256="0" * 64)
    events(anthropic(server.anthropic_url), messages=[Message("user", "see", (lost,))])
    assert sent_blocks(server) == [{"type": "text", "text": LOST}, {"type": "text", "text": "see"}]


def test_a_part_marked_missing_is_named_even_with_bytes_beside_it(server):
    # kills note_6, _7, _8: the mark decides, whatever else the part carries
    lost = attachment("lost.png", "image/png", missing=True, content=PNG)
    events(openai(server.openai_url), messages=[Message("user", "see", (lost,))])
    assert sent_blocks(server) == [{"type": "text", "text": LOST}, {"type": "text", "text": "see"}]


# --- text files ------------------------------------------------------------------------------------

LATIN1 = b"  caf\xe9 cr\xe8me\n\n"  # not UTF-8: each bad byte is read as U+FFFD


def test_a_text_file_that_is_not_utf8_is_inlined_with_replacement_characters(server):
    # kills inline_text_5, _11, _12 (invalid bytes), _17 (only the end is trimmed)
    menu = attachment("menu.txt", "text/plain", content=LATIN1)
    events(openai(server.openai_url), messages=[Message("user", "read", (menu,))])
    assert sent_blocks(server)[0] == {
        "type": "text",
        "text": "[file menu.txt]\n  caf\ufffd cr\ufffdme\n[end of file menu.txt]",
    }


def test_a_text_file_that_is_not_utf8_is_a_document_with_replacement_characters(server):
    # kills text_content_4, _10, _11
    menu = attachment("menu.txt", "text/plain", content=LATIN1)
    events(anthropic(server.anthropic_url), messages=[Message("user", "read", (menu,))])
    assert sent_blocks(server)[0] == {
        "type": "document",
        "source": {
            "type": "text",
            "media_type": "text/plain",
            "data": "  caf\ufffd cr\ufffdme\n\n",
        },
        "title": "menu.txt",
    }


def test_a_commands_output_is_inlined_as_it_is(server):
    # kills inline_text_13, _14: a command's output already says what it is ("$ ls" first)
    output = attachment("$ ls", "text/plain", command="ls", content=b"$ ls\na.txt\nb.txt\n\n")
    events(openai(server.openai_url), messages=[Message("user", "which?", (output,))])
    assert sent_blocks(server)[0] == {"type": "text", "text": "$ ls\na.txt\nb.txt"}


# --- a refused request: about the files, or not --------------------------------------------------


def refuse(server, message: str) -> None:
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    server.push(Status(400, error))


def refusal(server, *parts: Part) -> errors.ChatreplError:
    with pytest.raises(errors.ChatreplError) as caught:
        events(anthropic(server.anthropic_url), messages=[Message("user", "see", parts)])
    return caught.value


def test_two_refused_images_are_named_together_with_the_servers_words(server):
    # kills rejected_25 (the names' separator), _29, _30, _32 (only the full stop is taken off
    # the server's words: an "X" before it stays), _36, _37, _39 (the plural)
    refuse(server, "images wider than 8000 px are not supported along X")
    caught = refusal(
        server,
        attachment("a.png", "image/png", content=PNG),
        attachment("b.png", "image/png", content=PNG),
    )
    assert isinstance(caught, errors.AttachmentError)
    assert str(caught) == (
        "Anthropic's 'claude-test' did not accept the attachments 'a.png', 'b.png' "
        "(Anthropic refused the request for 'claude-test' (HTTP 400): images wider than "
        "8000 px are not supported along X): the prompt is saved; ask again without it or "
        "with a model that reads it."
    )


def test_a_refusal_about_an_image_not_sent_is_the_servers_sentence(server):
    # kills rejected_2: an earlier turn's image left out of this request is not to blame
    refuse(server, "image input is not supported")
    caught = refusal(server, attachment("old.png", "image/png", omitted=True))
    assert type(caught) is errors.BadRequestError
    assert "did not accept" not in str(caught)


def test_a_refusal_with_only_a_text_file_attached_is_the_servers_sentence(server):
    # kills rejected_3, _12, _13: a text file goes as text every model reads
    refuse(server, "unsupported value in a document block")
    caught = refusal(server, attachment("notes.txt", "text/plain", content=b"hello"))
    assert type(caught) is errors.BadRequestError
    assert str(caught) == (
        "Anthropic refused the request for 'claude-test' (HTTP 400): "
        "unsupported value in a document block."
    )


def test_a_refusal_without_attachments_is_the_servers_sentence(server):
    # kills rejected_17
    refuse(server, "unsupported parameter: top_k")
    with pytest.raises(errors.ChatreplError) as caught:
        events(anthropic(server.anthropic_url))
    assert type(caught.value) is errors.BadRequestError
    assert str(caught.value) == (
        "Anthropic refused the request for 'claude-test' (HTTP 400): unsupported parameter: top_k."
    )


def test_a_refusal_whose_words_are_not_about_files_is_the_servers_sentence(server):
    # kills rejected_22: an image was sent, but the server complains about something else
    refuse(server, "temperature: out of range")
    caught = refusal(server, attachment("a.png", "image/png", content=PNG))
    assert type(caught) is errors.BadRequestError
    assert "did not accept" not in str(caught)


# --- the streamed body --------------------------------------------------------------------------


def test_a_request_with_a_file_says_it_is_json_of_its_length(server):
    # kills StreamedJSON.headers_1, _4, _5
    events(
        anthropic(server.anthropic_url),
        messages=[Message("user", "see", (attachment("a.png", "image/png", content=PNG),))],
    )
    sent = {k.lower(): v for k, v in server.last["headers"].items()}
    assert sent["content-type"] == "application/json"
    assert "transfer-encoding" not in sent
    assert server.last["json"]["messages"][0]["content"][0]["source"]["data"] == "iVBORw0KGgpmYWtl"


class Recorder:
    """A server that keeps the raw bytes of each request body and answers one Anthropic
    stream of ``ok``."""

    ANSWER = (
        b'event: message_start\ndata: {"type": "message_start", "message": {"usage": {}}}\n\n'
        b'event: content_block_start\ndata: {"type": "content_block_start", "index": 0, '
        b'"content_block": {"type": "text", "text": ""}}\n\n'
        b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, '
        b'"delta": {"type": "text_delta", "text": "ok"}}\n\n'
        b'event: content_block_stop\ndata: {"type": "content_block_stop", "index": 0}\n\n'
        b'event: message_delta\ndata: {"type": "message_delta", "delta": '
        b'{"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}}\n\n'
        b'event: message_stop\ndata: {"type": "message_stop"}\n\n'
    )

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                recorder.bodies.append(self.rfile.read(length))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(Recorder.ANSWER)))
                self.end_headers()
                self.wfile.write(Recorder.ANSWER)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    r.thread.start()
    yield r
    r.httpd.shutdown()
    r.httpd.server_close()


def test_text_beside_a_file_goes_out_as_utf8_not_escaped(recorder):
    # kills StreamedJSON.__init___15, _16: a body with a file is written as the one without
    # (UTF-8), not with every non-ASCII character as a six-byte \\u escape
    prompt = "Qu'est-ce que c'est ? Un café ☕"
    image = attachment("a.png", "image/png", content=PNG)
    got = events(anthropic(recorder.url), messages=[Message("user", prompt, (image,))])
    assert joined(got) == "ok"
    raw = recorder.bodies[-1]
    assert prompt.encode("utf-8") in raw
    assert b"\\u00e9" not in raw and b"\\u2615" not in raw
