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

Limits and a hostile other end. A request is at most `MAX_REQUEST_BYTES`
(the runner's line limit): a larger command is that call's error, never sent.
Whatever comes back is checked before it is believed: a line over
`MAX_MESSAGE_BYTES`, one that is not a JSON object of a known event, or an
answer for a command never sent is a protocol violation: the channel is lost
(`lost` says why), every call in flight gets a `SandboxError`, and nothing of
it reaches a result. A second answer for a command already answered is
ignored (the first stands: a keeper killed right after answering is answered
for again by the runner). When the runner exits while commands run (something
killed it), or does not stop a timed-out command within `KILL_WAIT_S`, the
channel is lost too, but the calls in flight keep their output: each waits
for its pipes' EOF (until its timeout) and returns it with a note, its exit
status unknown. A lost channel refuses further commands with `ChannelLost`;
the sandbox then starts a new one (`channel_sandbox`).
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

from . import _runner
from .base import CommandResult, SandboxError
from .capture import READ_CHUNK, HeadTailBuffer
from .channel import KILL_WAIT_S, ChannelLost

EOF_GRACE_S = 0.25
"""How long a call waits for its pipes' EOF after the main process exited."""
READY_TIMEOUT_S = 30.0
"""How long a starting runner may take to say it is ready."""
CLOSE_WAIT_S = 5.0
"""How long a spawned runner may take to exit once its socket is closed."""
MAX_REQUEST_BYTES = _runner.MAX_LINE
"""The largest request (one JSON line: argv, environment, ...) sent to a runner."""
MAX_MESSAGE_BYTES = 64 * 1024
"""The longest line taken from a runner (its texts are cut to `_runner.MAX_TEXT` characters)."""
MAX_SHOWN = 200
"""Characters of a model-supplied text (a user name) quoted back in an error."""
RUNNER_EXITED = "the sandbox's runner exited"
CLOSED = "the sandbox is closed"


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
    channel.process = proc
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


class _ProtocolError(ValueError):
    """The runner sent something an honest runner never sends."""


@dataclass(slots=True)
class _Pending:
    event: anyio.Event = field(default_factory=anyio.Event)
    message: dict[str, Any] | None = None
    """The runner's answer (`exit` or `error`), or `lost` (with `violation`) when the channel was."""


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
    `process`, when set, is the runner's local process: killed when a lost
    channel is closed (a healthy one exits by itself when its socket closes).
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
        self._last_id = 0
        self._pending: dict[int, _Pending] = {}
        self._outstanding: set[int] = set()  # sent, not answered yet (waited for or not)
        self._lost: str | None = None
        self._lost_event = anyio.Event()
        self.runner_pid: int | None = None
        self.seccomp: str | None = None
        """What the runner's `ready` said of the seccomp filter it was asked to install:
        "installed", or why not (quoted, cut short); None when it said nothing."""
        self.process: anyio.abc.Process | None = None

    @property
    def lost(self) -> str | None:
        """Why this channel can run no more commands; None while it can."""
        return self._lost

    async def handshake(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait for the runner's `ready`, then start reading its messages.

        Raises `ValueError` (a protocol violation), `TimeoutError`, or anyio's
        end-of-stream errors when the runner did not come up.
        """
        with anyio.fail_after(timeout_s):
            msg = await self._receive()
        pid = msg.get("pid")
        if msg.get("ev") != "ready" or type(pid) is not int:
            raise _ProtocolError(f"a first message that is not `ready`: {_shown(repr(msg))}")
        self.runner_pid = pid
        seccomp = msg.get("seccomp")
        if seccomp is not None:
            self.seccomp = _shown(str(seccomp))
        self._tg.start_soon(self._read_loop)

    async def _receive(self) -> dict[str, Any]:
        """The next message: a JSON object on a line of at most `MAX_MESSAGE_BYTES`."""
        try:
            line = await self._reader.receive_until(b"\n", MAX_MESSAGE_BYTES)
        except anyio.DelimiterNotFound:
            line = b"x" * (MAX_MESSAGE_BYTES + 1)
        if len(line) > MAX_MESSAGE_BYTES:  # also one that came whole in one read
            raise _ProtocolError(f"a line over {MAX_MESSAGE_BYTES:,} bytes")
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError):
            raise _ProtocolError("a line that is not JSON") from None
        if not isinstance(msg, dict):
            raise _ProtocolError("a line that is not a JSON object")
        return msg

    def _answer_of(self, msg: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """The request id `msg` answers, or None for a repeated answer; raises on anything else."""
        ev, rid = msg.get("ev"), msg.get("id")
        if ev not in ("exit", "error"):
            raise _ProtocolError(f"an unknown event {_shown(repr(ev))}")
        if type(rid) is not int or not 0 < rid <= self._last_id:
            raise _ProtocolError(f"an answer for a command never sent ({_shown(repr(rid))})")
        if ev == "exit":
            if type(msg.get("code")) is not int or type(msg.get("killed")) is not bool:
                raise _ProtocolError("an exit without a numeric code")
            clean = {"ev": ev, "code": msg["code"], "killed": msg["killed"]}
        else:
            if not isinstance(msg.get("message"), str):
                raise _ProtocolError("an error without a message")
            clean = {"ev": ev, "message": _shown(msg["message"], _runner.MAX_TEXT + 100)}
        if rid not in self._outstanding:
            return None
        self._outstanding.discard(rid)
        return rid, clean

    async def _read_loop(self) -> None:
        try:
            while True:
                answer = self._answer_of(await self._receive())
                if answer is not None:
                    pending = self._pending.get(answer[0])
                    if pending is not None and not pending.event.is_set():
                        pending.message = answer[1]
                        pending.event.set()
        except (
            anyio.EndOfStream,
            anyio.IncompleteRead,
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
            ConnectionError,
        ):
            self._lose(RUNNER_EXITED)
        except _ProtocolError as e:
            self._lose(
                f"the sandbox's runner broke its protocol (it sent {e}); the sandbox session "
                "it ran ends",
                violation=True,
            )
            await self._stream.aclose()  # an honest runner exits at that
        except OSError as e:
            self._lose(f"lost the sandbox's runner ({e.strerror or type(e).__name__})")
        finally:
            self._lose(CLOSED)

    async def wait_lost(self) -> str:
        """Wait until the channel is lost; why it was."""
        await self._lost_event.wait()
        return self._lost or CLOSED

    def _lose(self, why: str, *, violation: bool = False) -> None:
        """Mark the channel lost (the first reason stands); answer every call in flight."""
        if self._lost is None:
            self._lost = why
            self._lost_event.set()
        for pending in self._pending.values():
            if not pending.event.is_set():
                pending.message = {"ev": "lost", "message": self._lost, "violation": violation}
                pending.event.set()

    async def aclose(self) -> None:
        was_lost = self._lost
        self._lose(CLOSED)
        # A runner lost for a reason of its own (it broke the protocol, stopped
        # answering) is killed now, not at the session's end. One merely closed (the
        # read loop was cancelled with the sandbox) is not: seeing its socket close,
        # it kills every process it holds and exits, which a SIGKILL would prevent
        # (on `host` nothing else would kill them).
        lost_itself = was_lost is not None and was_lost != CLOSED
        if lost_itself and self.process is not None and self.process.returncode is None:
            self.process.kill()
        # Shielded: closing runs while the sandbox exits, often in a cancelled scope;
        # a Cancelled raised here would be re-raised by the sandbox's task group and
        # chained to itself by the exit stack (CPython gh-102201), hanging anyio.
        with anyio.CancelScope(shield=True):
            await self._stream.aclose()

    async def _send(self, obj: dict[str, Any], fds: Sequence[int] = ()) -> None:
        await self._send_bytes((json.dumps(obj) + "\n").encode(), fds)

    async def _send_bytes(self, data: bytes, fds: Sequence[int] = ()) -> None:
        async with self._send_lock:
            if self._lost is not None:
                raise ChannelLost(self._lost)
            try:
                if fds:
                    await self._stream.send_fds(data, fds)  # type: ignore[attr-defined]
                else:
                    await self._stream.send(data)
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as e:
                self._lose(f"cannot reach the sandbox's runner ({type(e).__name__})")
                raise ChannelLost(self._lost or RUNNER_EXITED) from None

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
            raise SandboxError(f"cannot run as user {_shown(user)!r}: {self._no_user_switch}")
        if self._lost is not None:
            raise ChannelLost(self._lost)
        rid = next(self._ids)
        request = {
            "op": "run",
            "id": rid,
            "argv": list(argv),
            "cwd": cwd,
            "env": dict(env),
            "user": user,
            "rlimits": dict(rlimits),
        }
        data = (json.dumps(request) + "\n").encode()
        if len(data) > MAX_REQUEST_BYTES:
            raise SandboxError(
                f"the command is too large to send to the sandbox: its argv, environment and "
                f"working directory come to {len(data):,} bytes, over the limit of "
                f"{MAX_REQUEST_BYTES:,} (programs cannot be given that much anyway: the "
                "kernel takes at most 128 KiB in one argument or variable)"
            )
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
                self._last_id = max(self._last_id, rid)
                self._outstanding.add(rid)
                await self._send_bytes(data, write_ends)
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
            msg = pending.message or {}
            # A lost runner cannot say when the output ends: wait for it, within the timeout.
            grace = EOF_GRACE_S
            if msg.get("ev") == "lost" and not msg.get("violation"):
                grace = max(EOF_GRACE_S, started + timeout_s - time.monotonic())
            with anyio.move_on_after(grace):
                for pipe in pipes:
                    await pipe.done.wait()
        finally:
            if not pending.event.is_set() and self._lost is None:
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
        if msg["ev"] == "error":
            raise SandboxError(str(msg["message"]))
        if msg["ev"] == "lost" and msg.get("violation"):
            raise SandboxError(f"{msg['message']}; this command's outcome is unknown")
        out_text, out_dropped, out_chars = _text(bufs[0])
        err_text, err_dropped, err_chars = _text(bufs[1])
        lost = msg["ev"] == "lost"
        killed = not lost and bool(msg.get("killed"))
        result = CommandResult(
            exit_code=None if (lost or timed_out or killed) else int(msg["code"]),
            timed_out=timed_out or killed,
            stdout=out_text,
            stderr=err_text,
            duration_s=duration,
            stdout_dropped=out_dropped,
            stderr_dropped=err_dropped,
            stdout_dropped_chars=out_chars,
            stderr_dropped_chars=err_chars,
        )
        if lost:
            return result.with_note(
                f"itemloop: this command's exit status is unknown: {msg['message']} while it "
                "ran (something killed or stopped it, e.g. `kill -9 -1`); the sandbox is "
                "restarted for the next command, without the processes left running in it"
            )
        return result

    async def _kill(self, rid: int, pending: _Pending) -> None:
        """Ask the runner to kill command `rid`; a runner that does not answer is lost."""
        try:
            await self._send({"op": "kill", "id": rid})
        except ChannelLost:
            return  # `pending` is answered already (lost)
        with anyio.move_on_after(KILL_WAIT_S):
            await pending.event.wait()
        if not pending.event.is_set():
            self._lose(
                f"the sandbox's runner did not stop a timed-out command within {KILL_WAIT_S}s"
            )


def _shown(text: str, limit: int = MAX_SHOWN) -> str:
    """`text`, cut to `limit` characters for an error message."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def _text(buf: HeadTailBuffer | None) -> tuple[str, int, int]:
    if buf is None:
        return "", 0, 0
    return buf.text()
