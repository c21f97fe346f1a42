"""Client-side MCP tools: tools of MCP servers the user named, offered as `function` tools.

    async with McpTools([McpServer("files", command="mcp-server-files", args=("/srv",))]) as mcp:
        ...  # mcp.definitions(): `files__read_file`, ...; mcp.execute(function_call) calls it

`McpTools` connects to every server (stdio subprocess or streamable HTTP),
lists their tools and answers the model's `function_call`s for them by calling
the server. It is an `Executor` for `function_call`; a `Toolset`
(tools/toolset.py) routes each call to it by name, beside Python functions.

Every call gets exactly one `function_call_output`: the tool's result, or an
error text for bad JSON arguments, an unknown name, a timeout, a server error
result (`isError`), an MCP protocol error, or a server that died (the server
is then restarted/reconnected once, by default, for later calls).

MCP servers are not sandboxed by itemloop: the user chose them and they run
as configured (see tools/mcp_config.py for what environment a stdio server gets).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self

import anyio
from mcp.shared.exceptions import MCPError

from .base import ExecResult
from .callables import ToolOutput, parse_arguments, summary_line
from .items import Item, call_id_of
from .mcp_client import (
    McpCallTimeout,
    McpConnectError,
    McpConnection,
    McpConnectionLost,
    McpUnavailable,
    describe_error,
)
from .mcp_config import McpServer, McpSpecError, servers_from_cli
from .mcp_output import result_output, tool_definition, unique_name

__all__ = ["McpConnectError", "McpServer", "McpSpecError", "McpTools", "servers_from_cli"]


class McpTools:
    """An `Executor` for the tools of MCP servers. Use `async with` to connect."""

    item_types = ("function_call",)
    sequential = False

    def __init__(self, servers: Sequence[McpServer], *, namespaces: bool = False) -> None:
        """With `namespaces`, each server's tools are offered as a `namespace` named
        after the server (calls carry `namespace` beside `name`); without, as
        top-level functions named `SERVER__TOOL`, for model servers without namespaces."""
        names = [s.name for s in servers]
        for n in names:
            if names.count(n) > 1:
                raise McpSpecError(f"two MCP servers are named {n!r}")
        self.namespaces = namespaces
        self.connections = [McpConnection(s) for s in servers]
        self.routes: dict[tuple[str, str], tuple[McpConnection, str]] = {}
        """(namespace or "", model-facing tool name) -> (connection, the tool's name on its server)."""
        self.warnings: list[str] = []
        """Servers skipped at start (those with `required=False`), one line each."""
        self._definitions: list[Item] | None = None
        self._stack: AsyncExitStack | None = None

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        await stack.__aenter__()
        errors: list[str] = []
        connected = False
        try:
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(self._close_all)  # runs first on exit: the owner tasks then end

            async def start(conn: McpConnection) -> None:
                try:
                    await tg.start(conn.run)
                except McpConnectError as e:
                    errors.append(str(e))

            async with anyio.create_task_group() as starters:
                for conn in self.connections:
                    starters.start_soon(start, conn)
            connected = not errors
        finally:
            if not connected:
                # Close what did connect; exit the task group clean, so that what is
                # raised is the error itself, not a group around it.
                await stack.__aexit__(None, None, None)
        if errors:
            raise McpConnectError("\n".join(errors))
        self._stack = stack
        self._build_routes()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(et, e, tb)

    def _close_all(self) -> None:
        for conn in self.connections:
            conn.close()

    def _build_routes(self) -> None:
        taken: set[str] = set()
        definitions: list[Item] = []
        for conn in self.connections:
            if conn.unavailable is not None and not conn.tools:
                self.warnings.append(conn.unavailable)
            server = conn.server.name
            if self.namespaces:
                names: set[str] = set()
                tools = []
                for tool in conn.tools:
                    name = unique_name(tool.name, names)
                    self.routes[(server, name)] = (conn, tool.name)
                    tools.append(tool_definition(name, tool, server, namespaced=True))
                if tools:
                    definitions.append(
                        {
                            "type": "namespace",
                            "name": server,
                            "description": f"Tools of the MCP server {server!r}.",
                            "tools": tools,
                        }
                    )
                continue
            for tool in conn.tools:
                name = unique_name(f"{server}__{tool.name}", taken)
                self.routes[("", name)] = (conn, tool.name)
                definitions.append(tool_definition(name, tool, server))
        self._definitions = definitions

    # -- Executor --------------------------------------------------------------

    def definitions(self) -> list[Item]:
        if self._definitions is None:
            raise RuntimeError(
                "McpTools is not connected yet: enter it (`async with McpTools(...)`) before "
                "asking for its tool definitions"
            )
        return list(self._definitions)

    async def execute(self, call: Item) -> ExecResult:
        name = str(call.get("name", ""))
        namespace = str(call.get("namespace") or "")
        output, ok = await self._run(namespace, name, call.get("arguments"))
        summary = "ok" if ok else summary_line(output)
        out: Item = {"type": "function_call_output", "call_id": call_id_of(call), "output": output}
        if namespace:
            out["namespace"] = namespace  # echoed, as the call named it
        return ExecResult(output=out, ok=ok, summary=summary)

    async def _run(self, namespace: str, name: str, arguments: Any) -> tuple[ToolOutput, bool]:
        route = self.routes.get((namespace, name))
        if route is None:
            where = f" in namespace {namespace!r}" if namespace else ""
            return f"error: there is no MCP tool named {name!r}{where}", False
        conn, tool = route
        args = parse_arguments(name, arguments)
        if isinstance(args, str):
            return args, False
        server = conn.server.name
        timeout = conn.server.call_timeout_s
        try:
            result = await conn.call(tool, args, timeout)
        except McpCallTimeout:
            return (
                f"error: tool {name!r} (MCP server {server!r}) did not finish within {timeout:g} s; "
                "the call was abandoned and the server was asked to cancel it"
            ), False
        except McpConnectionLost as e:
            if e.will_reconnect:
                then = "The server is being reconnected, so the call can be retried."
            else:
                then = (
                    "It will not be reconnected: its tools cannot be used for the rest of this run."
                )
            return (
                f"error: MCP server {server!r} closed the connection during the call to {name!r} "
                "(its process exited or crashed, or the connection broke); the call may or may "
                f"not have taken effect. {then}"
            ), False
        except McpUnavailable as e:
            tools = ", ".join(n for (_, n), (c, _) in self.routes.items() if c is conn)
            return (
                f"error: MCP server {server!r} is unavailable: {e}. Its tools ({tools}) cannot "
                "be used for the rest of this run"
            ), False
        except MCPError as e:
            return (
                f"error: MCP server {server!r} refused the call to {name!r}: {e.message} "
                f"(MCP error {e.code})"
            ), False
        except Exception as e:
            return (
                f"error: calling {name!r} (MCP server {server!r}) failed: {describe_error(e)}",
                False,
            )
        return result_output(result, server=server, tool=name)
