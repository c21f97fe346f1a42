"""itemloop's temp and control directories go, however a command shaped them.

A command can fill the docker sandbox's pids directory (mode 1777, mounted
read-write in the container) with a tree deeper than Python's recursion
limit: `shutil.rmtree` then raised RecursionError out of the session's close
(`ignore_errors` does not cover it), the directory stayed, and every later
docker session raised again in its sweep of leftovers. `leftovers.remove_tree`
removes any depth, by descriptors, without following symlinks. Real Docker
engine, real directories.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends import BUSYBOX_IMAGE, DOCKER_IMAGES, in_ci, problem
from conftest import make_sandbox

from itemloop.sandbox.docker_exec import PIDS_DIR
from itemloop.sandbox.docker_sandbox import CTL_PREFIX, LABEL, DockerSandbox, remove_leftovers
from itemloop.sandbox.leftovers import remove_temp_dirs, remove_tree, temp_dir_of

DEPTH = 5000
"""Well past Python's recursion limit (1000) and the usual descriptor limit (1024)."""


def deep_tree(top: Path, depth: int = DEPTH) -> None:
    """`top/d/d/.../d`, `depth` levels, with a file at the bottom (made by descriptors:
    the path is too long for the kernel to take whole)."""
    top.mkdir(parents=True)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
    finally:
        os.close(fd)


@pytest.fixture
def private_tmp(tmp_path: Path) -> Iterator[Path]:
    """A temp directory of this test's own, standing for /tmp (where leftovers are swept)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    saved = tempfile.tempdir
    tempfile.tempdir = str(tmp)
    try:
        yield tmp
    finally:
        tempfile.tempdir = saved


def gone_pid() -> int:
    """A pid no process can have (above the kernel's pid_max)."""
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read()) + 1


def test_a_deep_tree_is_removed(tmp_path: Path) -> None:
    top = tmp_path / "itemloop-x"
    deep_tree(top)
    assert remove_tree(str(top)) == []
    assert not top.exists()


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("host file")
    top = tmp_path / "itemloop-x"
    (top / "a").mkdir(parents=True)
    (top / "a" / "link").symlink_to(outside)
    (tmp_path / "top-link").symlink_to(outside)
    assert remove_tree(str(top)) == []
    assert remove_tree(str(tmp_path / "top-link")) == []
    assert not top.exists() and not (tmp_path / "top-link").exists()
    assert (outside / "keep").read_text() == "host file"


def test_a_directory_made_unwritable_is_removed(tmp_path: Path) -> None:
    top = tmp_path / "itemloop-x"
    (top / "locked").mkdir(parents=True)
    (top / "locked" / "f").write_text("x")
    (top / "locked").chmod(0o500)
    assert remove_tree(str(top)) == []
    assert not top.exists()


def test_a_leftover_deep_tree_is_swept(private_tmp: Path) -> None:
    left = private_tmp / f"{CTL_PREFIX}{gone_pid()}-abc"
    deep_tree(left / "pids")
    remove_temp_dirs((CTL_PREFIX,))
    assert not left.exists()


DEEP_IN_PIDS = f"""
import os
fd = os.open({PIDS_DIR!r}, os.O_RDONLY)
for _ in range({DEPTH}):
    os.mkdir("d", dir_fd=fd)
    fd = os.open("d", os.O_RDONLY, dir_fd=fd)
print("made")
"""
"""What a command runs to fill the pids directory (by descriptors: its path grows past
PATH_MAX, which a shell's `cd` refuses)."""


@pytest.mark.anyio
@pytest.mark.docker
@pytest.mark.parametrize("fast_path", [True, False], ids=["runner", "exec"])
async def test_a_command_s_deep_tree_in_the_control_dir_goes_at_close(
    workspace: Path, fast_path: bool
) -> None:
    reason = problem("docker-python")
    if reason:
        (pytest.fail if in_ci() else pytest.skip)(reason)  # as `make_sandbox` does
    sb = DockerSandbox(workspace, image=DOCKER_IMAGES["docker-python"], fast_path=fast_path)
    async with sb:
        r = await sb.run(["python3", "-c", DEEP_IN_PIDS])
        assert (r.exit_code, r.stdout.strip()) == (0, "made"), r.stderr
        ctl = sb.ctl_dir
        assert ctl is not None
    assert not ctl.exists()


@pytest.mark.anyio
@pytest.mark.docker
async def test_a_leftover_deep_tree_does_not_stop_the_next_session(
    private_tmp: Path, workspace: Path
) -> None:
    left = private_tmp / f"{CTL_PREFIX}{gone_pid()}-abc"
    deep_tree(left / "pids")
    async with make_sandbox("docker", workspace) as sb:
        r = await sb.run(["echo", "up"])
        assert r.stdout == "up\n"
    assert not left.exists()
    assert os.listdir(private_tmp) == []  # this session's own control directory went too


@pytest.mark.docker
def test_a_forged_control_dir_label_removes_nothing_outside_the_temp_dir(
    private_tmp: Path, tmp_path: Path
) -> None:
    """A container's labels are anyone's to write (any user of the engine): one whose
    `itemloop.ctl` starts with the temp directory and names the control prefix, but leads
    out of it with `..`, must not have the sweep remove what it leads to."""
    reason = problem("docker")
    if reason:
        (pytest.fail if in_ci() else pytest.skip)(reason)  # as `make_sandbox` does

    victim = tmp_path / f"home-{CTL_PREFIX}{gone_pid()}-abc"
    victim.mkdir()
    (victim / "keep").write_text("host file")
    own = private_tmp / f"{CTL_PREFIX}{gone_pid()}-def"  # a real leftover: it goes
    own.mkdir()
    forged = f"{private_tmp}/../{victim.name}"
    # A pid no process has: an owner that is gone.
    sweep_containers([{**gone_owner(gone_pid()), "itemloop.ctl": c} for c in (forged, str(own))])
    assert (victim / "keep").read_text() == "host file"
    assert not own.exists()


def sweep_containers(all_labels: list[dict[str, str]]) -> None:
    """A stopped container for each of `all_labels`, then docker's leftover sweep, which
    must remove every one of them (they are removed in any case)."""
    import docker  # type: ignore[import-untyped,unused-ignore]

    client = docker.from_env()
    made = []
    try:
        for labels in all_labels:
            made.append(client.containers.create(BUSYBOX_IMAGE, ["true"], labels=labels))
        removed = remove_leftovers(client)
        assert {c.id for c in made} <= set(removed)
    finally:
        for c in made:
            with contextlib.suppress(docker.errors.DockerException):
                c.remove(force=True)
        client.close()


def gone_owner(pid: int, start: str = "") -> dict[str, str]:
    """The owner labels of a container whose itemloop (`pid`, started at `start`) is gone."""
    host = socket.gethostname()
    return {
        LABEL: "docker",
        "itemloop.host": host,
        "itemloop.pid": str(pid),
        "itemloop.pid-start": start,
    }


@pytest.mark.docker
def test_a_forged_control_dir_label_removes_no_live_session_s_control_dir(
    private_tmp: Path,
) -> None:
    """A container labelled with an owner that is gone (a dead pid, or a live pid with
    another start time) and an `itemloop.ctl` naming a LIVE session's control directory:
    the sweep removes the container, never that directory (its pid must be the dead
    owner's, and gone)."""
    reason = problem("docker")
    if reason:
        (pytest.fail if in_ci() else pytest.skip)(reason)  # as `make_sandbox` does

    live = [private_tmp / f"{CTL_PREFIX}{os.getpid()}-live{i}" for i in range(2)]
    for d in live:
        (d / "pids").mkdir(parents=True)
    dead = gone_pid()
    own = private_tmp / f"{CTL_PREFIX}{dead}-def"  # the dead owner's own: it goes
    own.mkdir()
    forged = [
        {**gone_owner(dead), "itemloop.ctl": str(live[0])},
        {**gone_owner(os.getpid(), "0"), "itemloop.ctl": str(live[1])},  # not our start
        {**gone_owner(dead), "itemloop.ctl": str(own)},
    ]
    sweep_containers(forged)
    assert all((d / "pids").is_dir() for d in live)
    assert not own.exists()


def test_only_a_control_dir_name_right_in_the_temp_dir_passes(private_tmp: Path) -> None:
    name = f"{CTL_PREFIX}12-ab_c9"
    assert temp_dir_of(f"{private_tmp}/{name}", CTL_PREFIX) == f"{private_tmp}/{name}"
    assert temp_dir_of(f"{private_tmp}/{name}", CTL_PREFIX, 12) == f"{private_tmp}/{name}"
    assert temp_dir_of(f"{private_tmp}/{name}", CTL_PREFIX, 13) is None  # another's
    for bad in (
        f"{private_tmp}/../{name}",
        f"{private_tmp}/../home/x-{name}",
        f"{private_tmp}/{name}/..",
        f"{private_tmp}/{name}/pids",
        f"{private_tmp}/x-{name}",
        f"{private_tmp}/{CTL_PREFIX}12",
        f"{private_tmp}/{CTL_PREFIX}-12-abc",
        name,
        "",
    ):
        assert temp_dir_of(bad, CTL_PREFIX) is None, bad
