"""`local`'s workspace size limit (issue 10, item 5), run for real on this ext4 (no quotas).

A command that leaves the workspace over `max_workspace_bytes` gets an error
note, its sandbox is stopped, and further commands are refused until files are
removed (the next one then runs in a new sandbox, and says so); one that keeps
writing is stopped while it runs, long before its timeout, and so is a
background writer a command left behind, with no command running.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from conftest import host_processes_matching

from itemloop.sandbox import SandboxError, SandboxOptions, workspace_size
from itemloop.sandbox.bubblewrap import BubblewrapSandbox
from itemloop.sandbox.channel_sandbox import ChannelSandbox
from itemloop.sandbox.workspace_size import disk_usage

pytestmark = [pytest.mark.anyio, pytest.mark.bwrap]

Make = Callable[..., ChannelSandbox]
MiB = 1024**2


@pytest.fixture
def no_watch_while_running(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests of the measures before and after a command: a slow machine must not let
    the session's watcher (every 0.5 s while anything of a command's runs) stop a command
    that is still writing."""
    monkeypatch.setattr(workspace_size, "WATCH_INTERVAL_S", 3600.0)
    monkeypatch.setattr(workspace_size, "MAX_WATCH_INTERVAL_S", 3600.0, raising=False)


async def test_past_the_limit_commands_stop_until_files_are_removed(
    make: Make, workspace: Path, no_watch_while_running: None
) -> None:
    async with make("local", workspace, SandboxOptions(max_workspace_bytes=10 * MiB)) as sb:
        assert isinstance(sb, BubblewrapSandbox)
        assert any("workspace limit 10.0 MiB" in n for n in sb.notices), sb.notices
        r = await sb.run(["sh", "-c", f"head -c {5 * MiB} /dev/zero > small"])
        assert r.exit_code == 0 and r.stderr == "", r  # within the limit: nothing said
        r = await sb.run(["sh", "-c", f"head -c {20 * MiB} /dev/zero > big; echo done"])
        assert r.stdout == "done\n", r
        assert "over its limit of 10.0 MiB" in r.stderr and "Remove files" in r.stderr, r
        with pytest.raises(SandboxError, match=r"over its limit.*commands do not run"):
            await sb.run(["true"])
        await sb.delete_file("big")
        r = await sb.run(["echo", "again"])  # in a new sandbox: the old one was stopped
        assert r.stdout == "again\n", r
        assert "restarted before this command ran" in r.stderr, r
        assert "--max-workspace-size" in r.stderr, r
        r = await sb.run(["echo", "on"])
        assert r.stdout == "on\n" and r.stderr == "", r


async def test_a_command_that_keeps_writing_is_stopped(make: Make, workspace: Path) -> None:
    grow = "while :; do head -c 1048576 /dev/zero >> grow; done"
    async with make("local", workspace, SandboxOptions(max_workspace_bytes=10 * MiB)) as sb:
        r = await sb.run(["sh", "-c", grow], timeout_s=300)
        assert not r.timed_out, r
        assert "this command's sandbox was stopped" in r.stderr, r
        assert disk_usage(str(workspace)).total > 10 * MiB
        (workspace / "grow").unlink()
        r = await sb.run(["echo", "restarted"])
        assert r.stdout == "restarted\n", r


@pytest.mark.bwrap
def test_the_cli_flag_bounds_the_workspace(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    workspace = tmp_path / "ws"
    workspace.mkdir()
    script = tmp_path / "t.jsonl"
    grow = "head -c 3000000 /dev/zero > big.bin"
    turns = [
        [{"type": "shell_call", "call_id": "s1", "action": {"commands": [grow]}}],
        [{"type": "shell_call", "call_id": "s2", "action": {"commands": ["echo next"]}}],
        [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "ok"}],
            }
        ],
    ]
    script.write_text("".join(json.dumps(t) + "\n" for t in turns))
    r = subprocess.run(
        [sys.executable, "-m", "itemloop.runtime.cli", "run", "go", "--script", str(script),
         "--tools", "shell", "--workspace", str(workspace), "--max-workspace-size", "1000000",
         "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    second = next(e for e in events if e["kind"] == "call_finished" and e["call_id"] == "s2")
    assert "workspace" in second["output"]["output"][0]["stderr"]  # refused: over the limit


# --- the review's bypasses: each run for real through bubblewrap -------------------


async def test_a_deleted_file_kept_open_counts(make: Make, workspace: Path) -> None:
    """A file unlinked at once and held by a background process is still on the disk."""
    hold = (
        f"exec 3>big; rm big; (exec 3>&3; sleep 600) & head -c {30 * MiB} /dev/zero >&3; echo done"
    )
    async with make("local", workspace, SandboxOptions(max_workspace_bytes=10 * MiB)) as sb:
        r = await sb.run(["sh", "-c", hold], timeout_s=60)
        assert "over its limit of 10.0 MiB" in r.stderr, r
        assert "this command's sandbox was stopped" in r.stderr, r  # what held it is gone
        r = await sb.run(["echo", "next"])  # nothing left to remove: a new sandbox runs it
        assert r.stdout == "next\n", r


async def test_an_o_tmpfile_file_counts(make: Make, workspace: Path) -> None:
    tmpfile = (
        "import os, time\n"
        "fd = os.open('.', os.O_TMPFILE | os.O_WRONLY, 0o600)\n"
        f"for _ in range({30}): os.write(fd, bytes({MiB}))\n"
        "time.sleep(600)\n"
    )
    async with make("local", workspace, SandboxOptions(max_workspace_bytes=10 * MiB)) as sb:
        r = await sb.run(["python3", "-c", tmpfile], timeout_s=60)
        assert not r.timed_out, r  # stopped by the measure, not by the timeout
        assert "this command's sandbox was stopped" in r.stderr, r


async def test_a_tree_deeper_than_path_max_counts(
    make: Make, workspace: Path, no_watch_while_running: None
) -> None:
    """20 directories of 250-character names: their full paths are past PATH_MAX."""
    deep = (
        "import os\n"
        "for _ in range(20):\n"
        "    os.mkdir('d' * 250); fd = os.open('d' * 250, os.O_RDONLY)\n"
        "    os.fchdir(fd); os.close(fd)\n"
        f"with open('big', 'wb') as f: f.write(bytes({30 * MiB}))\n"
    )
    async with make("local", workspace, SandboxOptions(max_workspace_bytes=10 * MiB)) as sb:
        r = await sb.run(["python3", "-c", deep], timeout_s=60)
        assert r.exit_code == 0, r
        assert "over its limit of 10.0 MiB" in r.stderr, r
        with pytest.raises(SandboxError, match=r"over its limit.*commands do not run"):
            await sb.run(["true"])


async def test_writable_paths_count_with_the_workspace(
    make: Make, workspace: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    options = SandboxOptions(max_workspace_bytes=10 * MiB, writable_paths=[str(extra)])
    async with make("local", workspace, options) as sb:
        r = await sb.run(["sh", "-c", f"head -c {6 * MiB} /dev/zero > {extra}/a"])
        assert r.stderr == "", r  # 6 MiB in all: within the limit
        r = await sb.run(["sh", "-c", f"head -c {6 * MiB} /dev/zero > b"])
        assert "over its limit of 10.0 MiB" in r.stderr, r  # 12 MiB together
        with pytest.raises(SandboxError, match=r"over its limit.*commands do not run"):
            await sb.run(["true"])


def test_the_walk_agrees_with_du_past_its_descriptor_window(tmp_path: Path) -> None:
    """A tree deeper than `WINDOW` with files on every level (the walk comes back up by
    `..`), a second root sharing a hard link: coreutils du, counting each inode once
    across its arguments, is the reference."""
    import os
    import subprocess

    from itemloop.sandbox.workspace_size import WINDOW

    ws, extra = tmp_path / "ws", tmp_path / "extra"
    ws.mkdir()
    extra.mkdir()

    def put(name: str, size: int, at: int) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=at)
        os.write(fd, bytes(size))
        os.close(fd)

    fd = os.open(ws, os.O_RDONLY)  # by descriptors: the full paths pass PATH_MAX
    for i in range(WINDOW * 2):
        put(f"f{i}", 4096 * (i % 5 + 1), fd)
        os.mkdir(f"side{i}", dir_fd=fd)
        side = os.open(f"side{i}", os.O_RDONLY, dir_fd=fd)
        put("s", 8192, side)
        os.close(side)
        os.mkdir("d" * 200, dir_fd=fd)
        deeper = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    os.close(fd)
    (ws / "shared").write_bytes(bytes(MiB))
    os.link(ws / "shared", extra / "shared")
    du = subprocess.run(
        ["du", "-s", "-x", "-B1", "-c", str(ws), str(extra)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    expected = int(du.stdout.splitlines()[-1].split()[0])
    assert disk_usage(str(ws), str(extra)).total == expected
    assert disk_usage(str(ws)).total + disk_usage(str(extra)).total > expected


# --- what goes on between commands, and what costs no blocks ------------------------

RATE = 10 * MiB
"""What `WRITER` writes per second at most (1 MiB, then a pause of 0.1 s)."""
MARK = "itemloop-bg-writer-7f3e"
WRITER = (
    "setsid sh -c 'while :; do head -c 1048576 /dev/zero >> f; sleep 0.1; done' "
    f"{MARK} </dev/null >/dev/null 2>&1 & echo started"
)
"""A detached writer that outlives the command starting it (its $0 is `MARK`)."""


def writer_state(path: Path) -> tuple[int, bool]:
    """`path`'s size (0 while missing), and whether a process of `MARK` is alive."""
    size = path.stat().st_size if path.exists() else 0
    return size, bool(host_processes_matching(MARK))


async def until_stopped(path: Path, deadline_s: float = 15.0) -> int:
    """Poll until `path` stops growing and no process of `MARK` is left; its size then
    (a `TimeoutError` past `deadline_s`: the writer was not stopped)."""
    last = -1
    with anyio.fail_after(deadline_s):
        while True:
            size, alive = writer_state(path)
            if size == last and not alive:
                return size
            last = size
            await anyio.sleep(0.2)  # a poll of a condition, not a wait for time


async def until_over(workspace: Path, limit: int, deadline_s: float = 15.0) -> None:
    """Poll until the workspace is over `limit`."""
    with anyio.fail_after(deadline_s):
        while True:
            if disk_usage(str(workspace)).total > limit:
                return
            await anyio.sleep(0.1)  # a poll of a condition, not a wait for time


@pytest.mark.parametrize("cgroup", [True, False], ids=["cgroup", "no-cgroup"])
async def test_a_background_writer_is_stopped_with_no_command_running(
    make: Make, workspace: Path, cgroup: bool
) -> None:
    """A command starts a detached writer and returns: the session's watcher measures while
    the sandbox has processes besides its runner's own, and stops the writer. Its processes
    are its cgroup's, or without one (no memory, process or CPU limit), bubblewrap's
    descendants."""
    limit = 10 * MiB
    options = SandboxOptions(max_workspace_bytes=limit)
    if not cgroup:
        options = SandboxOptions(
            max_workspace_bytes=limit, memory_bytes=None, max_processes=None, cpus=None
        )
    async with make("local", workspace, options) as sb:
        assert isinstance(sb, BubblewrapSandbox)
        assert (sb.cgroup is not None) == cgroup
        r = await sb.run(["sh", "-c", WRITER])
        assert r.stdout == "started\n", r
        await until_stopped(workspace / "f")  # no further command
        bound = limit + RATE * (workspace_size.MAX_WATCH_INTERVAL_S + 5)
        assert limit < disk_usage(str(workspace)).total < bound
        with pytest.raises(SandboxError, match=r"over its limit.*commands do not run"):
            await sb.run(["true"])
        (workspace / "f").unlink()
        r = await sb.run(["echo", "again"])
        assert r.stdout == "again\n", r
        assert "restarted before this command ran" in r.stderr, r
        assert "--max-workspace-size" in r.stderr, r


async def test_over_the_limit_the_sandbox_is_stopped_without_held_files(
    make: Make, workspace: Path, no_watch_while_running: None
) -> None:
    """The measure before a command finds the workspace over: the command is refused and the
    sandbox stopped, what writes there with it (with no deleted file held)."""
    limit = 10 * MiB
    async with make("local", workspace, SandboxOptions(max_workspace_bytes=limit)) as sb:
        r = await sb.run(["sh", "-c", WRITER])
        assert r.stdout == "started\n", r
        await until_over(workspace, limit)
        with pytest.raises(SandboxError, match=r"over its limit.*commands do not run"):
            await sb.run(["true"])
        await until_stopped(workspace / "f")


async def test_empty_files_and_symlinks_cost_an_inode_each(
    make: Make, workspace: Path, no_watch_while_running: None
) -> None:
    """20,000 empty files and short symlinks have no blocks (their directories, under
    1 MiB), but each costs the disk an inode: charged `MIN_INODE_BYTES` each, they are
    over a 64 MiB limit. (400,000 would be over 1 GiB: that many take minutes to make
    here.)"""
    import shutil

    many = (
        "import os\n"
        "for i in range(20):\n"
        "    d = f'd{i}'; os.mkdir(d)\n"
        "    for j in range(500):\n"
        "        os.close(os.open(f'{d}/f{j}', os.O_CREAT | os.O_WRONLY, 0o600))\n"
        "        os.symlink('x', f'{d}/l{j}')\n"
    )
    limit = 64 * MiB
    assert 20_000 * workspace_size.MIN_INODE_BYTES > limit
    try:
        async with make("local", workspace, SandboxOptions(max_workspace_bytes=limit)) as sb:
            r = await sb.run(["python3", "-c", many], timeout_s=120)
            assert r.exit_code == 0, r
            assert "over its limit of 64.0 MiB" in r.stderr, r
    finally:
        shutil.rmtree(workspace, ignore_errors=True)  # 20,000 inodes: not left to pytest


def test_a_huge_tree_cannot_stretch_the_watch_interval() -> None:
    """A walk of 1 s (400,000 inodes here) would make the interval 20 s uncapped."""
    from itemloop.sandbox.workspace_size import MAX_WATCH_INTERVAL_S, WATCH_INTERVAL_S, interval

    assert interval(0.0) == WATCH_INTERVAL_S
    assert interval(1.08) == MAX_WATCH_INTERVAL_S
    assert interval(3600.0) == MAX_WATCH_INTERVAL_S


# --- a walk that loses its place: a command moving directories while it runs -------


def _chain(root: Path, depth: int) -> Path:
    """`root`/c/d1/.../d`depth`, with `side` next to d9 in d8; the deepest level's path."""
    deepest = root / "c" / "/".join(f"d{i}" for i in range(1, depth + 1))
    deepest.mkdir(parents=True)
    (root / "c" / "/".join(f"d{i}" for i in range(1, 9)) / "side").mkdir()
    return deepest


def test_a_directory_moved_above_the_walk_leaves_it_incomplete(tmp_path: Path) -> None:
    """Deeper than `WINDOW` the walk comes back up by `..`: when d9 was moved from d8 to
    d8/side meanwhile, its `..` is not d8, and what was left to walk above is not walked.
    Driven step by step (no thread, no timing): the move happens while the walk lists the
    deepest level, as a command watching with inotify would make it."""
    from itemloop.sandbox.workspace_size import WINDOW, Skipped, walk

    root = tmp_path / "ws"
    deepest = _chain(root, WINDOW + 8)  # d8's descriptor is closed down there
    for sibling in ("a", "b", "z"):  # walked before or after c: some are left
        (root / sibling).mkdir()
    d8 = root / "c" / "/".join(f"d{i}" for i in range(1, 9))
    skipped = Skipped()
    walked: list[str] = []
    for listing in walk(str(root), set(), skipped, ""):
        walked.append(listing.dir.name)
        if listing.dir.name == deepest.name:
            os.rename(d8 / "d9", d8 / "side" / "d9")
    assert skipped.lost.count == 1, walked
    assert skipped.lost.paths[0].endswith("/d7/d8"), skipped.lost.paths
    assert not {"a", "b", "z"} <= set(walked)  # what the walk did not reach


def test_a_listed_directory_gone_or_replaced_when_opened_leaves_the_walk_incomplete(
    tmp_path: Path,
) -> None:
    """Between its parent's listing and its opening, one subdirectory is moved out of the
    tree (maybe into a place walked already) and another replaced by a new directory of
    its name: both are said, not skipped in silence."""
    from itemloop.sandbox.workspace_size import Skipped, walk

    root, away = tmp_path / "ws", tmp_path / "away"
    for name in ("gone", "replaced", "kept"):
        (root / name).mkdir(parents=True)
    away.mkdir()
    skipped = Skipped()
    walked: list[str] = []
    for listing in walk(str(root), set(), skipped, ""):
        walked.append(listing.dir.name)
        if listing.dir.parent is None:
            for _ in listing.entries:  # the root's subdirectories are listed: move them
                pass
            os.rename(root / "gone", away / "gone")
            os.rename(root / "replaced", away / "replaced")
            (root / "replaced").mkdir()
    assert skipped.lost.count == 2, skipped.lost.paths
    assert sorted(skipped.lost.paths) == ["gone", "replaced"]
    assert sorted(walked[1:]) == ["kept", "replaced"]  # the new one is walked all the same


def test_a_measure_stops_once_past_its_limit(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    for i in range(8):
        (root / f"d{i}").mkdir(parents=True)
        (root / f"d{i}" / "f").write_bytes(bytes(MiB))
    whole = disk_usage(str(root))
    assert not whole.past_limit and whole.total > 8 * MiB
    cut = disk_usage(str(root), limit=2 * MiB)
    assert cut.past_limit and 2 * MiB < cut.total < whole.total
    assert not disk_usage(str(root), limit=whole.total).past_limit


WINDOW_DEPTH = workspace_size.WINDOW + 8
"""Below d8's descriptor, as in `_chain`."""
RENAMES = f"""
import os
depth = {WINDOW_DEPTH}
os.makedirs("c/" + "/".join(f"d{{i}}" for i in range(1, depth + 1)))
d8 = "c/" + "/".join(f"d{{i}}" for i in range(1, 9))
os.mkdir(d8 + "/side")
here, there = d8 + "/d9", d8 + "/side/d9"
print("moving", flush=True)
while True:
    os.rename(here, there)
    os.rename(there, here)
"""


async def test_a_workspace_that_keeps_changing_under_the_measure_stops_the_sandbox(
    make: Make, workspace: Path
) -> None:
    """A command moves a directory to and fro below the walk's window: each measure loses its
    place, and after `MEASURE_TRIES` in a row the sandbox is stopped, saying why (it used to
    count what it reached, and said nothing)."""
    async with make("local", workspace, SandboxOptions(max_workspace_bytes=64 * MiB)) as sb:
        r = await sb.run(["python3", "-c", RENAMES], timeout_s=120)
        assert not r.timed_out, r  # stopped by a measure, not by the timeout
        assert r.stdout == "moving\n", r
        assert "kept changing while it was measured" in r.stderr, r
        assert "this command's sandbox was stopped" in r.stderr, r
        r = await sb.run(["echo", "again"])  # nothing moves now: the measure is whole
        assert r.stdout == "again\n", r
        assert "kept changing while it was measured" in r.stderr, r


# --- descriptors: what a measure examines is bounded ---------------------------------

HOLD = """
import os, resource, sys, time
n = int(sys.argv[1])
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
null = os.open("/dev/null", os.O_RDONLY)
held = [os.dup(null) for _ in range(n)]
print("holding", flush=True)
time.sleep(600)
"""


async def until_holding(log: Path, deadline_s: float = 30.0) -> None:
    """Poll until `HOLD` says (in `log`) it holds its descriptors."""
    with anyio.fail_after(deadline_s):
        while True:
            if await anyio.Path(log).read_text() == "holding\n":
                return
            await anyio.sleep(0.1)  # a poll of a condition, not a wait for time


async def test_more_open_files_than_a_measure_examines_stop_the_sandbox(
    make: Make, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every descriptor of every process would be examined by each measure: millions of
    them made each one take 20 to 30 s. Past `MAX_HELD_FDS` (2,000 here, to be quick) the
    measure counts as over the limit; a few hundred are examined as before."""
    monkeypatch.setattr(workspace_size, "MAX_HELD_FDS", 2000, raising=False)
    (workspace / "hold.py").write_text(HOLD)
    async with make("local", workspace, SandboxOptions(max_workspace_bytes=64 * MiB)) as sb:
        r = await sb.run(
            ["sh", "-c", "setsid python3 hold.py 300 </dev/null >held 2>&1 & echo started"]
        )
        assert r.stdout == "started\n" and r.stderr == "", r
        await until_holding(workspace / "held")
        r = await sb.run(["echo", "fine"])  # measured with the 300 held: within the limit
        assert r.stdout == "fine\n" and r.stderr == "", r
        r = await sb.run(["python3", "hold.py", "3000"], timeout_s=120)
        assert not r.timed_out, r  # stopped by a measure, not by the timeout
        assert "hold more than 2000 open files" in r.stderr, r
        assert "this command's sandbox was stopped" in r.stderr, r
        r = await sb.run(["echo", "again"])  # what held them is gone with the sandbox
        assert r.stdout == "again\n", r
