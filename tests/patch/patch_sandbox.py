"""A Sandbox over `WorkspaceFiles` for the apply_patch tests.

The file operations are the real ones every backend shares (what these tests
exercise); only `run` is missing, which apply_patch never uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import pydantic
from openai.types.responses import ResponseInputItemParam

from itemloop.sandbox.base import CommandResult, FileStat
from itemloop.sandbox.files import WorkspaceFiles
from itemloop.tools.apply_patch import ApplyPatchExecutor
from itemloop.tools.base import ExecResult

INPUT_ITEM: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseInputItemParam)


class FileSandbox:
    name = "files"

    def __init__(self, root: Path) -> None:
        self.files = WorkspaceFiles(root)
        self.writes: list[str] = []

    async def __aenter__(self) -> FileSandbox:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def run(
        self,
        argv: Sequence[str] | None = None,
        *,
        script: str | None = None,
        cwd: str = ".",
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        output_limit: int | None = None,
        user: str | None = None,
    ) -> CommandResult:
        raise NotImplementedError("apply_patch never runs commands")

    @property
    def workspace_mount(self) -> str:
        return str(self.files.root)

    async def read_file(self, path: str, *, max_bytes: int | None = None) -> bytes:
        return await self.files.read_file(path, max_bytes=max_bytes)

    async def write_file(self, path: str, data: bytes, *, mode: int | None = None) -> None:
        self.writes.append(path)
        await self.files.write_file(path, data, mode=mode)

    async def delete_file(self, path: str) -> None:
        await self.files.delete_file(path)

    async def stat(self, path: str) -> FileStat | None:
        return await self.files.stat(path)

    async def list_dir(self, path: str = ".") -> list[FileStat]:
        return await self.files.list_dir(path)


def call(
    op_type: str, path: str, diff: str | None = None, call_id: str = "call_1"
) -> dict[str, Any]:
    operation: dict[str, Any] = {"type": op_type, "path": path}
    if diff is not None:
        operation["diff"] = diff
    return {
        "type": "apply_patch_call",
        "call_id": call_id,
        "status": "completed",
        "operation": operation,
    }


def execute(executor: ApplyPatchExecutor, item: dict[str, Any]) -> ExecResult:
    """Run one call and check the output item is one the API accepts."""
    result = anyio.run(executor.execute, item)
    INPUT_ITEM.validate_python(result.output)
    assert result.output["type"] == "apply_patch_call_output"
    assert result.output["call_id"] == item.get("call_id", "")
    assert result.output["status"] == ("completed" if result.ok else "failed")
    return result
