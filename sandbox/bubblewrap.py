"""`BubblewrapSandbox` (`--sandbox local`): one bubblewrap sandbox per session.

What a command sees: the host filesystem read-only; the workspace (at its host
path) and any `writable_paths` read-write; a private tmpfs at `/tmp` (HOME is
`/tmp/home`) and at `/run` (which hides the host's sockets, Docker's among
them); its own empty network namespace unless `network=True`; its own PID,
IPC, UTS and user namespaces with every capability dropped; an environment
built from an allowlist. The sandbox is started once per session, with the
runner (`_runner.py`, on the host's Python, visible read-only) inside it, so a
command costs a message and a spawn rather than a new set of namespaces. The
runner is PID 1 of the sandbox's PID namespace (`--as-pid-1`): no command can
kill or stop it (`kill -9 -1` does not reach it; the kernel drops a signal
sent to PID 1 from inside its namespace unless PID 1 handles it). The sandbox
dies with the runtime (`--die-with-parent`), and killing it kills everything
in its PID namespace.

The seccomp filter (`seccomp.py`, given to bubblewrap with `--seccomp FD`)
always refuses `pidfd_getfd` and `process_vm_readv`/`writev`, a second wall
(after the runner's own non-dumpability) between commands and the runner's
memory and control socket. With the network off (the default) one more thing
holds:

- Host Unix sockets are out of reach: the filter makes `socket(AF_UNIX, ...)`
  fail with EACCES, so a command cannot `connect()` to a pathname socket
  anywhere on the read-only host filesystem (the network namespace only
  isolates abstract sockets). Stream socketpairs keep working (the runner's
  keepers use them, and the runner itself never calls `socket()`: it gets its
  socket with `--fd`). On an architecture the filter does not know, the
  sandbox refuses to start rather than start without it (with the network on
  it starts unfiltered).

Network on or off, credential locations of the invoking user's home
(`hidden.CREDENTIAL_PATHS`: ~/.ssh, ~/.aws, ~/.npmrc, ~/.codex, ...) and the
user's `hidden_paths` are hidden (`hidden.py`): an empty tmpfs over each
directory, `/dev/null` over each file. The home is the `host_home` argument
(default: $HOME and the user's home in the password database).

Limits. Each session's sandbox runs in its own cgroup (`cgroups.py`: v2
where the host has the controllers there, else v1, as in hybrid mode) with
the memory, process and CPU limits of `SandboxOptions` (`memory_bytes`,
`max_processes`, `cpus`: the same meaning as in `docker`); bubblewrap joins
it through a shell before it forks (`SessionCgroup.join_argv`; as root, the
launcher joins it, before it drops its uid), and it is removed when the
session ends. The private tmpfs mounts (/tmp, /run,
/dev/shm) are sized to `memory_bytes` (their pages count against it too).
Where no cgroup can be made (not root, no delegated subtree) the session
runs without those limits; `notices` says which limits hold, or that none
do. The workspace's total size (`max_workspace_bytes`: with the writable
paths and the deleted files the session's processes still hold, every
inode charged at least 4 KiB) is measured, not bounded by the filesystem
(`workspace_size.py`): before and after each command, and by a watcher, a
task of the session's task group that ends with it, every 0.5 to 5 s while
anything of a command's runs in the sandbox (a detached background job
too; idle, it only reads /proc every 0.5 s). Whenever a measure finds it
over, the sandbox is stopped (killed with everything in it), the command
that grew it gets a note, and commands are refused until files are
removed; the next one then runs in a new sandbox, its note saying why.
Measures never overlap (one lock), and each stops once past the limit. One
that loses its place (a directory moved or replaced while it walks) is
taken again at once, up to `MEASURE_TRIES` times; still incomplete, or
with more descriptors held than a measure examines (`MAX_HELD_FDS`), it
counts as over the limit, and the note says which.

Run as root, bubblewrap alone would make commands root on the host's side
too (it maps the caller's uid: they would own every host file, read-only or
not). So as root, commands run under an unprivileged host uid instead,
`idmap.COMMAND_ID` (2000000000, unallocated; see `idmap.py`): bubblewrap is
started by a launcher (`_idmap_launcher.py`, run as root) that joins the
session's cgroup, stages the workspace and the writable paths as idmapped
mounts (their owner's files show as the command's; what commands create is
stored as the owner's, never chowned) and the tool directories the uid could
not reach otherwise, all in a private mount namespace of its own (nothing is
ever mounted on the host, even after a SIGKILL), then drops to that uid and
execs bubblewrap. Commands then have only the "other" permissions of every
host file: /etc/shadow, /root and any other root-only file are unreadable,
whatever its path. A directory that uid cannot traverse and that holds the
workspace, a writable path or a tool directory (/root holding a pyenv, a
home of mode 0750) is an empty tmpfs inside, with those bound into it. Two
walls stay as well: the seccomp filter refuses set-user-ID and set-group-ID
modes (`seccomp.py`; a file the command makes 4755 in the idmapped workspace
would be a setuid file of the owner's on disk), and the root-only paths are
still hidden by path (`ROOT_ONLY_PATHS`, below), as defence in depth. And
as root, in either mode, commands cannot make user namespaces of their own
(`--disable-userns`): root in one, a command has CAP_SETFCAP over the files
it owns, and a file capability it writes on a workspace file is stored for
the file's owner on disk, root (a privileged program on the host).

Where that cannot be done, the fallback of issue 10 item 6 holds, and the
notice at the start of a run says so and why: itemloop is not root (commands
run as the user, who owns nothing more), the uid cannot read the runner's
Python, or the launcher failed (no idmapped mounts on the workspace's
filesystem, an old kernel: the session falls back when it starts and stays
so). Commands are then root on the host's side; the files only root may read
are hidden by path (`ROOT_ONLY_PATHS`: the password and group shadows,
sudoers, SSH host keys, TLS private keys, keytabs, VPN and Wi-Fi secrets,
Docker's and containerd's state, /root), and the seccomp filter refuses
set-ID modes, so no setuid-root program is left in the workspace. Of /root,
the workspace and writable paths inside it stay visible, and so does,
read-only, each child of /root holding a directory of PATH or the runner's
Python (a pyenv, a cargo: /root/.pyenv), its credential files hidden as in
any home. Not covered by the fallback: a root-only file elsewhere than those
paths is readable (a mode check of the whole tree would be slow and racy).

Restarts. The sandbox is started again when its runner is lost (or stopped
for the workspace's size), and bubblewrap's `--bind` (and the launcher's
`open_tree`) follow symlinks in the path given. So no writable path may
nest with the workspace or another one (`base.check_writable_paths`, at
construction: inside a directory commands may write, a command could move
one's parent and put a link to a host directory in its place), and every
start mounts the workspace and writable paths only if they are still the
directories of the first start (`pinned.py`), else it is refused. The masks
of hidden paths inside the workspace or a writable path cannot be carried
away by a command (`mv .config .config2`): each directory between the root
and the mask is bound on itself, a mount point no command can rename
(`hidden.py`). A restart hides the masks of the starts before it (pinned:
a symlink a mask was found through may be gone), and any new ones. A mask
that would cover a directory the sandbox needs (/usr, the runner's Python,
...: a command planted `.aws -> /usr`), or that a command may have planted
inside one (`.env -> <the runner's stdlib>/encodings`), is not made; the
notices say so, and a failed start's message names the masks reached
through links a command may have planted.

There is no fallback: if bubblewrap is missing or cannot create namespaces,
starting fails with `SandboxUnavailable` saying why and how to fix it.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import anyio
import anyio.abc

from . import workspace_size
from .base import (
    CommandResult,
    SandboxError,
    SandboxOptions,
    SandboxUnavailable,
    check_writable_paths,
)
from .cgroups import DELEGATION, CgroupUnavailable, Limits, SessionCgroup
from .channel import CommandChannel
from .channel_sandbox import ChannelSandbox
from .command import STANDARD_PATH
from .hidden import (
    Mask,
    between,
    covered_need,
    covered_notice,
    inside,
    invoking_homes,
    link_notice,
    linked_notice,
    masks,
    needed,
    normalized,
    planted_need,
    writable_links,
)
from .idmap import (
    COMMAND_ID,
    StagedMount,
    blocked_ancestor,
    launcher_argv,
    owner,
    reachable,
    unavailable_reason,
)
from .pinned import Pins
from .runner_channel import host_runner_argv, runner_env, runner_path, runner_python, spawn_runner
from .seccomp import UnsupportedArch, command_filter
from .workspace_size import Usage, disk_usage, interval, runs_commands, session_pids, shown

HOME = "/tmp/home"
HIDDEN_ROOTS = ("/tmp", "/run")
"""Host directories the sandbox replaces with its own empty tmpfs."""

INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install "
    "bubblewrap; Arch: pacman -S bubblewrap), or choose another sandbox with "
    "--sandbox docker --image IMAGE (or --sandbox host to run unconfined)"
)
NAMESPACE_HINT = (
    "bubblewrap could not create its namespaces. Unprivileged user namespaces are probably "
    "disabled: enable them (sysctl -w kernel.unprivileged_userns_clone=1 on Debian; on "
    "Ubuntu 23.10+ sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor "
    "profile for bwrap; inside a container, run it with user namespaces allowed, e.g. "
    "--security-opt seccomp=unconfined --security-opt apparmor=unconfined), or choose "
    "--sandbox docker --image IMAGE (or --sandbox host to run unconfined)"
)


ROOT_ONLY_PATHS = (
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/security/opasswd",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh/ssh_host_*_key",
    "/etc/ssl/private",
    "/etc/krb5.keytab",
    "/etc/libvirt/secrets",
    "/etc/NetworkManager/system-connections",
    "/etc/wireguard",
    "/etc/docker/key.json",
    "/root",
    "/var/lib/sudo",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/log/btmp",
)
"""Host paths (globs) only root may read, hidden when itemloop runs as root (see the
module docstring); `/root` (the home of root) is hidden except for a workspace in it."""


def root_only_paths() -> list[str]:
    """The existing `ROOT_ONLY_PATHS`, globs expanded."""
    return sorted({p for pattern in ROOT_ONLY_PATHS for p in glob.glob(pattern)})


def bwrap_path() -> str | None:
    return shutil.which("bwrap", path=os.environ.get("PATH", STANDARD_PATH) + ":" + STANDARD_PATH)


def _mask_args(masked: Iterable[Mask]) -> list[str]:
    args: list[str] = []
    for m in masked:
        args += ["--tmpfs", m.path] if m.is_dir else ["--ro-bind", "/dev/null", m.path]
    return args


class BubblewrapSandbox(ChannelSandbox):
    name = "local"
    hide_root_only = True
    """Hide `ROOT_ONLY_PATHS` when run as root: what protects them in the fallback, and
    a second wall when commands run under `COMMAND_ID` (tests turn it off to show the
    uid switch alone keeps /etc/shadow unreadable)."""
    under_command_uid = True
    """As root, run commands under `COMMAND_ID` where that works (tests turn it off to
    exercise the fallback)."""

    def __init__(
        self,
        workspace: Path,
        options: SandboxOptions | None = None,
        *,
        host_home: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__(workspace, options)
        check_writable_paths(str(self.workspace), self.options.writable_paths)
        self.pins = Pins()
        """The workspace and writable paths as they were at the first start (`pinned.py`)."""
        if host_home is None:
            self.host_homes = invoking_homes()
        elif isinstance(host_home, str):
            self.host_homes = [host_home]
        else:
            self.host_homes = list(host_home)
        self._limits_notice: str | None = None
        self.cgroup: SessionCgroup | None = None
        """The cgroup of the running sandbox (None: none could be made, or not started)."""
        self._thorough_failed: str | None = None
        """Why starting under `COMMAND_ID` failed in this session (the fallback holds)."""
        self._overgrowth = _Overgrowth()
        self._linked_masks: list[tuple[Mask, list[str]]] = []
        """The masks of the last start reached through links a command may have planted."""
        self._measuring = anyio.Lock()
        """Held by each measure (the watcher's, `run`'s): two walks never overlap."""

    @property
    def as_root(self) -> bool:
        """itemloop runs as root (bubblewrap alone would map commands to the host's root)."""
        return os.geteuid() == 0

    @property
    def thorough(self) -> bool:
        """As root, commands run (are started) under `COMMAND_ID`, the workspace idmapped."""
        return self.as_root and self.thorough_unavailable() is None

    def thorough_unavailable(self) -> str | None:
        """Why commands cannot run under `COMMAND_ID`; None when they do (or will)."""
        why = self._thorough_failed or unavailable_reason()
        if why is None and not self.under_command_uid:
            why = "turned off (under_command_uid)"
        if why is None:
            why = self._unreachable_interpreter()
        return why

    def _unreachable_interpreter(self) -> str | None:
        """The runner's Python (and its standard library), as `COMMAND_ID` would see it."""
        for path in (runner_python(), os.path.realpath(os.__file__)):
            start = "/"
            blocked = blocked_ancestor(path)
            if blocked is not None:  # its child on the way is shown (`shown_tools`)
                start = os.path.join(blocked, os.path.relpath(path, blocked).split("/")[0])
            if not reachable(path, start):
                return f"uid {COMMAND_ID} cannot read the runner's Python ({path})"
        return None

    @property
    def notices(self) -> list[str]:
        """What a person should know at the start of a run: which protections hold."""
        notes = [*super().notices]
        if self._limits_notice:
            notes.append(self._limits_notice)
        if self.options.max_workspace_bytes is not None:
            notes.append(
                f"local sandbox: workspace limit {shown(self.options.max_workspace_bytes)} "
                "(measured while commands, or what they left, run; not reserved on disk)"
            )
        if self.as_root:
            why = self.thorough_unavailable()
            if why is None:
                notes.append(
                    f"local sandbox: commands run as uid {COMMAND_ID} (not root) on the host's "
                    "side; workspace idmapped (with the writable paths: files of their owner "
                    "show as the command's, files it creates are stored as the owner's); "
                    "set-user-ID and set-group-ID modes are refused (seccomp); files only root "
                    "may read are unreadable, and also hidden by path (/etc/shadow, /root, ...)"
                )
            else:
                notes.append(
                    "local sandbox: commands run as root on the host's side "
                    f"({why}); files only root may read are hidden by path (/etc/shadow, "
                    "/etc/gshadow, /root, SSH host keys, sudoers, ...: "
                    "bubblewrap.ROOT_ONLY_PATHS), and set-user-ID and set-group-ID modes are "
                    "refused (seccomp); other root-only files stay readable"
                )
        return notes

    def home(self) -> str:
        return HOME

    def path_env(self) -> str:
        return os.environ.get("PATH") or STANDARD_PATH

    def bwrap_args(
        self, seccomp_fd: int | None = None, staged: Sequence[StagedMount] = ()
    ) -> list[str]:
        """The bubblewrap options (everything before the command).

        `seccomp_fd`: a descriptor to read the compiled seccomp filter from (see
        `seccomp_filter`), passed to bubblewrap. `staged`: the sources bubblewrap
        binds from where the launcher staged them (see `staged_mounts`).
        """
        source = {m.source: m.staged for m in staged}
        bwrap = bwrap_path()
        if bwrap is None:
            raise SandboxUnavailable(f"the local sandbox needs bubblewrap (bwrap): {INSTALL_HINT}")
        args = [
            bwrap,
            "--die-with-parent",
            "--new-session",
            "--unshare-all",
            "--unshare-user",
            "--cap-drop",
            "ALL",
            "--as-pid-1",  # the runner: no command can kill or stop it
        ]
        if self.as_root:
            # A command that makes a user namespace of its own is root there, and owns
            # what it owns through the idmapped workspace: it could write a file
            # capability (security.capability) that the kernel stores for the file's
            # owner on disk, root, leaving a privileged program on the host.
            args.append("--disable-userns")
        if self.options.network:
            args.append("--share-net")
        # Private tmpfs mounts are RAM: each is sized to the session's memory (their
        # pages are charged to its cgroup too), not half the host's.
        size = self._tmpfs_size()
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        args += [*size, "--tmpfs", "/tmp", "--dir", HOME, *size, "--tmpfs", "/dev/shm"]
        if os.path.isdir("/run"):
            args += [*size, "--tmpfs", "/run"]
            if self.options.network and os.path.isdir("/run/systemd/resolve"):
                # /etc/resolv.conf often points there.
                args += ["--ro-bind", "/run/systemd/resolve", "/run/systemd/resolve"]
        masked = self.masked_paths()
        # A hidden path holding the workspace or a writable path is mounted first,
        # so they show through it; every other mask after the binds, so that one
        # inside the workspace (a workspace that is the home directory) applies.
        args += _mask_args(m for m in masked if m.holds_kept)
        for tools in self.shown_tools():
            args += ["--ro-bind", source.get(tools, tools), tools]
        writable = self.writable_real()
        for extra, real in zip(self.options.writable_paths, writable, strict=True):
            if not os.path.isdir(real):
                raise SandboxUnavailable(f"writable path {extra!r} is not a directory")
            args += ["--bind", source.get(real, real), real]
        ws = str(self.workspace)
        args += ["--bind", source.get(ws, ws), ws]
        inner = [m for m in masked if not m.holds_kept]
        # Each directory between a bound root and a mask in it, bound on itself: a mount
        # point, which no command can rename or remove, so the mask cannot be carried
        # away with it (`hidden.py`).
        for root in (ws, *writable):
            for d in sorted({a for m in inner for a in between(root, m.path)}):
                args += ["--bind", source.get(root, root) + d[len(root) :], d]
        args += _mask_args(inner)
        if seccomp_fd is not None:
            args += ["--seccomp", str(seccomp_fd)]
        args += ["--chdir", ws]
        return args

    def writable_real(self) -> list[str]:
        """The writable paths, resolved as they were at the first start (`pinned.py`)."""
        return self.pins.resolve(self.options.writable_paths, check=False)

    def _tmpfs_size(self) -> list[str]:
        memory = self.options.memory_bytes
        return [] if memory is None else ["--size", str(memory)]

    def masked_paths(self) -> list[Mask]:
        """Credential locations and `hidden_paths` hidden from commands (see `hidden.py`).

        Those commands could see: not under the sandbox's own /tmp and /run,
        unless inside the workspace or a writable path. The credential locations
        and `hidden_paths` are pinned (`Pins.masks`): a restart hides at least those
        of the starts before it. One that would cover a directory the sandbox needs
        is left out, and one reached through a link a command may remove is kept;
        the notices say so.
        """
        keep = [str(self.workspace), *self.writable_real(), *self.shown_tools()]
        kept = [os.path.realpath(k) for k in keep]
        rw = kept[: 1 + len(self.options.writable_paths)]
        bwrap = bwrap_path()
        needs = needed([] if bwrap is None else [bwrap])
        own: list[Mask] = []
        for m in masks(self.host_homes, self.options.hidden_paths, keep):
            need = covered_need(m, needs, kept)
            if need is not None:
                self._note(covered_notice(m, need))
                continue
            planted = planted_need(m, needs, rw)
            if planted is not None:
                self._note(covered_notice(m, *planted))
                continue
            links = writable_links(m, rw)
            if links:
                self._note(link_notice(m, links))
            own.append(m)
        hidden: list[str] = []
        if self.as_root and self.hide_root_only:
            hidden += root_only_paths()
        thorough = self.thorough
        if thorough:
            # What commands must see under a directory their uid cannot traverse: the
            # directory becomes an empty tmpfs, with them bound into it.
            hidden += [b for b in map(blocked_ancestor, kept) if b is not None]
        found = [
            m
            for m in normalized([*self.pins.masks(own), *masks([], hidden, keep)])
            if any(inside(m.path, k) for k in kept)
            or not any(inside(m.path, h) for h in HIDDEN_ROOTS)
        ]
        if thorough:
            found = [m for m in found if self._reachable_mask(m, found)]
        # Named by a failed start's message (`unavailable`): what a command may have planted.
        self._linked_masks = [(m, ls) for m in found if (ls := writable_links(m, rw))]
        return found

    def _note(self, text: str) -> None:
        """Add `text` to the notices once (a restarted sandbox says the same again)."""
        if text not in self._notices:
            self._notices.append(text)

    def _reachable_mask(self, m: Mask, found: Sequence[Mask]) -> bool:
        """Under `COMMAND_ID`, bubblewrap can reach `m`'s place: inside the workspace or a
        writable path, inside a tmpfs mask, or by directories anyone may traverse. (One it
        cannot reach hides a path no command could reach either.)"""
        rw = [str(self.workspace), *self.writable_real()]
        if any(inside(m.path, k) for k in rw):
            return True
        if any(d.is_dir and d.path != m.path and inside(m.path, d.path) for d in found):
            return True
        return blocked_ancestor(m.path) is None

    def shown_tools(self) -> list[str]:
        """Directories kept visible (read-only) inside a hidden root-only directory, or,
        under `COMMAND_ID`, one that uid cannot traverse: for each directory of PATH and
        the runner's Python installation under one (a pyenv or cargo in /root), the
        hidden directory's child that holds it (/root/.pyenv)."""
        if not self.as_root:
            return []
        wanted = [os.path.realpath(d) for d in self.path_env().split(":") if os.path.isabs(d)]
        wanted.append(os.path.realpath(sys.base_prefix))
        hidden = [p for p in root_only_paths() if os.path.isdir(p)] if self.hide_root_only else []
        if self.thorough:
            hidden += [b for b in map(blocked_ancestor, wanted) if b is not None]
        shown: list[str] = []
        for d in wanted:
            for h in hidden:
                if d != h and inside(d, h):
                    child = os.path.join(h, os.path.relpath(d, h).split("/")[0])
                    if os.path.isdir(child) and child not in shown:
                        shown.append(child)
        return shown

    def seccomp_filter(self) -> bytes | None:
        """The compiled seccomp filter; None with the network on, on an unknown architecture."""
        try:
            return command_filter(network=self.options.network)
        except UnsupportedArch as e:
            if self.options.network:
                return None
            raise SandboxUnavailable(
                f"the local sandbox cannot keep commands away from the host's Unix sockets "
                f"here: {e}. Choose --sandbox docker --image IMAGE, or allow the network "
                "(--network; it lets commands reach the host's sockets too)"
            ) from None

    async def open_channel(self, tg: anyio.abc.TaskGroup, stack: AsyncExitStack) -> CommandChannel:
        """Start bubblewrap with the runner inside it, the filter read from a pipe: as
        root under `COMMAND_ID` through the launcher, or, where that fails, as today
        (the reason kept for the notice, and for the rest of the session). The workspace
        and writable paths must still be the directories of the first start."""
        self.pins.resolve([str(self.workspace), *self.options.writable_paths])
        cgroup = self._session_cgroup(stack)
        if self.thorough:
            try:
                return await self._start(tg, stack, cgroup, thorough=True)
            except _ThoroughFailed as e:
                self._thorough_failed = f"starting under uid {COMMAND_ID} failed: {e}"
        return await self._start(tg, stack, cgroup, thorough=False)

    def staged_mounts(self) -> list[StagedMount]:
        """What the launcher stages for bubblewrap: the workspace and the writable paths,
        idmapped from their owners to `COMMAND_ID`; the shown tool directories, plain."""
        rw = [str(self.workspace), *self.writable_real()]
        rw = [p for p in dict.fromkeys(rw) if os.path.isdir(p)]  # bwrap_args refuses the rest
        mounts = [StagedMount(p, f"w{i}", owner(p)) for i, p in enumerate(rw)]
        mounts += [StagedMount(t, f"t{i}", None) for i, t in enumerate(self.shown_tools())]
        return mounts

    async def _start(
        self,
        tg: anyio.abc.TaskGroup,
        stack: AsyncExitStack,
        cgroup: SessionCgroup | None,
        *,
        thorough: bool,
    ) -> CommandChannel:
        program = self.seccomp_filter()
        seccomp_fd = None
        if program is not None:
            seccomp_fd, w = os.pipe()
            try:
                os.write(w, program)  # far below a pipe's capacity
            finally:
                os.close(w)
        try:
            staged = self.staged_mounts() if thorough else []
            args = self.bwrap_args(seccomp_fd, staged)
            hidden = [*HIDDEN_ROOTS, "/dev", "/proc", *(m.path for m in self.masked_paths())]
            script = runner_path()
            if thorough and not reachable(script, self._shown_holder(script)):
                hidden.append(script)  # given as source on the command line instead

            def argv_for(fd: int) -> list[str]:
                argv = [*args, "--", *host_runner_argv(fd, hidden=hidden)]
                if thorough:  # the launcher joins the cgroup, as root, before it forks
                    procs = [] if cgroup is None else cgroup.procs_files
                    return launcher_argv(runner_python(), staged, procs, argv)
                # bubblewrap joins the cgroup before it forks anything.
                return argv if cgroup is None else cgroup.join_argv(argv)

            return await spawn_runner(
                argv_for,
                pass_fds=() if seccomp_fd is None else (seccomp_fd,),
                env=runner_env(self.path_env()),
                cwd=str(self.workspace),
                unavailable=_ThoroughFailed.from_detail if thorough else self.unavailable,
                tg=tg,
                stack=stack,
            )
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)

    def _shown_holder(self, path: str) -> str:
        """The shown tool directory holding `path`, or `/`."""
        return next((t for t in self.shown_tools() if inside(path, t)), "/")

    def _session_cgroup(self, stack: AsyncExitStack) -> SessionCgroup | None:
        """A new cgroup for this session's sandbox (removed when `stack` closes, after
        the sandbox has stopped); None, with a notice saying so, where none can be made."""
        o = self.options
        limits = Limits(o.memory_bytes, o.max_processes, o.cpus)
        if not limits.any():
            self._limits_notice = "local sandbox: no memory, process or CPU limit was asked for"
            return None
        try:
            cgroup = SessionCgroup.create(limits)
        except CgroupUnavailable as e:
            self._limits_notice = (
                f"local sandbox: the memory, process and CPU limits are NOT in force: no "
                f"cgroup could be made ({e}). Run as root, or in a cgroup subtree "
                f"delegated to you ({DELEGATION}), or use --sandbox docker"
            )
            return None
        stack.callback(cgroup.remove)
        self.cgroup = cgroup
        self._limits_notice = f"local sandbox limits: {cgroup.describe()}"
        if cgroup.unheld:
            self._limits_notice += f". To have them all: {DELEGATION}, or use --sandbox docker"
        return cgroup

    # --- the workspace's size --------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start the sandbox; with `max_workspace_bytes`, and its watcher (`_watch`), a task
        of the session's task group: it ends when the sandbox does."""
        await super().__aenter__()
        limit = self.options.max_workspace_bytes
        if limit is not None and self._tg is not None:
            self._tg.start_soon(self._watch, limit)
        return self

    async def around_command(
        self, command: Callable[[], Awaitable[CommandResult]]
    ) -> CommandResult:
        """Each command, within `max_workspace_bytes` when it is set: measured before
        and after, and by the watcher while it runs. Over the limit, the sandbox is stopped
        (everything in it; the next command starts a new one) and commands are refused
        until files are removed; one that grows it past it gets a note saying so."""
        limit = self.options.max_workspace_bytes
        if limit is None:
            return await command()
        usage, _ = await self._measure(limit)
        if _over(usage, limit):
            # Whatever runs there (a background writer) stops writing, what it holds is
            # freed and nothing moves directories any more: a new sandbox starts for the
            # next command, if the workspace alone is within the limit.
            live = self._live() is not None
            await self._stop(usage)
            if live:
                usage, _ = await self._measure(limit)
            if _over(usage, limit):
                what = "commands do not run"
                if live:
                    what = f"its sandbox was stopped, and {what}"
                raise SandboxError(self._over_message(usage, limit, what))
        grown = self._overgrowth
        stops = grown.stops
        result = await command()
        if grown.stops == stops:  # the watcher did not stop it meanwhile
            usage, _ = await self._measure(limit)
            if not _over(usage, limit):
                return result
            await self._stop(usage)
        assert grown.usage is not None
        return result.with_note(
            self._over_message(grown.usage, limit, "this command's sandbox was stopped")
        )

    async def lost_reason(
        self, channel: CommandChannel, outcome: SandboxError | CommandResult
    ) -> str | None:
        """As `ChannelSandbox.lost_reason`, saying why when the workspace's size stopped it."""
        why = await super().lost_reason(channel, outcome)
        grown = self._overgrowth
        if why is not None and channel is grown.channel:
            if grown.usage is not None and grown.usage.incomplete:
                return (
                    "it was stopped: the workspace kept changing while it was measured, "
                    "--max-workspace-size"
                )
            if grown.usage is not None and grown.usage.too_many_held:
                return (
                    "it was stopped: its processes held too many open files to measure "
                    "the workspace, --max-workspace-size"
                )
            return "it was stopped: the workspace went over its limit, --max-workspace-size"
        return why

    async def _measure(self, limit: int) -> tuple[Usage, float]:
        """The workspace and writable paths, with the deleted files the session holds, up to
        `limit` (past it, the measure stops); measured again while a walk loses its place
        (`Usage.incomplete`), up to `MEASURE_TRIES` times. One measure at a time: the
        watcher's and `run`'s never overlap."""
        roots = [str(self.workspace), *self.writable_real()]
        async with self._measuring:
            started = time.monotonic()
            for _ in range(workspace_size.MEASURE_TRIES):
                usage = await anyio.to_thread.run_sync(
                    lambda: disk_usage(*roots, pids=self._session_pids(), limit=limit)
                )
                if not usage.incomplete or usage.total > limit or usage.too_many_held:
                    break  # complete, or over the limit all the same
            return usage, time.monotonic() - started

    def _live(self) -> anyio.abc.Process | None:
        """The running sandbox's bubblewrap (None: not started, lost or stopped)."""
        process = getattr(self.channel, "process", None)
        if isinstance(process, anyio.abc.Process) and process.returncode is None:
            return process
        return None

    def _session_pids(self) -> set[int]:
        """The sandbox's processes: its cgroup's, else bubblewrap and its descendants."""
        pids = set() if self.cgroup is None else self.cgroup.pids()
        process = self._live()
        if not pids and process is not None:
            pids = session_pids(process.pid)
        return pids

    def _runs_commands(self) -> bool:
        """The sandbox holds a process besides its own (bubblewrap, the runner and its
        keepers): a command, or anything one left running (`runs_commands`)."""
        process = self._live()
        return process is not None and runs_commands(process.pid, self._session_pids())

    async def _stop(self, usage: Usage) -> None:
        """Kill the sandbox for `usage`, over the limit (everything in its PID namespace dies
        with it; the next command starts a new one), and wait, briefly, until its processes
        have closed their files."""
        grown = self._overgrowth
        grown.stops, grown.usage, grown.channel = grown.stops + 1, usage, self.channel
        pids = self._session_pids()
        process = self._live()
        if process is not None:
            process.kill()
        with anyio.move_on_after(5):  # a process stuck in the kernel: go on without it
            for pid in pids:
                await _exited(pid)

    async def _watch(self, limit: int) -> None:
        """For the whole session: while the sandbox holds anything of a command's (one that
        runs, or what one left running), measure every `interval`, and stop the sandbox past
        `limit`; otherwise only look whether it does, every `WATCH_INTERVAL_S` (a few
        reads of /proc, no walk). A measure that fails (itemloop out of descriptors) is
        tried again at the next interval: raised here, it would end the session's task
        group; the measures around each command raise it to the caller."""
        walk_s = 0.0
        while True:
            await anyio.sleep(interval(walk_s))
            if not self._runs_commands():
                walk_s = 0.0
                continue
            try:
                usage, walk_s = await self._measure(limit)
            except OSError:
                continue
            if _over(usage, limit):
                await self._stop(usage)

    def _over_message(self, usage: Usage, limit: int, what: str) -> str:
        done = f": {what}" if what else ""
        unknown = f"so its size against its limit of {shown(limit)} (--max-workspace-size)"
        if usage.total <= limit and usage.too_many_held:
            return (
                f"itemloop: the sandbox's processes hold more than "
                f"{workspace_size.MAX_HELD_FDS} open files, {unknown} is not known (deleted "
                f"files they hold count){done}. Hold fewer files open."
            )
        if usage.total <= limit and usage.incomplete:
            return (
                "itemloop: the workspace (with the writable paths) kept changing while it was "
                f"measured (directories moved or replaced during "
                f"{workspace_size.MEASURE_TRIES} measures in a row), {unknown} is not "
                f"known{done}. Do not move directories in it while commands run."
            )
        at_least = "at least " if usage.past_limit else ""
        held = f", {shown(usage.held)} of it in deleted files still open" if usage.held else ""
        unread = ""
        if usage.unreadable:
            names = ", ".join(usage.unreadable[:3])[:300]
            unread = f" and directories itemloop cannot read ({names}: make them readable)"
        return (
            "itemloop: the workspace (with the writable paths) holds "
            f"{at_least}{shown(usage.total)}"
            f"{held}{unread}, over its limit of {shown(limit)} (--max-workspace-size){done}. "
            "Remove files (apply_patch can delete them) to run commands again."
        )

    def unavailable(self, detail: str) -> SandboxUnavailable:
        """Why the sandbox did not start, with the masks a command may have planted."""
        low = detail.lower()
        linked = linked_notice(self._linked_masks)
        linked = f"\n{linked}" if linked else ""
        if any(w in low for w in ("namespace", "permission", "operation not permitted", "uid map")):
            return SandboxUnavailable(
                f"the local sandbox did not start: {detail}\n{NAMESPACE_HINT}{linked}"
            )
        return SandboxUnavailable(
            f"the local sandbox (bubblewrap) did not start: {detail}\n"
            "If bubblewrap itself is the problem, choose --sandbox docker --image IMAGE "
            f"(or --sandbox host to run unconfined).{linked}"
        )


@dataclass
class _Overgrowth:
    """The session's stops for the workspace's size: how many, the last measure past the
    limit that caused one, and the channel it stopped (`lost_reason` names why)."""

    stops: int = 0
    usage: Usage | None = None
    channel: CommandChannel | None = None


def _over(usage: Usage, limit: int) -> bool:
    """Past `limit`; a directory that could not be read, a walk that lost its place, and
    more held descriptors than can be examined count as past it (what they hide is
    unknown: `workspace_size.py`)."""
    return usage.total > limit or bool(usage.unreadable) or usage.incomplete or usage.too_many_held


async def _exited(pid: int) -> None:
    """Until `pid` has exited (its files are closed by then), through a pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return  # gone already
    try:
        await anyio.wait_readable(fd)
    finally:
        os.close(fd)


class _ThoroughFailed(SandboxUnavailable):
    """Starting under `COMMAND_ID` failed; the fallback is tried (the message says why)."""

    @classmethod
    def from_detail(cls, detail: str) -> _ThoroughFailed:
        lines = [line for line in detail.splitlines() if line.strip()]
        return cls((lines[0] if lines else detail)[:300])
