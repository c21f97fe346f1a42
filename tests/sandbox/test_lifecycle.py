"""Starting, failing to start, and cleaning up."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from itemloop.sandbox import (
    BubblewrapSandbox,
    DockerSandbox,
    HostSandbox,
    Sandbox,
    SandboxError,
    SandboxOptions,
    SandboxUnavailable,
    open_sandbox,
)
from itemloop.sandbox import bubblewrap as bubblewrap_mod

pytestmark = pytest.mark.anyio


def test_open_sandbox_factory(workspace: Path) -> None:
    assert isinstance(open_sandbox("local", workspace, SandboxOptions()), BubblewrapSandbox)
    assert isinstance(open_sandbox("host", workspace, SandboxOptions()), HostSandbox)
    sb = open_sandbox("docker", workspace, SandboxOptions(), image="x")
    assert isinstance(sb, DockerSandbox)
    assert isinstance(sb, Sandbox)
    with pytest.raises(SandboxUnavailable, match="--image"):
        open_sandbox("docker", workspace, SandboxOptions())
    with pytest.raises(SandboxError, match="local, docker, host"):
        open_sandbox("chroot", workspace, SandboxOptions())


async def test_missing_bubblewrap_is_an_error_not_a_fallback(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bubblewrap_mod, "bwrap_path", lambda: None)
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        async with BubblewrapSandbox(workspace):
            pass


async def test_unreachable_docker_names_the_flag(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{workspace}/no-docker.sock")
    with pytest.raises(SandboxUnavailable, match="--sandbox"):
        async with DockerSandbox(workspace, image="itemloop-test:busybox"):
            pass


@pytest.mark.docker
async def test_missing_image_is_a_clear_error(workspace: Path, make: Any) -> None:
    make("docker", workspace)  # skips without an engine
    with pytest.raises(SandboxUnavailable, match="not on this Docker engine"):
        async with DockerSandbox(workspace, image="itemloop-test:no-such-tag"):
            pass


def _dead_pid() -> int:
    """The PID of a process that has exited."""
    proc = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    return int(proc.stdout)


@pytest.mark.docker
async def test_leftover_of_a_killed_runtime_is_removed(workspace: Path, make: Any) -> None:
    import docker

    make("docker", workspace)  # skips without an engine
    client = docker.from_env()
    dead = _dead_pid()
    labels = {
        "itemloop.sandbox": "docker",
        "itemloop.host": os.uname().nodename,
        "itemloop.pid": str(dead),
        "itemloop.pid-start": "0",
    }
    leftover = client.containers.create("itemloop-test:busybox", ["true"], labels=labels)
    try:
        async with make("docker", workspace) as sb:
            r = await sb.run(["true"])
            assert r.exit_code == 0
            mine = client.containers.get(sb.container.id)
            assert mine.labels["itemloop.pid"] == str(os.getpid())
        # The low-level list: no inspect per container, so one that another process
        # removes meanwhile cannot fail the listing.
        ids = [c["Id"] for c in client.api.containers(all=True)]
        assert leftover.id not in ids
        assert mine.id not in ids  # and our own is gone after close
    finally:
        try:
            leftover.remove(force=True)
        except docker.errors.NotFound:
            pass


async def test_run_before_start_is_an_error(workspace: Path) -> None:
    with pytest.raises(SandboxError, match="not started"):
        await HostSandbox(workspace).run(["true"])


async def test_file_operations(any_sandbox: Any) -> None:
    await any_sandbox.write_file("d/x.txt", b"1")
    st = await any_sandbox.stat("d/x.txt")
    assert st is not None and st.is_file and st.size == 1
    assert [s.path for s in await any_sandbox.list_dir("d")] == ["d/x.txt"]
    r = await any_sandbox.run(script="cat d/x.txt")
    assert r.stdout == "1"
    await any_sandbox.delete_file("d/x.txt")
    assert await any_sandbox.stat("d/x.txt") is None
    with pytest.raises(SandboxError):
        await any_sandbox.read_file("../etc/passwd")


@pytest.mark.parametrize("kind", ["host", pytest.param("local", marks=pytest.mark.bwrap)])
async def test_a_sandbox_cancelled_from_outside_mid_command_exits(
    workspace: Path, make: Any, kind: str
) -> None:
    """Closing in a cancelled scope used to chain a Cancelled to itself (CPython
    gh-102201) and spin anyio forever: the sandbox must simply exit."""
    import anyio

    started = anyio.Event()
    marker = f"{os.getpid()}{id(started) % 1000}"  # a sleep of its own, to find it
    fifo = workspace / "started.fifo"
    os.mkfifo(fifo)

    def command_runs() -> str:
        with open(fifo) as f:  # the command opened it: it runs (no polling)
            return f.read()

    with anyio.fail_after(60):  # a hang guard: the command would run 1,000 s
        async with anyio.create_task_group() as tg:

            async def go() -> None:
                async with make(kind, workspace) as sb:
                    started.set()
                    await sb.run(script=f"echo > started.fifo; exec sleep 1000.{marker}")

            tg.start_soon(go)
            await started.wait()
            await anyio.to_thread.run_sync(command_runs)
            tg.cancel_scope.cancel()
    # Everything the session started died with it (a SIGKILLed host runner left it).
    left = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).endswith(marker)]
    assert left == []


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
