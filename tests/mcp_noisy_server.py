"""An MCP server (stdio) for the tests that writes lines that are not MCP on its stdout.

``--junk N`` writes N such lines first; then, with ``--then-serve``, it serves one tool
(``echo``) as a real MCP server would; without, it stops answering (it sleeps), as a program
that is not an MCP server at all. ``--tell-args`` says its arguments on stderr and exits 2 (a
server refusing a token it was given).
"""

from __future__ import annotations

import sys
import time

args = sys.argv[1:]
if "--tell-args" in args:
    print(f"fatal: the token {args[-1]} was refused", file=sys.stderr, flush=True)
    sys.exit(2)
count = int(args[args.index("--junk") + 1]) if "--junk" in args else 0
for n in range(count):
    sys.stdout.write(f"debug: warming up the frobnicator, step {n}\n")
sys.stdout.flush()
if "--then-serve" not in args:
    time.sleep(120)
    sys.exit(0)

from mcp.server.mcpserver import MCPServer  # noqa: E402

server = MCPServer("noisy")


@server.tool()
def echo(text: str) -> str:
    """Answer with the text."""
    return f"echo: {text}"


server.run()
