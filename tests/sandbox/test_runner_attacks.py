"""Attacks on the sandbox's runner from the commands it runs, tried for real (issue 10, items 1-4).

A command shares its uid with the runner and its keepers. These tests run,
inside the `local` and `docker` sandboxes, what a hostile command would try:
reach the runner's memory, file descriptors or control socket (and, with a
stolen socket, forge results or crash the runtime), make a request or a reply
too large for the protocol, make a spawn fail, and kill or signal every
process it can. Each shows the attack no longer works, or is detected and
reported with nothing lost. The runtime's side of the socket is also fed
bytes no honest runner sends (`test_runtime_survives_any_bytes_from_the_runner`).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from itemloop.sandbox import SandboxError, SandboxOptions
from itemloop.sandbox.channel import ChannelLost
from itemloop.sandbox.channel_sandbox import ChannelSandbox
from itemloop.sandbox.runner_channel import MAX_MESSAGE_BYTES, MAX_REQUEST_BYTES, RunnerChannel

pytestmark = pytest.mark.anyio

Make = Callable[..., ChannelSandbox]

LOCAL = pytest.param("local", marks=pytest.mark.bwrap)
DOCKER_RUNNER = pytest.param("docker-python", marks=pytest.mark.docker)
DOCKER_EXEC = pytest.param("docker", marks=pytest.mark.docker)

# Shared by the probes below: find the runner and its keepers, steal what can be stolen.
ATTACK_LIB = r"""
import ctypes, json, os, stat, sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {
    "x86_64": dict(ptrace=101, process_vm_readv=310, pidfd_open=434, pidfd_getfd=438),
    "aarch64": dict(ptrace=117, process_vm_readv=270, pidfd_open=434, pidfd_getfd=438),
}[os.uname().machine]
EPERM, EFAULT = 1, 14


def sc(name, *args):
    r = libc.syscall(NR[name], *[ctypes.c_long(a) for a in args])
    return r if r >= 0 else -ctypes.get_errno()


def runner_pids():
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"--fd" in argv or b"--connect" in argv:
            found.append(int(p))
    return found


def steal_sockets(pid):
    got = []
    pidfd = sc("pidfd_open", pid, 0)
    if pidfd < 0:
        return got
    for fd in range(64):
        new = sc("pidfd_getfd", pidfd, fd, 0)
        if new >= 0:
            if stat.S_ISSOCK(os.fstat(new).st_mode):
                got.append(new)
            else:
                os.close(new)
    os.close(pidfd)
    return got


def reach(pid):
    # Every way a same-uid process reaches another's memory, descriptors or socket.
    reached = []
    if steal_sockets(pid):
        reached.append("pidfd_getfd")
    try:
        with open("/proc/%d/mem" % pid, "r+b", buffering=0):
            reached.append("/proc/PID/mem")
    except OSError:
        pass
    try:
        fds = os.listdir("/proc/%d/fd" % pid)  # the numbers alone: readable by its owner
    except OSError:
        fds = []
    for fd in fds:
        try:
            os.readlink("/proc/%d/fd/%s" % (pid, fd))
            reached.append("/proc/PID/fd/N")
            break
        except OSError:
            pass
    if sc("ptrace", 0x4206, pid, 0, 0) == 0:  # PTRACE_SEIZE
        reached.append("ptrace")
    buf = ctypes.create_string_buffer(8)
    local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)
    remote = (ctypes.c_void_p * 2)(4096, 8)
    r = sc("process_vm_readv", pid, ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0)
    if r != -EPERM:  # EFAULT: allowed in, the address was just wrong
        reached.append("process_vm_readv")
    return reached
"""

PROBE = (
    ATTACK_LIB
    + r"""
targets = runner_pids()
print(json.dumps({"targets": len(targets), "reached": {p: reach(p) for p in targets}}))
"""
)

# Steals every socket it can, then leaves a forger behind that, once the next
# command has started, sends that command's (and any other) result over them.
FORGE = (
    ATTACK_LIB
    + r"""
stolen = [s for p in runner_pids() for s in steal_sockets(p)]
print(len(stolen))
sys.stdout.flush()
if os.fork() == 0:
    os.setsid()
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    import time
    while stolen and not os.path.exists("started"):
        time.sleep(0.01)
    for s in stolen:
        for i in range(1, 50):
            try:
                os.write(s, b'{"ev": "exit", "id": %d, "code": 0, "killed": false}\n' % i)
            except OSError:
                pass
    open("released", "w").close()
    os._exit(0)
"""
)

# Steals every socket it can and writes 2 MiB without a newline on each.
FLOOD = (
    ATTACK_LIB
    + r"""
stolen = [s for p in runner_pids() for s in steal_sockets(p)]
for s in stolen:
    try:
        os.write(s, b"x" * (2 << 20))
    except OSError:
        pass
print(len(stolen))
"""
)

GENUINE = "touch started; while [ ! -e released ]; do sleep 0.05; done; echo genuine; exit 7"


async def run_python(sb: ChannelSandbox, name: str, source: str) -> Any:
    await sb.write_file(name, source.encode())
    return await sb.run(["python3", name], timeout_s=60)


# --- item 1: the runner's memory, descriptors and socket ---------------------


@pytest.mark.parametrize(
    ("kind", "network"),
    [
        pytest.param("local", False, marks=pytest.mark.bwrap),
        pytest.param("local", True, marks=pytest.mark.bwrap),
        pytest.param("docker-python", False, marks=pytest.mark.docker),
    ],
)
async def test_commands_cannot_reach_the_runner(
    kind: str, network: bool, workspace: Path, make: Make
) -> None:
    async with make(kind, workspace, SandboxOptions(network=network)) as sb:
        r = await run_python(sb, "probe.py", PROBE)
        report = json.loads(r.stdout)
        assert report["targets"] >= 2, r  # the runner and at least one keeper were found
        assert all(found == [] for found in report["reached"].values()), report


@pytest.mark.parametrize("kind", [LOCAL])
async def test_a_stolen_socket_cannot_forge_a_later_result(
    kind: str, workspace: Path, make: Make
) -> None:
    # Only `local` ever let pidfd_getfd through; docker's seccomp profile refuses it.
    async with make(kind, workspace) as sb:
        r = await run_python(sb, "forge.py", FORGE)
        assert r.exit_code == 0, r
        r = await sb.run(script=GENUINE, timeout_s=60)
        assert (r.exit_code, r.stdout) == (7, "genuine\n"), r


@pytest.mark.parametrize("kind", [LOCAL])
async def test_a_stolen_socket_cannot_crash_the_runtime(
    kind: str, workspace: Path, make: Make
) -> None:
    async with make(kind, workspace) as sb:
        r = await run_python(sb, "flood.py", FLOOD)
        assert r.exit_code == 0, r
        r = await sb.run(script="echo still here")
        assert r.stdout == "still here\n", r


class FakeRunner:
    """The runner's end of a `RunnerChannel`, played by the test: it sends what it is told."""

    def __init__(self, stream: anyio.abc.UNIXSocketStream) -> None:
        self.stream = stream
        self.buf = b""

    async def request(self) -> dict[str, Any]:
        while b"\n" not in self.buf:
            data, fds = await self.stream.receive_fds(1 << 20, 8)
            for fd in fds:
                os.close(fd)
            assert data, "the channel closed its socket"
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        result: dict[str, Any] = json.loads(line)
        return result

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)


async def channel_and_runner(tg: anyio.abc.TaskGroup) -> tuple[RunnerChannel, FakeRunner]:
    """A `RunnerChannel` past its handshake, and the fake runner at its other end."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    channel = RunnerChannel(await anyio.abc.UNIXSocketStream.from_socket(ours), tg)
    runner = FakeRunner(await anyio.abc.UNIXSocketStream.from_socket(theirs))
    await runner.send(b'{"ev": "ready", "pid": 42}\n')
    await channel.handshake()
    return channel, runner


def exit_event(rid: object, code: object = 0) -> bytes:
    return json.dumps({"ev": "exit", "id": rid, "code": code, "killed": False}).encode() + b"\n"


BAD_MESSAGES: dict[str, Callable[[int], bytes]] = {
    "over the size limit": lambda rid: b"x" * (MAX_MESSAGE_BYTES + 2),
    "over the size limit, then a newline": lambda rid: b"x" * (3 * MAX_MESSAGE_BYTES) + b"\n",
    "not JSON": lambda rid: b"{not json\n",
    "not UTF-8": lambda rid: b'{"ev": "exit", "id": 1, "x": "\xff"}\n',
    "not an object": lambda rid: b"[1, 2]\n",
    "an unknown event": lambda rid: b'{"ev": "surprise", "id": %d}\n' % rid,
    "a result for a command never sent": lambda rid: exit_event(rid + 1),
    "an exit code that is not a number": lambda rid: exit_event(rid, "0"),
    "an id that is not a number": lambda rid: exit_event(str(rid)),
    "a second ready": lambda rid: b'{"ev": "ready", "pid": 1}\n',
}


@pytest.mark.parametrize("bad", BAD_MESSAGES, ids=list(BAD_MESSAGES))
async def test_runtime_survives_any_bytes_from_the_runner(bad: str) -> None:
    async with anyio.create_task_group() as tg:
        channel, runner = await channel_and_runner(tg)

        async def attack() -> None:
            req = await runner.request()
            await runner.send(BAD_MESSAGES[bad](int(req["id"])))

        tg.start_soon(attack)
        with pytest.raises(SandboxError) as info:
            await channel.run(
                ["true"], cwd="/", env={}, user=None, rlimits={}, timeout_s=60, output_limit=100
            )
        message = str(info.value)
        assert "runner" in message and "protocol" in message and len(message) < 500, message
        assert channel.lost is not None
        with pytest.raises(ChannelLost):
            await channel.run(
                ["true"], cwd="/", env={}, user=None, rlimits={}, timeout_s=60, output_limit=100
            )
        await channel.aclose()
        await runner.stream.aclose()
        tg.cancel_scope.cancel()


async def test_a_late_or_repeated_answer_is_not_a_protocol_error() -> None:
    # A command's answer may come after its caller stopped waiting (its keeper was
    # killed after answering, or the kill came late): the first answer stands.
    async with anyio.create_task_group() as tg:
        channel, runner = await channel_and_runner(tg)

        async def answer(code: int, times: int) -> None:
            req = await runner.request()
            await runner.send(exit_event(int(req["id"]), code) * times)

        for code in (3, 4):
            tg.start_soon(answer, code, 2)
            r = await channel.run(
                ["true"], cwd="/", env={}, user=None, rlimits={}, timeout_s=60, output_limit=9
            )
            assert r.exit_code == code
        assert channel.lost is None
        await channel.aclose()
        await runner.stream.aclose()
        tg.cancel_scope.cancel()


# --- item 2: requests and replies of any size ---------------------------------


@pytest.mark.parametrize("kind", [LOCAL, DOCKER_RUNNER, DOCKER_EXEC])
async def test_a_huge_user_is_that_calls_error(kind: str, workspace: Path, make: Make) -> None:
    async with make(kind, workspace) as sb:
        try:
            r = await sb.run(["true"], user="u" * (2 << 20))
        except SandboxError as e:
            assert "cannot run as user" in str(e) and len(str(e)) < 1000, str(e)[:2000]
        else:  # the exec path: Docker's own answer
            assert r.exit_code != 0 and "user" in r.stdout + r.stderr
        r = await sb.run(script="echo still here")
        assert r.stdout == "still here\n", r


@pytest.mark.parametrize("kind", [LOCAL, DOCKER_RUNNER, DOCKER_EXEC])
async def test_a_huge_request_is_that_calls_error(kind: str, workspace: Path, make: Make) -> None:
    big = "x" * 17_000_000
    async with make(kind, workspace) as sb:
        for args in ({"env": {"BIG": big}}, {"script": "echo " + big}):
            argv = None if "script" in args else ["true"]
            try:
                r = await sb.run(argv, **args)  # type: ignore[arg-type]
            except SandboxError as e:
                assert "too large" in str(e) and len(str(e)) < 1000, str(e)[:2000]
            else:  # the exec path: Docker's answer
                assert kind == "docker" and r.exit_code == 126, r
            r = await sb.run(script="echo still here")
            assert r.stdout == "still here\n", r
        if kind != "docker":
            # Under the protocol's limit, over the kernel's: the kernel's own error.
            r = await sb.run(["true"], env={"BIG": "x" * (MAX_REQUEST_BYTES // 2)})
            assert r.exit_code == 126 and "too long" in r.stderr.lower(), r


async def test_the_runner_never_sends_a_line_the_runtime_refuses(
    workspace: Path, make: Make
) -> None:
    # Every text the runner echoes back (user, working directory, program name) is bounded.
    async with make("host", workspace) as sb:
        with pytest.raises(SandboxError) as info:
            await sb.run(["true"], user="\u00e9" * (MAX_MESSAGE_BYTES * 2))
        assert len(str(info.value)) < 1000
        r = await sb.run(["p" * 200_000])
        assert r.exit_code in (126, 127)
        r = await sb.run(script="echo still here")
        assert r.stdout == "still here\n", r


# --- item 3: a spawn that fails ----------------------------------------------


@pytest.mark.parametrize("kind", [LOCAL, DOCKER_RUNNER, "host"])
async def test_a_spawn_failure_is_that_calls_error_at_once(
    kind: str, workspace: Path, make: Make
) -> None:
    # A long timeout: the old failure mode answered only after it (plus 20 s), so
    # the suite's own per-test timeout fails it.
    async with make(kind, workspace) as sb:
        for args in ({"argv": ["echo", "a\ud800b"]}, {"argv": ["true"], "env": {"X": "\ud800"}}):
            with pytest.raises(SandboxError, match="surrogate"):
                await sb.run(timeout_s=3600, **args)  # type: ignore[arg-type]
            r = await sb.run(script="echo still here")
            assert r.stdout == "still here\n", r


# --- item 4: a command that kills or stops every process it can ----------------


@pytest.mark.parametrize("kind", [LOCAL, DOCKER_RUNNER, DOCKER_EXEC])
async def test_kill_every_process_loses_no_output(kind: str, workspace: Path, make: Make) -> None:
    async with make(kind, workspace) as sb:
        r = await sb.run(script="sleep 1000 & echo before; kill -9 -1; echo after; exit 3")
        assert r.stdout.startswith("before\n"), r
        if kind == "local":  # the runner is PID 1 of the sandbox: kill -1 does not reach it
            assert (r.exit_code, r.stdout) == (3, "before\nafter\n"), r
        elif kind == "docker-python":  # the runner went down with the rest: said so
            assert r.exit_code in (3, None), r
            assert "kill" in r.stderr and "restart" in r.stderr, r
        r = await sb.run(script="echo again; exit 5")
        assert (r.exit_code, r.stdout) == (5, "again\n"), r
        if kind == "local":
            assert r.stderr == "", r
        else:  # docker restarted its container: the model is told what was lost
            assert "restarted" in r.stderr and "lost" in r.stderr, r
        r = await sb.run(script="echo and again")
        assert (r.exit_code, r.stdout, r.stderr) == (0, "and again\n", ""), r


@pytest.mark.parametrize("kind", [LOCAL, DOCKER_RUNNER, "host"])
async def test_a_command_that_kills_its_keeper_keeps_its_result(
    kind: str, workspace: Path, make: Make
) -> None:
    async with make(kind, workspace) as sb:
        r = await sb.run(script="echo before; kill -9 $PPID; echo after; exit 3")
        assert (r.exit_code, r.stdout) == (3, "before\nafter\n"), r
        r = await sb.run(script="echo again")
        assert r.stdout == "again\n", r


@pytest.mark.parametrize("kind", [LOCAL, DOCKER_RUNNER, "host"])
async def test_a_stray_kill_signal_does_not_end_a_command(
    kind: str, workspace: Path, make: Make
) -> None:
    # SIGUSR1 is how the runner tells a keeper to kill its command; from anyone else it
    # must not turn a command into a "timed out" one.
    async with make(kind, workspace) as sb:
        r = await sb.run(script="kill -USR1 $PPID; echo still running; exit 4", timeout_s=60)
        assert (r.exit_code, r.timed_out, r.stdout) == (4, False, "still running\n"), r
        r = await sb.run(script="sleep 1000", timeout_s=0.5)  # a real kill still works
        assert r.timed_out, r


@pytest.mark.parametrize("kind", [LOCAL, DOCKER_RUNNER])
async def test_stop_every_process_loses_no_output(kind: str, workspace: Path, make: Make) -> None:
    async with make(kind, workspace) as sb:
        r = await sb.run(script="echo before; kill -STOP -1; echo after; exit 2", timeout_s=1)
        # Its keeper was stopped, so no one said it had ended: a timeout, its output whole.
        assert (r.timed_out, r.stdout) == (True, "before\nafter\n"), r
        if kind == "docker-python":  # the runner was stopped too, and did not answer the kill
            assert "restart" in r.stderr, r
        r = await sb.run(script="echo again", timeout_s=60)  # its keeper was stopped too
        assert (r.timed_out, r.stdout) == (False, "again\n"), r
        assert ("restarted" in r.stderr) == (kind == "docker-python"), r


@pytest.mark.bwrap
async def test_local_sandbox_restarts_when_its_runner_is_gone(workspace: Path, make: Make) -> None:
    async with make("local", workspace) as sb:
        r = await sb.run(script="echo x > /tmp/mark; sleep 1000 >/dev/null 2>&1 &")
        channel = sb.channel
        assert isinstance(channel, RunnerChannel) and channel.process is not None
        channel.process.kill()  # from outside: bubblewrap, and the whole sandbox with it
        assert "exited" in await channel.wait_lost()
        r = await sb.run(script="cat /tmp/mark; echo again")
        assert r.stdout == "again\n" and "No such file" in r.stderr, r
        assert "restarted" in r.stderr and "exited" in r.stderr, r
        r = await sb.run(script="echo and again")
        assert (r.stdout, r.stderr) == ("and again\n", ""), r


@pytest.mark.parametrize("kind", [LOCAL])
async def test_a_restarted_runner_is_closed_not_killed(
    kind: str, workspace: Path, make: Make
) -> None:
    """At close, a runner started by a restart is told to stop like the first one, and
    exits on its own; it used to be waited for while its channel was still open, then
    SIGKILLed (CLOSE_WAIT_S later) at the end of every session that had restarted."""
    async with make(kind, workspace) as sb:
        first = sb.channel.process  # type: ignore[union-attr]
        first.kill()  # the runner lost, as if the OOM killer had taken it
        await first.wait()
        await sb.run(["true"])  # finds it lost (its runner may still be dying: unknown)
        r = await sb.run(script="echo again")
        assert r.stdout == "again\n", r
        second = sb.channel.process  # type: ignore[union-attr]
        assert second is not first and second.returncode is None
    assert second.returncode == 0, second.returncode
