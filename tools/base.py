"""The `Executor` protocol and the one-output-per-call fallback.

An executor turns one call item into exactly one output item (DESIGN.md,
contract 2). Errors that belong to the tool (bad arguments, a failing command,
a patch that does not apply) become that output, with text specific enough for
the model to correct itself; executors raise only for the runtime's own
failures, and `error_output` still answers the call then.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

Item = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ExecResult:
    output: Item
    ok: bool
    summary: str
    """One line for progress displays, e.g. `exit 0` or `M src/app.py: 2 hunks, +5 -3`."""


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
        """Tool definitions to send to the model."""
        ...

    async def execute(self, call: Item) -> ExecResult: ...


OUTPUT_TYPES = {
    "function_call": "function_call_output",
    "custom_tool_call": "custom_tool_call_output",
    "shell_call": "shell_call_output",
    "local_shell_call": "local_shell_call_output",
    "apply_patch_call": "apply_patch_call_output",
    "computer_call": "computer_call_output",
    "mcp_approval_request": "mcp_approval_response",
}
"""Call item types the runtime answers, and the type of their answer."""

# A 1x1 transparent PNG: computer_call_output has no text field, only a screenshot.
BLANK_PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def _message_image(message: str) -> str:
    """computer_call_output carries only a screenshot: the error is drawn on one."""
    try:
        from .computer import annotate, data_url

        return data_url(annotate(None, message, 1024, 160))
    except ImportError:  # Pillow is the optional `computer` extra
        return BLANK_PNG


def call_id_of(call: Item) -> str:
    """The id an output must carry (`mcp_approval_request` uses its `id`)."""
    if call.get("type") == "mcp_approval_request":
        return str(call.get("id", ""))
    return str(call.get("call_id", ""))


def call_name(call: Item) -> str:
    """A short human name for progress lines."""
    t = call.get("type", "?")
    if t in ("function_call", "custom_tool_call", "mcp_approval_request"):
        return str(call.get("name", t))
    return str(t).removesuffix("_call")


def error_output(call: Item, message: str) -> Item:
    """The output item that answers `call` with an error `message`."""
    t = call.get("type")
    cid = call_id_of(call)
    if t == "function_call":
        return {"type": "function_call_output", "call_id": cid, "output": message}
    if t == "custom_tool_call":
        return {"type": "custom_tool_call_output", "call_id": cid, "output": message}
    if t == "shell_call":
        return {
            "type": "shell_call_output",
            "call_id": cid,
            "output": [
                {"stdout": "", "stderr": message, "outcome": {"type": "exit", "exit_code": 1}}
            ],
        }
    if t == "local_shell_call":
        return {
            "type": "local_shell_call_output",
            "id": cid,
            "output": json.dumps({"stdout": "", "stderr": message, "exit_code": 1}),
        }
    if t == "apply_patch_call":
        return {
            "type": "apply_patch_call_output",
            "call_id": cid,
            "status": "failed",
            "output": message,
        }
    if t == "computer_call":
        return {
            "type": "computer_call_output",
            "call_id": cid,
            "output": {"type": "computer_screenshot", "image_url": _message_image(message)},
        }
    if t == "mcp_approval_request":
        return {
            "type": "mcp_approval_response",
            "approval_request_id": cid,
            "approve": False,
            "reason": message,
        }
    raise ValueError(f"no output type for item type {t!r}")


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
