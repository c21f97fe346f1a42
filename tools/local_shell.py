"""`local_shell_call` -> `local_shell_call_output`: one argv command in the sandbox.

The action's `command` is an argv (no shell), with `env` added to the
sandbox's environment, `working_directory` resolved inside the workspace,
`timeout_ms` enforced by killing the whole process tree, and `user` honoured
where the sandbox can switch users (else the output is a clear error). As the
API's schema says, the output item carries the call's `call_id` in its `id`,
and `output` is a JSON string: `{"stdout", "stderr", "exit_code", "timed_out",
"duration_s"}` (`exit_code` is null after a timeout), with stdout+stderr
capped at the executor's output limit (head and tail kept around a marker).
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from itemloop.sandbox.base import SandboxError

from .base import ExecResult
from .items import Item, call_id_of
from .shell import (
    MAX_TIMEOUT_MS,
    MAX_TIMEOUT_S,
    SandboxCommandExecutor,
    byte_limit_for,
    capped_streams,
    positive_int,
)


class LocalShellExecutor(SandboxCommandExecutor):
    """Answers `local_shell_call` items through a `Sandbox`."""

    tool_type = "local_shell"
    item_types = ("local_shell_call",)

    async def execute(self, call: Item) -> ExecResult:
        cid = call_id_of(call)
        try:
            argv, env, cwd, timeout_s, user = self._parse(call.get("action"))
        except ValueError as e:
            return self._error(cid, f"invalid local_shell_call: {e}", "invalid call")
        try:
            result = await self.sandbox.run(
                argv,
                cwd=cwd,
                env=env,
                timeout_s=timeout_s,
                output_limit=byte_limit_for(self.default_output_limit),
                user=user,
            )
        except SandboxError as e:
            return self._error(cid, f"sandbox error: {e}", "sandbox error")
        limit = self.default_output_limit
        if result.timed_out:
            note = f"command timed out after {timeout_s * 1000:.0f} ms and was killed"
            stdout, stderr = capped_streams(result, max(0, limit - len(note) - 1))
            stderr = f"{stderr}\n{note}" if stderr else note
        else:
            stdout, stderr = capped_streams(result, limit)
        payload = {
            "stdout": stdout,
            "stderr": stderr,
            "exit_code": None if result.timed_out else result.exit_code,
            "timed_out": result.timed_out,
            "duration_s": round(result.duration_s, 3),
        }
        summary = "timeout" if result.timed_out else f"exit {result.exit_code}"
        ok = not result.timed_out and result.exit_code == 0
        return ExecResult(self._output(cid, payload), ok=ok, summary=summary)

    def _parse(self, action: Any) -> tuple[list[str], dict[str, str], str, float, str | None]:
        if not isinstance(action, dict):
            raise ValueError("local_shell_call has no `action` object")
        command = action.get("command")
        if not isinstance(command, list) or not command:
            raise ValueError("`action.command` must be a non-empty list of strings (an argv)")
        for i, a in enumerate(command):
            if not isinstance(a, str):
                raise ValueError(f"`action.command[{i}]` must be a string, got {type(a).__name__}")
        env = action.get("env") or {}
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise ValueError("`action.env` must be an object of string values")
        cwd = action.get("working_directory") or "."
        if not isinstance(cwd, str):
            raise ValueError("`action.working_directory` must be a string")
        cwd = self._relative_cwd(cwd)
        timeout_ms = positive_int(action.get("timeout_ms"), "timeout_ms", maximum=MAX_TIMEOUT_MS)
        timeout_s = timeout_ms / 1000 if timeout_ms is not None else self.default_timeout_s
        user = action.get("user")
        if user is not None and not isinstance(user, str):
            raise ValueError("`action.user` must be a string")
        return list(command), dict(env), cwd, min(timeout_s, MAX_TIMEOUT_S), user or None

    def _relative_cwd(self, cwd: str) -> str:
        """Accept the workspace's own path inside the sandbox as a prefix of `cwd`."""
        mount = self.sandbox.workspace_mount
        if posixpath.isabs(cwd):
            norm = posixpath.normpath(cwd)
            if norm == mount:
                return "."
            if norm.startswith(mount.rstrip("/") + "/"):
                return norm[len(mount.rstrip("/")) + 1 :]
        return cwd

    def _error(self, cid: str, message: str, summary: str) -> ExecResult:
        payload = {"stdout": "", "stderr": message, "exit_code": 1, "timed_out": False}
        return ExecResult(self._output(cid, payload), ok=False, summary=summary)

    @staticmethod
    def _output(cid: str, payload: dict[str, Any]) -> Item:
        return {"type": "local_shell_call_output", "id": cid, "output": json.dumps(payload)}
