"""A long Markdown answer, as a model writes one, and the local server that streams it.

Tokens are split as the test server sends them (a word with the whitespace before it), so
"20,000 tokens" means 20,000 streamed pieces.
"""

from __future__ import annotations

import random
import re
import sys

from .common import ROOT
from .gendb import TextMaker

TOKEN = re.compile(r"\s*\S+|\s+")

CODE = [
    "def load(path: str) -> dict:",
    '    """Read the settings file and return its values."""',
    "    with open(path, encoding='utf-8') as f:",
    "        data = json.load(f)",
    "    return {k: v for k, v in data.items() if v is not None}",
    "for i, row in enumerate(rows):",
    "    if row.status == 'error':",
    "        log.warning('row %d failed: %s', i, row.error)",
    "        continue",
    "    total += row.value * weights.get(row.kind, 1.0)",
    "class Cache:",
    "    def __init__(self, size: int = 128) -> None:",
    "        self.items: OrderedDict[str, bytes] = OrderedDict()",
    "async def fetch(client, url):",
    "    response = await client.get(url, timeout=30)",
    "    response.raise_for_status()",
    "    return response.json()['data']",
    "result = [x ** 2 for x in range(10) if x % 2 == 0]",
    "print(f'{name}: {value:.2f} ({delta:+.1%})')",
]


def markdown_answer(n_tokens: int, seed: int = 20) -> str:
    """Exactly ``n_tokens`` tokens of Markdown: headings, paragraphs, lists, code, quotes."""
    rng = random.Random(seed)
    text = TextMaker(seed=seed, pool=5000)
    blocks: list[str] = []
    count = 0
    section = 0
    while count < n_tokens:
        roll = rng.random()
        if not blocks or roll < 0.07:
            section += 1
            block = f"## {section}. " + rng.choice(text.sentences).rstrip(".?!")
        elif roll < 0.20:
            block = "\n".join(f"- **{w}**: {s}" for w, s in zip(
                rng.choices(text.words[:300], k=5), rng.choices(text.sentences, k=5), strict=True))  # fmt: skip
        elif roll < 0.27:
            block = "\n".join(
                f"{i}. {s}" for i, s in enumerate(rng.choices(text.sentences, k=4), 1)
            )
        elif roll < 0.40:
            start = rng.randrange(len(CODE))
            lines = [CODE[(start + i) % len(CODE)] for i in range(rng.randint(4, 16))]
            block = "```python\n" + "\n".join(lines) + "\n```"
        elif roll < 0.44:
            block = "> " + text.paragraph(1, 3)
        else:
            words = text.paragraph(2, 5).split(" ")
            i = rng.randrange(len(words))
            words[i] = f"`{words[i]}`"
            block = " ".join(words)
        blocks.append(block)
        count += len(TOKEN.findall(block))
    pieces = TOKEN.findall("\n\n".join(blocks))
    return "".join(pieces[:n_tokens])


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def fake_server():
    """The test suite's local vendor server (tests/fakeserver.py), not started yet."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from fakeserver import FakeLLMServer, Reply
    finally:
        sys.path.remove(str(ROOT / "tests"))
    return FakeLLMServer(), Reply
