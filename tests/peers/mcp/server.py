"""An MCP server built on the official Python SDK (`mcp`, pinned in .ci/requirements.txt),
speaking Streamable HTTP at /mcp on 127.0.0.1, for tests/it/mcp.rs. It has no authorization
of its own: tokengate in front of it is the OAuth 2.1 resource server.

Run with .ci/venv/bin/python (installed by .ci/install-python). Binds port PORT (default 0:
one is picked) and prints one JSON line when it listens: {"port": PORT}.

Tools:
  add(a, b)        a + b
  whoami()         what the server was sent: whether an Authorization header arrived, and
                   tokengate's identity headers (X-Auth-Subject, X-Auth-Scopes, X-Auth-Client-Id)
  slow(seconds)    reports progress, waits `seconds`, reports progress again and returns;
                   its response is an SSE stream that stays open that long
"""

import asyncio
import json
import os
import socket
import sys

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("tokengate-test-mcp")


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool()
async def whoami(ctx: Context) -> dict:
    """The headers this server was sent that tell who is calling."""
    headers = {k.lower(): v for k, v in (ctx.headers or {}).items()}
    return {
        "authorization_seen": "authorization" in headers,
        "subject": headers.get("x-auth-subject"),
        "scopes": headers.get("x-auth-scopes"),
        "client_id": headers.get("x-auth-client-id"),
        "session": headers.get("mcp-session-id"),
    }


@server.tool()
async def slow(seconds: float, ctx: Context) -> str:
    """Waits `seconds`, reporting progress at the start and at the end."""
    await ctx.report_progress(0, seconds, "started")
    await asyncio.sleep(seconds)
    await ctx.report_progress(seconds, seconds, "done")
    return f"slept {seconds}"


async def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(os.environ.get("PORT", "0"))))
    sock.listen(128)
    app = server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    config = uvicorn.Config(app, log_level="warning", timeout_keep_alive=75)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    await uvicorn.Server(config).serve(sockets=[sock])


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
