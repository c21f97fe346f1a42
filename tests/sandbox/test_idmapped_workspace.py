"""`local` as root (issue 10, item 6, the thorough fix): commands under an unprivileged
host uid, the workspace writable through an idmapped mount.

Run for real as root (as here and in CI): the uid of every process of the
sandbox seen from the host (/proc/PID/status), /etc/shadow unreadable with the
path hiding turned off, files a command creates stored as the workspace's
owner (a workspace and a writable path given to other uids than root, so the
ownership shows which uid wrote), a file of the owner writable and one of
root not, the set-ID attack on the idmapped workspace, the host's mount table
unchanged during and after a session (and after a SIGKILL of its owner), a
`--hide` path in a directory that uid cannot enter, and the fallback, with
its reason, when an idmapped mount cannot be made (a workspace on ramfs).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import cmdline

from itemloop.sandbox import SandboxOptions, SandboxUnavailable
from itemloop.sandbox.bubblewrap import BubblewrapSandbox
from itemloop.sandbox.channel_sandbox import ChannelSandbox
from itemloop.sandbox.idmap import COMMAND_ID, STAGE_DIR

pytestmark = [pytest.mark.anyio, pytest.mark.bwrap]

Make = Callable[..., ChannelSandbox]
OWNER = (54321, 54322)
"""A workspace owner that is neither root nor the commands' uid."""


@pytest.fixture(autouse=True)
def as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("itemloop is not running as root here: commands run as the user")


def local(make: Make, workspace: Path, **options: object) -> BubblewrapSandbox:
    sb = make("local", workspace, SandboxOptions(**options))  # type: ignore[arg-type]
    assert isinstance(sb, BubblewrapSandbox)
    assert sb.thorough, sb.thorough_unavailable()
    return sb


@pytest.fixture
def owned_workspace(workspace: Path) -> Path:
    os.chown(workspace, *OWNER)
    return workspace


def mountinfo() -> list[str]:
    """The host's mounts (ours) where the launcher's could show: on the stage (/tmp,
    which holds the workspaces of these tests), over /root, or idmapped anywhere.
    (Other programs on a shared machine mount elsewhere meanwhile: Docker's overlays.)"""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split(" ")
            point = fields[4]
            if (
                any(point == p or point.startswith(p + "/") for p in (STAGE_DIR, "/root"))
                or "idmapped" in line
            ):
                found.append(" ".join(fields[2:]))
    return sorted(found)


def uids(pid: int) -> list[int]:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        line = next(x for x in f if x.startswith("Uid:"))
    return [int(x) for x in line.split()[1:]]


async def test_commands_run_as_an_unprivileged_host_uid(make: Make, workspace: Path) -> None:
    async with local(make, workspace) as sb:
        assert any(f"commands run as uid {COMMAND_ID}" in n for n in sb.notices), sb.notices
        assert any("workspace idmapped" in n for n in sb.notices), sb.notices
        r = await sb.run(["id", "-u"])
        assert r.stdout == f"{COMMAND_ID}\n", r
        r = await sb.run(["sh", "-c", "sleep 987654 & echo started"])
        assert r.stdout == "started\n", r
        assert sb.cgroup is not None
        inside = sb.cgroup.pids()
        sleeper = [p for p in inside if b"987654" in cmdline(p)]
        assert sleeper, inside
        # Seen from the host, every process of the sandbox (bubblewrap, the runner, its
        # keepers, the command) has the unprivileged uid: real, effective, saved, fs.
        for pid in inside:
            try:
                assert uids(pid) == [COMMAND_ID] * 4, pid
            except (FileNotFoundError, ProcessLookupError):
                pass  # exited meanwhile


async def test_shadow_is_unreadable_without_the_path_hiding(make: Make, workspace: Path) -> None:
    shadow = Path("/etc/shadow")
    if not shadow.exists() or not shadow.read_text():  # noqa: ASYNC240
        pytest.skip("no /etc/shadow with content on this host")
    sb = local(make, workspace)
    sb.hide_root_only = False  # only the uid switch stands between commands and it
    async with sb:
        assert "/etc/shadow" not in [m.path for m in sb.masked_paths()]
        r = await sb.run(["stat", "-c", "%s", "/etc/shadow"])
        assert r.stdout == f"{shadow.stat().st_size}\n", r  # the real file, not a mask  # noqa: ASYNC240
        r = await sb.run(["cat", "/etc/shadow"])
        assert r.exit_code != 0 and r.stdout == "", r
        assert "Permission denied" in r.stderr, r
        r = await sb.run(["ls", "/root/.cache"])  # a 0700 directory of root's
        assert r.exit_code != 0 and r.stdout == "", r


async def test_created_files_are_stored_as_the_workspace_owner(
    make: Make, owned_workspace: Path, tmp_path: Path
) -> None:
    ws = owned_workspace
    (ws / "mine.txt").write_text("the owner's\n")
    os.chown(ws / "mine.txt", *OWNER)
    (ws / "roots.txt").write_text("root's\n")
    extra = tmp_path / "extra"
    extra.mkdir()
    os.chown(extra, 4321, 4322)
    async with local(make, ws, writable_paths=[str(extra)]) as sb:
        r = await sb.run(["sh", "-c", "echo new > made.txt && mkdir d && echo x > d/f"])
        assert r.exit_code == 0, r
        for path in (ws / "made.txt", ws / "d", ws / "d" / "f"):
            st = path.stat()
            assert (st.st_uid, st.st_gid) == OWNER, path
        # The owner's file is the command's own inside, and writable.
        r = await sb.run(["stat", "-c", "%u %g", "mine.txt"])
        assert r.stdout == f"{COMMAND_ID} {COMMAND_ID}\n", r
        r = await sb.run(["sh", "-c", "echo more >> mine.txt"])
        assert r.exit_code == 0, r
        assert (ws / "mine.txt").read_text() == "the owner's\nmore\n"
        st = (ws / "mine.txt").stat()
        assert (st.st_uid, st.st_gid) == OWNER
        # A file of root's in there is nobody's inside, and read-only to the command.
        r = await sb.run(["sh", "-c", "echo more >> roots.txt"])
        assert r.exit_code != 0 and "Permission denied" in r.stderr, r
        assert (ws / "roots.txt").read_text() == "root's\n"
        # Each writable path maps its own owner.
        r = await sb.run(["sh", "-c", f"echo x > {extra}/made && stat -c %u {extra}"])
        assert r.stdout == f"{COMMAND_ID}\n", r
        st = (extra / "made").stat()
        assert (st.st_uid, st.st_gid) == (4321, 4322)
        # itemloop's file tools work on the host's side, on the real files.
        assert await sb.read_file("made.txt") == b"new\n"
        await sb.write_file("d/f", b"from the host\n")
        r = await sb.run(["cat", "d/f"])
        assert r.stdout == "from the host\n", r


async def test_files_itemloop_writes_belong_where_they_land(
    make: Make, owned_workspace: Path
) -> None:
    # apply_patch and the file tools write on the host's side, as root: what they
    # create must be the workspace owner's (the command's inside), and a file they
    # replace keeps its owner, or the model's next command cannot change it.
    ws = owned_workspace
    (ws / "theirs.txt").write_text("old\n")
    os.chown(ws / "theirs.txt", 4444, 4445)
    async with local(make, ws) as sb:
        await sb.write_file("new/deeper/made.txt", b"from the host\n")
        for path in (ws / "new", ws / "new" / "deeper", ws / "new" / "deeper" / "made.txt"):
            st = path.stat()
            assert (st.st_uid, st.st_gid) == OWNER, path
        r = await sb.run(["sh", "-c", "echo more >> new/deeper/made.txt && mkdir new/x"])
        assert r.exit_code == 0, r
        assert (ws / "new/deeper/made.txt").read_text() == "from the host\nmore\n"
        await sb.write_file("theirs.txt", b"replaced\n")
        st = (ws / "theirs.txt").stat()
        assert (st.st_uid, st.st_gid) == (4444, 4445)


async def test_set_id_bits_stay_refused_on_the_idmapped_workspace(
    make: Make, owned_workspace: Path
) -> None:
    ws = owned_workspace
    shutil.copy("/bin/sh", ws / "sh")
    os.chown(ws / "sh", *OWNER)
    os.chmod(ws / "sh", 0o755)
    async with local(make, ws) as sb:
        for mode in ("4755", "2755", "u+s", "g+s"):
            r = await sb.run(["chmod", mode, "sh"])
            assert r.exit_code != 0, (mode, r)
            assert os.stat(ws / "sh").st_mode & 0o6000 == 0, mode
        r = await sb.run(["sh", "-c", "cp sh sh2 && chmod 755 sh2"])
        assert r.exit_code == 0, r
        st = os.stat(ws / "sh2")
        assert (st.st_uid, st.st_gid) == OWNER and st.st_mode & 0o7777 == 0o755


FILE_CAPABILITY = struct.pack("<IIIII", 0x02000001, 1 << 7, 0, 0, 0)
"""security.capability, v2: cap_setuid permitted and effective."""


async def test_no_file_capability_is_left_on_the_host(make: Make, workspace: Path) -> None:
    # In a user namespace of its own a command is root, with CAP_SETFCAP over the
    # files it owns through the idmapped workspace: a capability written there is
    # stored for the file's owner on disk (root, here), a privileged program on the
    # host. Nested user namespaces are refused, so no such file is left.
    shutil.copy("/bin/true", workspace / "t")
    write = f"import os; os.setxattr('t', 'security.capability', {FILE_CAPABILITY!r})"
    async with local(make, workspace) as sb:
        r = await sb.run(["unshare", "-Ur", "python3", "-c", write])
        assert r.exit_code != 0, r
        r = await sb.run(["python3", "-c", write])
        assert r.exit_code != 0, r  # nor without one (no CAP_SETFCAP)
    with pytest.raises(OSError):
        os.getxattr(workspace / "t", "security.capability")


async def test_nothing_is_mounted_on_the_host(make: Make, workspace: Path) -> None:
    before = mountinfo()
    async with local(make, workspace) as sb:
        r = await sb.run(["sh", "-c", "echo x > f"])
        assert r.exit_code == 0, r
        assert mountinfo() == before  # the launcher's mounts are in its namespace only
    assert mountinfo() == before


SESSION = """
import sys, anyio
from pathlib import Path
from itemloop.sandbox.bubblewrap import BubblewrapSandbox

async def main():
    sb = BubblewrapSandbox(Path(sys.argv[1]))
    async with sb:
        assert sb.thorough, sb.thorough_unavailable()
        r = await sb.run(["sh", "-c", "sleep 876543 & echo started"])
        print(r.stdout, flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


@pytest.fixture
def session_process(workspace: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SESSION, str(workspace)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


async def test_a_sigkilled_owner_leaves_no_mount_and_no_process(
    make: Make,
    workspace: Path,
    host_procs: Callable[[str], list[str]],
    session_process: subprocess.Popen[str],
) -> None:
    local(make, workspace)  # skips where the local sandbox cannot run
    before = mountinfo()
    assert session_process.stdout is not None
    assert session_process.stdout.readline() == "started\n"
    assert host_procs("sleep 876543")
    session_process.send_signal(signal.SIGKILL)
    session_process.wait()
    # The sandbox dies with its owner (bubblewrap's --die-with-parent); its mount
    # namespace, with the idmapped mounts, goes with its last process.
    for _ in range(10_000):
        if not host_procs("sleep 876543"):
            break
        os.sched_yield()
    assert not host_procs("sleep 876543")
    assert mountinfo() == before


FALLBACK_SESSION = """
import json, sys, anyio
from pathlib import Path
from itemloop.sandbox.bubblewrap import BubblewrapSandbox

async def main():
    sb = BubblewrapSandbox(Path(sys.argv[1]))
    before = sb.thorough
    async with sb:
        uid = (await sb.run(["id", "-u"])).stdout
        shadow = (await sb.run(["cat", "/etc/shadow"])).stdout
        made = (await sb.run(["sh", "-c", "echo x > made && echo ok"])).stdout
        print(json.dumps(dict(before=before, after=sb.thorough, why=sb.thorough_unavailable(),
                              notices=sb.notices, uid=uid, shadow=shadow, made=made)))

anyio.run(main)
"""


def test_without_idmapped_mounts_the_fallback_holds_and_says_why(
    make: Make, workspace: Path
) -> None:
    """A workspace on ramfs, which has no idmapped mounts: mounted in a mount namespace
    of the test's own (unshare), so the host never sees it."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare (util-linux) here")
    make("local", workspace)  # skips where the local sandbox cannot run
    script = 'mount -t ramfs -o mode=0755 none "$1" && shift && exec "$@"'
    r = subprocess.run(
        [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            str(workspace),
            sys.executable,
            "-c",
            FALLBACK_SESSION,
            str(workspace),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["before"] is True and got["after"] is False, got
    assert "idmapped mount of" in got["why"] and "mount_setattr" in got["why"], got
    notice = next(n for n in got["notices"] if "commands run as root" in n)
    assert got["why"] in notice and "/etc/shadow" in notice and "set-user-ID" in notice
    assert got["uid"] == "0\n" and got["shadow"] == "" and got["made"] == "ok\n", got


async def test_a_writable_path_that_is_no_directory_is_refused_clearly(
    make: Make, workspace: Path, tmp_path: Path
) -> None:
    sb = local(make, workspace, writable_paths=[str(tmp_path / "missing")])
    with pytest.raises(SandboxUnavailable, match="is not a directory"):
        async with sb:
            pass


@pytest.fixture
def closed_dir() -> Iterator[Path]:
    """A host directory of mode 0700 (outside /tmp, which the sandbox replaces)."""
    d = Path("/var/tmp") / f"itemloop-test-{os.getpid()}-{id(object())}"
    d.mkdir(mode=0o700)
    try:
        (d / "secret").write_text("s3cret\n")
        yield d
    finally:
        shutil.rmtree(d)


async def test_a_hidden_path_the_uid_cannot_reach_does_not_stop_the_mode(
    make: Make, workspace: Path, closed_dir: Path
) -> None:
    """bubblewrap, as the commands' uid, cannot mount over a path in a directory it
    cannot enter: such a `--hide` is left out (the uid cannot read it anyway)."""
    async with local(make, workspace, hidden_paths=[str(closed_dir / "secret")]) as sb:
        assert sb.thorough, sb.thorough_unavailable()
        r = await sb.run(["cat", str(closed_dir / "secret")])
        assert r.exit_code != 0 and "s3cret" not in r.stdout, r
        assert "Permission denied" in r.stderr, r


def test_an_interpreter_the_uid_cannot_read_means_the_fallback(
    make: Make, workspace: Path, closed_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner's Python two closed directories deep (the first one's child is shown
    to commands, the second stays closed): the fallback, and the notice says why."""
    inner = closed_dir / "inner"
    inner.mkdir(mode=0o700)
    python = inner / "python3"
    shutil.copy(sys.executable, python)
    sb = local(make, workspace)
    monkeypatch.setattr("itemloop.sandbox.bubblewrap.runner_python", lambda: str(python))
    assert not sb.thorough
    why = sb.thorough_unavailable()
    assert why == f"uid {COMMAND_ID} cannot read the runner's Python ({python})", why
    assert any("commands run as root" in n and why in n for n in sb.notices), sb.notices
    os.chmod(inner, 0o755)  # now the shown child leads to it
    assert sb.thorough, sb.thorough_unavailable()
