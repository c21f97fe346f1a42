"""What a command is before it reaches a channel: checked argv, cwd, environment, rlimits.

Everything here comes from the model or the caller and is checked before a
channel sees it: argv (a non-empty list of strings without NUL bytes, or a
script run with `sh -c` by the sandbox's shell), the working directory
(workspace-relative, resolved inside the workspace and mapped to its path
inside the sandbox), the environment (an allowlist built from scratch, never
the runtime's own, plus the caller's variables, checked) and the rlimits the
options ask for.

What it does not cover: the working directory can change between the check
and the command's start (a command running in the background can replace it
with a symlink); the command then starts wherever that leads, as confined
as any other command of its sandbox (not at all in `host`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .base import SandboxError, SandboxOptions, WorkspacePathError
from .files import resolve_workspace_path

STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = "/bin/sh"
"""The shell scripts run under, unless the sandbox brings its own (`ChannelSandbox.shell`)."""


def base_env(options: SandboxOptions, *, home: str, path: str) -> dict[str, str]:
    """The environment of every command: an allowlist, never the runtime's own."""
    env = {
        "PATH": path,
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        "TERM": "dumb",
        "HOME": home,
    }
    env.update(options.env)
    return env


def rlimits_of(options: SandboxOptions) -> dict[str, int]:
    """The rlimits of every command, by the runner's names."""
    limits = {
        "CPU": options.cpu_time_s,
        "FSIZE": options.max_file_size,
        "NPROC": options.max_processes,
    }
    return {k: int(v) for k, v in limits.items() if v is not None}


def command_argv(
    argv: Sequence[str] | None, script: str | None, shell: str = DEFAULT_SHELL
) -> list[str]:
    """The argv to run: `argv` itself, or `script` under `shell -c`."""
    if (argv is None) == (script is None):
        raise SandboxError("give either argv or script, not both or neither")
    if script is not None:
        if not isinstance(script, str):
            raise SandboxError("script must be a string")
        if "\x00" in script:
            raise SandboxError("script contains a NUL byte")
        return [shell, "-c", script]
    assert argv is not None
    if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
        raise SandboxError("argv must be a non-empty list of strings")
    if any("\x00" in a for a in argv):
        raise SandboxError("argv contains a NUL byte")
    return list(argv)


def validate_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """The caller's variables, refused when a name or value could not be passed on."""
    out: dict[str, str] = {}
    for k, v in (env or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise SandboxError("environment names and values must be strings")
        if not k or "=" in k or "\x00" in k or "\x00" in v:
            raise SandboxError(f"invalid environment variable name or value: {k!r}")
        out[k] = v
    return out


def workspace_cwd(root: Path, mount: str, cwd: str) -> str:
    """Map a workspace-relative `cwd` to its path inside the sandbox."""
    try:
        host = resolve_workspace_path(root, cwd or ".")
    except WorkspacePathError as e:
        raise SandboxError(f"working directory: {e}") from None
    if not host.is_dir():
        raise SandboxError(f"working directory {cwd!r} does not exist in the workspace")
    rel = os.path.relpath(host, os.path.realpath(root))
    return mount if rel == "." else f"{mount.rstrip('/')}/{rel}"
