"""Reading a workspace file whole has a limit: a huge file is refused before it is read.

Through the real components: `WorkspaceFiles` on a real directory, and the
apply_patch executor over a real bubblewrap sandbox on a sparse file of
several GiB (issue 9, item 16: such a file used to be read whole into the
runtime's memory).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from itemloop.sandbox.base import FileTooLarge, SandboxError
from itemloop.sandbox.channel_sandbox import ChannelSandbox
from itemloop.sandbox.files import WorkspaceFiles
from itemloop.tools.apply_patch import ApplyPatchExecutor
from itemloop.tools.defaults import DEFAULT_MAX_FILE_BYTES

pytestmark = pytest.mark.anyio

Make = Callable[..., ChannelSandbox]

HUGE = 4 * 1024**3
"""A sparse file of this size costs no disk, but as much memory as this once read."""


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> int:
    """Reset this process's peak RSS (VmHWM) to its current RSS; the RSS in KiB."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")
    return _status_kib("VmRSS")


def sparse_file(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no disk (and no time) to make."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def update_call(path: str, diff: str) -> dict[str, Any]:
    return {
        "type": "apply_patch_call",
        "call_id": "call_big",
        "status": "completed",
        "operation": {"type": "update_file", "path": path, "diff": diff},
    }


async def test_apply_patch_refuses_a_huge_file_without_reading_it(
    workspace: Path, make: Make
) -> None:
    big = sparse_file(workspace / "big.log", HUGE)
    async with make("local", workspace) as sb:
        executor = ApplyPatchExecutor(sb)
        rss_before = _reset_peak_rss()
        result = await executor.execute(update_call("big.log", "@@\n-a\n+b\n"))
        growth_mib = (_status_kib("VmHWM") - rss_before) // 1024
    assert growth_mib < 200, f"peak RSS grew by {growth_mib} MiB for a {HUGE >> 20} MiB file"
    out = result.output
    assert not result.ok and out["status"] == "failed" and out["call_id"] == "call_big"
    message = out["output"]
    assert "big.log" in message
    assert f"{HUGE:,} bytes" in message  # the file's size
    assert f"{DEFAULT_MAX_FILE_BYTES:,} bytes" in message  # the limit
    assert "max_file_bytes" in message  # how to raise it
    assert big.stat().st_size == HUGE  # untouched


async def test_apply_patch_limit_is_configurable(workspace: Path, make: Make) -> None:
    text = "head\n" + "x\n" * 47 + "\n"
    assert len(text) == 100
    (workspace / "a.txt").write_text(text)
    diff = "@@\n-head\n+HEAD\n"
    async with make("host", workspace) as sb:
        small = await ApplyPatchExecutor(sb, max_file_bytes=99).execute(update_call("a.txt", diff))
        assert not small.ok
        assert "100 bytes" in small.output["output"]
        assert "99 bytes" in small.output["output"]
        assert (workspace / "a.txt").read_text() == text
        exact = await ApplyPatchExecutor(sb, max_file_bytes=100).execute(update_call("a.txt", diff))
        assert exact.ok, exact.output
        assert (workspace / "a.txt").read_text() == text.replace("head", "HEAD")


async def test_read_file_max_bytes(workspace: Path) -> None:
    files = WorkspaceFiles(workspace)
    (workspace / "f.bin").write_bytes(b"0123456789")
    assert await files.read_file("f.bin") == b"0123456789"
    assert await files.read_file("f.bin", max_bytes=10) == b"0123456789"
    with pytest.raises(FileTooLarge) as info:
        await files.read_file("f.bin", max_bytes=9)
    assert isinstance(info.value, SandboxError)
    assert (info.value.path, info.value.size, info.value.limit) == ("f.bin", 10, 9)
    assert "f.bin" in str(info.value) and "10 bytes" in str(info.value)
    assert "9 bytes" in str(info.value) and "max_bytes" in str(info.value)
    with pytest.raises(FileTooLarge):
        await files.read_file("f.bin", max_bytes=0)
    (workspace / "empty").write_bytes(b"")
    assert await files.read_file("empty", max_bytes=0) == b""


async def test_read_file_max_bytes_bounds_the_read_not_only_the_size_check() -> None:
    # A file can hold more than fstat said when it was checked (it grew since).
    # procfs files are that, deterministically: fstat reports size 0 and a read
    # returns more, so only a bounded read refuses /proc/self/status here.
    files = WorkspaceFiles(Path(f"/proc/{os.getpid()}"))
    assert os.stat("/proc/self/status").st_size == 0
    whole = await files.read_file("status")
    assert len(whole) > 64
    with pytest.raises(FileTooLarge) as info:
        await files.read_file("status", max_bytes=64)
    assert info.value.limit == 64 and info.value.size > 64
    assert "grew" in str(info.value)
