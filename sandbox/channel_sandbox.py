"""`ChannelSandbox`: the frame every backend shares; commands go through a `CommandChannel`.

A sandbox lives for a session: entering it starts what the backend needs (a
bubblewrap namespace, a runner process, a container) and the channel its
commands go through; leaving it closes the channel, then stops everything it
started, in reverse order (one exit stack and one task group per session).

Backends subclass it and say only what differs: where the workspace, HOME and
PATH are inside (`workspace_mount`, `home`, `path_env`) and how to start
(`open_channel`, which returns the channel the backend chose: the runner
where it can start, `docker exec` where it cannot), and, if it has any, its
work around each command (`around_command`). Everything else is here:
a command is checked (`command`: argv, cwd, environment, rlimits), given the
defaults of `SandboxOptions` and handed to the channel; the file half of the
`Sandbox` protocol is `WorkspaceFiles` on the host directory, for every
backend (each keeps its workspace in one, bind-mounted into it).

Restarts. A channel can be lost for good: its runner was killed (in Docker a
command can kill every process of the container, `kill -9 -1`), it broke its
protocol, it stopped answering. The call during which that happened gets its
output with a note (or an error, for a protocol violation: see
`runner_channel`); the next command finds the channel lost (`ChannelLost`, or
what `lost_reason` recognises as such: an error or a result that says the
command never started), and the sandbox starts a new channel - a new bubblewrap sandbox,
a new container (`discard_channel` lets a backend drop what the old one held)
- runs the command there, and adds a note to its stderr: the processes left
running and the private /tmp were lost, the workspace is as it was. A channel
lost again before the command could start is that command's error; the next
command tries again.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio
import anyio.abc

from .base import CommandResult, FileStat, SandboxError, SandboxOptions
from .channel import ChannelLost, CommandChannel
from .command import (
    DEFAULT_SHELL,
    base_env,
    command_argv,
    rlimits_of,
    validate_env,
    workspace_cwd,
)
from .files import WorkspaceFiles


class ChannelSandbox(ABC):
    """A session-long sandbox over a host workspace directory (see the module docstring)."""

    name = "sandbox"

    def __init__(self, workspace: Path, options: SandboxOptions | None = None) -> None:
        self.workspace = Path(workspace).resolve()
        self.options = options or SandboxOptions()
        self.files = WorkspaceFiles(self.workspace)
        self._stack: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._channel: CommandChannel | None = None
        self._current: CommandChannel | None = None  # what the exit stack closes
        self._restart_lock: anyio.Lock | None = None
        self.shell = DEFAULT_SHELL
        """The shell of scripts (`run(script=...)`); a backend may bring its own at start."""
        self._notices: list[str] = []

    # --- what backends provide ------------------------------------------------

    @property
    def workspace_mount(self) -> str:
        """The workspace's path as commands see it (by default, its host path)."""
        return str(self.workspace)

    @abstractmethod
    def home(self) -> str:
        """HOME inside the sandbox."""

    @abstractmethod
    def path_env(self) -> str:
        """PATH inside the sandbox."""

    def inherited_env(self) -> dict[str, str]:
        """Variables every command starts from, under the sandbox's own (`base_env`) and the
        caller's: a Docker image's ENV. None by default."""
        return {}

    @abstractmethod
    async def open_channel(self, tg: anyio.abc.TaskGroup, stack: AsyncExitStack) -> CommandChannel:
        """Start the sandbox; the channel its commands go through.

        Whatever it starts is registered on `stack` (closed in reverse order
        when the sandbox exits, also when starting fails part-way); `tg` runs
        tasks that live as long as the sandbox. The sandbox closes the channel
        itself, before the rest of `stack`. It is called again, with the same
        `tg` and `stack`, when the sandbox restarts after its channel was lost.
        """

    async def lost_reason(
        self, channel: CommandChannel, outcome: SandboxError | CommandResult
    ) -> str | None:
        """Why `outcome` of `channel.run` (the error it raised or the result it returned)
        means the channel is gone and the command did not start (the sandbox then
        restarts and runs it again); None when it is that command's own."""
        return str(outcome) if isinstance(outcome, ChannelLost) else None

    async def discard_channel(self) -> None:
        """Release what a lost channel held, before the sandbox restarts (default: nothing)."""
        return None

    # --- lifecycle ---------------------------------------------------------------

    @property
    def notices(self) -> list[str]:
        """One line each, for a person: what the backend chose at start, what it costs,
        which protections hold. Backends append to it, or extend the property."""
        return self._notices

    @property
    def channel(self) -> CommandChannel | None:
        """The channel commands go through; None unless started."""
        return self._channel

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise SandboxError("this sandbox is already started")
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.push_async_callback(_cancel, tg)
            channel = await self.open_channel(tg, stack)
            self._current = channel
            stack.push_async_callback(self._close_current)
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self._tg, self._channel = stack, tg, channel
        self._restart_lock = anyio.Lock()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack, self._channel, self._tg = self._stack, None, None, None
        if stack is not None:
            await stack.aclose()

    async def _close_current(self) -> None:
        channel, self._current = self._current, None
        if channel is not None:
            await channel.aclose()

    async def _restart(self, lost: CommandChannel, why: str) -> CommandChannel:
        """A new channel in place of `lost` (once, however many calls found it lost)."""
        assert self._restart_lock is not None
        async with self._restart_lock:
            if self._current is not lost and self._current is not None:
                return self._current  # another call restarted it meanwhile
            if self._stack is None or self._tg is None:
                raise SandboxError(f"the {self.name} sandbox is closed")
            with anyio.CancelScope(shield=True):
                await lost.aclose()
                await self.discard_channel()
            try:
                channel = await self.open_channel(self._tg, self._stack)
            except SandboxError as e:
                raise SandboxError(f"{why}, and the sandbox could not be restarted: {e}") from None
            # open_channel pushed the new runner's wait-then-kill onto the stack; close its
            # channel before that runs (the stack unwinds last-in first), or the wait is
            # always in vain and the runner is killed at every close after a restart.
            self._stack.push_async_callback(self._close_current)
            self._current = self._channel = channel
            return channel

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
        command = functools.partial(
            self._run,
            argv,
            script=script,
            cwd=cwd,
            env=env,
            timeout_s=timeout_s,
            output_limit=output_limit,
            user=user,
        )
        return await self.around_command(command)

    async def around_command(
        self, command: Callable[[], Awaitable[CommandResult]]
    ) -> CommandResult:
        """Run one command (`command()`, all of `run`'s work). A backend with work before or
        after each command (the workspace's size, set-ID bits) overrides this, not `run`."""
        return await command()

    async def _run(
        self,
        argv: Sequence[str] | None,
        *,
        script: str | None,
        cwd: str,
        env: Mapping[str, str] | None,
        timeout_s: float | None,
        output_limit: int | None,
        user: str | None,
    ) -> CommandResult:
        channel = self._channel
        if channel is None:
            raise SandboxError(f"the {self.name} sandbox is not started (use it with `async with`)")
        full_argv = command_argv(argv, script, self.shell)
        inside_cwd = workspace_cwd(self.workspace, self.workspace_mount, cwd)
        full_env = self.inherited_env()
        full_env.update(base_env(self.options, home=self.home(), path=self.path_env()))
        full_env.update(validate_env(env))
        timeout = self.options.default_timeout_s if timeout_s is None else timeout_s
        limit = self.options.default_output_limit if output_limit is None else output_limit

        async def run_in(ch: CommandChannel) -> CommandResult:
            return await ch.run(
                full_argv,
                cwd=inside_cwd,
                env=full_env,
                user=user or None,
                rlimits=rlimits_of(self.options),
                timeout_s=max(0.0, timeout),
                output_limit=max(0, limit),
            )

        try:
            result = await run_in(channel)
        except SandboxError as e:
            why = await self.lost_reason(channel, e)
            if why is None:
                raise
        else:
            why = await self.lost_reason(channel, result)
            if why is None:
                return result
        note = restart_note(why)
        channel = await self._restart(channel, why)
        try:
            result = await run_in(channel)
        except ChannelLost as e:
            raise SandboxError(
                f"{note}\nIt was lost again before this command could start: {e}"
            ) from None
        except SandboxError as e:
            raise SandboxError(f"{e}\n{note}") from None
        return result.with_note(note)

    # --- files ------------------------------------------------------------------

    async def read_file(self, path: str, *, max_bytes: int | None = None) -> bytes:
        return await self.files.read_file(path, max_bytes=max_bytes)

    async def write_file(self, path: str, data: bytes, *, mode: int | None = None) -> None:
        await self.files.write_file(path, data, mode=mode)

    async def delete_file(self, path: str) -> None:
        await self.files.delete_file(path)

    async def stat(self, path: str) -> FileStat | None:
        return await self.files.stat(path)

    async def list_dir(self, path: str = ".") -> list[FileStat]:
        return await self.files.list_dir(path)


def restart_note(why: str) -> str:
    """What a command's stderr says when the sandbox was restarted before it ran."""
    return (
        f"itemloop: the sandbox was restarted before this command ran ({why}): the "
        "processes left running in it were lost, and so was its /tmp; the workspace is "
        "as it was"
    )


async def _cancel(tg: anyio.abc.TaskGroup) -> None:
    tg.cancel_scope.cancel()
