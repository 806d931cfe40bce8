"""The streaming Markdown display, read back through a terminal emulator (pyte)."""

from __future__ import annotations

import io
import random
import re

import pyte
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from chatrepl.screen.render import StreamRenderer, render_markdown
from chatrepl.text import make_safe

WIDTH, HEIGHT = 80, 24

ANSWER = """\
# Sorting in Python

Python has two ways to sort: `sorted()` returns a new list, `list.sort()` sorts in place.
Both are *stable* and take a **key** function. See [the HOWTO](https://docs.python.org/3/howto/sorting.html).

## The basics

1. `sorted(iterable)` works on any iterable:
   - lists and tuples
   - dictionaries (it sorts the keys)
     1. even nested deeper
2. `list.sort()` only exists on lists.
3. Both accept `reverse=True`.

```python
def by_length(words):
    return sorted(words, key=len)

print(by_length(["pear", "fig", "banana"]))
```

A second paragraph
that wraps over two source lines, with a rather long sentence so that rich has to wrap it on
the screen as well, and then some ~~struck~~ text.

| function | in place | returns |
|----------|:--------:|--------:|
| sorted   | no       | list    |
| sort     | yes      | None    |

> Sorting is stable: records with equal keys keep their original order.
> This makes multi-pass sorts possible.

```bash
python -m timeit -s "import random; x = random.sample(range(10**6), 10**6)" "sorted(x)"
echo done
```

---

### Keys and operator

- `operator.itemgetter(1)`
- `operator.attrgetter("name")`

* a second list with another bullet

```
plain code with no language

and a blank line inside it
```

    an indented code block
    with two lines

Setext heading
--------------

That is all. [bold red]not markup[/] stays literal.
"""


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        now = self.now
        self.now += self.step
        return now


@pytest.fixture(autouse=True)
def _terminal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)


def make_console(**kwargs: object) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    options: dict = dict(width=WIDTH, height=HEIGHT, force_terminal=True, color_system=None)
    options.update(kwargs)
    return Console(file=out, **options), out


def screen_lines(raw: str) -> list[str]:
    """What a terminal shows after ``raw``: its scrollback then its screen, trailing blanks cut."""
    screen = pyte.HistoryScreen(WIDTH, HEIGHT, history=100_000)
    screen.set_mode(pyte.modes.LNM)  # "\n" also returns the carriage, as a tty does
    pyte.Stream(screen).feed(raw)
    history = ["".join(line[x].data for x in range(WIDTH)) for line in screen.history.top]
    lines = [line.rstrip() for line in history + screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def split_randomly(text: str, seed: int, longest: int = 12) -> list[str]:
    rng = random.Random(seed)
    chunks, i = [], 0
    while i < len(text):
        n = rng.randint(1, longest)
        chunks.append(text[i : i + n])
        i += n
    return chunks


def stream(text: str | list[str], clock: FakeClock | None = None, **kwargs: object) -> str:
    console, out = make_console()
    chunks = [text] if isinstance(text, str) else text
    with StreamRenderer(console, clock=clock or FakeClock(0.02), **kwargs) as renderer:
        for chunk in chunks:
            renderer.feed(chunk)
    return out.getvalue()


def rendered_once(text: str) -> list[str]:
    console, out = make_console()
    render_markdown(console, text)
    return screen_lines(out.getvalue())


def test_reference_rendering_is_complete() -> None:
    lines = rendered_once(ANSWER)
    text = "\n".join(lines)
    for needle in ["Sorting in Python", "even nested deeper", "sorted       no        list",
                   "multi-pass", "echo done", "def by_length", "and a blank line inside it",
                   "an indented code block", "Setext heading", "That is all."]:  # fmt: skip
        assert text.count(needle) == 1, needle
    assert "(https://docs.python.org/3/howto/sorting.html)" in text  # a link shows its address


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("step", [0.0, 0.05, 1.0])
def test_streamed_scrollback_equals_one_rendering(seed: int, step: float) -> None:
    chunks = split_randomly(ANSWER, seed)
    assert screen_lines(stream(chunks, FakeClock(step))) == rendered_once(ANSWER)


def test_every_prefix_redrawn_still_equals_one_rendering() -> None:
    # refresh_interval=0: parse and maybe commit after every single character.
    raw = stream(list(ANSWER), FakeClock(0.0), refresh_interval=0)
    assert screen_lines(raw) == rendered_once(ANSWER)


def test_a_dropped_or_doubled_block_would_be_noticed() -> None:
    reference = rendered_once(ANSWER)
    assert rendered_once(ANSWER.replace("---\n\n", "")) != reference
    doubled = ANSWER.replace("That is all.", "That is all.\n\nThat is all.")
    assert rendered_once(doubled) != reference


@pytest.mark.parametrize(
    "chunks",
    [
        ["1. a", "\n2", ". b\n"],
        ["para\n", "-", "--\n", "next\n"],
        ["| a | b |\n", "|---|---|\n", "| 1 | 2 |\n", "after\n"],
        ["```py\nx = 1\n", "\n", "y = 2\n", "``", "`\n", "done"],
        ["- a\n\n", "  still a\n", "b\n"],
        # "#" alone starts a heading, "#hashtag" does not: the paragraph goes on.
        ["para\n#", "hashtag here\n", "next\n"],
        # "```" starts a fence, "```x`" does not (no backtick in a backtick fence's info).
        ["para\n```", "x` tail\n", "next\n"],
        # "|-" under "| a |" makes a table, "|-x|" does not.
        ["para\n| a |\n|-", "x|\n", "next\n"],
    ],
)
def test_blocks_are_committed_only_when_the_next_one_has_begun(chunks: list[str]) -> None:
    raw = stream(chunks, FakeClock(0.0), refresh_interval=0)
    assert screen_lines(raw) == rendered_once("".join(chunks))


def test_an_answer_taller_than_the_screen_ends_complete() -> None:
    code = "\n".join(f"value_{i:03} = {i}" for i in range(120))
    items = "\n".join(f"- item number {i:03}" for i in range(60))
    answer = f"Intro.\n\n```python\n{code}\n```\n\n{items}\n\nThe end."
    lines = screen_lines(stream(split_randomly(answer, 7, 24), FakeClock(0.03)))
    assert lines == rendered_once(answer)
    text = "\n".join(lines)
    assert "…" not in text
    for i in range(120):
        assert text.count(f"value_{i:03} = {i}") == 1
    for i in range(60):
        assert text.count(f"item number {i:03}") == 1
    assert lines[-1] == "The end."


def test_the_live_region_never_fills_the_screen() -> None:
    console, out = make_console()
    screen = pyte.Screen(WIDTH, HEIGHT)
    screen.set_mode(pyte.modes.LNM)
    terminal = pyte.Stream(screen)
    renderer = StreamRenderer(console, clock=FakeClock(1.0))
    renderer.start()
    renderer.feed("Above.\n\n```\n")
    for i in range(60):
        renderer.feed(f"line {i}\n")
        terminal.feed(out.getvalue())
        out.seek(0)
        out.truncate()
        rows = [row.strip() for row in screen.display]
        # The newest line is always on screen: the region keeps its bottom, not its top.
        assert f"line {i}" in rows
        assert "…" not in "".join(rows)
    renderer.finish()


HOSTILE = {
    "\x1b[2J": "^[[2J",
    "\x1b]0;pwned\x07": "^[]0;pwned^G",
    "\x1b]52;c;aGVsbG8=\x07": "^[]52;c;aGVsbG8=^G",
    "\x1b[10A": "^[[10A",
    "\x9b2J": "\\x9b2J",
}


@pytest.mark.parametrize("color_system", [None, "truecolor"])
def test_escape_sequences_are_shown_not_obeyed(color_system: str | None) -> None:
    answer = "Look: " + " and ".join(HOSTILE) + "\n\n```\n" + "".join(HOSTILE) + "\n```\n"
    console, out = make_console(color_system=color_system)
    with StreamRenderer(console, clock=FakeClock(0.0), refresh_interval=0) as renderer:
        for chunk in split_randomly(answer, 3, 4):
            renderer.feed(chunk)
    raw = out.getvalue()
    for hostile, visible in HOSTILE.items():
        assert hostile not in raw
        assert visible in raw
    assert "\x07" not in raw and "\x9b" not in raw and "\x1b]" not in raw
    screen = "\n".join(screen_lines(raw))
    assert screen.count("^[[2J") == 2


def test_escape_sequences_in_plain_mode_and_in_render_markdown() -> None:
    answer = "".join(HOSTILE)
    plain, out = make_console(force_terminal=False)
    render_markdown(plain, answer)
    assert out.getvalue() == make_safe(answer) + "\n"
    fancy, out = make_console()
    render_markdown(fancy, answer)
    for hostile in HOSTILE:
        assert hostile not in out.getvalue()


def test_rich_markup_in_model_text_stays_literal() -> None:
    answer = "Say [bold red]literal[/] and [link=https://x.test]x[/link]."
    lines = screen_lines(stream(split_randomly(answer, 1, 3)))
    assert lines == ["Say [bold red]literal[/] and [link=https://x.test]x[/link]."]
    console, out = make_console(force_terminal=False)
    with StreamRenderer(console) as renderer:
        renderer.feed(answer)
    assert out.getvalue() == answer + "\n"


def test_plain_mode_writes_exactly_the_text() -> None:
    answer = "# Not a heading\n\ttab, **stars**, [x] and \x1b[31mred\x1b[0m\r\nend"
    console, out = make_console(force_terminal=False)
    renderer = StreamRenderer(console)
    assert renderer.plain
    renderer.start()
    for chunk in split_randomly(answer, 5, 3):
        renderer.feed(chunk)
    assert out.getvalue() == make_safe(answer)
    renderer.finish(note="interrupted")
    renderer.finish(note="again")
    assert out.getvalue() == make_safe(answer) + "\ninterrupted\n"


@pytest.mark.parametrize(
    ("kwargs", "plain"),
    [
        ({}, False),
        ({"force_terminal": False}, True),
        ({"no_color": True}, True),
    ],
)
def test_plain_mode_is_chosen_from_the_console(kwargs: dict, plain: bool) -> None:
    console, _ = make_console(**kwargs)
    assert StreamRenderer(console).plain is plain
    assert StreamRenderer(console, plain=True).plain is True


def test_no_color_in_the_environment_means_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    console = Console(file=io.StringIO(), force_terminal=True)
    assert StreamRenderer(console).plain


def test_finish_after_an_interrupted_feed_flushes_and_shows_the_note() -> None:
    answer = "First paragraph.\n\n```python\nfor i in range(3):\n    print(i)\n"
    console, out = make_console()
    renderer = StreamRenderer(console, clock=FakeClock(0.0))
    renderer.start()
    with pytest.raises(KeyboardInterrupt):  # noqa: PT012
        for i, chunk in enumerate(split_randomly(answer, 2, 4)):
            if i == 12:
                raise KeyboardInterrupt
            renderer.feed(chunk)
    renderer.finish(note="interrupted")
    once = out.getvalue()
    renderer.finish(note="interrupted")
    assert out.getvalue() == once  # idempotent
    lines = screen_lines(once)
    assert lines[-1] == "interrupted"
    assert lines[-2] == ""
    assert "First paragraph." in lines
    assert once.endswith("\x1b[?25h") or "\x1b[?25h" in once[-20:]  # cursor shown again


def test_finish_is_safe_when_a_write_is_interrupted() -> None:
    class Flaky(io.StringIO):
        writes = 0

        def write(self, s: str) -> int:
            Flaky.writes += 1
            if Flaky.writes == 4:
                raise KeyboardInterrupt
            return super().write(s)

    out = Flaky()
    console = Console(file=out, width=WIDTH, height=HEIGHT, force_terminal=True)
    renderer = StreamRenderer(console, clock=FakeClock(1.0))
    renderer.start()
    with pytest.raises(KeyboardInterrupt):  # noqa: PT012
        for chunk in split_randomly(ANSWER, 4):
            renderer.feed(chunk)
    renderer.finish(note="interrupted")
    assert screen_lines(out.getvalue())[-1] == "interrupted"


def test_the_note_alone_when_no_text_arrived() -> None:
    console, out = make_console()
    renderer = StreamRenderer(console, clock=FakeClock(0.0))
    renderer.start()
    assert "thinking…" in screen_lines(out.getvalue())[-1]
    renderer.finish(note="error: connection refused")
    assert screen_lines(out.getvalue()) == ["error: connection refused"]


def test_throttle_without_time_passing() -> None:
    console, out = make_console()
    renderer = StreamRenderer(console, clock=FakeClock(0.0))
    renderer.start()
    for chunk in split_randomly(ANSWER * 3, 9, 4)[:1000]:
        renderer.feed(chunk)
    assert renderer.refreshes <= 2
    renderer.finish()


def test_throttle_at_one_fifteenth_of_a_second_per_token() -> None:
    console, _ = make_console()
    tokens = split_randomly(ANSWER * 3, 9, 4)[:300]
    renderer = StreamRenderer(console, clock=FakeClock(1 / 15))
    renderer.start()
    for token in tokens:
        renderer.feed(token)
    renderer.finish()
    assert len(tokens) // 2 <= renderer.refreshes <= len(tokens)


def test_render_markdown_matches_a_streamed_answer_in_plain_mode() -> None:
    console, out = make_console(force_terminal=False)
    render_markdown(console, "# hi\n")
    assert out.getvalue() == "# hi\n"


LINES = ["para", "more text", "#", "# head", "#tag", "```", "```py", "```x`", "~~~", "- a",
         "-", "---", "===", "1. one", "2. two", "10. ten", "| a |", "| a | b |", "|-|", "|-x|",
         "|---|---|", "> q", ">", "    code", "  - nested", "   1. deep", "  code in item",
         "* b", "1) x", "***", "   ```", "<div>", "`x`", "", ""]  # fmt: skip


def _committed_text(text: str, chunks: list[str] | None) -> str:
    """Only what reaches the scrollback: a non-interactive terminal draws no live region."""
    out = io.StringIO()
    console = Console(file=out, width=60, height=20, force_terminal=True,
                      force_interactive=False, color_system=None)  # fmt: skip
    if chunks is None:
        render_markdown(console, text)
    else:
        with StreamRenderer(console, clock=FakeClock(0.0), refresh_interval=0) as renderer:
            for chunk in chunks:
                renderer.feed(chunk)
    raw = out.getvalue().replace("\x1b[?25l", "").replace("\x1b[?25h", "")
    # An empty block ("#", ">") renders nothing; rich would still give it a blank line.
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in raw.split("\n")))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(LINES), min_size=1, max_size=14), st.data())
def test_any_split_of_any_block_sequence_gives_the_same_scrollback(
    lines: list[str], data: st.DataObject
) -> None:
    text = "\n".join(lines) + data.draw(st.sampled_from(["", "\n"]))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert _committed_text(text, chunks) == _committed_text(text, None)


def test_html_and_angle_brackets_are_shown_as_written() -> None:
    answer = "Use `Vec<T>` or Vec<T> here.\n\n<div>hidden?</div>\n"
    text = "\n".join(rendered_once(answer))
    assert "Vec<T> or Vec<T> here." in text
    assert "<div>hidden?</div>" in text
    assert screen_lines(stream(split_randomly(answer, 2, 3))) == rendered_once(answer)


def test_blocks_after_a_closed_fence_are_committed_while_streaming() -> None:
    console, out = make_console()
    renderer = StreamRenderer(console, clock=FakeClock(1.0))
    renderer.start()
    for line in ["```", "code line", "```", "First paragraph.", "", "Second paragraph.", ""]:
        renderer.feed(line + "\n")
    # Before the end, the fence and the first paragraph are in the scrollback for good: only
    # the unfinished last block is still live.
    assert "code line" not in renderer._view.markdown.markup
    assert "First paragraph." not in renderer._view.markdown.markup
    renderer.finish()
    assert screen_lines(out.getvalue()) == rendered_once(
        "```\ncode line\n```\nFirst paragraph.\n\nSecond paragraph.\n"
    )


@pytest.mark.parametrize(
    "long_block",
    [
        "word " * 1500,  # one long paragraph line
        "\n".join(f"line {i} of a soft-wrapped paragraph" for i in range(300)),
        "```python\n" + "\n".join(f"x_{i} = f({i})" for i in range(300)) + "\n```",
    ],
    ids=["long line", "soft-wrapped", "long fence"],
)
def test_a_long_block_streams_to_the_same_result(long_block: str) -> None:
    text = f"Intro.\n\n{long_block}\n\nAfter.\n"
    raw = stream(split_randomly(text, seed=3, longest=40), clock=FakeClock(0.05))
    assert screen_lines(raw) == rendered_once(text)
