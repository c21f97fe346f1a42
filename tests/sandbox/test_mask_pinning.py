"""Masks stay for the whole session, and a mask never breaks the sandbox.

The attacks (security review): the workspace a home with stow-style dotfiles
(`.ssh -> dotfiles/ssh`): the mask went on the link's target, the link itself
was no mount point, so a command removed it and forced a restart (`kill -9
-1` in docker; in local, the workspace-size limit or a lost runner), and the
restarted sandbox, resolving ~/.ssh to nothing, showed dotfiles/ssh whole.
And a command that planted `.aws -> /usr` in a home workspace made every
later local session mask /usr and fail with a cryptic `execvp ... python3`.
Real bubblewrap (as root: through the idmap launcher, and in the fallback),
a real Docker engine (fast and exec paths).
"""

from __future__ import annotations

import encodings
import os
import uuid
from pathlib import Path

import pytest
from restart_kit import KINDS, Make, restart, sandbox

from itemloop.sandbox.base import SandboxError, SandboxOptions
from itemloop.sandbox.bubblewrap import BubblewrapSandbox

pytestmark = pytest.mark.anyio

SECRET = "itemloop-hidden-" + uuid.uuid4().hex
LOCAL_KINDS = KINDS[:2]
STDLIB = os.path.dirname(os.path.realpath(os.__file__))
"""The runner's standard library (the runner runs on this interpreter)."""


@pytest.fixture
def dotfiles_home(var_tmp: Path) -> Path:
    """A home with its secrets in a stow-style dotfiles directory, linked from the
    credential locations: a directory, a directory under .config, a file."""
    home = var_tmp / "home"
    for d in ("dotfiles/ssh", "dotfiles/config/gh"):
        (home / d).mkdir(parents=True)
    (home / "dotfiles/ssh/id_rsa").write_text(SECRET)
    (home / "dotfiles/config/gh/hosts.yml").write_text(SECRET)
    (home / "dotfiles/npmrc").write_text(SECRET)
    (home / "dotfiles/notes").write_text("visible")
    (home / ".ssh").symlink_to("dotfiles/ssh")
    (home / ".config").symlink_to("dotfiles/config")
    (home / ".npmrc").symlink_to("dotfiles/npmrc")
    for p in [home, *home.rglob("*")]:
        if not p.is_symlink():
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return home


CATS = (
    "cat dotfiles/notes; echo; cat dotfiles/ssh/id_rsa dotfiles/config/gh/hosts.yml dotfiles/npmrc"
)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_mask_found_through_a_link_stays_when_the_link_is_removed(
    make: Make, kind: str, dotfiles_home: Path
) -> None:
    home = dotfiles_home
    sb = sandbox(make, kind, home, SandboxOptions(), host_home=str(home))
    async with sb:
        r = await sb.run(script=CATS)
        assert r.stdout.startswith("visible\n"), r
        assert SECRET not in r.stdout + r.stderr, r
        r = await sb.run(script="rm .ssh .config .npmrc && echo removed")
        assert r.stdout == "removed\n", r  # links are no mount points: a command may
        await restart(sb)
        await sb.run(["true"])  # finds it lost (and may restart it already)
        r = await sb.run(script=CATS)
        assert r.stdout.startswith("visible\n"), r  # a new sandbox, the same workspace
        assert SECRET not in r.stdout + r.stderr, r
        # The notice names the link and its target, and the --hide that lasts.
        notes = "\n".join(sb.notices)
        for link, target in ((".ssh", "dotfiles/ssh"), (".npmrc", "dotfiles/npmrc")):
            assert f"{home}/{link} -> {target}" in notes, notes
            assert f"--hide {home}/{target} keeps it hidden for good" in notes, notes
        assert f"{home}/.config -> dotfiles/config" in notes, notes
    assert (home / "dotfiles/ssh/id_rsa").read_text() == SECRET


@pytest.mark.parametrize("kind", KINDS)
async def test_no_link_notice_for_a_target_the_user_hides(
    make: Make, kind: str, dotfiles_home: Path
) -> None:
    home = dotfiles_home
    hide = (str(home / "dotfiles/ssh"),)
    sb = sandbox(make, kind, home, SandboxOptions(hidden_paths=hide), host_home=str(home))
    async with sb:
        r = await sb.run(script="cat dotfiles/ssh/id_rsa")
        assert SECRET not in r.stdout + r.stderr, r
        notes = "\n".join(sb.notices)
    assert f"{home}/.ssh -> dotfiles/ssh" not in notes, notes
    assert f"{home}/.npmrc -> dotfiles/npmrc" in notes, notes  # not hidden by the user


@pytest.mark.parametrize("kind", LOCAL_KINDS)
async def test_a_link_to_a_system_directory_is_not_masked_and_said(
    make: Make, kind: str, var_tmp: Path
) -> None:
    home = var_tmp / "home"
    home.mkdir()
    os.chmod(home, 0o755)
    sb = sandbox(make, kind, home, SandboxOptions(), host_home=str(home))
    async with sb:  # a command plants the links for the sessions after it
        r = await sb.run(script=f"ln -s /usr .aws && ln -s {STDLIB} .kube && echo planted")
        assert r.stdout == "planted\n", r
    sb = sandbox(make, kind, home, SandboxOptions(), host_home=str(home))
    async with sb:
        r = await sb.run(script=f"ls /usr/bin/env {STDLIB}/os.py")
        assert r.exit_code == 0, r  # the sandbox started, with /usr and the runner's Python
        notes = "\n".join(sb.notices)
    assert f"{home}/.aws is a link to /usr: NOT hidden" in notes, notes
    assert f"remove the link {home}/.aws" in notes, notes
    assert f"{home}/.kube is a link to {STDLIB}: NOT hidden" in notes, notes


@pytest.mark.parametrize("kind", KINDS)
async def test_a_pinned_mask_now_reached_through_a_link_stops_the_restart(
    make: Make, kind: str, var_tmp: Path
) -> None:
    """A pinned mask is made again only where its path still leads without a link: one
    put through a link would fall on the link's target, and show the mask's own files
    wherever they went."""
    ws = var_tmp / "ws"
    (ws / "keys" / "ssh").mkdir(parents=True)
    (ws / "keys" / "ssh" / "id").write_text(SECRET)
    (ws / "other" / "ssh").mkdir(parents=True)
    for p in [ws, *ws.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    hide = (str(ws / "keys" / "ssh"),)
    sb = sandbox(make, kind, ws, SandboxOptions(hidden_paths=hide), host_home=str(ws))
    async with sb:
        r = await sb.run(script="cat keys/ssh/id")
        assert SECRET not in r.stdout + r.stderr, r
        # Swapped on the host's side while the sandbox runs (a command cannot: keys is
        # a mount point in its sandbox).
        (ws / "keys").rename(ws / "keys.old")
        (ws / "keys").symlink_to("other")
        await restart(sb)
        with pytest.raises(SandboxError, match="now reached through a link"):
            for _ in range(2):  # the first may only find the old one lost
                await sb.run(script="cat keys.old/ssh/id")


ENCODINGS = os.path.dirname(os.path.realpath(encodings.__file__))
"""A directory inside the runner's standard library, holding nothing it needs by name."""


@pytest.mark.parametrize("kind", LOCAL_KINDS)
async def test_a_link_into_the_runner_s_python_or_proc_is_not_masked_and_said(
    make: Make, kind: str, var_tmp: Path
) -> None:
    """A hidden path a command can create (`--hide WS/.env`, absent at start) planted as a
    link INTO a directory the sandbox needs (the runner's stdlib `encodings`, /proc/self):
    a tmpfs there killed the runner at every later start, this session's restart
    included, with a message that did not name the link."""
    ws = var_tmp / "ws"
    ws.mkdir()
    os.chmod(ws, 0o755)
    hide = (str(ws / ".env"), str(ws / ".proc"))
    sb = sandbox(make, kind, ws, SandboxOptions(hidden_paths=hide))
    async with sb:
        r = await sb.run(script=f"ln -s {ENCODINGS} .env && ln -s /proc/self .proc && echo ok")
        assert r.stdout == "ok\n", r
        await restart(sb)
        await sb.run(["true"])  # finds it lost (and may restart it already)
        r = await sb.run(["echo", "restarted"])
        assert r.stdout == "restarted\n", r
    sb = sandbox(make, kind, ws, SandboxOptions(hidden_paths=hide))
    async with sb:
        r = await sb.run(script=f"ls {ENCODINGS}/__init__.py")
        assert r.exit_code == 0, r  # the sandbox started, the stdlib whole
        notes = "\n".join(sb.notices)
    assert f"{ws}/.env is a link to {ENCODINGS}: NOT hidden" in notes, notes
    assert f"remove the link {ws}/.env" in notes, notes
    assert f"{ws}/.proc is a link to /proc/" in notes, notes
    assert f"remove the link {ws}/.proc" in notes, notes


@pytest.mark.parametrize("kind", LOCAL_KINDS)
async def test_a_failed_start_names_the_masks_reached_through_writable_links(
    make: Make, kind: str, var_tmp: Path
) -> None:
    """Should a start fail all the same, its message names the masks a command may have
    planted, so that the user knows what to remove."""
    ws, elsewhere = var_tmp / "ws", var_tmp / "elsewhere"
    for d in (ws, elsewhere):
        d.mkdir()
        os.chmod(d, 0o755)
    (ws / ".env").symlink_to(elsewhere)
    sb = sandbox(make, kind, ws, SandboxOptions(hidden_paths=(str(ws / ".env"),)))
    async with sb:
        r = await sb.run(["ls", str(elsewhere)])
        assert r.exit_code == 0, r
        assert isinstance(sb, BubblewrapSandbox)
        message = str(sb.unavailable("the runner exited at start"))
    assert "the runner exited at start" in message, message
    assert f"{ws}/.env -> {elsewhere}" in message, message
