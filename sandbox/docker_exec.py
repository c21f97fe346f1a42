"""`DockerExecChannel`: one `docker exec` per command, in an image with `/bin/sh`.

The docker sandbox uses this channel when its runner cannot start (see
`DockerSandbox`: the fast path turned off, an engine of another architecture,
no runner bundle, a runner that did not come up). Each command is one exec
through the Docker API (tens of milliseconds), started by a `/bin/sh` wrapper
that records its PID in a file of a directory bind-mounted into the container
(`PIDS_DIR`). Output streams through Docker's multiplexed stream into bounded
buffers.

Timeouts and cancellation. Commands run one at a time (a lock), so on
timeout every process of the container whose PID is at least the recorded one
is the command or something it started, however it detached: they are all
killed, as the command's user, up to PID wrap-around. A cancelled call (Ctrl-C,
a stopped run) kills the same way, at once, before it waits for the output to
end: the stream's reader is a thread that cannot be interrupted otherwise.
The kill and the wrapper each write a file before they read the other's (a
stop file, the PID file), so a kill that comes before the wrapper recorded its
PID keeps the command from starting. Docker itself closes the stream about 2 s
after the command exits when a background child still holds its output.

What it does not do: rlimits per command (the container's memory, CPU and
PIDs limits apply instead), or create and remove the container (the docker
sandbox does).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import struct
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import docker.errors  # type: ignore[import-untyped,unused-ignore]

from .base import CommandResult, SandboxError
from .capture import HeadTailBuffer
from .channel import KILL_WAIT_S
from .command import STANDARD_PATH

PIDS_DIR = "/run/itemloop-pids"
"""Where the container sees the directory the wrapper records PIDs in."""

# Kills, as the command's user, every process whose PID is >= the command's
# own (recorded by the wrapper), except itself; /bin/sh built-ins only. It first
# leaves "$1.stop", which a wrapper that has not recorded its PID yet finds after
# recording it, and then does not start the command.
KILL_SCRIPT = r"""
: > "$1.stop"
read -r w < "$1" 2>/dev/null || exit 0
[ -n "$w" ] || exit 0
while :; do
  found=
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" -ge "$w" ] 2>/dev/null || continue
    [ "$p" = "$$" ] && continue
    kill -9 "$p" 2>/dev/null && found=1
  done
  [ -z "$found" ] && break
done
exit 0
"""
WRAPPER = (
    'echo $$ > "$ITEMLOOP_PIDFILE" && [ ! -e "$ITEMLOOP_PIDFILE.stop" ] && '
    'unset ITEMLOOP_PIDFILE && exec "$@"'
)


class DockerExecChannel:
    """Commands through `docker exec` in `container` (a docker-py Container).

    `host_pids_dir` is the host directory mounted at `PIDS_DIR` in the
    container, writable by every user a command may run as.
    """

    def __init__(self, container: Any, host_pids_dir: Path) -> None:
        self.container = container
        self.host_pids_dir = host_pids_dir
        self._api = container.client.api
        self._lock = anyio.Lock()
        self._closed = False

    async def aclose(self) -> None:
        self._closed = True

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
        async with self._lock:  # one at a time: the timeout kill relies on it
            if self._closed:
                raise SandboxError("the sandbox is closed")
            return await self._exec(argv, cwd, env, user, timeout_s, output_limit)

    async def _exec(
        self,
        argv: Sequence[str],
        cwd: str,
        env: Mapping[str, str],
        user: str | None,
        timeout_s: float,
        limit: int,
    ) -> CommandResult:
        api = self._api
        token = secrets.token_hex(8)
        pidfile = f"{PIDS_DIR}/{token}"
        host_pidfile = self.host_pids_dir / token
        full_env = {**env, "ITEMLOOP_PIDFILE": pidfile}
        started = time.monotonic()

        def create() -> tuple[str, Any]:
            try:
                exec_id = api.exec_create(
                    self.container.id,
                    ["/bin/sh", "-c", WRAPPER, "sh", *argv],
                    stdout=True,
                    stderr=True,
                    stdin=False,
                    tty=False,
                    environment=full_env,
                    workdir=cwd,
                    user=user or "",
                )["Id"]
                return exec_id, api.exec_start(exec_id, socket=True)
            except docker.errors.DockerException as e:
                raise SandboxError(f"docker exec failed: {e}") from None

        # Shielded: once the exec is started, this call must know it, to kill it.
        with anyio.CancelScope(shield=True):
            exec_id, sock = await anyio.to_thread.run_sync(create)
        out, err = HeadTailBuffer(limit), HeadTailBuffer(limit)
        finished = anyio.Event()
        timed_out = False

        async def read() -> None:
            try:
                await anyio.to_thread.run_sync(_read_frames, sock, out, err)
            finally:
                finished.set()

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                try:
                    with anyio.move_on_after(timeout_s):
                        await finished.wait()
                    if not finished.is_set():
                        info = await anyio.to_thread.run_sync(api.exec_inspect, exec_id)
                        if info.get("Running"):
                            timed_out = True
                            await anyio.to_thread.run_sync(self._kill_from, pidfile, user)
                        await self._wait_or_close(finished, sock)
                except BaseException:
                    # Cancelled from outside (Ctrl-C, a stopped run): kill the command
                    # now, before the task group waits for the reader, which only
                    # returns once the command's output ends.
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(self._kill_from, pidfile, user)
                        await self._wait_or_close(finished, sock)
                    raise
        finally:
            close_stream(sock)
            for leftover in (host_pidfile, host_pidfile.with_name(token + ".stop")):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
        info = await anyio.to_thread.run_sync(api.exec_inspect, exec_id)
        code = info.get("ExitCode")
        out_text, out_dropped, out_chars = out.text()
        err_text, err_dropped, err_chars = err.text()
        return CommandResult(
            exit_code=None if timed_out or code is None else int(code),
            timed_out=timed_out,
            stdout=out_text,
            stderr=err_text,
            duration_s=time.monotonic() - started,
            stdout_dropped=out_dropped,
            stderr_dropped=err_dropped,
            stdout_dropped_chars=out_chars,
            stderr_dropped_chars=err_chars,
        )

    @staticmethod
    async def _wait_or_close(finished: anyio.Event, sock: Any) -> None:
        """Let the killed command's stream end; close it if it does not within
        `KILL_WAIT_S` (a background child holding it), so the reader returns."""
        with anyio.move_on_after(KILL_WAIT_S):
            await finished.wait()
        if not finished.is_set():
            close_stream(sock)

    def _kill_from(self, pidfile: str, user: str | None) -> None:
        with contextlib.suppress(docker.errors.DockerException):
            self.container.exec_run(
                ["/bin/sh", "-c", KILL_SCRIPT, "sh", pidfile],
                user=user or "",
                environment={"PATH": STANDARD_PATH},
            )


def close_stream(sock: Any) -> None:
    """Close a socket docker-py returned for an attach or exec stream, also its raw one."""
    with contextlib.suppress(Exception):
        sock.close()
    raw = getattr(sock, "_sock", None)
    if raw is not None:
        with contextlib.suppress(Exception):
            raw.shutdown(socket.SHUT_RDWR)


def _read_exactly(sock: Any, n: int) -> bytes:
    chunks = []
    while n > 0:
        data = sock.read(min(n, 256 * 1024))
        if not data:
            break
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def _read_frames(sock: Any, out: HeadTailBuffer, err: HeadTailBuffer) -> None:
    """Demultiplex Docker's attach stream (8-byte headers) into the two buffers."""
    try:
        while True:
            header = _read_exactly(sock, 8)
            if len(header) < 8:
                return
            stream, size = struct.unpack(">BxxxL", header)
            sink = err if stream == 2 else out
            while size > 0:
                data = sock.read(min(size, 256 * 1024))
                if not data:
                    return
                sink.feed(data)
                size -= len(data)
    except (OSError, ValueError):
        return
