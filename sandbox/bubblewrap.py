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
memory and control socket. With the network off (the default) two more things
hold:

- Host Unix sockets are out of reach: the filter makes `socket(AF_UNIX, ...)`
  fail with EACCES, so a command cannot `connect()` to a pathname socket
  anywhere on the read-only host filesystem (the network namespace only
  isolates abstract sockets). Stream socketpairs keep working (the runner's
  keepers use them, and the runner itself never calls `socket()`: it gets its
  socket with `--fd`). On an architecture the filter does not know, the
  sandbox refuses to start rather than start without it (with the network on
  it starts unfiltered).
- Well-known credential locations of the invoking user's home that exist
  (`CREDENTIAL_PATHS`: ~/.ssh, ~/.gnupg, ~/.aws, ~/.netrc, ...) are hidden:
  an empty tmpfs over each directory, `/dev/null` over each file. One that
  holds the workspace or a writable path is left alone. The home is the
  `host_home` argument (default: $HOME and the user's home in the password
  database).

There is no fallback: if bubblewrap is missing or cannot create namespaces,
starting fails with `SandboxUnavailable` saying why and how to fix it.
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import anyio.abc

from .base import SandboxOptions, SandboxUnavailable
from .channel import CommandChannel
from .channel_sandbox import ChannelSandbox
from .command import STANDARD_PATH
from .runner_channel import host_runner_argv, runner_env, spawn_runner
from .seccomp import UnsupportedArch, command_filter

HOME = "/tmp/home"
HIDDEN_ROOTS = ("/tmp", "/run")
"""Host directories the sandbox replaces with its own empty tmpfs."""

CREDENTIAL_PATHS = (
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".config/gh",
    ".docker",
    ".kube",
    ".netrc",
    ".pypirc",
    ".git-credentials",
)
"""Relative to the invoking user's home: hidden from commands while the network is off."""

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


def bwrap_path() -> str | None:
    return shutil.which("bwrap", path=os.environ.get("PATH", STANDARD_PATH) + ":" + STANDARD_PATH)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def invoking_homes() -> list[str]:
    """The invoking user's home directories: $HOME and the password database's."""
    homes = [os.path.expanduser("~")]
    try:
        homes.append(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        pass
    return [h for h in dict.fromkeys(homes) if h and os.path.isabs(h)]


def credential_masks(homes: Sequence[str], keep: Sequence[str]) -> list[tuple[str, bool]]:
    """(host path, is a directory) of every credential location to hide.

    Only those that exist; symlinks are resolved (the mount goes on the target);
    none under the sandbox's own /tmp and /run, none that holds a path of `keep`.
    """
    keep_real = [os.path.realpath(k) for k in keep]
    masks: dict[str, bool] = {}
    for home in homes:
        for rel in CREDENTIAL_PATHS:
            path = os.path.realpath(os.path.join(home, rel))
            if not os.path.lexists(path) or path in masks:
                continue
            if any(_inside(path, h) for h in HIDDEN_ROOTS):
                continue
            if any(_inside(k, path) for k in keep_real):
                continue
            if os.path.isdir(path):
                masks[path] = True
            elif os.path.isfile(path):
                masks[path] = False
    return sorted(masks.items())


class BubblewrapSandbox(ChannelSandbox):
    name = "local"

    def __init__(
        self,
        workspace: Path,
        options: SandboxOptions | None = None,
        *,
        host_home: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__(workspace, options)
        if host_home is None:
            self.host_homes = invoking_homes()
        elif isinstance(host_home, str):
            self.host_homes = [host_home]
        else:
            self.host_homes = list(host_home)

    def home(self) -> str:
        return HOME

    def path_env(self) -> str:
        return os.environ.get("PATH") or STANDARD_PATH

    def bwrap_args(self, seccomp_fd: int | None = None) -> list[str]:
        """The bubblewrap options (everything before the command).

        `seccomp_fd`: a descriptor to read the compiled seccomp filter from (see
        `seccomp_filter`), passed to bubblewrap.
        """
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
        if self.options.network:
            args.append("--share-net")
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        args += ["--dir", HOME]
        if os.path.isdir("/run"):
            args += ["--tmpfs", "/run"]
            if self.options.network and os.path.isdir("/run/systemd/resolve"):
                # /etc/resolv.conf often points there.
                args += ["--ro-bind", "/run/systemd/resolve", "/run/systemd/resolve"]
        for extra in self.options.writable_paths:
            real = os.path.realpath(extra)
            if not os.path.isdir(real):
                raise SandboxUnavailable(f"writable path {extra!r} is not a directory")
            args += ["--bind", real, real]
        ws = str(self.workspace)
        args += ["--bind", ws, ws]
        # After the binds, so that a mask inside the workspace (a workspace that is
        # the home directory) still applies to what commands see.
        for path, is_dir in self.masked_paths():
            if is_dir:
                args += ["--tmpfs", path]
            else:
                args += ["--ro-bind", "/dev/null", path]
        if seccomp_fd is not None:
            args += ["--seccomp", str(seccomp_fd)]
        args += ["--chdir", ws]
        return args

    def masked_paths(self) -> list[tuple[str, bool]]:
        """Credential locations hidden from commands: (host path, is a directory)."""
        if self.options.network:
            return []
        keep = [str(self.workspace), *self.options.writable_paths]
        return credential_masks(self.host_homes, keep)

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
        """Start bubblewrap with the runner inside it, the filter read from a pipe."""
        program = self.seccomp_filter()
        seccomp_fd = None
        if program is not None:
            seccomp_fd, w = os.pipe()
            try:
                os.write(w, program)  # far below a pipe's capacity
            finally:
                os.close(w)
        try:
            args = self.bwrap_args(seccomp_fd)
            hidden = [*HIDDEN_ROOTS, "/dev", "/proc", *(p for p, _ in self.masked_paths())]
            return await spawn_runner(
                lambda fd: [*args, "--", *host_runner_argv(fd, hidden=hidden)],
                pass_fds=() if seccomp_fd is None else (seccomp_fd,),
                env=runner_env(self.path_env()),
                cwd=str(self.workspace),
                unavailable=self.unavailable,
                tg=tg,
                stack=stack,
            )
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)

    def unavailable(self, detail: str) -> SandboxUnavailable:
        low = detail.lower()
        if any(w in low for w in ("namespace", "permission", "operation not permitted", "uid map")):
            return SandboxUnavailable(
                f"the local sandbox did not start: {detail}\n{NAMESPACE_HINT}"
            )
        return SandboxUnavailable(
            f"the local sandbox (bubblewrap) did not start: {detail}\n"
            "If bubblewrap itself is the problem, choose --sandbox docker --image IMAGE "
            "(or --sandbox host to run unconfined)."
        )
