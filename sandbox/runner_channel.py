"""`RunnerChannel`: commands through the in-sandbox runner, over one Unix socket.

The runner (`_runner.py`, see its docstring for the protocol) runs inside the
sandbox for the whole session. Per command, the channel creates a pipe pair,
hands the write ends to the runner with the request, and reads the other ends
itself through bounded `HeadTailBuffer`s: output never passes through the
runner. A timeout sends `kill`; the runner's keeper kills the command's whole
process tree.

Two ways to get a runner: `spawn_runner` starts it as a local process (the
host's Python, directly or under bubblewrap) over a socketpair; the docker
sandbox starts it in its container, accepts its connection and wraps that in
a `RunnerChannel` itself.

Output of background children. When a command's main process has exited, its
pipes may still be held open by something it left running in the background
(`server &`). The call does not wait for their EOF beyond `EOF_GRACE_S`: it
returns what it has, and the pipes are drained and discarded by a task of the
sandbox until the holder exits or the session closes. Draining (rather than
closing our end) keeps a background server alive: closing would make its next
write fail with SIGPIPE.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from .base import CommandResult, SandboxError
from .capture import READ_CHUNK, HeadTailBuffer
from .channel import KILL_WAIT_S

EOF_GRACE_S = 0.25
"""How long a call waits for its pipes' EOF after the main process exited."""
READY_TIMEOUT_S = 30.0
"""How long a starting runner may take to say it is ready."""
CLOSE_WAIT_S = 5.0
"""How long a spawned runner may take to exit once its socket is closed."""


def runner_source() -> str:
    """The source of the in-sandbox runner script."""
    return resources.files(__package__).joinpath("_runner.py").read_text(encoding="utf-8")


def runner_python() -> str:
    """The host's Python for the runner (the real interpreter, not a venv link)."""
    return os.path.realpath(sys.executable)


def runner_path() -> str:
    """Where `_runner.py` is on the host."""
    return os.path.realpath(str(resources.files(__package__).joinpath("_runner.py")))


def host_runner_argv(runner_fd: int, *, hidden: Sequence[str] = ()) -> list[str]:
    """Run the host's Python on the runner script: by path when a sandbox that
    shows the host filesystem can see it (not under a `hidden` directory),
    else with its source on the command line."""
    path = runner_path()
    head = [runner_python(), "-I", "-S"]
    if os.path.isfile(path) and not any(
        path == h or path.startswith(h.rstrip("/") + "/") for h in hidden
    ):
        return [*head, path, "--fd", str(runner_fd)]
    return [*head, "-c", runner_source(), "--fd", str(runner_fd)]


def runner_env(path: str) -> dict[str, str]:
    """The environment of a spawned runner (never the runtime's own)."""
    return {"PATH": path, "LANG": "C.UTF-8"}


async def spawn_runner(
    argv_for: Callable[[int], Sequence[str]],
    *,
    pass_fds: Sequence[int] = (),
    env: Mapping[str, str],
    cwd: str,
    unavailable: Callable[[str], SandboxError],
    tg: anyio.abc.TaskGroup,
    stack: AsyncExitStack,
) -> RunnerChannel:
    """Start a runner as a local process and connect to it.

    `argv_for(fd)` is the argv that starts the runner with its socket on `fd`;
    `pass_fds` are other descriptors it needs (the caller still owns and
    closes them). The process is waited for, then killed, when `stack`
    closes; its stderr (kept, bounded) explains a runner that did not start,
    through `unavailable(detail)`.
    """
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        argv = list(argv_for(child.fileno()))
        try:
            proc = await anyio.open_process(
                argv,
                stdin=-3,  # subprocess.DEVNULL
                stdout=-3,
                stderr=-1,  # subprocess.PIPE
                pass_fds=(child.fileno(), *pass_fds),
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as e:
            raise unavailable(f"cannot execute {argv[0]}: {e.strerror}") from None
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    errors = HeadTailBuffer(8192)
    stack.push_async_callback(_stop_process, proc)
    assert proc.stderr is not None
    tg.start_soon(_drain_stream, proc.stderr, errors)
    channel = RunnerChannel(await anyio.abc.UNIXSocketStream.from_socket(parent), tg)
    try:
        await channel.handshake()
    except (anyio.EndOfStream, anyio.IncompleteRead, TimeoutError, ValueError, OSError):
        await channel.aclose()
        with anyio.move_on_after(CLOSE_WAIT_S):
            await proc.wait()
        detail = errors.text()[0].strip() or f"exit status {proc.returncode}"
        raise unavailable(detail) from None
    except BaseException:
        await channel.aclose()
        raise
    return channel


async def _drain_stream(stream: anyio.abc.ByteReceiveStream, sink: HeadTailBuffer) -> None:
    try:
        async for chunk in stream:
            sink.feed(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass


async def _stop_process(proc: anyio.abc.Process) -> None:
    """Wait for the spawned runner to exit on its own, then kill it."""
    with anyio.CancelScope(shield=True):
        with anyio.move_on_after(CLOSE_WAIT_S):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
        await proc.aclose()


@dataclass(slots=True)
class _Pending:
    event: anyio.Event = field(default_factory=anyio.Event)
    message: dict[str, Any] | None = None


@dataclass(slots=True)
class _Pipe:
    fd: int
    buf: HeadTailBuffer | None
    done: anyio.Event = field(default_factory=anyio.Event)


class RunnerChannel:
    """One live runner: send commands, collect their outcomes.

    `tg` runs the channel's reader and the pipes' pumps; it must live as long
    as the channel. `no_user_switch`, when set, says why this runner cannot
    run a command as another user: such a command is refused with it.
    """

    def __init__(
        self,
        stream: anyio.abc.SocketStream,
        tg: anyio.abc.TaskGroup,
        *,
        no_user_switch: str | None = None,
    ) -> None:
        self._stream = stream
        self._reader = BufferedByteReceiveStream(stream)
        self._tg = tg
        self._no_user_switch = no_user_switch
        self._send_lock = anyio.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._dead: str | None = None
        self.runner_pid: int | None = None

    async def handshake(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait for the runner's `ready`, then start reading its messages."""
        with anyio.fail_after(timeout_s):
            line = await self._reader.receive_until(b"\n", 1 << 20)
        msg = json.loads(line)
        if msg.get("ev") != "ready":
            raise SandboxError(f"unexpected first message from the sandbox runner: {msg!r}")
        self.runner_pid = int(msg["pid"])
        self._tg.start_soon(self._read_loop)

    async def _read_loop(self) -> None:
        try:
            while True:
                line = await self._reader.receive_until(b"\n", 1 << 20)
                msg = json.loads(line)
                pending = self._pending.get(int(msg.get("id", -1)))
                if pending is not None and not pending.event.is_set():
                    pending.message = msg
                    pending.event.set()
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError):
            self._dead = "the sandbox's runner has exited"
        except (OSError, ValueError, anyio.BrokenResourceError) as e:
            self._dead = f"lost the sandbox's runner: {e}"
        finally:
            if self._dead is None:
                self._dead = "the sandbox is closed"
            for pending in self._pending.values():
                if not pending.event.is_set():
                    pending.message = {"ev": "error", "message": self._dead}
                    pending.event.set()

    async def aclose(self) -> None:
        # Shielded: closing runs while the sandbox exits, often in a cancelled scope;
        # a Cancelled raised here would be re-raised by the sandbox's task group and
        # chained to itself by the exit stack (CPython gh-102201), hanging anyio.
        with anyio.CancelScope(shield=True):
            await self._stream.aclose()

    async def _send(self, obj: dict[str, Any], fds: Sequence[int] = ()) -> None:
        data = (json.dumps(obj) + "\n").encode()
        async with self._send_lock:
            try:
                if fds:
                    await self._stream.send_fds(data, fds)  # type: ignore[attr-defined]
                else:
                    await self._stream.send(data)
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as e:
                raise SandboxError(f"cannot reach the sandbox's runner: {e}") from None

    async def _pump(self, pipe: _Pipe) -> None:
        try:
            while True:
                try:
                    data = os.read(pipe.fd, READ_CHUNK)
                except BlockingIOError:
                    await anyio.wait_readable(pipe.fd)
                    continue
                except InterruptedError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                if pipe.buf is not None:
                    pipe.buf.feed(data)
        finally:
            os.close(pipe.fd)
            pipe.done.set()

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        user: str | None,
        rlimits: Mapping[str, int],
        timeout_s: float,
        output_limit: int,
    ) -> CommandResult:
        if user and self._no_user_switch is not None:
            raise SandboxError(f"cannot run as user {user!r}: {self._no_user_switch}")
        if self._dead is not None:
            raise SandboxError(self._dead)
        rid = next(self._ids)
        pending = _Pending()
        self._pending[rid] = pending
        pipes: list[_Pipe] = []
        started = time.monotonic()
        timed_out = False
        pumps_started = False
        try:
            write_ends: list[int] = []
            try:
                for _ in range(2):
                    r, w = os.pipe()
                    os.set_blocking(r, False)
                    write_ends.append(w)
                    pipes.append(_Pipe(r, HeadTailBuffer(output_limit)))
                request = {
                    "op": "run",
                    "id": rid,
                    "argv": list(argv),
                    "cwd": cwd,
                    "env": dict(env),
                    "user": user,
                    "rlimits": dict(rlimits),
                }
                await self._send(request, write_ends)
            finally:
                for w in write_ends:
                    os.close(w)
            for pipe in pipes:
                self._tg.start_soon(self._pump, pipe)
            pumps_started = True
            with anyio.move_on_after(timeout_s):
                await pending.event.wait()
            if not pending.event.is_set():
                timed_out = True
                await self._kill(rid, pending)
            with anyio.move_on_after(EOF_GRACE_S):
                for pipe in pipes:
                    await pipe.done.wait()
        finally:
            if not pending.event.is_set() and self._dead is None:
                with anyio.CancelScope(shield=True):
                    try:
                        await self._kill(rid, pending)
                    except SandboxError:
                        pass
            self._pending.pop(rid, None)
            bufs = [p.buf for p in pipes]
            for pipe in pipes:
                pipe.buf = None  # a pump still running from here on only drains
                if not pumps_started:
                    os.close(pipe.fd)
        duration = time.monotonic() - started
        msg = pending.message or {"ev": "error", "message": "no outcome"}
        if msg.get("ev") == "error":
            raise SandboxError(str(msg.get("message")))
        out_text, out_dropped, out_chars = _text(bufs[0])
        err_text, err_dropped, err_chars = _text(bufs[1])
        killed = bool(msg.get("killed"))
        return CommandResult(
            exit_code=None if (timed_out or killed) else int(msg["code"]),
            timed_out=timed_out or killed,
            stdout=out_text,
            stderr=err_text,
            duration_s=duration,
            stdout_dropped=out_dropped,
            stderr_dropped=err_dropped,
            stdout_dropped_chars=out_chars,
            stderr_dropped_chars=err_chars,
        )

    async def _kill(self, rid: int, pending: _Pending) -> None:
        await self._send({"op": "kill", "id": rid})
        with anyio.move_on_after(KILL_WAIT_S):
            await pending.event.wait()
        if not pending.event.is_set():
            raise SandboxError(
                f"the sandbox did not stop a timed-out command within {KILL_WAIT_S}s"
            )


def _text(buf: HeadTailBuffer | None) -> tuple[str, int, int]:
    if buf is None:
        return "", 0, 0
    return buf.text()
