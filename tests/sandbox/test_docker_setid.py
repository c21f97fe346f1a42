"""`docker`: no set-ID file is made in the workspace (issue 10, item 6).

The container runs as the runtime's uid (root here) without capabilities, so
a command owns the workspace files it makes and could set their set-ID bits,
leaving a setuid-root program on the host. On the fast path the runner
installs the seccomp filter of `seccomp.py` (`container_filter`) before any
command runs. Each image runs the attack for real: a real `chmod 4755` and
`chmod g+s` (the image's chmod, or the bundled busybox's where the image has
none), and the probe of the local sandbox's tests (chmod, fchmod, fchmodat,
fchmodat2, openat with O_CREAT, mknodat, the raw x86_64 and i386 numbers)
under the image's python3 and under the bundle's interpreter; then the host
looks at the workspace with `os.stat`. The exec path, which the runner does
not serve, cannot refuse them: it removes them after each command (and at
start and close), and says so in its notices and in the command's result;
each case runs a real `chmod` there and looks at the host's files.
"""

from __future__ import annotations

import json
import os
import platform
import stat
from pathlib import Path
from typing import Any

import pytest
from test_setid_and_root_paths import EPERM, MODES, PROBE, Make

from itemloop.sandbox.base import SandboxOptions
from itemloop.sandbox.channel_sandbox import ChannelSandbox
from itemloop.sandbox.docker_sandbox import DockerSandbox
from itemloop.sandbox.runner_bundle import BUNDLE_MOUNT

pytestmark = [pytest.mark.anyio, pytest.mark.docker]

X86_64 = platform.machine() in ("x86_64", "AMD64")
EBADF, EFAULT, ENOSYS = -9, -14, -38
FAST = ["docker", "docker-python", "docker-musl", "docker-noshell"]
"""busybox only, python3, musl, no shell at all: the runner (from the bundle) in each."""
IMAGE_CHMOD = {"docker", "docker-python"}
"""The images with a chmod of their own."""


def _docker(sb: ChannelSandbox) -> DockerSandbox:
    assert isinstance(sb, DockerSandbox)
    return sb


def setid_dirs(root: Path) -> list[str]:
    """Workspace directories with a set-user-ID or set-group-ID bit, as the host sees them."""
    found = []
    for d, dirs, _names in os.walk(root):
        for n in dirs:
            p = os.path.join(d, n)
            if os.lstat(p).st_mode & (stat.S_ISUID | stat.S_ISGID):
                found.append(p)
    return found


def setid_files(root: Path) -> list[str]:
    """Workspace files with a set-user-ID or set-group-ID bit, as the host sees them."""
    found = []
    for d, _dirs, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if os.lstat(p).st_mode & (stat.S_ISUID | stat.S_ISGID):
                found.append(p)
    return found


async def probe(sb: DockerSandbox, argv: list[str], *args: str) -> Any:
    await sb.write_file("probe.py", PROBE.encode())
    r = await sb.run([*argv, "probe.py", *args])
    assert r.exit_code == 0, r
    return json.loads(r.stdout)


def check_refused(got: dict[str, Any]) -> None:
    """Every set-ID mode refused with EPERM; every plain one taken."""
    for key, value in got.items():
        if key.startswith("i386"):
            continue
        if key.endswith(MODES):
            assert value == EPERM, (key, got)
        elif key.endswith("0o755") and not key.startswith("x32"):
            # The probe reached the kernel and took the mode (Docker 20.10's own profile
            # does not know fchmodat2: ENOSYS).
            assert value == "0o0" or (key.startswith("fchmodat2") and value == ENOSYS), (key, got)
    assert got["openat2"] == ENOSYS and got["io_uring_setup"] == ENOSYS, got


@pytest.mark.parametrize("kind", FAST)
async def test_setid_modes_are_refused_on_the_fast_path(
    kind: str, workspace: Path, make: Make
) -> None:
    async with make(kind, workspace) as sb:
        d = _docker(sb)
        assert d.mode == "runner"
        assert d.bundle is not None
        interpreters = [d.bundle.python_argv()]
        if kind == "docker-python":
            interpreters.append(["python3", "-I"])  # the image's own programs too
        for argv in interpreters:
            got = await probe(d, argv)
            check_refused(got)
            if X86_64:
                i386 = await probe(d, argv, "i386")
                for key, value in i386.items():
                    if key.endswith(("openat2", "io_uring_setup")):
                        assert value == ENOSYS, (key, i386)
                    elif key.endswith(" plain"):
                        # Reached the kernel, which fails it for its bad path or descriptor
                        # (or Docker's profile, which does not know fchmodat2).
                        assert value in (EFAULT, EBADF, ENOSYS), (key, i386)
                    else:
                        assert value == EPERM, (key, i386)
        assert setid_files(workspace) == []
        said = [n for n in d.notices if "set-user-ID" in n]
        if os.getuid() == 0:
            assert len(said) == 1 and "are refused" in said[0], d.notices
        assert not any("not refused" in n for n in said), d.notices


@pytest.mark.parametrize("kind", FAST)
async def test_chmod_setid_leaves_no_setid_file_on_the_host(
    kind: str, workspace: Path, make: Make
) -> None:
    async with make(kind, workspace) as sb:
        d = _docker(sb)
        assert d.bundle is not None
        busybox = f"{BUNDLE_MOUNT}/bin/busybox"
        chmod = ["chmod"] if kind in IMAGE_CHMOD else [busybox, "chmod"]
        # A program the container's uid owns: a copy of the bundled busybox (static).
        r = await sb.run([busybox, "cp", busybox, "sh"])
        assert r.exit_code == 0, r
        for mode in ("4755", "2755", "6755", "u+s", "g+s"):
            r = await sb.run([*chmod, mode, "sh"])
            assert r.exit_code != 0, (mode, r)
            assert "Operation not permitted" in r.stderr, (mode, r)
            assert setid_files(workspace) == [], mode
        r = await sb.run([*chmod, "755", "sh"])
        assert r.exit_code == 0, r
        assert stat.S_IMODE(os.stat(workspace / "sh").st_mode) == 0o755
        r = await sb.run([*chmod, "700", "sh"])
        assert r.exit_code == 0, r
        assert stat.S_IMODE(os.stat(workspace / "sh").st_mode) == 0o700


EXEC_CASES = {
    "chmod 4755": ("cp /bin/busybox sh && chmod 4755 sh", ["sh"]),
    "chmod 2755": ("cp /bin/busybox sh && chmod 2755 sh", ["sh"]),
    "chmod u+s": ("cp /bin/busybox sh && chmod u+s sh", ["sh"]),
    "nested": ("mkdir -p a/b && cp /bin/busybox a/b/sh && chmod 6755 a/b/sh", ["a/b/sh"]),
    # The image's busybox has no set-ID bit for `cp -p` to keep: a copy of one made here.
    "cp -p": ("cp /bin/busybox sh && chmod 4755 sh && cp -p sh sh2", ["sh", "sh2"]),
    "directory g+s": ("mkdir d && chmod g+s d", ["d"]),
}


@pytest.mark.parametrize("case", list(EXEC_CASES))
async def test_the_exec_path_removes_setid_bits_after_each_command(
    case: str, workspace: Path, make: Make
) -> None:
    script, made = EXEC_CASES[case]
    async with make("docker-exec", workspace) as sb:
        d = _docker(sb)
        assert d.mode == "exec"
        said = [n for n in d.notices if "set-user-ID" in n]
        assert len(said) == 1 and "removed after each command" in said[0], d.notices
        assert "not refused" in said[0] and "background" in said[0], said
        r = await sb.run(script=script)
        # Nothing refuses the mode on this path: the command succeeds, and after it the
        # bits are gone from the host's files, and the result says which files had them.
        assert r.exit_code == 0, r
        assert setid_files(workspace) == [] and setid_dirs(workspace) == []
        for name in made:
            assert repr(name) in r.stderr, r
            assert stat.S_IMODE(os.stat(workspace / name).st_mode) & 0o777 == 0o755, name
        assert "set-ID bits found after this command: removed from" in r.stderr, r
        # A plain mode is taken, and no note comes with it.
        r = await sb.run(script=f"chmod 755 {made[0]} && chmod 700 {made[-1]}")
        assert r.exit_code == 0 and r.stderr == "", r
        assert stat.S_IMODE(os.stat(workspace / made[0]).st_mode) == (
            0o700 if made[0] == made[-1] else 0o755
        )
        assert stat.S_IMODE(os.stat(workspace / made[-1]).st_mode) == 0o700


async def test_the_exec_path_sweeps_at_start_and_at_close(workspace: Path, make: Make) -> None:
    """Bits set outside a command (before the session, or between its last command and its
    end, as a background process could) are removed at start and at close."""
    before = workspace / "before"
    before.write_bytes(b"x")
    os.chmod(before, 0o4755)
    sb = make("docker-exec", workspace)
    async with sb:
        d = _docker(sb)
        assert stat.S_IMODE(os.stat(before).st_mode) == 0o755
        assert any("'before'" in n and "removed" in n for n in d.notices), d.notices
        r = await sb.run(script="echo late > late")
        assert r.exit_code == 0 and r.stderr == "", r
        os.chmod(workspace / "late", 0o6755)  # after the command's own sweep
    assert setid_files(workspace) == []


async def test_the_exec_path_sweeps_writable_paths(
    workspace: Path, tmp_path: Path, make: Make
) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    async with make("docker-exec", workspace, SandboxOptions(writable_paths=[str(extra)])) as sb:
        r = await sb.run(script=f"cp /bin/busybox {extra}/sh && chmod 4755 {extra}/sh")
        assert r.exit_code == 0, r
        assert setid_files(extra) == []
        assert repr(str(extra / "sh")) in r.stderr, r


class _BadFilterSandbox(DockerSandbox):
    """A sandbox whose runner is handed a program the kernel refuses (an invalid opcode)."""

    def seccomp_program(self) -> bytes:
        return b"\xff\xff\x00\x00\x00\x00\x00\x00"


async def test_a_filter_that_cannot_be_installed_is_said(workspace: Path, make: Make) -> None:
    # `make` checks that the engine and the image are there (or skips).
    async with make("docker", workspace):
        pass
    from backends import BUSYBOX_IMAGE

    async with _BadFilterSandbox(workspace, image=BUSYBOX_IMAGE) as sb:
        assert sb.mode == "runner"
        said = [n for n in sb.notices if "set-user-ID" in n]
        assert said and "not refused" in said[0], sb.notices
        assert "Invalid argument" in said[0], said
