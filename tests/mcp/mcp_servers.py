"""Starting the demo MCP server (tests/mcp/servers/demo_server.py) for the tests."""

from __future__ import annotations

import selectors
import subprocess
import sys
from pathlib import Path
from typing import Any

from itemloop.tools.mcp import McpServer

SERVER = Path(__file__).parent / "servers" / "demo_server.py"
READY_TIMEOUT_S = 30.0


def stdio_server(name: str = "demo", **options: Any) -> McpServer:
    """The demo server as a stdio subprocess (started by `McpTools`)."""
    return McpServer(name, command=sys.executable, args=(str(SERVER), "stdio"), **options)


class HttpServer:
    """The demo server over streamable HTTP in a subprocess, on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "http"], stdout=subprocess.PIPE, text=True
        )
        self.url = f"http://127.0.0.1:{self._port()}/mcp"

    def _port(self) -> int:
        # The server prints `PORT n` once its socket listens; connections made after that
        # wait in the backlog until it accepts them. A bounded wait for that one line.
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(READY_TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(
                f"the HTTP MCP server did not start within {READY_TIMEOUT_S} s: {line!r}"
            )
        return int(line.split()[1])

    def server(self, name: str = "web", **options: Any) -> McpServer:
        return McpServer(name, url=self.url, **options)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
