"""Commands under an unprivileged host uid, the workspace through idmapped mounts.

Run as root, bubblewrap maps the caller's uid into its user namespace, so
commands would be root on the host's side and own every host file. Instead,
`local` starts bubblewrap through a launcher (`_idmap_launcher.py`, run as
root on the host's Python) that drops to `COMMAND_ID` first; bubblewrap, as
that uid, makes its own unprivileged user namespace. The uid is fixed and
unallocated: 2000000000, above systemd's container range (up to 1879048191)
and below its foreign range (0x7FFE0000) and the signed 32-bit limit; never in
/etc/passwd or /etc/group (where it is, this mode is not used). It owns no
file on disk: what it creates in the workspace is stored as the workspace's
owner, and its tmpfs mounts are private. Its gid is the same number, with no
supplementary groups. So on the host's side a command has only the "other"
permissions of every file: it cannot read /etc/shadow, write a host file, or
signal a process of another uid.

The workspace and each writable path stay writable through an idmapped mount
(`mount_setattr(MOUNT_ATTR_IDMAP)`, kernel 5.12+ and a filesystem that
supports it: ext4, xfs, btrfs, tmpfs, ...): files of the path's owner (its
top directory's uid and gid) show as the command's, and files the command
creates are stored as the owner's. Files of any other owner in there show
as `nobody` and are only as writable as their "other" bits say. Ownership
on disk is never changed.

What the uid cannot reach is staged: each bubblewrap source (the workspace,
the writable paths, the tool directories under a directory it cannot
traverse, such as a pyenv in /root) is cloned by the launcher, as root, onto
a private tmpfs over `STAGE_DIR` in a mount namespace of its own, and
bubblewrap binds it from there. A directory the uid cannot traverse that
holds one of them (/root, a home of mode 0750) becomes an empty tmpfs in the
sandbox, with what it must show bound into it (`blocked_ancestor`).

Not covered: ACLs (the checks here read the mode bits only; an ACL that
denies "other" makes a tool unreachable, one that grants more is harmless);
files itemloop itself writes as root into a workspace owned by another user
are root's, and so `nobody`'s inside.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from ._idmap_launcher import MACHINES

COMMAND_ID = 2_000_000_000
"""The host uid and gid of commands when itemloop runs as root (see the module docstring)."""
STAGE_DIR = "/tmp"
"""Where the launcher attaches its clones, in its own mount namespace only: bubblewrap
covers /tmp with its own tmpfs, so commands never see them there."""


@dataclass(frozen=True, slots=True)
class StagedMount:
    source: str
    """The host path (resolved)."""
    name: str
    """Its directory under `STAGE_DIR` in the launcher's mount namespace."""
    owner: tuple[int, int] | None
    """Idmapped from this uid and gid to `COMMAND_ID`; None: a read-only plain clone."""

    @property
    def staged(self) -> str:
        return os.path.join(STAGE_DIR, self.name)


def unavailable_reason() -> str | None:
    """Why commands cannot run under `COMMAND_ID` here; None when they can be tried."""
    if os.geteuid() != 0:
        return "itemloop is not running as root"
    if os.uname().machine not in MACHINES:
        return f"the mount API is not known to itemloop on {os.uname().machine}"
    taken = allocated(COMMAND_ID)
    if taken is not None:
        return taken
    if not os.path.isdir(STAGE_DIR):
        return f"there is no {STAGE_DIR}"
    return None


def allocated(id_: int) -> str | None:
    """Where `id_` is allocated to a user or group ("... in /etc/passwd"), or None."""
    for lookup, what in ((pwd.getpwuid, "/etc/passwd"), (grp.getgrgid, "/etc/group")):
        try:
            lookup(id_)
        except KeyError:
            continue
        return f"id {id_} is allocated in {what}"
    return None


def owner(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_uid, st.st_gid


def others_may(st: os.stat_result, bits: int) -> bool:
    """The "other" class of the mode grants `bits` (of `stat.S_IROTH | S_IWOTH | S_IXOTH`)."""
    return st.st_mode & bits == bits


def ancestors(path: str) -> list[str]:
    """The directories above `path` (absolute, resolved), from `/` down."""
    found = ["/"]
    for part in path.strip("/").split("/")[:-1]:
        found.append(os.path.join(found[-1], part))
    return found if path != "/" else []


def blocked_ancestor(path: str) -> str | None:
    """The topmost directory above `path` (resolved) that a stranger cannot traverse."""
    for d in ancestors(path):
        try:
            if not others_may(os.stat(d), stat.S_IXOTH):
                return d
        except OSError:
            return None
    return None


def reachable(path: str, start: str = "/") -> bool:
    """A stranger can traverse every directory from `start` down to `path`'s parent
    and read `path` (and execute it, when it is executable for its owner)."""
    try:
        rel = os.path.relpath(os.path.dirname(path), start)
        current = start
        dirs = [current]
        if rel != ".":
            for part in rel.split("/"):
                current = os.path.join(current, part)
                dirs.append(current)
        if not all(others_may(os.stat(d), stat.S_IXOTH) for d in dirs):
            return False
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    want = stat.S_IROTH | (stat.S_IXOTH if st.st_mode & stat.S_IXUSR else 0)
    return others_may(st, want)


def launcher_path() -> str:
    return os.path.realpath(str(resources.files(__package__).joinpath("_idmap_launcher.py")))


def launcher_argv(
    python: str, mounts: Sequence[StagedMount], procs: Sequence[str], bwrap_argv: Sequence[str]
) -> list[str]:
    """The argv that runs `bwrap_argv` under `COMMAND_ID` with `mounts` staged, after
    joining the cgroup of `procs` (its `cgroup.procs` files)."""
    args = [str(COMMAND_ID), str(COMMAND_ID), STAGE_DIR]
    for p in procs:
        args += ["--procs", p]
    for m in mounts:
        owner = "-" if m.owner is None else f"{m.owner[0]}:{m.owner[1]}"
        args += ["--mount", m.name, owner, m.source]
    return [python, "-I", "-S", launcher_path(), *args, "--", *bwrap_argv]
