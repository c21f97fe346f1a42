"""`HostSandbox`: commands run as plain processes on the host.

Only used when asked for by name (`--sandbox host`): nothing is confined. It
still has what the other sandboxes have besides confinement: the runner (so
timeouts kill whole process trees, daemons that setsid included), output
limits, an environment built from an allowlist, rlimits, and everything a
session started is killed when it closes.
"""

from __future__ import annotations

import os

from .base import SandboxUnavailable
from .process import STANDARD_PATH, host_runner_argv
from .session import RunnerSandbox


class HostSandbox(RunnerSandbox):
    name = "host"

    def home(self) -> str:
        return os.path.expanduser("~")

    def path_env(self) -> str:
        return os.environ.get("PATH") or STANDARD_PATH

    def launch_argv(self, runner_fd: int) -> list[str]:
        return host_runner_argv(runner_fd)

    def unavailable(self, detail: str) -> SandboxUnavailable:
        return SandboxUnavailable(f"the host sandbox could not start its runner: {detail}")
