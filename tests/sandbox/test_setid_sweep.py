"""`setid_sweep.sweep` on the host: set-ID bits removed in a tree, nothing outside touched.

Real files in a temporary directory, real system calls. The races run a real
thread that swaps names for symlinks (to set-ID files and directories outside
the tree) while sweeps run; whatever the interleaving, the outside files keep
their bits. No sleeps: the swapper runs until the sweeps are done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from itemloop.sandbox.setid_sweep import MAX_LISTED, MAX_SHOWN, Swept, sweep
from itemloop.sandbox.workspace_size import WINDOW, disk_usage

SETID = stat.S_ISUID | stat.S_ISGID


def mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def setid_file(p: Path, m: int = 0o4755, *, check: bool = True) -> Path:
    p.write_bytes(b"#!/bin/sh\n")
    os.chmod(p, m)
    assert not check or mode(p) == m
    return p


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    return out


def test_setid_bits_are_removed_and_nothing_else_changes(tree: Path) -> None:
    setid_file(tree / "suid", 0o4755)
    setid_file(tree / "sgid", 0o2750)
    setid_file(tree / "both", 0o6711)
    (tree / "a" / "b").mkdir(parents=True)
    setid_file(tree / "a" / "b" / "deep", 0o4700)
    (tree / "d").mkdir()
    os.chmod(tree / "d", 0o2775)
    (tree / "u").mkdir()
    os.chmod(tree / "u", 0o4755)
    setid_file(tree / "plain", 0o755)
    sticky = tree / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    before = os.stat(tree / "plain").st_ctime_ns

    got = sweep(str(tree))

    assert sorted(got.cleared) == ["a/b/deep", "both", "d", "sgid", "suid", "u"]
    assert got.count == 6 and got.failed == () and got.unreadable == ()
    assert mode(tree / "suid") == 0o755
    assert mode(tree / "sgid") == 0o750
    assert mode(tree / "both") == 0o711
    assert mode(tree / "a" / "b" / "deep") == 0o700
    assert mode(tree / "d") == 0o775
    assert mode(tree / "u") == 0o755
    assert mode(sticky) == 0o1777  # not a set-ID bit
    assert mode(tree / "plain") == 0o755
    assert os.stat(tree / "plain").st_ctime_ns == before  # not even chmod-ed again
    assert sweep(str(tree)).count == 0


def test_the_root_itself_is_swept(tree: Path) -> None:
    os.chmod(tree, 0o2755)
    got = sweep(str(tree))
    assert got.cleared == (".",)
    assert mode(tree) == 0o755


def test_a_symlink_to_a_setid_file_outside_is_not_followed(tree: Path, outside: Path) -> None:
    target = setid_file(outside / "host-suid", 0o4755)
    (outside / "dir").mkdir()
    os.chmod(outside / "dir", 0o2755)
    inner = setid_file(outside / "dir" / "inner", 0o4755)
    (tree / "link").symlink_to(target)
    (tree / "dirlink").symlink_to(outside / "dir")

    got = sweep(str(tree))

    assert got.count == 0 and got.cleared == ()
    assert mode(target) == 0o4755
    assert mode(outside / "dir") == 0o2755
    assert mode(inner) == 0o4755


def test_a_root_that_is_a_symlink_is_not_followed(tmp_path: Path, outside: Path) -> None:
    target = setid_file(outside / "host-suid", 0o4755)
    (tmp_path / "ws").symlink_to(outside)
    got = sweep(str(tmp_path / "ws"))
    assert got.count == 0
    assert mode(target) == 0o4755


def setid_in(root: Path) -> list[str]:
    """Set-ID files and directories under `root` (symlinks not followed)."""
    found = []
    for d, dirs, names in os.walk(root):
        for n in dirs + names:
            p = Path(d, n)
            if not p.is_symlink() and mode(p) & SETID:
                found.append(str(p.relative_to(root)))
    return found


@pytest.fixture
def swapper() -> Iterator[list[threading.Thread]]:
    threads: list[threading.Thread] = []
    yield threads
    for t in threads:
        t.join()


def test_symlink_swaps_racing_the_sweep_never_reach_outside(
    tree: Path, outside: Path, swapper: list[threading.Thread]
) -> None:
    """A command swaps a set-ID file and a set-ID directory of the tree for symlinks to
    set-ID ones outside, over and over, while sweeps run: no sweep ever changes a bit of
    what is outside, and the last one leaves no set-ID bit in the tree."""
    host_file = setid_file(outside / "host-suid", 0o4755)
    host_dir = outside / "host-dir"
    host_dir.mkdir()
    os.chmod(host_dir, 0o2755)
    host_inner = setid_file(host_dir / "inner", 0o4755)
    (tree / "sub").mkdir()
    done = threading.Event()
    swaps = [0]

    def swap() -> None:
        # Renames, atomic as a command's are: sub/x is a set-ID file, then a symlink to the
        # host's; d is a set-ID directory (with a set-ID file), then a symlink to the host's.
        d = tree / "d"
        while not done.is_set():
            setid_file(tree / ".new-file", 0o6755, check=False)  # a sweep may come first
            os.rename(tree / ".new-file", tree / "sub" / "x")
            os.symlink(host_file, tree / ".new-link")
            os.rename(tree / ".new-link", tree / "sub" / "x")
            new_dir = tree / ".new-dir"
            new_dir.mkdir()
            os.chmod(new_dir, 0o2755)
            setid_file(new_dir / "inner", 0o4755, check=False)
            if d.is_symlink():
                d.unlink()
            os.rename(new_dir, d)
            os.symlink(host_dir, tree / ".new-dlink")
            os.rename(d, tree / ".old-d")
            os.rename(tree / ".new-dlink", d)
            shutil.rmtree(tree / ".old-d")
            swaps[0] += 1

    t = threading.Thread(target=swap)
    swapper.append(t)
    t.start()
    sweeps = 0
    try:
        while sweeps < 300 or swaps[0] < 300:  # however the threads are scheduled
            sweep(str(tree))
            sweeps += 1
            assert mode(host_file) == 0o4755
            assert mode(host_dir) == 0o2755
            assert mode(host_inner) == 0o4755
            assert t.is_alive() or done.is_set(), "the swapper failed"
    finally:
        done.set()
    t.join()
    sweep(str(tree))
    assert mode(host_file) == 0o4755 and mode(host_inner) == 0o4755
    assert setid_in(tree) == []


def test_the_list_is_bounded_and_the_count_is_not(tree: Path) -> None:
    for i in range(MAX_LISTED + 7):
        setid_file(tree / f"f{i:03d}", 0o4755)
    got = sweep(str(tree))
    assert got.count == MAX_LISTED + 7
    assert len(got.cleared) == MAX_LISTED
    assert all(mode(p) == 0o755 for p in tree.iterdir())


def test_a_tree_deeper_than_path_max_is_swept(tree: Path) -> None:
    name = "d" * 200
    depth = max(WINDOW + 5, 4096 // len(name) + 5)
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        f = os.open("suid", os.O_WRONLY | os.O_CREAT, 0o755, dir_fd=fd)
        os.fchmod(f, 0o4755)
        os.close(f)
        got = sweep(str(tree))
        assert got.count == 1
        full = "/".join([name] * depth + ["suid"])  # shown with its middle cut
        assert got.cleared == (f"{full[: MAX_SHOWN // 4]}...{full[-MAX_SHOWN * 3 // 4 :]}",)
        assert stat.S_IMODE(os.stat("suid", dir_fd=fd).st_mode) == 0o755
    finally:
        os.close(fd)
    setid_file(tree / "top", 0o4755)  # and the walk came back up: a sibling is swept
    assert sweep(str(tree)).cleared == ("top",)


def test_other_kinds_of_file_are_not_opened(tree: Path) -> None:
    """A FIFO with set-ID bits means nothing; opening it would block: it is left alone."""
    os.mkfifo(tree / "fifo", 0o644)
    os.chmod(tree / "fifo", 0o4644)
    got = sweep(str(tree))
    assert got.count == 0
    assert mode(tree / "fifo") == 0o4644


as_root = pytest.mark.skipif(os.getuid() != 0, reason="mounting a filesystem needs root")


@contextlib.contextmanager
def mounted(*argv: str) -> Iterator[None]:
    """`mount argv...` (its last argument, the mount point), unmounted after; a skip where
    this machine cannot mount it."""
    r = subprocess.run(["mount", *argv], capture_output=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount {argv}: {r.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", argv[-1]], check=True)


@as_root
def test_another_filesystem_inside_is_not_entered_and_said(tree: Path) -> None:
    (tree / "mnt").mkdir()
    with mounted("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(tree / "mnt")):
        setid_file(tree / "mnt" / "other-fs", 0o4755)
        os.chmod(tree / "mnt", 0o2755)  # the other filesystem's root
        setid_file(tree / "here", 0o4755)
        got = sweep(str(tree))
        assert got.cleared == ("here",)
        assert got.mounts == ("mnt",) and got.mounts_count == 1
        assert "not searched: another filesystem mounted at 'mnt'" in got.shown(), got.shown()
        assert mode(tree / "mnt" / "other-fs") == 0o4755
        assert mode(tree / "mnt") == 0o2755
        (tree / "mnt" / "big").write_bytes(bytes(512 * 1024))  # not the tree's disk
        assert disk_usage(str(tree)).total < 512 * 1024


@as_root
def test_a_bind_mount_of_the_same_filesystem_is_not_entered(tree: Path, outside: Path) -> None:
    """Same device, another mount: what it shows is outside the tree, and is left."""
    host = outside / "dir"
    host.mkdir()
    inner = setid_file(host / "inner", 0o4755)
    os.chmod(host, 0o2755)
    host_file = setid_file(outside / "file", 0o4755)
    (tree / "bound").mkdir()
    (tree / "bound-file").write_bytes(b"")
    with (
        mounted("--bind", str(host), str(tree / "bound")),
        mounted("--bind", str(host_file), str(tree / "bound-file")),
    ):
        assert os.stat(tree / "bound").st_dev == os.stat(tree).st_dev
        got = sweep(str(tree))
        assert got.count == 0, got
        assert sorted(got.mounts) == ["bound", "bound-file"], got
        assert "other filesystems mounted at" in got.shown(), got.shown()
        assert mode(inner) == 0o4755 and mode(host) == 0o2755 and mode(host_file) == 0o4755
        # disk_usage still counts it, as before: commands fill that disk through it.
        (host / "data").write_bytes(os.urandom(512 * 1024))
        assert disk_usage(str(tree)).total >= 512 * 1024


@as_root
def test_a_btrfs_subvolume_inside_is_swept_and_counted(tmp_path: Path) -> None:
    """A subvolume a command makes has its own st_dev but is on the same mount: the walk
    enters it (a set-ID file there is cleared, its blocks are counted)."""
    if shutil.which("mkfs.btrfs") is None or shutil.which("btrfs") is None:
        pytest.skip("btrfs-progs is not installed")
    image, top = tmp_path / "btrfs.img", tmp_path / "btrfs"
    with open(image, "wb") as f:
        f.truncate(128 * 1024**2)
    subprocess.run(["mkfs.btrfs", "-q", str(image)], capture_output=True, check=True)
    top.mkdir()
    with mounted("-o", "loop", str(image), str(top)):
        ws = top / "ws"
        ws.mkdir()
        subprocess.run(
            ["btrfs", "subvolume", "create", str(ws / "sv")], capture_output=True, check=True
        )
        assert os.stat(ws / "sv").st_dev != os.stat(ws).st_dev
        setid_file(ws / "sv" / "suid", 0o4755)
        os.chmod(ws / "sv", 0o2755)
        before = disk_usage(str(ws)).total
        (ws / "sv" / "big").write_bytes(os.urandom(1024**2))
        os.sync()
        assert disk_usage(str(ws)).total >= before + 1024**2

        got = sweep(str(ws))

        assert sorted(got.cleared) == ["sv", "sv/suid"] and got.mounts == (), got
        assert mode(ws / "sv" / "suid") == 0o755 and mode(ws / "sv") == 0o755


def test_the_directories_not_searched_are_counted_past_the_list(tmp_path: Path) -> None:
    """Not root (a child that drops to nobody), the sweep cannot open directories mode
    000: every one is counted, the first `MAX_LISTED` named."""
    if os.getuid() != 0:
        pytest.skip("needs root to drop to another user")
    tree = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's tmp_path is root's only
    try:
        os.chmod(tree, 0o755)
        for i in range(MAX_LISTED + 5):
            (tree / f"locked{i:02d}").mkdir(mode=0o000)
        child = (
            "import os, sys\n"
            "from itemloop.sandbox.setid_sweep import sweep\n"
            "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
            "print(sweep(sys.argv[1]).shown())"
        )
        r = subprocess.run(
            [sys.executable, "-c", child, str(tree)], capture_output=True, text=True, check=True
        )
        assert r.stdout.startswith("directories not searched: 'locked"), r.stdout
        assert r.stdout.rstrip().endswith(" and 5 more"), r.stdout
    finally:
        shutil.rmtree(tree)


@pytest.mark.docker
@pytest.mark.anyio
async def test_a_sweep_that_fails_otherwise_than_by_oserror_is_said(
    workspace: Path, make: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep out of memory (any exception, not only OSError) is said in a note: the
    session starts, the command's output comes back, the session closes."""
    from itemloop.sandbox import docker_sandbox
    from itemloop.sandbox.docker_sandbox import DockerSandbox

    sb = make("docker-exec", workspace)
    assert isinstance(sb, DockerSandbox)

    def exhausted(*roots: str) -> Swept:
        raise MemoryError

    monkeypatch.setattr(docker_sandbox, "sweep", exhausted)
    failed = "the search for set-ID files {} failed (MemoryError): some may be left"
    async with sb:
        assert any(failed.format("in the workspace at start") in n for n in sb.notices)
        r = await sb.run(["echo", "out"])
        assert r.stdout == "out\n", r
        assert failed.format("after this command") in r.stderr, r
    assert any(failed.format("when the session ended") in n for n in sb.notices), sb.notices
