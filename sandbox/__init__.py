"""itemloop.sandbox: where commands run and where workspace files live.

`open_sandbox(kind, workspace, options, image)` builds one of the three
backends; use the result as an async context manager (it starts on enter and
kills everything it started on exit):

- `local`: `BubblewrapSandbox`, the default on Linux (host filesystem
  read-only, workspace read-write, no network, own PID namespace);
- `docker`: `DockerSandbox`, one container per session from `image`;
- `host`: `HostSandbox`, plain processes on the host, only when asked for.

All three are `ChannelSandbox`es (`channel_sandbox`): commands are checked
there and go through the `CommandChannel` (`channel`) the backend chose at
start, the runner over a socket (`runner_channel`) or `docker exec`
(`docker_exec`); files are `WorkspaceFiles` (`files`) on the host directory.
The computer-use backends (`computer`, `xvfb_computer`, `browser_computer`)
live here too, for the same reason: they start and own processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import (
    DEFAULT_COMMAND_TIMEOUT_S,
    CommandResult,
    FileStat,
    FileTooLarge,
    Sandbox,
    SandboxError,
    SandboxOptions,
    SandboxUnavailable,
    WorkspacePathError,
)

if TYPE_CHECKING:
    from .bubblewrap import BubblewrapSandbox
    from .docker_sandbox import DockerSandbox
    from .host import HostSandbox

# Backends load on first use: the docker package alone is a ~0.1 s import.
_BACKENDS = {
    "BubblewrapSandbox": ".bubblewrap",
    "DockerSandbox": ".docker_sandbox",
    "HostSandbox": ".host",
}


def __getattr__(name: str) -> Any:
    if name in _BACKENDS:
        from importlib import import_module

        return getattr(import_module(_BACKENDS[name], __name__), name)
    raise AttributeError(f"module 'itemloop.sandbox' has no attribute {name!r}")


SANDBOX_KINDS = ("local", "docker", "host")


def open_sandbox(
    kind: str,
    workspace: Path,
    options: SandboxOptions | None = None,
    image: str | None = None,
) -> Sandbox:
    """The sandbox `kind` ("local", "docker" or "host") over `workspace`, not yet started."""
    opts = options or SandboxOptions()
    workspace = Path(workspace)
    if not workspace.is_dir():
        raise SandboxError(f"workspace {str(workspace)!r} is not a directory")
    if kind == "local":
        from .bubblewrap import BubblewrapSandbox

        return BubblewrapSandbox(workspace, opts)
    if kind == "docker":
        if not image:
            raise SandboxUnavailable("--sandbox docker needs an image: add --image NAME")
        from .docker_sandbox import DockerSandbox

        return DockerSandbox(workspace, opts, image=image)
    if kind == "host":
        from .host import HostSandbox

        return HostSandbox(workspace, opts)
    raise SandboxError(f"unknown sandbox {kind!r}: choose one of {', '.join(SANDBOX_KINDS)}")


__all__ = [
    "DEFAULT_COMMAND_TIMEOUT_S",
    "SANDBOX_KINDS",
    "BubblewrapSandbox",
    "CommandResult",
    "DockerSandbox",
    "FileStat",
    "FileTooLarge",
    "HostSandbox",
    "Sandbox",
    "SandboxError",
    "SandboxOptions",
    "SandboxUnavailable",
    "WorkspacePathError",
    "open_sandbox",
]
