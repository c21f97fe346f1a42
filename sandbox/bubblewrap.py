"""`BubblewrapSandbox` (`--sandbox local`): one bubblewrap sandbox per session.

What a command sees: the host filesystem read-only; the workspace (at its host
path) and any `writable_paths` read-write; a private tmpfs at `/tmp` (HOME is
`/tmp/home`) and at `/run` (which hides the host's sockets, Docker's among
them); its own empty network namespace unless `network=True`; its own PID,
IPC, UTS and user namespaces with every capability dropped; an environment
built from an allowlist. The sandbox is started once per session, with the
runner (`_runner.py`, on the host's Python, visible read-only) inside it, so a
command costs a message and a spawn rather than a new set of namespaces. The
sandbox dies with the runtime (`--die-with-parent`), and killing it kills
everything in its PID namespace.

There is no fallback: if bubblewrap is missing or cannot create namespaces,
starting fails with `SandboxUnavailable` saying why and how to fix it.
"""

from __future__ import annotations

import os
import shutil

from .base import SandboxUnavailable
from .process import STANDARD_PATH, host_runner_argv
from .session import RunnerSandbox

HOME = "/tmp/home"

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


class BubblewrapSandbox(RunnerSandbox):
    name = "local"

    def home(self) -> str:
        return HOME

    def path_env(self) -> str:
        return os.environ.get("PATH") or STANDARD_PATH

    def bwrap_args(self) -> list[str]:
        """The bubblewrap options (everything before the command)."""
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
        args += ["--bind", ws, ws, "--chdir", ws]
        return args

    def launch_argv(self, runner_fd: int) -> list[str]:
        runner = host_runner_argv(runner_fd, hidden=["/tmp", "/run", "/dev", "/proc"])
        return [*self.bwrap_args(), "--", *runner]

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
