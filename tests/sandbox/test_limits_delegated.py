"""`local` limits when itemloop is not root (issue 10, item 5): a delegated cgroup v1 subtree.

Root sets the scene as an administrator would: a cgroup in each of the v1
memory, pids and cpu hierarchies (under this test's own cgroups, so nothing
leaves the limits it runs under), `chown -R` to an unprivileged uid
(`UID`), with a workspace and a home of that uid. A child process of that
uid joins those cgroups before it runs Python (so they are its own, as
listed in /proc/self/cgroup) and opens a real `BubblewrapSandbox`, started
by bubblewrap directly as that uid. Shown for real: the limits hold and the
notice says so (a 1 GiB allocation under 256 MiB is killed with 137 and the
session goes on; forks past `max_processes` are refused with EAGAIN); the
session's cgroups are gone afterwards; with the cpu hierarchy not delegated,
the memory and process limits still hold and the notice names what is
missing; with nothing delegated, the notice says no limit holds and names
each cgroup that is not the user's. Everything the test made is removed,
even on failure.

Not covered: cgroup v2 delegation (the systemd way). This host's v2
hierarchy has no memory, pids or cpu controller, so that path cannot run
here; its code (`cgroups.py`) is kept correct by reading, not by a test.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import FORK_PROBE

pytestmark = [pytest.mark.bwrap]

UID = 54321
"""The unprivileged user the subtree is delegated to (in no /etc/passwd)."""
CONTROLLERS = ("memory", "pids", "cpu")
MiB = 1024**2
_names = itertools.count(1)

CHILD = r"""
import json, sys
import anyio
from pathlib import Path
from itemloop.sandbox import SandboxOptions
from itemloop.sandbox.bubblewrap import BubblewrapSandbox

async def main() -> None:
    ws, mode, forks = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    options = SandboxOptions(memory_bytes=256 * 1024**2, max_processes=60, cpus=1.0)
    out = {}
    async with BubblewrapSandbox(ws, options) as sb:
        await sb.run(["true"])
        out["notices"] = sb.notices
        out["dirs"] = [] if sb.cgroup is None else [str(d) for d in sb.cgroup.dirs]
        if mode != "none":
            r = await sb.run(["python3", "-c", "b = bytearray(1024**3); print('allocated')"])
            out["alloc"] = [r.exit_code, r.stdout]
            r = await sb.run(["echo", "still here"])
            out["after"] = [r.exit_code, r.stdout]
            r = await sb.run(["python3", "-c", forks])
            out["forks"] = [r.exit_code, r.stdout]
    print(json.dumps(out))

anyio.run(main)
"""


def own_cgroup(controller: str) -> Path:
    """This process's cgroup in the v1 hierarchy of `controller` (the test's own limits)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup", controller) / path.lstrip("/")
    raise LookupError(controller)


def user_python() -> list[str]:
    """A command running this Python's version, with this environment's packages, that
    `UID` may execute (a pyenv under /root is not); or a skip."""
    site = sysconfig.get_paths()["purelib"]
    boot = f"import runpy, site, sys; site.addsitedir({site!r}); del sys.argv[0]; "
    boot += "runpy.run_path(sys.argv[0], run_name='__main__')"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for py in dict.fromkeys([os.path.realpath(sys.executable), f"/usr/bin/{version}"]):
        try:
            probe = subprocess.run(
                [py, "-c", f"import site; site.addsitedir({site!r}); import itemloop.sandbox"],
                user=UID,
                group=UID,
                extra_groups=[],
                capture_output=True,
                check=False,
            )
        except OSError:  # not executable by that uid
            continue
        if probe.returncode == 0:
            return [py, "-c", boot]
    pytest.skip(f"uid {UID} can run no {version} with itemloop's packages here")


@pytest.fixture(scope="module", autouse=True)
def scene_possible() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to delegate a cgroup subtree to an unprivileged user")
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    for c in CONTROLLERS:
        try:
            if not (own_cgroup(c) / "cgroup.procs").exists():
                raise LookupError(c)
        except LookupError:
            pytest.skip(f"no cgroup v1 {c} hierarchy mounted under /sys/fs/cgroup/{c}")


Delegate = Callable[..., list[Path]]


def _remove_tree(d: Path) -> None:
    """Kill what is in cgroup `d` and below, then remove them, the deepest first."""
    for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        _remove_tree(sub)
    for _ in range(1000):
        try:
            pids = (d / "cgroup.procs").read_text().split()
        except FileNotFoundError:
            return
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            d.rmdir()
            return
        except OSError:  # EBUSY until the killed processes are reaped
            os.sched_yield()
    d.rmdir()


@pytest.fixture
def delegate() -> Iterator[Delegate]:
    """`delegate(*controllers)`: a new cgroup in each of those hierarchies, given to `UID`."""
    made: list[Path] = []

    def make(*controllers: str) -> list[Path]:
        dirs = []
        name = f"itemloop-test-delegated-{os.getpid()}-{next(_names)}"
        for c in controllers:
            d = own_cgroup(c) / name
            d.mkdir()
            made.append(d)
            for p in [d, *d.iterdir()]:
                os.chown(p, UID, UID)
            dirs.append(d)
        return dirs

    yield make
    for d in reversed(made):
        _remove_tree(d)


@pytest.fixture
def user_dir() -> Iterator[Path]:
    """A directory of `UID`'s holding its workspace and its home."""
    top = Path(tempfile.mkdtemp(prefix="itemloop-delegated-"))
    try:
        for p in (top, top / "ws", top / "home"):
            p.mkdir(exist_ok=True)
            os.chown(p, UID, UID)
        yield top
    finally:
        shutil.rmtree(top)


def run_as_user(top: Path, joined: list[Path], mode: str) -> dict[str, object]:
    """Run `CHILD` as `UID`, first joined to the `joined` cgroups (before Python starts)."""
    script = top / "child.py"
    script.write_text(CHILD)
    joins = "".join(f"echo $$ > {d / 'cgroup.procs'} && " for d in joined)
    argv = ["/bin/sh", "-c", f'{joins}exec "$@"', "sh", *user_python(), str(script)]
    r = subprocess.run(
        [*argv, str(top / "ws"), mode, FORK_PROBE],
        user=UID,
        group=UID,
        extra_groups=[],
        cwd=top / "ws",
        env={"PATH": "/usr/bin:/bin", "HOME": str(top / "home"), "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    found: dict[str, object] = json.loads(r.stdout.splitlines()[-1])
    return found


def limits_notice(out: dict[str, object]) -> str:
    notices = out["notices"]
    assert isinstance(notices, list)
    found = [n for n in notices if "limit" in n]
    assert len(found) == 1, notices
    notice: str = found[0]
    return notice


def test_a_delegated_v1_subtree_holds_the_limits(delegate: Delegate, user_dir: Path) -> None:
    dirs = delegate(*CONTROLLERS)
    out = run_as_user(user_dir, dirs, "all")
    notice = limits_notice(out)
    assert "memory 256 MiB, 60 processes, 1 CPUs (cgroup v1)" in notice, notice
    assert "NOT" not in notice, notice
    session = [Path(d) for d in out["dirs"]]  # type: ignore[attr-defined]
    assert sorted(d.parent for d in session) == sorted(dirs), (session, dirs)
    assert out["alloc"] == [137, ""], out
    assert out["after"] == [0, "still here\n"], out
    code, stdout = out["forks"]  # type: ignore[misc]
    assert code == 0 and "refused: Resource temporarily unavailable" in stdout, out
    assert 10 < int(stdout.split()[-1]) < 60, out
    for d in session:
        assert not d.exists(), d


def test_what_is_not_delegated_is_named_and_the_rest_holds(
    delegate: Delegate, user_dir: Path
) -> None:
    dirs = delegate("memory", "pids")
    out = run_as_user(user_dir, dirs, "partial")
    notice = limits_notice(out)
    assert "memory 256 MiB, 60 processes (cgroup v1)" in notice, notice
    assert "NOT in force: 1 CPUs" in notice, notice
    assert f"not delegated to uid {UID}" in notice, notice
    assert f"{own_cgroup('cpu')} (cpu)" in notice, notice
    assert "(memory)" not in notice and "(pids)" not in notice, notice
    assert out["alloc"] == [137, ""], out
    assert out["after"] == [0, "still here\n"], out
    code, stdout = out["forks"]  # type: ignore[misc]
    assert code == 0 and "refused: Resource temporarily unavailable" in stdout, out
    for d in out["dirs"]:  # type: ignore[attr-defined]
        assert not Path(d).exists(), d


def test_nothing_delegated_no_limit_holds_and_the_notice_says_why(user_dir: Path) -> None:
    out = run_as_user(user_dir, [], "none")
    notice = limits_notice(out)
    assert out["dirs"] == [], out
    assert "the memory, process and CPU limits are NOT in force" in notice, notice
    assert f"not delegated to uid {UID}" in notice, notice
    for c in CONTROLLERS:
        assert f"{own_cgroup(c)} ({c})" in notice, notice
