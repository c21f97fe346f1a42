"""The browser jail's own resources: a session cgroup with limits around Chromium."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from computer_probe import CHROMIUM
from helpers import dead_pid

from itemloop.sandbox.browser_computer import BrowserComputer
from itemloop.sandbox.browser_jail import BROWSER_LIMITS, BrowserJail, jail_ids

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("need_browser")]


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.isdigit():
            children.setdefault(int(stat.rpartition(")")[2].split()[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for kid in children.get(todo.pop(), ()):
            found += [kid]
            todo.append(kid)
    return found


def _processes(root: int) -> dict[int, tuple[str, Path]]:
    """`root` and its descendants: name and memory cgroup of each (gone ones left out)."""
    found = {}
    for pid in [root, *_descendants(root)]:
        try:
            found[pid] = (Path(f"/proc/{pid}/comm").read_text().strip(), _memory_cgroup(pid))
        except OSError:
            pass
    return found


def _memory_cgroup(pid: int) -> Path:
    """The directory of `pid`'s memory cgroup (v1's memory hierarchy, else v2's)."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory" + path)
    return Path("/sys/fs/cgroup" + next(ln for ln in lines if ln.startswith("0::"))[3:])


async def test_chromium_runs_in_a_session_cgroup_with_a_memory_limit() -> None:
    if os.geteuid() != 0:
        pytest.skip("a cgroup of its own needs root or a delegated cgroup")
    async with BrowserComputer(320, 240) as b:
        assert b.sandbox_pid is not None
        procs = _processes(b.sandbox_pid)
        chromium = [p for p, (name, _) in procs.items() if "chromium" in name]
        cgroups = {cgroup for _, cgroup in procs.values()}
        assert chromium and len(cgroups) == 1
        cgroup = cgroups.pop()
        assert cgroup.name.startswith(f"itemloop-{os.getpid()}-")
        limit = next(
            cgroup / f for f in ("memory.limit_in_bytes", "memory.max") if (cgroup / f).exists()
        )
        assert int(limit.read_text()) == BROWSER_LIMITS.memory_bytes
        assert any(n.startswith("browser limits: memory") for n in b.notices), b.notices
    assert not cgroup.exists()  # removed with the browser


def test_a_killed_itemloops_browser_directories_are_removed_by_the_next(tmp_path: Path) -> None:
    # A SIGKILLed itemloop leaves its jail directory and its downloads staging directory
    # (the jail uid's) in /tmp; the next jail removes those whose itemloop is gone, and
    # nothing else: not a live one's, not another user's, not what a planted link points at.
    pid, tmp = dead_pid(), Path(tempfile.gettempdir())
    left = tmp / f"itemloop-browser-{pid}-left"
    left_downloads = tmp / f"itemloop-browser-downloads-{pid}-left"
    live = tmp / f"itemloop-browser-{os.getpid()}-live"
    strangers = tmp / f"itemloop-browser-{pid}-strangers"
    planted = tmp / f"itemloop-browser-downloads-{pid}-link"
    target = tmp_path / "keep"
    target.mkdir()
    (target / "file").write_text("mine")
    dirs = (left, left_downloads, live, strangers)
    try:
        for d in dirs:
            d.mkdir()
            (d / "file").write_bytes(b"x")
        if os.geteuid() == 0:
            os.chown(left_downloads, *jail_ids())
            os.chown(strangers, 12345, 12345)
        planted.symlink_to(target)
        BrowserJail(CHROMIUM).cleanup()
        assert not left.exists() and not left_downloads.exists()
        assert live.exists() and planted.is_symlink() and (target / "file").exists()
        assert strangers.exists() == (os.geteuid() == 0)
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
        planted.unlink(missing_ok=True)
