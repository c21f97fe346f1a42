"""`FunctionRouter`: several executors behind the one `function_call` slot.

The dispatcher gives each call item type to one executor. Python function tools
(`FunctionExecutor`) and MCP tools (`McpTools`) both answer `function_call`, so
the router stands in for both: it offers all their definitions and hands each
call to the executor that defined the name. An unknown name gets an error that
lists every function tool available, from all of them.

    router = FunctionRouter([FunctionExecutor([get_weather]), mcp_tools])

The routing table is built on first use, not at construction, because MCP
tools are only known once their servers are connected.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import ExecResult, Executor, Item
from .callables import unknown_tool_message

__all__ = ["FunctionRouter", "function_call_executor"]


def function_call_executor(executors: Sequence[Executor]) -> Executor | None:
    """The one executor for the `function_call` slot: the only one, or a router."""
    if len(executors) > 1:
        return FunctionRouter(executors)
    return executors[0] if executors else None


class FunctionRouter:
    """Routes `function_call`s by name to the executor whose definitions name it."""

    item_types = ("function_call",)

    def __init__(self, executors: Sequence[Executor]) -> None:
        for ex in executors:
            if "function_call" not in ex.item_types:
                raise ValueError(f"{type(ex).__name__} does not answer function_call items")
        self.executors = list(executors)
        self._routes: dict[str, Executor] | None = None

    @property
    def sequential(self) -> bool:
        return any(ex.sequential for ex in self.executors)

    def routes(self) -> dict[str, Executor]:
        """Tool name -> executor. Raises `ValueError` when two executors define the same name."""
        if self._routes is None:
            routes: dict[str, Executor] = {}
            for ex in self.executors:
                for d in ex.definitions():
                    name = str(d.get("name", ""))
                    if name in routes:
                        raise ValueError(
                            f"two function tools are named {name!r} "
                            f"({type(routes[name]).__name__} and {type(ex).__name__})"
                        )
                    routes[name] = ex
            self._routes = routes
        return self._routes

    def definitions(self) -> list[Item]:
        return [d for ex in self.executors for d in ex.definitions()]

    async def execute(self, call: Item) -> ExecResult:
        name = str(call.get("name", ""))
        routes = self.routes()
        ex = routes.get(name)
        if ex is None:
            msg = unknown_tool_message("function", name, list(routes))
            return ExecResult(
                output={"type": "function_call_output", "call_id": call["call_id"], "output": msg},
                ok=False,
                summary=msg,
            )
        return await ex.execute(call)
