"""`local` as root (issue 10, item 6): no set-ID files, no root-only reads.

Every rule the seccomp filter adds is run for real: the file-mode calls
(chmod, fchmod, fchmodat, fchmodat2, open, creat, openat, mknod, mknodat and
their 32-bit numbers) with and without set-ID bits, openat2 and io_uring_setup
(whose modes the filter cannot see), a real `chmod 4755` (busybox, static) on
a workspace copy of /bin/sh, and the unfiltered host sandbox as the control
showing each probe does set the bits there. The root-only paths are checked
when the tests run as root (as here and in CI), in both modes: commands under
`idmap.COMMAND_ID` (the thorough fix; more in test_idmapped_workspace.py), and
the fallback (commands as root, the paths hidden), where the thorough fix is
turned off (`under_command_uid`).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from itemloop.sandbox import SandboxOptions
from itemloop.sandbox.bubblewrap import BubblewrapSandbox, root_only_paths
from itemloop.sandbox.channel_sandbox import ChannelSandbox
from itemloop.tools.config import SandboxConfig, ToolsetConfig
from itemloop.tools.toolset import Toolset

pytestmark = pytest.mark.anyio

Make = Callable[..., ChannelSandbox]
X86_64 = platform.machine() in ("x86_64", "AMD64")
EPERM, EFAULT, ENOSYS = -1, -14, -38

PROBE = r"""
import ctypes, json, mmap, os, stat, sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
X86 = os.uname().machine == "x86_64"
AT_FDCWD = -100


def sc(nr, *args):
    conv = [ctypes.c_char_p(a) if isinstance(a, bytes) else ctypes.c_long(a) for a in args]
    r = libc.syscall(ctypes.c_long(nr), *conv)
    return "ok" if r >= 0 else -ctypes.get_errno()


def setid(path):
    return oct(os.lstat(path).st_mode & 0o6000)


def fresh(name):
    if os.path.lexists(name):
        os.unlink(name)
    with open(name, "w"):
        pass
    os.chmod(name, 0o644)
    return name


def i386(nr, *args):
    code = b"\x53\x55\xb8" + nr.to_bytes(4, "little")
    for op, a in zip(b"\xbb\xb9\xba\xbe\xbf\xbd", (list(args) + [0] * 6)[:6]):
        code += bytes([op]) + (a & 0xFFFFFFFF).to_bytes(4, "little")
    code += b"\xcd\x80\x5d\x5b\xc3"
    buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(code)
    f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))
    r = f()
    return "ok" if r >= 0 else r


out = {}
if sys.argv[1:] == ["i386"]:
    bad = 4096  # a path nowhere: calls the filter lets through fail with EFAULT
    for name, nr, args in [
        ("chmod", 15, (bad, 0o4755)), ("fchmod", 94, (1 << 20, 0o2755)),
        ("fchmodat", 306, (AT_FDCWD, bad, 0o4755)), ("fchmodat2", 452, (AT_FDCWD, bad, 0o4755, 0)),
        ("open", 5, (bad, 0o101, 0o4755)), ("creat", 8, (bad, 0o4755)),
        ("openat", 295, (AT_FDCWD, bad, 0o101, 0o4755)), ("mknod", 14, (bad, 0o104755, 0)),
        ("mknodat", 297, (AT_FDCWD, bad, 0o104755, 0)),
    ]:
        out["i386 " + name] = i386(nr, *args)
        plain = [a & ~0o6000 if a in (0o4755, 0o2755, 0o104755) else a for a in args]
        out["i386 " + name + " plain"] = i386(nr, *plain)
    out["i386 openat2"] = i386(437, AT_FDCWD, bad, bad, 24)
    out["i386 io_uring_setup"] = i386(425, 1, 0)
    print(json.dumps(out))
    sys.exit(0)

NR = {
    "x86_64": dict(fchmodat2=452, openat2=437, io_uring_setup=425, chmod=90, creat=85,
                   open=2, mknod=133),
    "aarch64": dict(fchmodat2=452, openat2=437, io_uring_setup=425),
}[os.uname().machine]

for mode in (0o4755, 0o2755, 0o6755, 0o755):
    m = oct(mode)
    try:
        os.chmod(fresh("f"), mode)
        out["chmod " + m] = setid("f")
    except OSError as e:
        out["chmod " + m] = -e.errno
    fd = os.open(fresh("f"), os.O_RDONLY)
    try:
        os.fchmod(fd, mode)
        out["fchmod " + m] = setid("f")
    except OSError as e:
        out["fchmod " + m] = -e.errno
    os.close(fd)
    dfd = os.open(".", os.O_RDONLY)
    try:
        os.chmod(fresh("f"), mode, dir_fd=dfd)
        out["fchmodat " + m] = setid("f")
    except OSError as e:
        out["fchmodat " + m] = -e.errno
    os.close(dfd)
    r = sc(NR["fchmodat2"], AT_FDCWD, fresh("f").encode(), mode, 0)
    out["fchmodat2 " + m] = setid("f") if r == "ok" else r
    for name in ("c1", "c2"):
        if os.path.lexists(name):
            os.unlink(name)
    old = os.umask(0)
    try:
        try:
            os.close(os.open("c1", os.O_CREAT | os.O_WRONLY, mode))  # openat
            out["openat " + m] = setid("c1")
        except OSError as e:
            out["openat " + m] = -e.errno
        try:
            os.mknod("c2", stat.S_IFREG | mode)  # mknodat
            out["mknodat " + m] = setid("c2")
        except OSError as e:
            out["mknodat " + m] = -e.errno
        if X86:
            for name, args in [
                ("chmod", (fresh("f").encode(), mode)),
                ("open", (b"c3", 0o101, mode)),
                ("creat", (b"c4", mode)),
                ("mknod", (b"c5", stat.S_IFREG | mode, 0)),
            ]:
                for n in ("c3", "c4", "c5"):
                    if os.path.lexists(n):
                        os.unlink(n)
                r = sc(NR[name], *args)
                path = "f" if name == "chmod" else args[0].decode()
                if r == "ok" and name in ("open", "creat"):
                    pass  # the descriptor leaks until exit; fine for a probe
                out["raw " + name + " " + m] = setid(path) if r == "ok" else r
                # the x32 ABI: the same call by its x32 number
                if name == "chmod":
                    r = sc(0x40000000 | NR[name], fresh("f").encode(), mode)
                    out["x32 chmod " + m] = setid("f") if r == "ok" else r
    finally:
        os.umask(old)
out["openat2"] = sc(NR["openat2"], AT_FDCWD, b"f", 4096, 24)
out["io_uring_setup"] = sc(NR["io_uring_setup"], 1, 0)
print(json.dumps(out))
"""

MODES = ("0o4755", "0o2755", "0o6755")
NATIVE = ["chmod", "fchmod", "fchmodat", "fchmodat2", "openat", "mknodat"]
RAW = ["raw chmod", "raw open", "raw creat", "raw mknod"]
"""The x32 chmod is not in the control: a kernel without x32 answers ENOSYS."""


async def probe(sb: ChannelSandbox, *args: str) -> Any:
    await sb.write_file("probe.py", PROBE.encode())
    r = await sb.run(["python3", "probe.py", *args])
    assert r.exit_code == 0, r
    return json.loads(r.stdout)


def expected_filtered(unfiltered: dict[str, Any]) -> dict[str, Any]:
    want = dict(unfiltered)
    for key in want:
        if key.endswith(MODES) and not key.startswith("i386"):
            want[key] = EPERM
    want["openat2"] = ENOSYS
    want["io_uring_setup"] = ENOSYS
    return want


@pytest.fixture
async def unfiltered(workspace: Path, make: Make) -> dict[str, Any]:
    """What each probe gets from the kernel itself (the host sandbox: no filter)."""
    async with make("host", workspace) as sb:
        got: dict[str, Any] = await probe(sb)
        if X86_64:
            got.update(await probe(sb, "i386"))
    # The probes reach the kernel: set-ID bits are set, a plain mode is taken.
    names = NATIVE + (RAW if X86_64 else [])
    for name in names:
        assert got[f"{name} 0o4755"] == "0o4000", (name, got)
        assert got[f"{name} 0o755"] == "0o0", (name, got)
    if X86_64:
        assert got["i386 chmod"] == EFAULT and got["i386 chmod plain"] == EFAULT, got
    return got


@pytest.mark.bwrap
@pytest.mark.parametrize("network", [False, True])
async def test_set_id_modes_are_refused(
    workspace: Path, make: Make, unfiltered: dict[str, Any], network: bool
) -> None:
    async with make("local", workspace, SandboxOptions(network=network)) as sb:
        got = await probe(sb)
        want = {k: v for k, v in expected_filtered(unfiltered).items() if not k.startswith("i386")}
        assert got == want
        if X86_64 and network:  # with the network off a 32-bit call kills the process
            got32 = await probe(sb, "i386")
            for key, value in got32.items():
                if key in ("i386 openat2", "i386 io_uring_setup"):
                    assert value == ENOSYS, (key, got32)
                elif key.endswith("plain"):
                    assert value == unfiltered[key], (key, got32)  # reached the kernel
                else:
                    # unfiltered, the kernel fails it just as the plain one (a bad path)
                    assert unfiltered[key] == unfiltered[key + " plain"], (key, unfiltered)
                    assert value == EPERM, (key, got32)


MODES_AS_ROOT = [pytest.param(True, id="under-command-uid"), pytest.param(False, id="fallback")]


def local_as(make: Make, workspace: Path, under_command_uid: bool) -> BubblewrapSandbox:
    sb = make("local", workspace)
    assert isinstance(sb, BubblewrapSandbox)
    sb.under_command_uid = under_command_uid
    if os.geteuid() == 0:
        assert sb.thorough == under_command_uid, sb.thorough_unavailable()
    return sb


@pytest.mark.bwrap
@pytest.mark.parametrize("under_command_uid", MODES_AS_ROOT)
async def test_chmod_4755_on_a_copy_of_sh_fails(
    workspace: Path, make: Make, under_command_uid: bool
) -> None:
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("no busybox on this machine")
    shutil.copy("/bin/sh", workspace / "sh")
    os.chmod(workspace / "sh", 0o644)
    async with local_as(make, workspace, under_command_uid) as sb:
        for chmod in ([busybox, "chmod"], ["chmod"]):
            r = await sb.run([*chmod, "4755", "sh"])
            assert r.exit_code != 0, r
            assert "not permitted" in r.stderr.lower(), r
            assert os.stat(workspace / "sh").st_mode & 0o6000 == 0
            r = await sb.run([*chmod, "g+s", "sh"])
            assert r.exit_code != 0, r
            assert os.stat(workspace / "sh").st_mode & 0o6000 == 0
        r = await sb.run([busybox, "chmod", "755", "sh"])
        assert r.exit_code == 0, r
        assert stat.S_IMODE(os.stat(workspace / "sh").st_mode) == 0o755
        # cp -p of a set-ID program from the host keeps no set-ID bit either.
        setid = next(
            (p for p in ("/usr/bin/su", "/usr/bin/passwd", "/bin/mount") if _is_setuid(p)), None
        )
        if setid is not None:
            await sb.run(["cp", "-p", setid, "copy"])
            if (workspace / "copy").exists():
                assert os.stat(workspace / "copy").st_mode & 0o6000 == 0


def _is_setuid(path: str) -> bool:
    try:
        return os.stat(path).st_mode & stat.S_ISUID != 0
    except OSError:
        return False


@pytest.mark.bwrap
@pytest.mark.parametrize("under_command_uid", MODES_AS_ROOT)
async def test_root_only_files_are_hidden_as_root(
    workspace: Path, make: Make, under_command_uid: bool
) -> None:
    if os.geteuid() != 0:
        pytest.skip("itemloop is not running as root here")
    found = root_only_paths()
    assert "/etc/shadow" in found and "/root" in found, found
    shadow = Path("/etc/shadow").read_text()  # noqa: ASYNC240
    assert shadow, "/etc/shadow is empty on the host: the test would prove nothing"
    async with local_as(make, workspace, under_command_uid) as sb:
        assert any("/etc/shadow" in n and "set-user-ID" in n for n in sb.notices), sb.notices
        uid = "2000000000" if under_command_uid else "0"
        r = await sb.run(["id", "-u"])
        assert r.stdout == f"{uid}\n", r
        first = shadow.splitlines()[0]
        r = await sb.run(["cat", "/etc/shadow", "/etc/gshadow"])
        assert r.stdout == "" and first not in r.stderr, r
        # Of /root only the tools on PATH show (read-only), and empty masks of credentials.
        r = await sb.run(["ls", "-A", "/root"])
        shown = {os.path.basename(t) for t in sb.shown_tools()}
        for name in set(r.stdout.split()) - shown:
            r2 = await sb.run(
                [
                    "sh",
                    "-c",
                    'if [ -d "$1" ]; then ls -A "$1"; else cat "$1"; fi',
                    "-",
                    f"/root/{name}",
                ]
            )
            assert r2.stdout == "", (name, r2)
        for path in (p for p in found if p != "/root"):  # /root: above
            r = await sb.run(
                ["sh", "-c", 'if [ -d "$1" ]; then ls -A "$1"; else cat "$1"; fi', "-", path]
            )
            assert r.stdout == "", (path, r)


@pytest.mark.bwrap
@pytest.mark.parametrize("under_command_uid", MODES_AS_ROOT)
async def test_a_workspace_under_root_stays_visible(
    tmp_path: Path, make: Make, under_command_uid: bool
) -> None:
    if os.geteuid() != 0:
        pytest.skip("itemloop is not running as root here")
    ws = Path("/root") / f".itemloop-test-{os.getpid()}-{tmp_path.name}"
    ws.mkdir(mode=0o700)
    try:
        (ws / "mine.txt").write_text("kept\n")
        async with local_as(make, ws, under_command_uid) as sb:
            r = await sb.run(["cat", "mine.txt"])
            assert r.stdout == "kept\n", r
            r = await sb.run(["sh", "-c", "echo made > made.txt"])
            assert r.exit_code == 0, r
            assert (ws / "made.txt").stat().st_uid == 0  # stored as the owner's (root's)
            r = await sb.run(["ls", "-A", "/root"])
            assert ws.name in r.stdout.split(), r
            assert ".profile" not in r.stdout.split(), r
    finally:
        shutil.rmtree(ws)


@pytest.mark.bwrap
async def test_the_run_is_told_which_protection_holds(workspace: Path, make: Make) -> None:
    if os.geteuid() != 0:
        pytest.skip("itemloop is not running as root here")
    make("local", workspace)  # skips when bubblewrap cannot run here
    config = ToolsetConfig(builtins=("shell",), sandbox=SandboxConfig(workspace=workspace))
    async with Toolset(config) as tools:
        assert any("set-user-ID" in n and "/etc/shadow" in n for n in tools.notices), tools.notices
        assert any("commands run as uid 2000000000" in n for n in tools.notices), tools.notices
