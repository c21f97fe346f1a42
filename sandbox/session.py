"""`RunnerSandbox`: a session-long sandbox whose commands start inside one runner.

Backends subclass it and only say how to launch the runner (`_launch`) and
what the workspace, HOME and PATH are called inside. The file half of the
protocol is `WorkspaceFiles` on the host directory, for every backend.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio
import anyio.abc

from .base import CommandResult, FileStat, SandboxError, SandboxOptions
from .capture import HeadTailBuffer
from .files import WorkspaceFiles
from .process import (
    CLOSE_WAIT_S,
    RunnerConnection,
    base_env,
    command_argv,
    rlimits_of,
    validate_env,
    workspace_cwd,
)


class RunnerSandbox:
    """Shared machinery of the `local` (bubblewrap) and `host` sandboxes."""

    name = "runner"

    def __init__(self, workspace: Path, options: SandboxOptions | None = None) -> None:
        self.workspace = Path(workspace).resolve()
        self.options = options or SandboxOptions()
        self.files = WorkspaceFiles(self.workspace)
        self._stack: AsyncExitStack | None = None
        self._conn: RunnerConnection | None = None
        self._started = False
        self._launch_fds: list[int] = []

    # --- what backends provide ------------------------------------------------

    @property
    def workspace_mount(self) -> str:
        """The workspace's path as commands see it."""
        return str(self.workspace)

    def home(self) -> str:
        raise NotImplementedError

    def path_env(self) -> str:
        raise NotImplementedError

    def launch_argv(self, runner_fd: int) -> list[str]:
        """The argv that starts the runner with its socket on `runner_fd`.

        Other descriptors the launched process needs (named in the argv) are
        registered with `pass_fd`; they are closed here once it has started.
        """
        raise NotImplementedError

    def pass_fd(self, fd: int) -> int:
        """Hand `fd` (now owned by the sandbox) to the process `launch_argv` starts."""
        self._launch_fds.append(fd)
        return fd

    def launch_env(self) -> dict[str, str]:
        """The environment of the launched process (never the runtime's own)."""
        return {"PATH": self.path_env(), "LANG": "C.UTF-8"}

    def unavailable(self, detail: str) -> SandboxError:
        """The error for a runner that did not start."""
        return SandboxError(f"the {self.name} sandbox did not start: {detail}")

    # --- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise SandboxError("this sandbox is already started")
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.push_async_callback(_cancel, tg)
            self._conn = await self._start(tg, stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self._started = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack, self._conn = self._stack, None, None
        self._started = False
        if stack is not None:
            await stack.aclose()

    async def _start(
        self, tg: anyio.abc.TaskGroup, stack: AsyncExitStack
    ) -> RunnerConnection | None:
        """Start the sandbox; the runner's connection (None: no runner)."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            argv = self.launch_argv(child.fileno())
            try:
                proc = await anyio.open_process(
                    argv,
                    stdin=-3,  # subprocess.DEVNULL
                    stdout=-3,
                    stderr=-1,  # subprocess.PIPE
                    pass_fds=(child.fileno(), *self._launch_fds),
                    env=self.launch_env(),
                    cwd=str(self.workspace),
                    start_new_session=True,
                )
            except OSError as e:
                raise self.unavailable(f"cannot execute {argv[0]}: {e.strerror}") from None
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
            fds, self._launch_fds = self._launch_fds, []
            for fd in fds:
                os.close(fd)
        errors = HeadTailBuffer(8192)
        stack.push_async_callback(_stop_process, proc)
        assert proc.stderr is not None
        tg.start_soon(_drain_stream, proc.stderr, errors)
        stream = await anyio.abc.UNIXSocketStream.from_socket(parent)
        conn = RunnerConnection(stream, tg)
        stack.push_async_callback(conn.aclose)
        try:
            await conn.handshake()
        except (anyio.EndOfStream, anyio.IncompleteRead, TimeoutError, ValueError, OSError):
            with anyio.move_on_after(CLOSE_WAIT_S):
                await proc.wait()
            detail = errors.text()[0].strip() or f"exit status {proc.returncode}"
            raise self.unavailable(detail) from None
        return conn

    # --- commands ---------------------------------------------------------------

    async def run(
        self,
        argv: Sequence[str] | None = None,
        *,
        script: str | None = None,
        cwd: str = ".",
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        output_limit: int | None = None,
        user: str | None = None,
    ) -> CommandResult:
        if not self._started:
            raise SandboxError(f"the {self.name} sandbox is not started (use it with `async with`)")
        full_argv = command_argv(argv, script)
        inside_cwd = workspace_cwd(self.workspace, self.workspace_mount, cwd)
        full_env = base_env(self.options, home=self.home(), path=self.path_env())
        full_env.update(validate_env(env))
        timeout = self.options.default_timeout_s if timeout_s is None else timeout_s
        limit = self.options.default_output_limit if output_limit is None else output_limit
        return await self._dispatch(
            full_argv,
            cwd=inside_cwd,
            env=full_env,
            user=user or None,
            timeout_s=max(0.0, timeout),
            output_limit=max(0, limit),
        )

    async def _dispatch(
        self,
        argv: list[str],
        *,
        cwd: str,
        env: dict[str, str],
        user: str | None,
        timeout_s: float,
        output_limit: int,
    ) -> CommandResult:
        """Run a validated command (`cwd` is the path inside the sandbox)."""
        conn = self._conn
        if conn is None:
            raise SandboxError(f"the {self.name} sandbox has no runner")
        return await conn.run(
            argv,
            cwd=cwd,
            env=env,
            user=user,
            rlimits=rlimits_of(self.options),
            timeout_s=timeout_s,
            output_limit=output_limit,
        )

    # --- files ------------------------------------------------------------------

    async def read_file(self, path: str) -> bytes:
        return await self.files.read_file(path)

    async def write_file(self, path: str, data: bytes, *, mode: int | None = None) -> None:
        await self.files.write_file(path, data, mode=mode)

    async def delete_file(self, path: str) -> None:
        await self.files.delete_file(path)

    async def stat(self, path: str) -> FileStat | None:
        return await self.files.stat(path)

    async def list_dir(self, path: str = ".") -> list[FileStat]:
        return await self.files.list_dir(path)


async def _cancel(tg: anyio.abc.TaskGroup) -> None:
    tg.cancel_scope.cancel()


async def _drain_stream(stream: anyio.abc.ByteReceiveStream, sink: HeadTailBuffer) -> None:
    try:
        async for chunk in stream:
            sink.feed(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass


async def _stop_process(proc: anyio.abc.Process) -> None:
    """Wait for the launched process to exit on its own, then kill it."""
    with anyio.CancelScope(shield=True):
        with anyio.move_on_after(CLOSE_WAIT_S):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
        await proc.aclose()
