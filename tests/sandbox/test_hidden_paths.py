"""Credential locations and the user's `--hide` paths are out of commands' reach (issue 10,
item 7): in the local sandbox with the network on or off, and in docker where the
workspace or a writable path holds them. Real bubblewrap, a real Docker engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backends import BUSYBOX_IMAGE, PYTHON_IMAGE

from itemloop.sandbox import SandboxOptions
from itemloop.sandbox.bubblewrap import BubblewrapSandbox
from itemloop.sandbox.channel_sandbox import ChannelSandbox
from itemloop.sandbox.docker_sandbox import DockerSandbox
from itemloop.sandbox.hidden import CREDENTIAL_PATHS

Make = Callable[..., ChannelSandbox]

pytestmark = pytest.mark.anyio

SECRET = "itemloop-hidden-" + uuid.uuid4().hex

# Where the tools the issue names keep their tokens (a file each, under the home).
TOKEN_FILES = (
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".config/gh/hosts.yml",
    ".docker/config.json",
    ".kube/config",
    ".config/gcloud/credentials.db",
    ".azure/msal_token_cache.json",
    ".codex/auth.json",
    ".claude/.credentials.json",
    ".claude.json",
    ".gemini/oauth_creds.json",
    ".config/github-copilot/hosts.json",
    ".cargo/credentials.toml",
)


@pytest.fixture
def var_tmp() -> Iterator[Path]:
    """A host directory outside /tmp and /run (which the local sandbox replaces)."""
    d = Path("/var/tmp") / f"itemloop-test-{uuid.uuid4().hex}"
    d.mkdir()
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def token_home(var_tmp: Path) -> Path:
    home = var_tmp / "home"
    for rel in TOKEN_FILES:
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(SECRET)
    (home / "notes.txt").write_text("visible")
    return home


def test_the_list_covers_the_tools_of_the_issue() -> None:
    for rel in TOKEN_FILES:
        assert any(rel == c or rel.startswith(c + "/") for c in CREDENTIAL_PATHS), rel


@pytest.mark.bwrap
@pytest.mark.parametrize("network", [False, True], ids=["network-off", "network-on"])
async def test_token_files_are_hidden_network_on_or_off(
    workspace: Path, token_home: Path, make: Make, network: bool
) -> None:
    assert make("local", workspace)  # skips without bubblewrap
    cats = " ".join(f"{token_home}/{rel}" for rel in TOKEN_FILES)
    opts = SandboxOptions(network=network)
    async with BubblewrapSandbox(workspace, opts, host_home=str(token_home)) as sb:
        r = await sb.run(script=f"cat {token_home}/notes.txt; echo; cat {cats}")
    assert r.stdout.startswith("visible\n"), r.stderr  # the home itself is still there
    assert SECRET not in r.stdout + r.stderr


@pytest.fixture
def ws_secrets(workspace: Path) -> Path:
    """A workspace with a secret directory and a secret file the user hides."""
    (workspace / "keys").mkdir()
    (workspace / "keys" / "id").write_text(SECRET)
    (workspace / ".env.local").write_text(SECRET)
    (workspace / "code.py").write_text("visible")
    return workspace


KINDS = [
    pytest.param("local", marks=pytest.mark.bwrap),
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("docker-python", marks=pytest.mark.docker),
]


@pytest.mark.parametrize("kind", KINDS)
async def test_hidden_paths_inside_the_workspace(ws_secrets: Path, make: Make, kind: str) -> None:
    opts = SandboxOptions(hidden_paths=(str(ws_secrets / "keys"), str(ws_secrets / ".env.local")))
    async with make(kind, ws_secrets, opts) as sb:
        r = await sb.run(script="cat code.py; echo; ls -A keys; cat keys/id .env.local")
        assert r.stdout.startswith("visible\n"), r.stderr
        assert SECRET not in r.stdout + r.stderr
        # Writing there never reaches the host's files.
        await sb.run(script="echo x > .env.local; echo y > keys/id; rm -rf keys .env.local")
    assert (ws_secrets / ".env.local").read_text() == SECRET
    assert (ws_secrets / "keys" / "id").read_text() == SECRET


@pytest.mark.bwrap
async def test_hidden_paths_outside_the_workspace(
    workspace: Path, var_tmp: Path, make: Make
) -> None:
    assert make("local", workspace)
    (var_tmp / "dir").mkdir()
    (var_tmp / "dir" / "f").write_text(SECRET)
    (var_tmp / "file").write_text(SECRET)
    (var_tmp / "link").symlink_to(var_tmp / "file")
    opts = SandboxOptions(network=True, hidden_paths=(str(var_tmp / "dir"), str(var_tmp / "link")))
    async with BubblewrapSandbox(workspace, opts, host_home=[]) as sb:
        r = await sb.run(script=f"cd {var_tmp}; ls -A dir; cat dir/f file link")
    assert r.stderr.count("No such file") == 1, r.stderr  # dir/f; the link's target is empty
    assert SECRET not in r.stdout + r.stderr


@pytest.mark.bwrap
async def test_a_hidden_path_holding_the_workspace_shows_only_the_workspace(
    token_home: Path, make: Make
) -> None:
    ws = token_home / "project"
    ws.mkdir()
    (ws / "code.py").write_text("visible")
    assert make("local", ws)
    opts = SandboxOptions(hidden_paths=(str(token_home),))
    async with BubblewrapSandbox(ws, opts, host_home=[]) as sb:
        r = await sb.run(script=f"cat code.py; echo; ls -A {token_home}; cat ../notes.txt")
        assert r.stdout == "visible\nproject\n", r.stderr
        await sb.run(script="echo written > out.txt")
    assert (ws / "out.txt").read_text() == "written\n"  # the workspace is still the host's


@pytest.mark.docker
@pytest.mark.parametrize("image_kind", ["docker", "docker-python"])
async def test_docker_hides_credentials_of_a_home_it_mounts(
    token_home: Path, var_tmp: Path, make: Make, image_kind: str
) -> None:
    assert make(image_kind, token_home)  # skips without docker
    image = BUSYBOX_IMAGE if image_kind == "docker" else PYTHON_IMAGE
    ws = var_tmp / "ws"
    ws.mkdir()
    # The home as the workspace, and as a writable path next to another workspace.
    for workspace, root, opts in (
        (token_home, "/workspace", SandboxOptions()),
        (ws, str(token_home), SandboxOptions(writable_paths=(str(token_home),))),
    ):
        cats = " ".join(f"{root}/{rel}" for rel in TOKEN_FILES)
        sb = DockerSandbox(workspace, opts, image=image, host_home=str(token_home))
        async with sb:
            r = await sb.run(script=f"cat {root}/notes.txt; echo; cat {cats}")
        assert r.stdout.startswith("visible\n"), r.stderr
        assert SECRET not in r.stdout + r.stderr


def itemloop_exec(
    *args: str, items: list[dict[str, object]], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "itemloop.runtime.cli", "exec", *args],
        input="".join(json.dumps(i) + "\n" for i in items),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
    )


@pytest.mark.bwrap
def test_cli_hide_flag(ws_secrets: Path, make: Make) -> None:
    assert make("local", ws_secrets)
    call = {
        "type": "shell_call",
        "call_id": "c1",
        "action": {"commands": ["cat code.py; echo; cat .env.local keys/id"]},
    }
    args = ["--workspace", str(ws_secrets), "--tools", "shell"]
    hide = ["--hide", str(ws_secrets / ".env.local"), "--hide", "keys"]  # keys: from the cwd
    r = itemloop_exec(*args, *hide, items=[call], cwd=ws_secrets)
    assert r.returncode == 0, r.stderr
    (out,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert out["output"][0]["stdout"].startswith("visible\n")
    assert SECRET not in json.dumps(out)
    r = itemloop_exec("--sandbox", "host", "--hide", "keys", items=[call])
    assert r.returncode == 2 and "--hide" in r.stderr
