"""Executor for `apply_patch_call` items: create, update or delete one workspace file.

The diff work is pure (`itemloop.tools.patch`); this module only validates the
call, does the file I/O through the sandbox, and words the output item. Every
call gets exactly one `apply_patch_call_output`, `failed` with a message the
model can act on whenever anything is wrong, and a failed call leaves the file
untouched.

A file is read whole into this process to be patched, so one larger than
`max_file_bytes` (default `DEFAULT_MAX_FILE_BYTES`) is refused before it is
read, and the sandbox never returns more than that (`FileTooLarge`).
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread

from itemloop.sandbox.base import FileTooLarge, Sandbox, SandboxError, WorkspacePathError

from .base import ExecResult
from .defaults import DEFAULT_MAX_FILE_BYTES
from .items import Item, call_id_of
from .patch import PatchError, PatchResult, apply_diff, decode

OPERATIONS = ("create_file", "update_file", "delete_file")
# Above this size the (CPU-bound) patching runs in a worker thread, so a huge file
# does not stall the event loop other executors share.
_THREAD_THRESHOLD = 256 * 1024


class _Failed(Exception):
    """The call fails with this message (a tool error, not a runtime error)."""


class ApplyPatchExecutor:
    item_types: tuple[str, ...] = ("apply_patch_call",)
    sequential: bool = True

    def __init__(self, sandbox: Sandbox, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        self.sandbox = sandbox
        self.max_file_bytes = max_file_bytes
        # The dispatcher already runs sequential executors one call at a time; the
        # lock keeps calls in order for library users who call execute() concurrently.
        self._lock = anyio.Lock()

    def definitions(self) -> list[Item]:
        return [{"type": "apply_patch"}]

    async def execute(self, call: Item) -> ExecResult:
        async with self._lock:
            try:
                summary, output = await self._apply(call)
            except _Failed as e:
                return _result(call, ok=False, output=str(e), summary=_first_line(str(e)))
            except WorkspacePathError as e:
                message = f"{_describe(call)}: {e}"
                return _result(call, ok=False, output=message, summary=message)
            except SandboxError as e:
                message = f"{_describe(call)} failed: {e}"
                return _result(call, ok=False, output=message, summary=message)
        return _result(call, ok=True, output=output, summary=summary)

    async def _apply(self, call: Item) -> tuple[str, str]:
        op_type, path, diff = _operation(call)
        stat = await self.sandbox.stat(path)
        if stat is not None and stat.is_dir:
            raise _Failed(f"{op_type} {path}: is a directory, not a file")
        if op_type == "delete_file":
            if stat is None:
                raise _Failed(f"delete_file {path}: the file does not exist")
            await self.sandbox.delete_file(path)
            return f"D {path}", f"D {path}"
        assert diff is not None  # _operation guarantees a diff for create/update
        if op_type == "create_file":
            if stat is not None:
                raise _Failed(
                    f"create_file {path}: the file already exists; "
                    "use update_file to change it (or delete_file first)"
                )
            result = await self._patch(path, op_type, "", diff, create=True)
            await self.sandbox.write_file(path, result.text.encode("utf-8"))
            summary = f"A {path}: +{result.added}"
            return summary, summary
        if stat is None:
            raise _Failed(
                f"update_file {path}: the file does not exist; use create_file to make it"
            )
        try:
            data = await self.sandbox.read_file(path, max_bytes=self.max_file_bytes)
        except FileTooLarge as e:
            raise _Failed(_too_large(e)) from None
        text = decode(data)
        if text is None:
            raise _Failed(
                f"update_file {path}: binary file (not UTF-8 text); apply_patch only edits text"
            )
        result = await self._patch(path, op_type, text, diff, create=False)
        if result.text != text:
            await self.sandbox.write_file(path, result.text.encode("utf-8"), mode=stat.mode)
        hunks = f"{result.hunks} hunk{'s' if result.hunks != 1 else ''}"
        summary = f"M {path}: {hunks}, +{result.added} -{result.removed}"
        if result.tolerant:
            return summary, f"{summary} ({'; '.join(result.tolerant)})"
        return summary, summary

    @staticmethod
    async def _patch(path: str, op_type: str, text: str, diff: str, *, create: bool) -> PatchResult:
        try:
            if len(text) + len(diff) > _THREAD_THRESHOLD:
                return await anyio.to_thread.run_sync(lambda: apply_diff(text, diff, create=create))
            return apply_diff(text, diff, create=create)
        except PatchError as e:
            outcome = "nothing was created" if create else "the file is unchanged"
            raise _Failed(f"{op_type} {path} failed; {outcome}.\n{e}") from None


def _operation(call: Item) -> tuple[str, str, str | None]:
    operation: Any = call.get("operation")
    if not isinstance(operation, dict):
        raise _Failed(
            "apply_patch_call has no operation: expected an object with type "
            "(create_file, update_file or delete_file), path and diff"
        )
    op_type = operation.get("type")
    if op_type not in OPERATIONS:
        raise _Failed(
            f"unknown apply_patch operation type {op_type!r}; "
            "expected create_file, update_file or delete_file"
        )
    path = operation.get("path")
    if not isinstance(path, str) or not path.strip():
        raise _Failed(f"{op_type}: the operation has no path")
    diff = operation.get("diff")
    if op_type == "delete_file":
        return op_type, path, None
    if not isinstance(diff, str):
        raise _Failed(f"{op_type} {path}: the operation has no diff")
    return op_type, path, diff


def _too_large(e: FileTooLarge) -> str:
    if e.grew:
        what = f"it grew past {e.limit:,} bytes while being read"
    else:
        what = f"it is {e.size:,} bytes"
    return (
        f"update_file {e.path} failed; the file is unchanged: {what}, more than apply_patch "
        f"edits ({e.limit:,} bytes). Change it with a shell command "
        "instead, or raise the limit (the apply_patch executor's max_file_bytes)."
    )


def _describe(call: Item) -> str:
    operation = call.get("operation")
    if isinstance(operation, dict):
        return f"{operation.get('type')} {operation.get('path')}"
    return "apply_patch"


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def _result(call: Item, *, ok: bool, output: str, summary: str) -> ExecResult:
    item: Item = {
        "type": "apply_patch_call_output",
        "call_id": call_id_of(call),
        "status": "completed" if ok else "failed",
        "output": output,
    }
    return ExecResult(output=item, ok=ok, summary=summary)
