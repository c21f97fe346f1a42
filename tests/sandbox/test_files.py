"""Host-side workspace file operations (`WorkspaceFiles`) against a workspace that
changes under them, as it does when a command keeps running in the background."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from itemloop.sandbox.base import SandboxError, WorkspacePathError
from itemloop.sandbox.files import WorkspaceFiles

pytestmark = pytest.mark.anyio

# Atomically swaps two directory entries, again and again, until killed.
SWAPPER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = (os.fsencode(p) for p in sys.argv[1:3])
AT_FDCWD, RENAME_EXCHANGE = -100, 2
print("ready", flush=True)
while True:
    if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
        sys.exit("renameat2: errno %d" % ctypes.get_errno())
"""


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    return d


@pytest.fixture
def swapping(workspace: Path, outside: Path) -> Iterator[None]:
    """`workspace/d` flips between a real directory and a symlink to `outside`."""
    (workspace / "d").mkdir()
    (workspace / "alt").symlink_to(outside, target_is_directory=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(workspace / "d"), str(workspace / "alt")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -9, "the swapper stopped by itself"


RACE_S = 2.0


def entries(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def lexists(p: Path) -> bool:
    return os.path.lexists(p)


def put_file_in_the_real_directory(workspace: Path) -> None:
    """Create f.txt in whichever of d and alt is the real directory now."""
    for name in ("d", "alt"):
        if (workspace / name).is_dir() and not (workspace / name).is_symlink():
            with open(workspace / name / "f.txt", "w"):
                pass


async def test_write_cannot_be_redirected_by_a_concurrent_symlink_swap(
    workspace: Path, outside: Path, swapping: None
) -> None:
    files = WorkspaceFiles(workspace)
    writes = refused = 0
    deadline = time.monotonic() + RACE_S
    while time.monotonic() < deadline and not entries(outside):
        try:
            await files.write_file("d/f.txt", b"x")
            writes += 1
        except SandboxError:
            refused += 1  # met the symlink: "leaves the workspace"
    assert entries(outside) == [], f"escaped after {writes} writes"
    assert writes > 0 and refused > 0


async def test_delete_cannot_be_redirected_by_a_concurrent_symlink_swap(
    workspace: Path, outside: Path, swapping: None
) -> None:
    files = WorkspaceFiles(workspace)
    victim = outside / "f.txt"
    victim.write_text("keep")
    deadline = time.monotonic() + RACE_S
    while time.monotonic() < deadline and victim.exists():
        # Put a file in the real directory, wherever it is now, and delete it by path.
        put_file_in_the_real_directory(workspace)
        try:
            await files.delete_file("d/f.txt")
        except SandboxError:
            pass
    assert victim.exists(), "deleted a file outside the workspace"


async def test_delete_of_a_symlink_removes_the_link_not_its_target(workspace: Path) -> None:
    (workspace / "real.txt").write_text("data")
    (workspace / "link.txt").symlink_to("real.txt")
    files = WorkspaceFiles(workspace)
    await files.delete_file("link.txt")
    assert not lexists(workspace / "link.txt")
    assert (workspace / "real.txt").read_text() == "data"
    # Also through a symlinked directory: the entry in the real directory goes.
    (workspace / "sub").mkdir()
    (workspace / "sub" / "a.txt").write_text("a")
    (workspace / "sub" / "alias.txt").symlink_to("a.txt")
    (workspace / "dirlink").symlink_to("sub", target_is_directory=True)
    await files.delete_file("dirlink/alias.txt")
    assert not lexists(workspace / "sub" / "alias.txt")
    assert (workspace / "sub" / "a.txt").read_text() == "a"
    # A dangling link inside the workspace can be deleted too.
    (workspace / "dangling").symlink_to("missing")
    await files.delete_file("dangling")
    assert not lexists(workspace / "dangling")


@pytest.mark.parametrize(
    ("link", "target", "path"),
    [
        ("up", "..", "up/x"),
        ("rel", "../outside/secret.txt", "rel"),
        ("abs", "{outside}/secret.txt", "abs"),
        ("chain1", "chain2", "chain1"),  # chain2 -> outside
        ("deep/in", "../../outside", "deep/in/secret.txt"),
    ],
)
async def test_symlinks_that_leave_are_refused_for_every_operation(
    workspace: Path, outside: Path, link: str, target: str, path: str
) -> None:
    assert outside.parent == workspace.parent
    (outside / "secret.txt").write_text("secret")
    (workspace / "chain2").symlink_to(outside / "secret.txt")
    (workspace / "deep").mkdir()
    (workspace / link).symlink_to(target.format(outside=outside))
    files = WorkspaceFiles(workspace)
    for op in (
        files.read_file(path),
        files.write_file(path, b"pwned"),
        files.delete_file(path),
        files.stat(path),
        files.list_dir(path),
    ):
        with pytest.raises(WorkspacePathError, match="leaves the workspace through a symlink"):
            await op
    assert (outside / "secret.txt").read_text() == "secret"
    assert entries(outside) == ["secret.txt"]


async def test_symlinks_inside_are_followed(workspace: Path) -> None:
    (workspace / "sub").mkdir()
    (workspace / "sub" / "f.txt").write_text("one")
    (workspace / "abs").symlink_to(workspace / "sub", target_is_directory=True)
    (workspace / "sub" / "back").symlink_to("../sub/f.txt")
    files = WorkspaceFiles(workspace)
    assert await files.read_file("abs/f.txt") == b"one"
    assert await files.read_file("sub/back") == b"one"
    await files.write_file("abs/back", b"two")
    assert (workspace / "sub" / "f.txt").read_text() == "two"
    assert (workspace / "sub" / "back").is_symlink()
    st = await files.stat("abs/back")
    assert st is not None and st.path == "sub/f.txt" and st.is_file
    await files.write_file("abs/new/deeper.txt", b"3")
    assert (workspace / "sub" / "new" / "deeper.txt").read_text() == "3"
    assert [s.path for s in await files.list_dir("abs")] == ["sub/back", "sub/f.txt", "sub/new"]


async def test_fifo_is_refused_not_waited_on(workspace: Path) -> None:
    os.mkfifo(workspace / "pipe")
    files = WorkspaceFiles(workspace)
    with anyio.fail_after(5):
        with pytest.raises(SandboxError, match="not a regular file"):
            await files.read_file("pipe")


async def test_error_messages(workspace: Path) -> None:
    files = WorkspaceFiles(workspace)
    (workspace / "dir").mkdir()
    (workspace / "file").write_text("x")
    cases = [
        (files.read_file("missing"), "missing: no such file"),
        (files.read_file("dir"), "dir: is a directory"),
        (files.write_file("dir", b""), "dir: is a directory"),
        (files.write_file(".", b""), ".: is a directory"),
        (files.delete_file("dir"), "dir: is a directory, not a file"),
        (files.delete_file("missing"), "missing: no such file"),
        (files.write_file("file/x", b""), "not a directory"),
        (files.read_file("../x"), "leaves the workspace"),
        (files.read_file("/etc/passwd"), "absolute"),
    ]
    for op, message in cases:
        with pytest.raises(SandboxError, match=message):
            await op
    assert await files.stat("missing") is None
    assert await files.stat("file/x") is None
    name = f"new-{uuid.uuid4().hex}.txt"
    await files.write_file(name, b"hi")
    assert entries(workspace) == sorted(["dir", "file", name])
