"""The built-in tools selectable by name (`--tools shell,apply_patch`)."""

from __future__ import annotations

from collections.abc import Sequence

from itemloop.sandbox.base import Sandbox
from itemloop.tools.base import Executor

BUILTIN_TOOLS = ("shell", "local_shell", "apply_patch")
DEFAULT_TOOLS = ("shell", "apply_patch")


def builtin_executors(
    names: Sequence[str],
    sandbox: Sandbox,
    *,
    timeout_s: float | None = None,
    output_limit: int | None = None,
) -> list[Executor]:
    executors: list[Executor] = []
    for name in names:
        if name == "shell":
            from itemloop.tools.shell import ShellExecutor

            executors.append(
                ShellExecutor(
                    sandbox, default_timeout_s=timeout_s, default_output_limit=output_limit
                )
            )
        elif name == "local_shell":
            from itemloop.tools.local_shell import LocalShellExecutor

            executors.append(
                LocalShellExecutor(
                    sandbox, default_timeout_s=timeout_s, default_output_limit=output_limit
                )
            )
        elif name == "apply_patch":
            from itemloop.tools.apply_patch import ApplyPatchExecutor

            executors.append(ApplyPatchExecutor(sandbox))
        elif name == "computer":
            raise ValueError(
                "the computer tool is not available in this version of itemloop; "
                f"choose from: {', '.join(BUILTIN_TOOLS)}"
            )
        else:
            raise ValueError(
                f"unknown built-in tool {name!r}; choose from: {', '.join(BUILTIN_TOOLS)}"
            )
    return executors
