"""Timeouts, process trees, background processes and session lifetime."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from itemloop.sandbox import SandboxError
from itemloop.sandbox.channel_sandbox import ChannelSandbox

pytestmark = pytest.mark.anyio

Make = Callable[..., ChannelSandbox]
Procs = Callable[[str], list[str]]

KINDS = [
    pytest.param("local", marks=pytest.mark.bwrap),
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("docker-python", marks=pytest.mark.docker),
    "host",
]


def _unique_sleep() -> tuple[str, str]:
    """Two sleep durations no other process on this machine is likely to use."""
    n = 400000 + uuid.uuid4().int % 500000
    return str(n), str(n + 1)


async def test_basic_run(any_sandbox: ChannelSandbox) -> None:
    r = await any_sandbox.run(script="echo out; echo err >&2; exit 3")
    assert (r.exit_code, r.stdout, r.stderr, r.timed_out) == (3, "out\n", "err\n", False)
    r = await any_sandbox.run(["sh", "-c", 'printf "%s|" "$@"', "sh", "a b", "c"])
    assert r.stdout == "a b|c|"
    r = await any_sandbox.run(["no-such-command-itemloop"])
    assert r.exit_code == 127


async def test_cwd_and_env(any_sandbox: ChannelSandbox) -> None:
    await any_sandbox.write_file("sub/dir/f.txt", b"hello")
    r = await any_sandbox.run(script="cat f.txt; echo; echo $X", cwd="sub/dir", env={"X": "1"})
    assert r.stdout == "hello\n1\n"
    with pytest.raises(SandboxError):
        await any_sandbox.run(["true"], cwd="../..")
    with pytest.raises(SandboxError):
        await any_sandbox.run(["true"], cwd="missing")


@pytest.mark.parametrize("kind", KINDS)
async def test_timeout_kills_whole_tree_including_detached_daemons(
    kind: str, workspace: Path, make: Make, host_procs: Procs
) -> None:
    a, b = _unique_sleep()
    # A background job, and a daemon that double-forks and calls setsid again.
    script = f"sleep {a} & (setsid sh -c 'sleep {b} & exit 0' &) ; sleep {a}"
    async with make(kind, workspace) as sb:
        r = await sb.run(script=script, timeout_s=1.0)
        assert r.timed_out and r.exit_code is None
        assert host_procs(f"sleep {a}") == []
        assert host_procs(f"sleep {b}") == []
        # The sandbox is still usable afterwards.
        r = await sb.run(script="echo alive")
        assert r.stdout == "alive\n"


@pytest.mark.parametrize("kind", KINDS)
async def test_background_process_outlives_its_command_until_session_closes(
    kind: str, workspace: Path, make: Make, host_procs: Procs
) -> None:
    a, _ = _unique_sleep()
    async with make(kind, workspace) as sb:
        # Output not redirected: the call must still return (after a short grace).
        r = await sb.run(script=f"sleep {a} & echo $! > bg.pid; echo started")
        assert r.exit_code == 0 and r.stdout == "started\n"
        r = await sb.run(script="kill -0 $(cat bg.pid) && echo running")
        assert r.stdout == "running\n"
        assert host_procs(f"sleep {a}") != []
    # Closing the session kills everything it started.
    assert host_procs(f"sleep {a}") == []


SERVER = """
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
if os.fork():
    os._exit(0)
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
while True:
    c, _ = s.accept()
    c.sendall(b"hello from the server\\n")
    c.close()
"""

CLIENT = """
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
print(c.recv(100).decode(), end="")
"""


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("local", marks=pytest.mark.bwrap),
        pytest.param("docker-python", marks=pytest.mark.docker),
        "host",
    ],
)
async def test_server_started_by_one_command_serves_the_next(
    kind: str, workspace: Path, make: Make
) -> None:
    (workspace / "server.py").write_text(SERVER)
    (workspace / "client.py").write_text(CLIENT)
    async with make(kind, workspace) as sb:
        r = await sb.run(["python3", "server.py"])
        assert r.exit_code == 0, r.stderr
        port = r.stdout.strip()
        r = await sb.run(["python3", "client.py", port])
        assert r.stdout == "hello from the server\n", r.stderr
        r = await sb.run(["python3", "client.py", port])
        assert r.stdout == "hello from the server\n", r.stderr


@pytest.mark.docker
async def test_busybox_server_serves_the_next_command(workspace: Path, make: Make) -> None:
    (workspace / "www").mkdir()
    (workspace / "www" / "index.html").write_text("hello from httpd\n")
    async with make("docker", workspace) as sb:
        # busybox httpd binds its port before it daemonizes.
        r = await sb.run(script="httpd -p 127.0.0.1:18080 -h /workspace/www")
        assert r.exit_code == 0, r.stderr
        r = await sb.run(
            script="printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 18080"
        )
        assert "hello from httpd" in r.stdout, r.stderr


async def test_large_output_bounded(any_sandbox: ChannelSandbox) -> None:
    r = await any_sandbox.run(
        script="head -c 50000000 /dev/zero | tr '\\0' a; echo END", output_limit=2000
    )
    assert r.exit_code == 0
    assert r.stdout.startswith("a" * 900)
    assert r.stdout.endswith("aEND\n")
    assert r.stdout_dropped == 50000004 - 2000
    assert len(r.stdout) < 2100


async def test_invalid_utf8_is_replaced(any_sandbox: ChannelSandbox) -> None:
    r = await any_sandbox.run(script="printf '\\377\\376 ok \\342\\202'")
    assert r.stdout == "\ufffd\ufffd ok \ufffd"
