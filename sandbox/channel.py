"""`CommandChannel`: how a validated command reaches a sandbox and its result comes back.

A sandbox (`channel_sandbox.ChannelSandbox`) checks a command (argv, working
directory, environment, limits; see `command`) and hands it, ready to run, to
the channel it chose when it started. The channel only carries it. Two
backends, each in its own module:

- `runner_channel.RunnerChannel`: the runner (`_runner.py`) inside the sandbox,
  over one Unix socket; a command costs a message and a spawn. Every sandbox
  (`docker` through the runner bundle, so on any image).
- `docker_exec.DockerExecChannel`: one `docker exec` per command, when the
  docker sandbox's runner cannot start (tens of milliseconds each).

What every channel does: a timeout kills the command and everything it
started, and returns `timed_out=True`; each output stream is kept within
`output_limit` bytes (head and tail); a command that fails is a result, not
an error, and `SandboxError` means the channel itself failed (its runner is
gone, the engine refused). `ChannelLost`, a `SandboxError`, says more: the
channel can run no more commands, and this one did not start; the sandbox
then starts a new channel and runs the command there (`channel_sandbox`).
What it does not do: validate (the sandbox has), or own the sandbox's
processes and containers (the sandbox's exit stack does; `aclose` only ends
the channel).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from .base import CommandResult, SandboxError

KILL_WAIT_S = 10.0
"""How long killing a timed-out command may take before the channel is considered broken."""


class ChannelLost(SandboxError):
    """The channel can run no more commands (its runner is gone); the command did not start.

    The message says why the channel was lost.
    """


class CommandChannel(Protocol):
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
        """Run `argv` in `cwd` (a path inside the sandbox) with exactly `env`.

        `rlimits` maps rlimit names (`CPU`, `FSIZE`, `NPROC`: `command.rlimits_of`)
        to values, for a channel that sets them per command; `user` is a name or
        uid, None for the sandbox's own.
        """
        ...

    async def aclose(self) -> None:
        """End the channel; a command run afterwards raises `SandboxError`."""
        ...
