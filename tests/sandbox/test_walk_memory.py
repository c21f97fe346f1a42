"""The walk's memory (`workspace_size.walk`, under `disk_usage` and `setid_sweep.sweep`) on
trees a command makes cheaply: a deep chain of long names, one directory of many hard links.

Each walk runs in a child process that measures how far its peak resident size grows
during the walk (the interpreter and imports left out), under an address-space limit, so a
walk that grows past it fails here instead of straining the machine. The bound is generous and far
below what a walk costs that keeps each level's full path (quadratic in the depth: about
1 GB for the chain) or each entry's `lstat` (about 250 MB for the hard links).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

MiB = 1024**2
BOUND = 64 * MiB
"""Growth of the peak resident size allowed to one walk here."""

_CHILD = r"""
import json, os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from itemloop.sandbox.setid_sweep import sweep
from itemloop.sandbox.workspace_size import disk_usage
root, what = sys.argv[1], sys.argv[2]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if what == "usage":
    got = disk_usage(root)
    out = {"total": got.total, "unreadable": list(got.unreadable)}
else:
    got = sweep(root)
    out = {"count": got.count, "cleared": list(got.cleared), "shown": got.shown()}
out["peak"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(json.dumps(out))
"""


def walked(root: Path, what: str) -> dict[str, object]:
    """`disk_usage` ("usage") or `sweep` ("sweep") of `root` in a child, and its peak."""
    r = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), what],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out: dict[str, object] = json.loads(r.stdout)
    return out


def chain(top: Path, name: str, depth: int) -> int:
    """`depth` nested directories `name` under `top`, by descriptors (past PATH_MAX); the
    deepest, open."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir(name, dir_fd=fd)
        deeper = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    return fd


def remove_chain(top: Path, name: str) -> None:
    """The chain under `top` removed from the bottom up (shutil.rmtree recurses: too deep)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    depth = 0
    while True:
        try:
            deeper = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        except FileNotFoundError:
            break
        os.close(fd)
        fd, depth = deeper, depth + 1
    for entry in os.listdir(fd):
        os.unlink(entry, dir_fd=fd)
    while depth:
        parent = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        os.rmdir(name, dir_fd=parent)
        fd, depth = parent, depth - 1
    os.close(fd)


@pytest.fixture
def deep(tmp_path: Path) -> Iterator[Path]:
    """3000 levels of 200-character names (12 MB on disk), a set-ID file at the bottom."""
    top = tmp_path / "deep"
    top.mkdir()
    name = "d" * 200
    fd = chain(top, name, 3000)
    try:
        f = os.open("suid", os.O_WRONLY | os.O_CREAT, 0o755, dir_fd=fd)
        os.fchmod(f, 0o4755)
        os.close(f)
    finally:
        os.close(fd)
    yield top
    remove_chain(top, name)


def test_a_deep_chain_of_long_names_costs_linear_memory(deep: Path) -> None:
    usage = walked(deep, "usage")
    assert isinstance(usage["peak"], int) and usage["peak"] < BOUND, usage["peak"]
    assert isinstance(usage["total"], int) and usage["total"] >= 3000 * 4096
    assert usage["unreadable"] == []

    swept = walked(deep, "sweep")
    assert isinstance(swept["peak"], int) and swept["peak"] < BOUND, swept["peak"]
    assert swept["count"] == 1
    (path,) = swept["cleared"]  # type: ignore[misc]
    assert isinstance(path, str) and path.startswith("ddd") and path.endswith("/suid")
    assert len(path) <= 210, len(path)  # cut in the middle, not 600 KB


def test_a_directory_of_many_hard_links_costs_little_memory(tmp_path: Path) -> None:
    """300,000 names for 5 inodes: a few MB of directory on disk."""
    wide = tmp_path / "wide"
    wide.mkdir()
    fd = os.open(wide, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(300_000):
            if i % 60_000 == 0:
                src = f"f{i}"
                f = os.open(src, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
                os.write(f, bytes(4096))  # blocks to count once
                os.close(f)
            else:
                os.link(src, str(i), src_dir_fd=fd, dst_dir_fd=fd)
    finally:
        os.close(fd)

    usage = walked(wide, "usage")
    assert isinstance(usage["peak"], int) and usage["peak"] < BOUND, usage["peak"]
    swept = walked(wide, "sweep")
    assert isinstance(swept["peak"], int) and swept["peak"] < BOUND, swept["peak"]
    assert swept["count"] == 0
