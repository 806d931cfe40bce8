"""A conversation as one self-contained HTML page, to share: nothing to fetch when it is viewed
(inline CSS, images as ``data:`` URLs), Markdown rendered by markdown-it-py and code highlighted
by Pygments (both already installed with rich), reasoning and tool calls folded, and every
branch reachable: the current path shown, the alternatives folded where they part from it.

Everything from the model or the user is escaped: markdown-it renders with raw HTML off (an
``<script>`` in an answer is text), links with ``javascript:`` and other unsafe schemes stay
text, images load only from ``data:`` URLs, and a Content-Security-Policy forbids any script.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from .export import readable_time, status_note
from .records import answer_parts

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

    from .records import ConversationSummary, Part, TurnRecord

#: No script of any kind, no fetching: styles from this page, images from data: URLs only.
POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)
_IMAGES = ("image/png", "image/jpeg", "image/webp", "image/gif")
_CSS = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto;
       padding: 0 1rem; color: #1f2328; background: #fff; }
header dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem;
            color: #59636e; font-size: .9rem; }
header dd { margin: 0; }
.turn { border-top: 1px solid #d1d9e0; padding: .5rem 0; }
.who { font-weight: 600; font-size: .85rem; color: #59636e; margin: .6rem 0 .2rem; }
.user { background: #f6f8fa; border-radius: 6px; padding: .1rem .8rem; }
.note { color: #59636e; font-style: italic; }
details { border: 1px solid #d1d9e0; border-radius: 6px; padding: .2rem .6rem; margin: .4rem 0; }
details > summary { cursor: pointer; color: #59636e; }
details.branches { border-style: dashed; }
details.branches > .branch { border-left: 3px solid #d1d9e0; padding-left: .8rem; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; border-radius: 6px; }
code { font: .9em/1.4 ui-monospace, monospace; }
img.attached { max-width: 100%; border: 1px solid #d1d9e0; }
table { border-collapse: collapse; } td, th { border: 1px solid #d1d9e0; padding: .2rem .5rem; }
"""


def to_html(
    summary: ConversationSummary,
    turns: list[TurnRecord],
    every: list[TurnRecord],
    attachment: Callable[[str], bytes | None] | None = None,
) -> str:
    """The page for a conversation: ``turns`` (the current path) shown, the other turns of
    ``every`` folded where they branch off; ``attachment`` (sha256 → bytes) embeds images."""
    from .text import make_safe

    page = _Page(every, attachment)
    title = " ".join((summary.title or "").split()) or "Untitled conversation"
    models = list(dict.fromkeys(t.model for t in turns)) or [summary.model]
    facts = [
        ("id", summary.id),
        ("model", ", ".join(models)),
        ("started", readable_time(summary.created)),
        ("turns", f"{len(turns)} on this path, {len(every)} in all"),
    ]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(title)}</title>",
        f"<style>{_CSS}{_code_css()}</style>",
        "</head><body><header>",
        f"<h1>{_text(title)}</h1><dl>",
        *(f"<dt>{k}</dt><dd>{_text(v)}</dd>" for k, v in facts),
        "</dl></header><main>",
    ]
    if summary.system:
        out.append(f'<div class="note">Persona: {_text(make_safe(summary.system))}</div>')
    parent: str | None = None
    for turn in turns:
        out.append(page.alternatives(parent, turn.id))
        out.append(page.turn(turn))
        parent = turn.id
    out.append(page.alternatives(parent, None, after=True))
    out.append("</main></body></html>")
    return "\n".join(x for x in out if x) + "\n"


class _Page:
    """The turns of one conversation, by parent, and how each is drawn."""

    def __init__(
        self, every: list[TurnRecord], attachment: Callable[[str], bytes | None] | None
    ) -> None:
        self.attachment = attachment
        self.number = {t.id: n for n, t in enumerate(every, 1)}
        self.children: dict[str | None, list[TurnRecord]] = {}
        ids = set(self.number)
        for t in every:
            parent = t.parent_id if t.parent_id in ids else None
            self.children.setdefault(parent, []).append(t)

    def alternatives(self, parent: str | None, shown: str | None, after: bool = False) -> str:
        """The branches from ``parent`` other than ``shown``, folded; ``""`` if there are none."""
        others = [t for t in self.children.get(parent, []) if t.id != shown]
        if not others:
            return ""
        n = len(others)
        what = (
            f"{n} later turn{'s' if n > 1 else ''} not on this path (undone or branched)"
            if after
            else f"{n} other branch{'es' if n > 1 else ''} from here"
        )
        inner = "".join(f'<div class="branch">{self.branch(t)}</div>' for t in others)
        return f'<details class="branches"><summary>{what}</summary>{inner}</details>'

    def branch(self, first: TurnRecord) -> str:
        """A branch from ``first``: its turns, following the newest child each time, with
        the forks along it folded in turn."""
        out, turn = [], first
        while True:
            out.append(self.turn(turn, label=f"Branch turn {self.number[turn.id]}"))
            kids = self.children.get(turn.id, [])
            if not kids:
                return "".join(out)
            nxt = kids[-1]
            out.append(self.alternatives(turn.id, nxt.id))
            turn = nxt

    def turn(self, t: TurnRecord, label: str = "") -> str:
        """One turn: the prompt and what went with it, then the answer."""
        head = f"{label} · " if label else ""
        out = [f'<section class="turn" id="turn-{self.number.get(t.id, 0)}">']
        out.append(f'<div class="who">{head}User · {_text(readable_time(t.started))}</div>')
        out.append(f'<div class="user">{markdown(t.prompt)}')
        out += [self.attached(p) for p in t.parts if p.kind == "attachment"]
        out.append("</div>")
        out.append(f'<div class="who">Assistant · {_text(t.model)}</div>')
        for p in answer_parts(t.parts):
            out.append(_answer_part(p))
        if not t.parts and t.response.strip():
            out.append(markdown(t.response))
        if note := status_note(t):
            out.append(f'<div class="note">{markdown(note)}</div>')
        out.append("</section>")
        return "".join(out)

    def attached(self, p: Part) -> str:
        """An attachment: a command's output as code, an image embedded, other files named."""
        name = _text(str(p.data.get("name") or "file"))
        mime = str(p.data.get("mime", ""))
        if "command" in p.data:
            return _fold(f"Output of <code>{name}</code>", _pre(p.text), open_=True)
        content = self.attachment(str(p.data.get("sha256", ""))) if self.attachment else None
        if mime in _IMAGES and content is not None:
            data = base64.b64encode(content).decode("ascii")
            return f'<img class="attached" alt="{name}" src="data:{mime};base64,{data}">'
        if mime.startswith("text/") and content is not None:
            return _fold(f"Attached {name}", _pre(content.decode("utf-8", "replace")))
        size = p.data.get("size")
        about = ", ".join(x for x in (_text(mime), f"{size} bytes" if size else "") if x)
        return f'<div class="note">Attached {name} ({about})</div>'


def _answer_part(p: Part) -> str:
    if p.kind == "text" and p.text.strip():
        return markdown(p.text)
    if p.kind == "reasoning" and p.text.strip():
        return _fold("Reasoning", markdown(p.text), cls="reasoning")
    if p.kind == "refusal":
        return f'<div class="note">Refused: {_text(p.text)}</div>'
    if p.kind == "tool_call":
        import json

        args = p.data.get("raw") or json.dumps(
            p.data.get("arguments", {}), ensure_ascii=False, indent=2, sort_keys=True
        )
        name = _text(str(p.data.get("name")))
        return _fold(f"Tool call <code>{name}</code>", _pre(str(args)), cls="tool")
    if p.kind == "tool_result":
        name = _text(str(p.data.get("name")))
        return _fold(f"Result of <code>{name}</code>", _pre(p.text), cls="tool")
    if p.kind == "summary":
        return _fold("Summary of the earlier turns", markdown(p.text))
    return ""


def _fold(summary: str, body: str, cls: str = "", open_: bool = False) -> str:
    """A ``<details>`` block: ``summary`` (already HTML) over ``body`` (already HTML)."""
    attrs = (f' class="{cls}"' if cls else "") + (" open" if open_ else "")
    return f"<details{attrs}><summary>{summary}</summary>{body}</details>"


def _text(value: Any) -> str:
    """Text from outside as HTML: terminal controls and invisible characters made visible,
    everything escaped (quotes too, so it is safe in an attribute)."""
    from .text import make_safe

    return html.escape(make_safe(str(value)), quote=True)


def _pre(text: str) -> str:
    return f"<pre><code>{_text(text.rstrip())}</code></pre>"


def markdown(text: str) -> str:
    """``text`` rendered from Markdown, raw HTML shown as text, code highlighted."""
    from .text import make_safe

    return _renderer().render(make_safe(text))


@cache
def _renderer() -> MarkdownIt:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    rules: dict[str, Any] = getattr(md.renderer, "rules", {})  # markdown-it's HTML renderer
    image, link_open = rules.get("image"), rules.get("link_open")

    def render_image(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        """An image from the model is a link, unless it is already here (a data: URL)."""
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        if src.startswith("data:image/") and image is not None:
            return str(image(tokens, idx, options, env))
        alt = html.escape(token.content or src, quote=True)
        return f'<a href="{html.escape(src, quote=True)}" rel="noopener noreferrer">{alt}</a>'

    def render_link(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
        if link_open is not None:
            return str(link_open(tokens, idx, options, env))
        return str(renderer.renderToken(tokens, idx, options, env))

    md.add_render_rule("image", render_image)
    md.add_render_rule("link_open", render_link)
    return md


def _highlight(code: str, lang: str, attrs: str) -> str:
    """Pygments' spans for ``code`` in ``lang`` (markdown-it puts them in ``<pre><code>``);
    ``""`` (markdown-it's own escaping) when the language is unknown."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_by_name(lang.strip().split()[0]) if lang.strip() else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""
    return str(highlight(code, lexer, HtmlFormatter(nowrap=True)))  # markdown-it wraps it


def _code_css() -> str:
    from pygments.formatters import HtmlFormatter

    return str(HtmlFormatter(style="default").get_style_defs("pre"))
