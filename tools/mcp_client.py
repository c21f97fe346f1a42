"""`McpConnection`: one live connection to one MCP server, owned by one task.

The `mcp` client keeps task groups open for as long as it is connected, and a
task group must be exited by the task that entered it. So each connection has
an owner task (`run`, started in `McpTools`' task group) that connects, lists
the tools, then waits; calls come from other tasks and only send requests over
the open session. When the connection is lost (the server process exited, the
HTTP server went away) the call that noticed it fails with `McpConnectionLost`,
every other call in flight is cancelled the same way, and the owner task
connects again, up to `max_reconnects` times; after that the server is
unavailable and each call says so at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx2
import mcp_types as mt
from anyio.abc import TaskStatus
from mcp import Client, StdioServerParameters
from mcp.client import Transport
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from .mcp_config import McpServer

__all__ = [
    "McpCallTimeout",
    "McpConnectError",
    "McpConnection",
    "McpConnectionLost",
    "McpUnavailable",
]

_MAX_LIST_PAGES = 100


class McpConnectError(Exception):
    """A required server could not be started or connected to at the start of a run."""


class McpUnavailable(Exception):
    """The server is down for the rest of the run (its reconnects are used up)."""


class McpConnectionLost(Exception):
    """The connection ended while this call was in flight."""

    def __init__(self, will_reconnect: bool) -> None:
        super().__init__("the connection was lost")
        self.will_reconnect = will_reconnect


class McpCallTimeout(Exception):
    pass


class McpConnection:
    def __init__(self, server: McpServer) -> None:
        self.server = server
        self.tools: list[mt.Tool] = []
        """The tools as first listed (the model was offered these for the whole run)."""
        self.reconnects = 0
        self.unavailable: str | None = None
        """Why the server cannot be used any more, once it cannot."""
        self._client: Client | None = None
        self._generation = 0
        self._ready = anyio.Event()  # set while connected, or once unavailable
        self._drop = anyio.Event()  # ends the current session
        self._closing = False
        self._inflight: set[anyio.CancelScope] = set()
        self._will_reconnect = False  # decided when the last connection was lost

    # -- the owner task ------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, serve until closed, reconnect when the connection is lost.

        Signals `task_status` once the first connection is up; raises
        `McpConnectError` (to the `start()` caller) when a required server cannot
        be reached at all. Never raises after that.
        """
        started = False

        def on_connected() -> None:
            nonlocal started
            if not started:
                started = True
                task_status.started()

        while not self._closing:
            # A fresh event per connection, made here and never inside _session:
            # close() sets the current one, and a connect still in progress must
            # see it set rather than wait on a newer one forever.
            self._drop = anyio.Event()
            connected_before = self._generation
            error: str | None = None
            try:
                await self._session(on_connected)
            except Exception as e:
                error = describe_error(e)
            if self._closing:
                break
            if not started:
                message = f"MCP server {self.server.name!r} ({self.server.describe()}) could not be started: {error}"
                if self.server.required:
                    raise McpConnectError(message)
                self._set_unavailable(message)
                task_status.started()
                return
            if self._generation == connected_before:  # this attempt never connected
                self._set_unavailable(f"reconnecting to it failed: {error}")
                return
            if self.reconnects >= self.server.max_reconnects:
                why = f"it closed the connection ({error})" if error else "it closed the connection"
                if self.reconnects:
                    why += f" after being reconnected {self.reconnects} time(s)"
                self._set_unavailable(why)
                return
            self.reconnects += 1
        self._set_unavailable("the run is shutting down")

    async def _session(self, on_connected: Callable[[], None]) -> None:
        """One connection: connect and list tools (bounded), then wait for `_drop`."""
        timeout = self.server.connect_timeout_s
        with anyio.CancelScope(deadline=anyio.current_time() + timeout) as connecting:
            async with AsyncExitStack() as stack:
                client = await stack.enter_async_context(Client(await self._transport(stack)))
                tools = await _list_tools(client)
                connecting.deadline = math.inf  # connected: no deadline on the session itself
                if self._generation == 0:
                    self.tools = tools
                self._client = client
                self._generation += 1
                self._ready.set()
                on_connected()
                try:
                    if not self._closing:
                        await self._drop.wait()
                finally:
                    self._disconnected()
        if connecting.cancelled_caught:
            raise TimeoutError(f"no answer within {timeout:g} s (connect_timeout_s)")

    async def _transport(self, stack: AsyncExitStack) -> Transport:
        s = self.server
        if s.command is not None:
            params = StdioServerParameters(
                command=s.command, args=list(s.args), env=dict(s.env) or None, cwd=s.cwd
            )
            return stdio_client(params)
        assert s.url is not None
        http = await stack.enter_async_context(
            httpx2.AsyncClient(
                headers=dict(s.headers),
                # No read bound: the streams idle between messages; calls have their own bound.
                timeout=httpx2.Timeout(s.connect_timeout_s, read=None),
            )
        )
        return streamable_http_client(s.url, http_client=http)

    def _disconnected(self) -> None:
        """No client from now on: new calls wait for the reconnect, calls in flight end."""
        self._client = None
        self._will_reconnect = not self._closing and self.reconnects < self.server.max_reconnects
        if self._ready.is_set():  # never replace an event someone may be waiting on
            self._ready = anyio.Event()
        for scope in list(self._inflight):
            scope.cancel()

    def _set_unavailable(self, why: str) -> None:
        self.unavailable = why
        self._client = None
        self._ready.set()

    # -- used from other tasks -------------------------------------------------

    def close(self) -> None:
        """Ask the owner task to disconnect and end."""
        self._closing = True
        self._drop.set()
        self._ready.set()

    async def call(
        self, tool: str, arguments: dict[str, Any], timeout_s: float | None
    ) -> mt.CallToolResult:
        """Call `tool`; raises `McpCallTimeout`, `McpConnectionLost`, `McpUnavailable`, `MCPError`."""
        with anyio.move_on_after(timeout_s):
            await self._ready.wait()  # a reconnect in progress counts against the call's time
            client = self._client
            if client is None:
                raise McpUnavailable(self.unavailable or "it is shutting down")
            generation = self._generation
            lost = anyio.CancelScope()
            self._inflight.add(lost)
            try:
                with lost:
                    try:
                        return await client.call_tool(tool, arguments)
                    except MCPError as e:
                        if e.code != mt.CONNECTION_CLOSED:
                            raise
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        pass
                    self._lose(generation)
            finally:
                self._inflight.discard(lost)
            raise McpConnectionLost(self._will_reconnect)
        raise McpCallTimeout()

    def _lose(self, generation: int) -> None:
        if generation == self._generation and self._client is not None and not self._closing:
            self._disconnected()
            self._drop.set()


async def _list_tools(client: Client) -> list[mt.Tool]:
    tools: list[mt.Tool] = []
    cursor: str | None = None
    for _ in range(_MAX_LIST_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def describe_error(e: BaseException) -> str:
    """One line for an exception, looking inside exception groups (the transports raise them)."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe_error(x) for x in e.exceptions)
    if isinstance(e, MCPError):
        return f"MCP error {e.code}: {e.message}"
    if isinstance(e, FileNotFoundError):
        return f"command not found: {e.filename or e}"
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
