"""`shell_call` -> `shell_call_output`: the commands of one call, run in order in the sandbox.

Each command runs with `sh -c` in the workspace root and gets its own output
chunk with its own outcome (`exit` with its code, or `timeout`). `timeout_ms`
bounds the whole call: each command gets what is left of it, a command that
runs out is killed with its whole process tree, and commands after it are not
run (their chunks say so, with a `timeout` outcome). `max_output_length` caps
each chunk's combined stdout+stderr in characters, keeping the head and the
tail around a marker that says how many characters were cut; the cap used is
echoed in the output item. `max_output_length` is clamped to
`MAX_OUTPUT_LENGTH` and `timeout_ms` to a day; NaN and infinity are refused.
"""

from __future__ import annotations

import math
import time
from typing import Any

from itemloop.sandbox.base import CommandResult, Sandbox, SandboxError
from itemloop.sandbox.capture import cap_text, split_budget, split_marked

from .base import ExecResult
from .defaults import DEFAULT_COMMAND_TIMEOUT_S, DEFAULT_OUTPUT_CHARS
from .items import Item, call_id_of

MAX_TIMEOUT_S = 24 * 3600.0
MAX_TIMEOUT_MS = int(MAX_TIMEOUT_S * 1000)
MAX_OUTPUT_LENGTH = 10_000_000
"""The largest `max_output_length` honoured, in characters (the API caps a chunk's
stdout at 10,485,760); larger requests are clamped to it."""


def byte_limit_for(chars: int) -> int:
    """Bytes per stream to keep so that `chars` characters of head and tail survive."""
    return max(1024, 8 * chars + 64)


def capped_streams(result: CommandResult, limit: int) -> tuple[str, str]:
    """stdout and stderr of `result`, together at most `limit` characters."""
    out_head, out_tail = split_marked(result.stdout, result.stdout_dropped_chars)
    err_head, err_tail = split_marked(result.stderr, result.stderr_dropped_chars)
    out_len = len(out_head) + len(out_tail) + result.stdout_dropped_chars
    err_len = len(err_head) + len(err_tail) + result.stderr_dropped_chars
    out_budget, err_budget = split_budget(out_len, err_len, limit)
    out = cap_text(out_head, out_budget, tail=out_tail, already_cut=result.stdout_dropped_chars)
    err = cap_text(err_head, err_budget, tail=err_tail, already_cut=result.stderr_dropped_chars)
    return out, err


def positive_int(value: Any, name: str, *, maximum: int | None = None) -> int | None:
    """`value` as a positive int, None when absent; ValueError with a message the model can use.

    Non-finite numbers (NaN, and the infinity JSON's `1e400` parses to) are
    refused; a finite value above `maximum` is clamped to it.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if maximum is not None and value > maximum:
        return maximum
    return int(value)


class SandboxCommandExecutor:
    """What the two shell executors share: a sandbox and the defaults a call may override."""

    tool_type = ""
    item_types: tuple[str, ...] = ()
    sequential = True  # commands share the workspace: one at a time, in call order

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        default_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
        default_output_limit: int = DEFAULT_OUTPUT_CHARS,
    ) -> None:
        self.sandbox = sandbox
        self.default_timeout_s = default_timeout_s
        self.default_output_limit = default_output_limit

    def definitions(self) -> list[Item]:
        return [{"type": self.tool_type}]


class ShellExecutor(SandboxCommandExecutor):
    """Answers `shell_call` items through a `Sandbox`."""

    tool_type = "shell"
    item_types = ("shell_call",)

    async def execute(self, call: Item) -> ExecResult:
        cid = call_id_of(call)
        action = call.get("action")
        limit = self.default_output_limit
        try:
            if not isinstance(action, dict):
                raise ValueError("shell_call has no `action` object")
            limit = (
                positive_int(
                    action.get("max_output_length"), "max_output_length", maximum=MAX_OUTPUT_LENGTH
                )
                or limit
            )
            timeout_ms = positive_int(
                action.get("timeout_ms"), "timeout_ms", maximum=MAX_TIMEOUT_MS
            )
            commands = action.get("commands")
            if not isinstance(commands, list) or not commands:
                raise ValueError("`action.commands` must be a non-empty list of command strings")
            for i, c in enumerate(commands):
                if not isinstance(c, str):
                    raise ValueError(
                        f"`action.commands[{i}]` must be a string, got {type(c).__name__}"
                    )
        except ValueError as e:
            chunk = _chunk("", f"invalid shell_call: {e}", 2)
            return ExecResult(self._output(cid, [chunk], limit), ok=False, summary="invalid call")

        budget = timeout_ms / 1000 if timeout_ms is not None else self.default_timeout_s
        budget = min(budget, MAX_TIMEOUT_S)
        deadline = time.monotonic() + budget
        chunks: list[Item] = []
        outcomes: list[str] = []
        ok = True
        for command in commands:
            left = deadline - time.monotonic()
            if left <= 0:
                chunks.append(
                    _timeout_chunk(
                        "",
                        f"not run: the call's timeout ({budget * 1000:.0f} ms) was used up "
                        "by the commands before it",
                    )
                )
                outcomes.append("not run")
                ok = False
                continue
            if not command.strip():
                chunks.append(_chunk("", "empty command", 2))
                outcomes.append("exit 2")
                ok = False
                continue
            try:
                result = await self.sandbox.run(
                    script=command, timeout_s=left, output_limit=byte_limit_for(limit)
                )
            except SandboxError as e:
                chunks.append(_chunk("", f"sandbox error: {e}", 1))
                outcomes.append("sandbox error")
                ok = False
                continue
            if result.timed_out:
                note = f"command timed out after {left * 1000:.0f} ms and was killed"
                stdout, stderr = capped_streams(result, max(0, limit - len(note) - 1))
                stderr = f"{stderr}\n{note}" if stderr else note
                chunks.append(_timeout_chunk(stdout, stderr))
                outcomes.append("timeout")
                ok = False
            else:
                stdout, stderr = capped_streams(result, limit)
                code = result.exit_code if result.exit_code is not None else 1
                chunks.append(_chunk(stdout, stderr, code))
                outcomes.append(f"exit {code}")
                ok = ok and code == 0
        summary = (
            outcomes[0]
            if len(outcomes) == 1
            else f"{len(outcomes)} commands: " + ", ".join(outcomes)
        )
        return ExecResult(self._output(cid, chunks, limit), ok=ok, summary=summary)

    @staticmethod
    def _output(cid: str, chunks: list[Item], limit: int) -> Item:
        return {
            "type": "shell_call_output",
            "call_id": cid,
            "max_output_length": limit,
            "output": chunks,
        }


def _chunk(stdout: str, stderr: str, code: int) -> Item:
    return {"stdout": stdout, "stderr": stderr, "outcome": {"type": "exit", "exit_code": code}}


def _timeout_chunk(stdout: str, stderr: str) -> Item:
    return {"stdout": stdout, "stderr": stderr, "outcome": {"type": "timeout"}}
