"""A sandbox mounts the directories it started with, at every restart, and masks stay put.

The attacks (security review): a writable path inside the workspace, or the
workspace inside a writable path, let a command rename the mounted
directory's parent and put a link to any host directory in its place; the
restarted sandbox (after `kill -9 -1` in docker, a lost runner in local)
mounted the link's target read-write. And a command that renamed the parent
of a hidden path inside the workspace (`mv .config .config2`, the workspace
a home) carried the mask along: the restarted sandbox showed the hidden
files at the new name. Real bubblewrap (as root: through the idmap launcher,
and in the fallback), a real Docker engine (fast and exec paths).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from restart_kit import KINDS, Make, restart, sandbox

from itemloop.sandbox.base import SandboxError, SandboxOptions
from itemloop.sandbox.bubblewrap import BubblewrapSandbox
from itemloop.sandbox.channel_sandbox import ChannelSandbox
from itemloop.sandbox.docker_sandbox import DockerSandbox

pytestmark = pytest.mark.anyio

SECRET = "itemloop-hidden-" + uuid.uuid4().hex


@pytest.mark.parametrize("backend", [BubblewrapSandbox, DockerSandbox])
def test_nesting_writable_paths_are_refused(backend: type[ChannelSandbox], tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (tmp_path / "a" / "b").mkdir(parents=True)
    cases = {
        "is inside the workspace": [str(ws / "sub")],
        "holds the workspace": [str(tmp_path)],
        "is the workspace": [str(ws)],
        "nest": [str(tmp_path / "a"), str(tmp_path / "a" / "b")],
    }
    for why, writable in cases.items():
        options = SandboxOptions(writable_paths=writable)
        with pytest.raises(SandboxError, match=why):
            if backend is DockerSandbox:
                DockerSandbox(ws, options, image="itemloop-test:busybox")
            else:
                backend(ws, options)
    # Side by side, and the same path twice, are fine.
    ok = [str(tmp_path / "a"), str(tmp_path / "a")]
    if backend is DockerSandbox:
        DockerSandbox(ws, SandboxOptions(writable_paths=ok), image="itemloop-test:busybox")
    else:
        backend(ws, SandboxOptions(writable_paths=ok))


@pytest.mark.parametrize("kind", KINDS)
async def test_a_writable_path_replaced_by_a_link_is_not_mounted_again(
    make: Make, kind: str, var_tmp: Path
) -> None:
    ws, extra, outside = var_tmp / "ws", var_tmp / "extra", var_tmp / "outside"
    for d in (ws, extra, outside):
        d.mkdir()
    (outside / "victim").write_text("host file")
    sb = sandbox(make, kind, ws, SandboxOptions(writable_paths=[str(extra)]))
    async with sb:
        r = await sb.run(["sh", "-c", f"echo mine > {extra}/f"])
        assert r.exit_code == 0, r
        # Swapped while the sandbox runs (by anything that could write there).
        extra.rename(var_tmp / "extra.old")
        extra.symlink_to(outside)
        await restart(sb)
        with pytest.raises(SandboxError, match="no longer the directory the sandbox started"):
            for _ in range(2):  # the first may only find the old one lost
                await sb.run(["sh", "-c", f"echo pwned > {extra}/victim"])
    assert (outside / "victim").read_text() == "host file"
    assert (var_tmp / "extra.old" / "f").read_text() == "mine\n"


@pytest.mark.parametrize("kind", KINDS)
async def test_a_hidden_path_in_the_workspace_cannot_be_moved_out_from_its_mask(
    make: Make, kind: str, var_tmp: Path
) -> None:
    home = var_tmp / "home"
    (home / ".config" / "gh").mkdir(parents=True)
    (home / ".config" / "gh" / "hosts.yml").write_text(SECRET)
    (home / ".config" / "other").write_text("visible")
    sb = sandbox(make, kind, home, SandboxOptions(), host_home=str(home))
    root = sb.workspace_mount
    async with sb:
        r = await sb.run(["sh", "-c", "cat .config/other; cat .config/gh/hosts.yml"])
        assert r.stdout == "visible", r
        r = await sb.run(["sh", "-c", "mv .config .config2 || mv .config/gh .config/gh2"])
        assert r.exit_code != 0, r
        await restart(sb)
        await sb.run(["true"])  # finds it lost (and may restart it already)
        r = await sb.run(["sh", "-c", f"cat {root}/.config*/gh*/hosts.yml; ls -a {root}"])
        assert SECRET not in r.stdout + r.stderr, r
    assert (home / ".config" / "gh" / "hosts.yml").read_text() == SECRET


@pytest.mark.bwrap
def test_a_policy_grant_inside_the_workspace_still_runs(make: Make, tmp_path: Path) -> None:
    """A rule granting a writable path inside the workspace (writable already) is not
    refused with the nesting writable paths: the toolset leaves it out."""
    from helpers import message, write_script
    from test_policy_runs import CLI, env, shell

    workspace = tmp_path / "ws"
    (workspace / "cache").mkdir(parents=True)
    assert make("local", workspace)  # skips where bubblewrap cannot run
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'approval = "never"\n[[rule]]\ncommand = ["touch"]\naction = "allow"\n'
        f'writable = ["{workspace / "cache"}"]\n'
    )
    script = write_script(tmp_path / "t.jsonl", [shell("c1", "touch cache/f")], [message("done")])
    r = subprocess.run(
        [*CLI, "run", "go", "--script", str(script), "--tools", "shell", "--json",
         "--workspace", str(workspace), "--policy", str(policy)],
        capture_output=True, text=True, env=env(), timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    finished = json.loads(r.stdout.splitlines()[-1])
    assert (finished["kind"], finished["error"]) == ("run_finished", None), finished
    assert (workspace / "cache" / "f").exists()
