"""Real MCP servers for the tests: the demo server over stdio and over streamable HTTP."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from mcp_servers import HttpServer, stdio_server

from itemloop.tools.mcp import McpServer


@pytest.fixture(scope="session")
def http_server() -> Iterator[HttpServer]:
    s = HttpServer()
    yield s
    s.stop()


@pytest.fixture
def own_http_server() -> Iterator[HttpServer]:
    """A server of the test's own, for tests that kill it."""
    s = HttpServer()
    yield s
    s.stop()


@pytest.fixture(params=["stdio", "http"])
def make_server(request: pytest.FixtureRequest) -> Callable[..., McpServer]:
    """`make_server(name, **options)`: the demo server over each transport in turn."""
    if request.param == "stdio":
        return stdio_server
    http: HttpServer = request.getfixturevalue("http_server")
    return http.server
