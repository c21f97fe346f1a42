"""The `Executor` protocol: one call item in, exactly one output item out.

An executor turns one call item into exactly one output item (DESIGN.md,
contract 2). Errors that belong to the tool (bad arguments, a failing command,
a patch that does not apply) become that output, with text specific enough for
the model to correct itself; executors raise only for the runtime's own
failures, and the dispatcher still answers the call then
(`items.error_output`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .items import Item


@dataclass(frozen=True, slots=True)
class ExecResult:
    output: Item
    ok: bool
    summary: str
    """One line for progress displays, e.g. `exit 0` or `M src/app.py: 2 hunks, +5 -3`."""
    notes: tuple[Item, ...] = ()
    """Items for the model after the turn's outputs: a message explaining an output
    that has no field for text (a failed `tool_search_output`)."""


@runtime_checkable
class Executor(Protocol):
    @property
    def item_types(self) -> tuple[str, ...]:
        """Call item types this executor answers, e.g. `("shell_call",)`."""
        ...

    @property
    def sequential(self) -> bool:
        """True when calls touch shared state (the workspace) and must run one at a time, in order."""
        ...

    def definitions(self) -> list[Item]:
        """Tool definitions to send to the model. An executor of named calls
        (function and custom tools) answers exactly the names it defines."""
        ...

    async def execute(self, call: Item) -> ExecResult: ...


def check_unique_names(definitions: Sequence[Item]) -> None:
    """Raise ValueError when two tool definitions share a name."""
    seen: set[str] = set()
    for d in definitions:
        name = d.get("name")
        if isinstance(name, str):
            if name in seen:
                raise ValueError(
                    f"two tools are named {name!r} (Python functions, custom and MCP tools "
                    "share one namespace); rename one"
                )
            seen.add(name)
