"""`local` limits that hold as root (issue 10, item 5): one cgroup per session.

Run for real: a 3 GiB allocation under `memory_bytes` 512 MiB, 300 forks
under `max_processes` 100 (RLIMIT_NPROC does not bind root), a busy loop
throttled under `cpus`, the private tmpfs mounts sized to the session's
memory, the cgroup gone when the session ends, and the limits reported.
Skipped where no cgroup can be made (not root, no delegation): that case
is a notice, not a limit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import FORK_PROBE, cmdline, dead_pid

from itemloop.sandbox import SandboxOptions
from itemloop.sandbox.bubblewrap import BubblewrapSandbox
from itemloop.sandbox.cgroups import CgroupUnavailable, Limits, SessionCgroup
from itemloop.sandbox.channel_sandbox import ChannelSandbox

pytestmark = [pytest.mark.anyio, pytest.mark.bwrap]

Make = Callable[..., ChannelSandbox]
MiB = 1024**2


@pytest.fixture(autouse=True)
def cgroups_here() -> None:
    try:
        SessionCgroup.create(Limits(memory_bytes=64 * MiB, max_processes=10)).remove()
    except CgroupUnavailable as e:
        pytest.skip(f"no cgroup can be made here: {e}")


async def local(make: Make, workspace: Path, **options: object) -> BubblewrapSandbox:
    sb = make("local", workspace, SandboxOptions(**options))  # type: ignore[arg-type]
    assert isinstance(sb, BubblewrapSandbox)
    return sb


async def test_3_gib_do_not_fit_in_512_mib(make: Make, workspace: Path) -> None:
    async with await local(make, workspace, memory_bytes=512 * MiB) as sb:
        assert any("memory 512 MiB" in n for n in sb.notices), sb.notices
        r = await sb.run(["python3", "-c", "b = bytearray(3 * 1024**3); print('allocated')"])
        assert "allocated" not in r.stdout, r
        assert r.exit_code != 0, r
        # The session goes on.
        r = await sb.run(["echo", "still here"])
        assert r.stdout == "still here\n", r


async def test_300_forks_do_not_fit_in_100_processes(make: Make, workspace: Path) -> None:
    async with await local(make, workspace, max_processes=100) as sb:
        assert any("100 processes" in n for n in sb.notices), sb.notices
        r = await sb.run(["python3", "-c", FORK_PROBE])
        assert r.exit_code == 0, r
        assert "refused: Resource temporarily unavailable" in r.stdout, r
        forked = int(r.stdout.split()[-1])
        assert 50 < forked < 100, r  # the runner, its keeper and python count too


async def test_a_busy_loop_is_throttled_under_cpus(make: Make, workspace: Path) -> None:
    async with await local(make, workspace, cpus=0.1) as sb:
        assert sb.cgroup is not None
        cpu = next(d for d in sb.cgroup.dirs if (d / "cpu.stat").exists())
        if sb.cgroup.version == 1:
            assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "10000"
        else:
            assert (cpu / "cpu.max").read_text().split() == ["10000", "100000"]
        busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
        r = await sb.run(["python3", "-c", busy])
        assert r.exit_code == 0, r
        stat = dict(line.split() for line in (cpu / "cpu.stat").read_text().splitlines())
        assert int(stat["nr_throttled"]) > 0, stat


async def test_private_tmpfs_mounts_are_sized_to_the_memory(make: Make, workspace: Path) -> None:
    async with await local(make, workspace, memory_bytes=256 * MiB) as sb:
        script = "import os\nfor p in ('/tmp', '/run', '/dev/shm'):\n"
        script += "    s = os.statvfs(p); print(p, s.f_blocks * s.f_frsize)"
        r = await sb.run(["python3", "-c", script])
        sizes = dict(line.split() for line in r.stdout.splitlines())
        assert sizes == {p: str(256 * MiB) for p in ("/tmp", "/run", "/dev/shm")}, r


async def test_every_process_is_in_the_cgroup_and_it_goes_with_the_session(
    make: Make, workspace: Path
) -> None:
    async with await local(make, workspace) as sb:
        cgroup = sb.cgroup
        assert cgroup is not None
        r = await sb.run(["sh", "-c", "sleep 1000 & echo started"])
        assert r.stdout == "started\n", r
        inside = cgroup.pids()
        assert len(inside) >= 3, inside  # bubblewrap, the runner, its keeper, sleep ...
        mine = [c for c in sorted(inside) if b"sleep" in cmdline(c)]
        assert mine, inside
    for d in cgroup.dirs:
        assert not d.exists(), d


async def test_no_limit_asked_for_makes_no_cgroup(make: Make, workspace: Path) -> None:
    async with await local(make, workspace, memory_bytes=None, max_processes=None, cpus=None) as sb:
        assert sb.cgroup is None
        assert any("no memory, process or CPU limit" in n for n in sb.notices), sb.notices


def test_a_killed_itemloops_cgroups_are_removed_by_the_next_session() -> None:
    # An itemloop killed by SIGKILL cannot remove its session's cgroups; the next
    # session made beside them does, once that pid is gone, and never a live one's.
    probe = SessionCgroup.create(Limits(memory_bytes=64 * MiB, max_processes=10, cpus=1.0))
    parents = [d.parent for d in probe.dirs]
    probe.remove()
    gone = dead_pid()
    dead = [p / f"itemloop-{gone}-1" for p in parents]
    live = [p / f"itemloop-{os.getpid()}-999999" for p in parents]
    try:
        for d in dead + live:
            d.mkdir()
        cg = SessionCgroup.create(Limits(memory_bytes=64 * MiB, max_processes=10, cpus=1.0))
        cg.remove()
        assert [d for d in dead if d.exists()] == []
        assert all(d.exists() for d in live), "a live itemloop's cgroup was removed"
    finally:
        for d in dead + live:
            if d.exists():
                d.rmdir()
