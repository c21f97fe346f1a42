"""Sandboxes of the four kinds a restart test runs on, and a restart forced from outside.

Shared by the tests of what a restarted sandbox mounts and hides
(test_path_pinning.py, test_mask_pinning.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from itemloop.sandbox.base import SandboxOptions
from itemloop.sandbox.bubblewrap import BubblewrapSandbox
from itemloop.sandbox.channel_sandbox import ChannelSandbox
from itemloop.sandbox.docker_sandbox import DockerSandbox

Make = Callable[..., ChannelSandbox]

KINDS = [
    pytest.param("local", marks=pytest.mark.bwrap),
    pytest.param("local-fallback", marks=pytest.mark.bwrap),
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("docker-exec", marks=pytest.mark.docker),
]
"""local as root runs commands through the idmap launcher; its fallback binds directly."""


def sandbox(
    make: Make, kind: str, workspace: Path, options: SandboxOptions, **kwargs: str
) -> ChannelSandbox:
    """A sandbox of `kind` (a skip where it cannot run); `kwargs` go to its constructor."""
    base = "local" if kind.startswith("local") else kind
    assert make(base, workspace)  # skips where the backend cannot run
    if base == "local":
        sb = BubblewrapSandbox(workspace, options, **kwargs)
        sb.under_command_uid = kind == "local"
        return sb
    image = "itemloop-test:busybox"
    return DockerSandbox(workspace, options, image=image, fast_path=kind == "docker", **kwargs)


async def restart(sb: ChannelSandbox) -> None:
    """End the sandbox's runner or container: a command soon gets a new sandbox."""
    if isinstance(sb, DockerSandbox):
        await sb.run(script="kill -9 -1")  # what any command may do there
    else:
        process = getattr(sb.channel, "process", None)
        assert process is not None
        # a command cannot (the runner is PID 1 of its namespace); the workspace-size
        # limit (`_stop`) or a lost runner can
        process.kill()
        await process.wait()
