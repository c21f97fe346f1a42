"""Custom tools: free-form text input (`custom_tool_call`), optionally constrained
by a grammar `format` that is passed through to the model unchanged."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .base import ExecResult, check_unique_names
from .callables import call_tool, summary_line
from .defaults import DEFAULT_TOOL_TIMEOUT_S
from .items import Item, call_id_of


@dataclass
class CustomTool:
    name: str
    description: str
    fn: Callable[[str], Any]
    format: dict[str, Any] | None = None
    timeout_s: float | None = None

    def definition(self) -> Item:
        d: Item = {"type": "custom", "name": self.name, "description": self.description}
        if self.format is not None:
            d["format"] = self.format
        return d


def custom_tool(
    fn: Callable[[str], Any],
    *,
    name: str | None = None,
    description: str | None = None,
    format: dict[str, Any] | None = None,
    timeout_s: float | None = None,
) -> CustomTool:
    """`fn` takes the model's raw input text. `format` is e.g.
    `{"type": "grammar", "syntax": "lark", "definition": "..."}`."""
    return CustomTool(
        name=name or fn.__name__,
        description=description or inspect.getdoc(fn) or "",
        fn=fn,
        format=format,
        timeout_s=timeout_s,
    )


class CustomExecutor:
    item_types = ("custom_tool_call",)
    sequential = False

    def __init__(
        self,
        tools: Iterable[CustomTool],
        *,
        default_timeout_s: float | None = DEFAULT_TOOL_TIMEOUT_S,
    ) -> None:
        tools = list(tools)
        check_unique_names([t.definition() for t in tools])
        self.tools = {t.name: t for t in tools}
        self.default_timeout_s = default_timeout_s

    def definitions(self) -> list[Item]:
        return [t.definition() for t in self.tools.values()]

    async def execute(self, call: Item) -> ExecResult:
        name = str(call.get("name", ""))
        text, ok = await self._run(name, call.get("input"))
        out: Item = {"type": "custom_tool_call_output", "call_id": call_id_of(call), "output": text}
        summary = "ok" if ok else summary_line(text)
        return ExecResult(output=out, ok=ok, summary=summary)

    async def _run(self, name: str, input_text: Any) -> tuple[Any, bool]:
        tool = self.tools.get(name)
        if tool is None:  # the toolset routes only the names defined here
            return f"error: there is no custom tool named {name!r}", False
        if not isinstance(input_text, str):
            return (
                f"error: input for {name!r} must be a string, got {type(input_text).__name__}",
                False,
            )
        timeout = tool.timeout_s if tool.timeout_s is not None else self.default_timeout_s
        return await call_tool(name, tool.fn, (input_text,), {}, timeout)
