"""What a confined sandbox (`local`, `docker`) must keep from the host."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from itemloop.sandbox.channel_sandbox import ChannelSandbox
from itemloop.sandbox.runner_channel import RunnerChannel

Make = Callable[..., ChannelSandbox]


pytestmark = pytest.mark.anyio

SECRET = "sk-itemloop-test-" + uuid.uuid4().hex


def exists(path: str | Path) -> bool:
    return os.path.exists(path)


@pytest.fixture
def outside_dir() -> Iterator[Path]:
    """A host directory outside the workspace and outside /tmp (which is private in bwrap)."""
    d = Path("/var/tmp") / f"itemloop-outside-{uuid.uuid4().hex}"
    d.mkdir()
    try:
        yield d
    finally:
        for child in d.iterdir():
            child.unlink()
        d.rmdir()


async def test_write_outside_workspace_fails_and_leaves_host_unchanged(
    confined: ChannelSandbox, outside_dir: Path
) -> None:
    target = outside_dir / "escaped"
    for path in (str(target), "/etc/itemloop-escaped", "/itemloop-escaped"):
        r = await confined.run(script=f"echo pwned > {path}")
        assert r.exit_code != 0, path
    assert not exists(target)
    assert not exists("/etc/itemloop-escaped")
    assert not exists("/itemloop-escaped")
    # The workspace itself is writable, and the write lands on the host.
    r = await confined.run(script="echo inside > ok.txt")
    assert r.exit_code == 0, r.stderr
    assert (confined.workspace / "ok.txt").read_text() == "inside\n"


async def test_tmp_is_private(confined: ChannelSandbox) -> None:
    name = f"itemloop-private-{uuid.uuid4().hex}"
    r = await confined.run(script=f"echo x > /tmp/{name} && cat /tmp/{name}")
    assert r.exit_code == 0, r.stderr
    assert not exists(f"/tmp/{name}")


def _connect_script(kind: str, port: int) -> str:
    if kind == "docker":  # busybox only
        return f"nc -w 3 127.0.0.1 {port} </dev/null"
    return (
        "python3 -c \"import socket,sys; socket.create_connection(('127.0.0.1', "
        f"{port}), timeout=3); print('connected')\""
    )


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("local", marks=pytest.mark.bwrap),
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("docker-python", marks=pytest.mark.docker),
    ],
)
async def test_no_connection_to_host_loopback(kind: str, workspace: Path, make: Make) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        # Control: the same command on the host does connect.
        async with make("host", workspace) as host:
            r = await host.run(script=_connect_script("local", port))
            assert r.exit_code == 0, r.stderr
        async with make(kind, workspace) as sb:
            r = await sb.run(script=_connect_script(kind, port))
            assert r.exit_code != 0
            assert "connected" not in r.stdout


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("local", marks=pytest.mark.bwrap),
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("docker-python", marks=pytest.mark.docker),
        "host",
    ],
)
async def test_runtime_secrets_are_not_visible(
    kind: str, workspace: Path, monkeypatch: pytest.MonkeyPatch, make: Make
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ITEMLOOP_TEST_SECRET", SECRET)
    async with make(kind, workspace) as sb:
        # The command's own environment, and every process it can see. Unconfined,
        # the host sandbox sees every process on the machine, those of anyone else
        # who set OPENAI_API_KEY included: there, its own runner and keeper.
        procs = "/proc/[0-9]*"
        if kind == "host":
            assert isinstance(sb.channel, RunnerChannel)
            procs = f"/proc/{sb.channel.runner_pid} /proc/$PPID"
        script = (
            f"env; for p in {procs}; do tr '\\0' '\\n' < $p/environ 2>/dev/null; done; "
            "cat /proc/1/cmdline 2>/dev/null"
        )
        r = await sb.run(script=script)
        assert r.exit_code == 0, r.stderr
        assert "PATH=" in r.stdout
        assert SECRET not in r.stdout + r.stderr
        assert "OPENAI_API_KEY" not in r.stdout
        # What the user passes explicitly does get through.
        r = await sb.run(script="echo $GIVEN", env={"GIVEN": "yes"})
        assert r.stdout == "yes\n"


async def test_cannot_see_or_signal_host_process(confined: ChannelSandbox) -> None:
    me = os.getpid()
    r = await confined.run(script=f"kill -0 {me}")
    assert r.exit_code != 0
    r = await confined.run(script=f"test -e /proc/{me}/cmdline && cat /proc/{me}/cmdline")
    assert "pytest" not in r.stdout


async def test_host_sandbox_can_signal_host_process_control(workspace: Path, make: Make) -> None:
    # The control for the test above: kill -0 works when nothing is confined.
    async with make("host", workspace) as sb:
        r = await sb.run(script=f"kill -0 {os.getpid()}")
        assert r.exit_code == 0, r.stderr
