"""`HostSandbox`: commands run as plain processes on the host.

Only used when asked for by name (`--sandbox host`): nothing is confined. It
still has what the other sandboxes have besides confinement: the runner (so
timeouts kill whole process trees, daemons that setsid included), output
limits, an environment built from an allowlist, rlimits, and everything a
session started is killed when it closes.
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack

import anyio.abc

from .base import SandboxUnavailable
from .channel import CommandChannel
from .channel_sandbox import ChannelSandbox
from .command import STANDARD_PATH
from .runner_channel import host_runner_argv, runner_env, spawn_runner


class HostSandbox(ChannelSandbox):
    name = "host"

    def home(self) -> str:
        return os.path.expanduser("~")

    def path_env(self) -> str:
        return os.environ.get("PATH") or STANDARD_PATH

    async def open_channel(self, tg: anyio.abc.TaskGroup, stack: AsyncExitStack) -> CommandChannel:
        return await spawn_runner(
            host_runner_argv,
            env=runner_env(self.path_env()),
            cwd=str(self.workspace),
            unavailable=self.unavailable,
            tg=tg,
            stack=stack,
        )

    def unavailable(self, detail: str) -> SandboxUnavailable:
        return SandboxUnavailable(f"the host sandbox could not start its runner: {detail}")
