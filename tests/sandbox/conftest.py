"""Fixtures for the sandbox tests: real bubblewrap, a real Docker engine, no mocks.

A backend's tests are skipped (with the reason) only when it truly cannot run
here: bubblewrap missing or unable to create namespaces, no Docker engine, or
the test image not built (`.ci/setup-sandboxes.sh` builds it).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from backends import DOCKER_IMAGES, in_ci, problem

from itemloop.sandbox import SandboxOptions, open_sandbox
from itemloop.sandbox.channel_sandbox import ChannelSandbox


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


CONFINED = [
    pytest.param("local", marks=pytest.mark.bwrap),
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("docker-python", marks=pytest.mark.docker),
]
ALL = [*CONFINED, "host"]


def make_sandbox(
    kind: str, workspace: Path, options: SandboxOptions | None = None
) -> ChannelSandbox:
    reason = problem(kind)
    if reason:
        if in_ci():
            # CI installs every backend (.ci/setup-sandboxes.sh): a skip there would
            # hide a broken install behind a green run.
            pytest.fail(f"{kind} sandbox unavailable in CI: {reason}")
        pytest.skip(reason)
    if kind == "docker-exec":
        from itemloop.sandbox.docker_sandbox import DockerSandbox

        sb = DockerSandbox(workspace, options, image=DOCKER_IMAGES[kind], fast_path=False)
    elif kind in DOCKER_IMAGES:
        sb = open_sandbox("docker", workspace, options, image=DOCKER_IMAGES[kind])
    else:
        sb = open_sandbox(kind, workspace, options)
    assert isinstance(sb, ChannelSandbox)
    return sb


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture(params=ALL)
async def any_sandbox(
    request: pytest.FixtureRequest, workspace: Path
) -> AsyncIterator[ChannelSandbox]:
    async with make_sandbox(request.param, workspace) as sb:
        yield sb


@pytest.fixture(params=CONFINED)
async def confined(
    request: pytest.FixtureRequest, workspace: Path
) -> AsyncIterator[ChannelSandbox]:
    async with make_sandbox(request.param, workspace) as sb:
        yield sb


def host_processes_matching(needle: str) -> list[str]:
    """Command lines of live host processes containing `needle` (seen from the host)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmd and state != b"Z":
            found.append(f"{name}: {cmd}")
    return found


@pytest.fixture
def make() -> object:
    """`make(kind, workspace, options=None)`: a not-yet-started sandbox, or a skip."""
    return make_sandbox


@pytest.fixture
def host_procs() -> object:
    """`host_procs(needle)`: live host processes whose command line contains `needle`."""
    return host_processes_matching


@pytest.fixture
def var_tmp() -> Iterator[Path]:
    """A host directory outside /tmp and /run (which the local sandbox replaces)."""
    d = Path("/var/tmp") / f"itemloop-test-{uuid.uuid4().hex}"
    d.mkdir()
    os.chmod(d, 0o755)  # the command's uid (as root: idmap.COMMAND_ID) traverses it
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
