"""How `itemloop` stops (issue 10, items 8-10), tested from outside as a user stops it.

SIGTERM and SIGHUP stop a run like Ctrl-C: the command is killed, its call answered
"cancelled" in the journal, the sandbox removed, and the exit status says which signal.
Ctrl-C on the docker exec path kills the command at once. A SIGKILLed itemloop leaves no
container running. Each test starts the real CLI on a scripted model and learns that the
command is running from a FIFO in the workspace the command writes to; the deadlines are
hang guards far below the command's own 1000 s, never synchronisation.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from backends import BUSYBOX_IMAGE, PYTHON_IMAGE, problem
from helpers import dead_pid, message, write_script

HANG_GUARD_S = 60.0
"""Far below the command's `sleep 1000`: only a killed command ends in time."""

COMMAND = "echo started > started.fifo; sleep 1000; echo done > after"

SANDBOXES = {
    "local": ["--sandbox", "local"],
    "docker": ["--sandbox", "docker", "--image", BUSYBOX_IMAGE],
    "docker-python": ["--sandbox", "docker", "--image", PYTHON_IMAGE],
}
KINDS = [
    pytest.param("local", marks=pytest.mark.bwrap),
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("docker-python", marks=pytest.mark.docker),
]
DOCKER_KINDS = [p for p in KINDS if p.values[0] != "local"]


@dataclass
class Cli:
    """A running `itemloop run` whose model calls the shell once with `COMMAND`."""

    proc: subprocess.Popen[str]
    workspace: Path
    session: Path

    def wait_for_the_command(self) -> None:
        """Return once the command runs: it wrote to the FIFO (no polling, no sleep)."""
        fd = os.open(self.workspace / "started.fifo", os.O_RDONLY | os.O_NONBLOCK)
        try:
            ready, _, _ = select.select([fd], [], [], HANG_GUARD_S)
            assert ready, f"the command did not start; stderr: {self.stderr_now()}"
            assert os.read(fd, 100) == b"started\n"
        finally:
            os.close(fd)

    def stderr_now(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.communicate()[1]

    def stop(self, signum: int) -> tuple[int, str]:
        """Send `signum`; the exit status and stderr once the process is gone."""
        self.proc.send_signal(signum)
        try:
            _, err = self.proc.communicate(timeout=HANG_GUARD_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            pytest.fail(f"itemloop did not exit on signal {signum}; stderr: {err}")
        return self.proc.returncode, err

    def journal(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.session.read_text().splitlines() if line]


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Any]:
    """`cli(kind)`: start `itemloop run` in that sandbox; killed and cleaned up after."""
    started: list[Cli] = []

    def start(kind: str) -> Cli:
        reason = problem(kind)
        if reason:
            pytest.skip(reason)
        workspace = tmp_path / "ws"
        workspace.mkdir()
        os.mkfifo(workspace / "started.fifo")
        call = {"type": "shell_call", "call_id": "s1", "action": {"commands": [COMMAND]}}
        script = write_script(tmp_path / "turns.jsonl", [call], [message("never asked")])
        session = tmp_path / "session.jsonl"
        argv = [sys.executable, "-m", "itemloop.runtime.cli", "run", "go", "--script"]
        argv += [str(script), "--tools", "shell", "--workspace", str(workspace)]
        argv += ["--session", str(session), *SANDBOXES[kind]]
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        c = Cli(proc, workspace, session)
        started.append(c)
        return c

    yield start
    for c in started:
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.communicate()
        for container in containers_of(c.proc.pid):
            with contextlib.suppress(Exception):  # NotFound, or the engine removing it
                container.remove(force=True)
            removed(container)


def containers_of(pid: int) -> list[Any]:
    """The docker sandbox containers of the itemloop process `pid` (any state)."""
    if problem("docker"):
        return []
    import docker

    client = docker.from_env()
    return list(client.containers.list(all=True, filters={"label": f"itemloop.pid={pid}"}))


def removed(container: Any) -> bool:
    """Whether `container` is removed, waiting for it (the engine tells) up to the guard."""
    import docker.errors
    import requests

    try:
        container.wait(condition="removed", timeout=HANG_GUARD_S)
    except docker.errors.NotFound:
        return True  # removed before the wait began
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
        return False
    return True


# --- item 10: a SIGKILLed itemloop leaves no container ---------------------------------


@pytest.mark.parametrize("kind", DOCKER_KINDS)
def test_the_container_dies_with_a_killed_itemloop(cli: Any, kind: str) -> None:
    c = cli(kind)
    c.wait_for_the_command()
    (container,) = containers_of(c.proc.pid)
    assert c.stop(signal.SIGKILL)[0] == -signal.SIGKILL
    assert removed(container), "the container outlived its owner"


@pytest.mark.docker
@pytest.mark.anyio
async def test_a_killed_itemloops_control_directory_is_removed_by_the_next(
    make: Any, workspace: Path, tmp_path: Path
) -> None:
    gone = dead_pid()
    # The container dies with its killed owner, but the control directory (its socket)
    # stays in /tmp; the next docker session removes those whose itemloop is gone.
    tmp = Path(tempfile.gettempdir())
    left = tmp / f"itemloop-docker-{gone}-left"
    planted = tmp / f"itemloop-docker-{gone}-link"
    target = tmp_path / "keep"
    target.mkdir()
    try:
        left.mkdir()
        (left / "pids").mkdir()
        planted.symlink_to(target)
        async with make("docker", workspace) as sb:
            r = await sb.run(["true"])
            assert r.exit_code == 0, r
        assert not left.exists()
        assert planted.is_symlink() and target.exists()
    finally:
        shutil.rmtree(left, ignore_errors=True)
        planted.unlink(missing_ok=True)


def sandbox_processes(workspace: Path) -> list[str]:
    """Host processes of a local sandbox over `workspace`: bubblewrap names it, and a
    command's working directory is in it."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"/proc/{name}/cwd")
        except OSError:
            continue
        if str(workspace) in cmd or cwd.startswith(str(workspace)):
            found.append(f"{name}: {cmd}")
    return found


def assert_stopped_like_ctrl_c(c: Cli, status: int, err: str, expected: int) -> None:
    """Exit status, the call answered "cancelled" in the journal, the sandbox gone."""
    from itemloop.runtime.session import SessionStore

    assert status == expected, err
    items = SessionStore(c.session).load().items
    outs = [i for i in items if i.get("type") == "shell_call_output"]
    assert len(outs) == 1, f"the call is answered once in the journal: {items}"
    assert "cancelled" in outs[0]["output"][0]["stderr"]
    assert not (c.workspace / "after").exists(), "the command was killed"
    assert containers_of(c.proc.pid) == [], "the container was removed"
    assert sandbox_processes(c.workspace) == [], "the sandbox's processes are gone"


# --- item 8: SIGTERM and SIGHUP stop a run like Ctrl-C ----------------------------------

STOP_CASES = [
    pytest.param("local", signal.SIGTERM, marks=pytest.mark.bwrap, id="local-SIGTERM"),
    pytest.param("local", signal.SIGHUP, marks=pytest.mark.bwrap, id="local-SIGHUP"),
    pytest.param("docker", signal.SIGTERM, marks=pytest.mark.docker, id="docker-SIGTERM"),
    pytest.param("docker", signal.SIGHUP, marks=pytest.mark.docker, id="docker-SIGHUP"),
    pytest.param(
        "docker-python", signal.SIGTERM, marks=pytest.mark.docker, id="docker-python-SIGTERM"
    ),
]


@pytest.mark.parametrize(("kind", "signum"), STOP_CASES)
def test_sigterm_and_sighup_stop_a_run_like_ctrl_c(cli: Any, kind: str, signum: int) -> None:
    c = cli(kind)
    c.wait_for_the_command()
    status, err = c.stop(signum)
    assert_stopped_like_ctrl_c(c, status, err, 128 + signum)
    assert f"stopped by {signal.Signals(signum).name}" in err


# --- item 9: Ctrl-C kills the command at once, on every path --------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_ctrl_c_kills_the_command_at_once(cli: Any, kind: str) -> None:
    c = cli(kind)
    c.wait_for_the_command()
    status, err = c.stop(signal.SIGINT)
    assert_stopped_like_ctrl_c(c, status, err, 130)
    assert "interrupted" in err


@pytest.mark.docker
@pytest.mark.anyio
async def test_cancelling_an_exec_path_command_kills_it(tmp_path: Path) -> None:
    import anyio

    from itemloop.sandbox.docker_sandbox import DockerSandbox

    workspace = tmp_path / "ws"
    workspace.mkdir()
    os.mkfifo(workspace / "started.fifo")
    # The exec path by choice: busybox runs the fast path now (the runner bundle).
    async with DockerSandbox(workspace, image=BUSYBOX_IMAGE, fast_path=False) as sb:
        assert sb.mode == "exec"
        waited_for_the_command = False

        async def hang_guard() -> None:
            nonlocal waited_for_the_command
            await anyio.sleep(HANG_GUARD_S)  # a guard, not synchronisation
            waited_for_the_command = True
            await anyio.to_thread.run_sync(lambda: sb.container.kill())

        async with anyio.create_task_group() as guard:
            guard.start_soon(hang_guard)
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:

                    async def cancel_once_running() -> None:
                        fifo = workspace / "started.fifo"
                        await anyio.to_thread.run_sync(fifo.read_text)
                        scope.cancel()

                    tg.start_soon(cancel_once_running)
                    await sb.run(script=COMMAND)
            guard.cancel_scope.cancel()
        assert not waited_for_the_command, "cancelling waited for the command to end"
        ps = await sb.run(script="ps -o pid,args")
        assert ps.exit_code == 0, ps.stderr
        assert "sleep 1000" not in ps.stdout, ps.stdout
