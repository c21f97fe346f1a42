"""The built-in tools selectable by name (`--tools shell,apply_patch`)."""

from __future__ import annotations

from collections.abc import Sequence

from itemloop.sandbox.base import Sandbox
from itemloop.tools.base import Executor

BUILTIN_TOOLS = ("shell", "local_shell", "apply_patch", "computer")
SANDBOX_TOOLS = ("shell", "local_shell", "apply_patch")
"""The built-in tools that run in the sandbox; `computer` drives a `Computer` instead."""
DEFAULT_TOOLS = ("shell", "apply_patch")
DEFAULT_TIMEOUT_S = 120.0
"""Per shell command, unless the call's `timeout_ms` says otherwise."""
DEFAULT_OUTPUT_CHARS = 100_000
"""Per shell command, unless the call's `max_output_length` says otherwise."""


def builtin_executors(
    names: Sequence[str],
    sandbox: Sandbox,
    *,
    timeout_s: float | None = None,
    output_limit: int | None = None,
) -> list[Executor]:
    timeout = timeout_s if timeout_s is not None else DEFAULT_TIMEOUT_S
    limit = output_limit if output_limit is not None else DEFAULT_OUTPUT_CHARS
    executors: list[Executor] = []
    for name in names:
        if name == "shell":
            from itemloop.tools.shell import ShellExecutor

            executors.append(
                ShellExecutor(sandbox, default_timeout_s=timeout, default_output_limit=limit)
            )
        elif name == "local_shell":
            from itemloop.tools.local_shell import LocalShellExecutor

            executors.append(
                LocalShellExecutor(sandbox, default_timeout_s=timeout, default_output_limit=limit)
            )
        elif name == "apply_patch":
            from itemloop.tools.apply_patch import ApplyPatchExecutor

            executors.append(ApplyPatchExecutor(sandbox))
        else:
            raise ValueError(
                f"unknown built-in tool {name!r}; choose from: {', '.join(BUILTIN_TOOLS)}"
            )
    return executors
