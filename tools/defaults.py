"""Defaults of the tools, each defined once.

Kept apart from `config.py` (pydantic) so the command line can show them in
`--help` without importing pydantic: `itemloop --help` stays fast. Everything
else reads them through `ToolsetConfig` and the executors' keyword defaults.
"""

from __future__ import annotations

from typing import Final, Literal

# The sandbox owns the command timeout (and is as light to import).
from itemloop.sandbox.base import DEFAULT_COMMAND_TIMEOUT_S as DEFAULT_COMMAND_TIMEOUT_S

BuiltinTool = Literal["shell", "local_shell", "apply_patch", "computer"]
BUILTIN_TOOLS: Final[tuple[BuiltinTool, ...]] = ("shell", "local_shell", "apply_patch", "computer")
DEFAULT_BUILTINS: Final[tuple[BuiltinTool, ...]] = ("shell", "apply_patch")

DEFAULT_OUTPUT_CHARS: Final = 100_000
"""Per shell command's stdout+stderr to the model, unless the call's `max_output_length` says otherwise."""
DEFAULT_TOOL_TIMEOUT_S: Final = 600.0
"""Per function or custom tool call, unless the tool sets its own."""
DEFAULT_MAX_CONCURRENCY: Final = 8
"""Function and custom tool calls of one turn run at once, at most this many."""
DEFAULT_MAX_FILE_BYTES: Final = 32 * 1024 * 1024
"""The largest file apply_patch reads to edit: patching holds it (and its text) in memory."""
DEFAULT_DEFER_ABOVE: Final = 100
"""With more function and MCP tools than this, the MCP tools are deferred: found
through tool search rather than sent with every request."""
