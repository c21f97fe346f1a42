"""The `Sandbox` protocol: where commands run and where workspace files live.

Tools never spawn processes or touch the host filesystem themselves (DESIGN.md,
contract 3); they hold a `Sandbox` and ask it. This module is the vocabulary
they share with every backend: the protocol, its results (`CommandResult`,
`FileStat`), its settings (`SandboxOptions`, `DEFAULT_COMMAND_TIMEOUT_S`) and
its errors. The backends (`bubblewrap`, `docker_sandbox`, `host`) live in their
own modules, on the frame of `channel_sandbox`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from .hidden import inside

DEFAULT_COMMAND_TIMEOUT_S = 120.0
"""How long a command may run when its caller gives no timeout."""


class SandboxError(Exception):
    """A sandbox could not do what was asked; the message is meant for a person."""


class SandboxUnavailable(SandboxError):
    """The backend cannot start here (bubblewrap missing, Docker unreachable, ...)."""


class WorkspacePathError(SandboxError):
    """A path from the model is invalid or resolves outside the workspace."""


class FileTooLarge(SandboxError):
    """A file is larger than the `max_bytes` its reader allowed; none of it is returned.

    `size` is the file's size when it was checked or, when it `grew` past the
    limit while being read, the bytes seen before the read stopped (at least
    `limit + 1`).
    """

    def __init__(self, path: str, size: int, limit: int, *, grew: bool = False) -> None:
        self.path = path
        self.size = size
        self.limit = limit
        self.grew = grew
        if grew:
            what = (
                f"grew past the limit of {limit:,} bytes for reading a file whole while it was read"
            )
        else:
            what = f"is {size:,} bytes, more than the limit of {limit:,} bytes for reading a file whole"
        super().__init__(f"{path}: the file {what}; raise max_bytes to read it")


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What one command did.

    `stdout`/`stderr` are decoded as UTF-8 with replacement. When the output was
    larger than the run's `output_limit`, only the head and tail were kept (in
    bounded memory) and `stdout_dropped`/`stderr_dropped` count the bytes cut out
    of the middle.
    """

    exit_code: int | None
    timed_out: bool
    stdout: str
    stderr: str
    duration_s: float
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    stdout_dropped_chars: int = 0
    """Characters (UTF-8 sequences) in the `stdout_dropped` bytes."""
    stderr_dropped_chars: int = 0

    def with_note(self, note: str) -> CommandResult:
        """This result with itemloop's `note` on a line of its own after its stderr."""
        err = self.stderr
        err = f"{err}\n{note}" if err and not err.endswith("\n") else err + note
        return replace(self, stderr=err)


@dataclass(frozen=True, slots=True)
class FileStat:
    path: str
    is_dir: bool
    is_file: bool
    is_symlink: bool
    size: int
    mode: int


@dataclass(frozen=True, slots=True)
class SandboxOptions:
    """Knobs a user can change from the CLI or the library.

    `env` is the only way a variable of the runtime's environment reaches a
    command (besides PATH, LANG, TERM and a private HOME): nothing is inherited.
    `writable_paths` are extra host directories mounted read-write (at the same
    path) next to the workspace; none may lie inside the workspace or another
    writable path, or hold either (`check_writable_paths`). `hidden_paths` are
    host paths commands must not see, besides the credential locations of the
    user's home (`hidden.py`; the `host` sandbox hides nothing).
    `default_output_limit` is in bytes per stream (the head and tail are kept).

    Resource limits: `cpu_time_s`, `max_file_size` and `max_processes` are
    rlimits in the `local` and `host` sandboxes (RLIMIT_NPROC counts per user
    and is not enforced by the kernel for root); `max_processes`,
    `memory_bytes` and `cpus` are also the limits of the session's cgroup in
    `local` (where one can be made: `cgroups.py`) and of the container in
    `docker` (its PIDs, memory and CPU limits); `host` has no cgroup.
    """

    network: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    writable_paths: Sequence[str] = ()
    hidden_paths: Sequence[str] = ()
    default_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S
    default_output_limit: int = 1_000_000
    cpu_time_s: int | None = None
    max_file_size: int | None = 8 * 1024**3
    max_processes: int | None = 4096
    memory_bytes: int | None = 4 * 1024**3
    cpus: float | None = 2.0
    max_workspace_bytes: int | None = None
    """The disk usage of the workspace and every writable path together (an inode
    counted once), with the deleted files the session's processes still hold open
    on their filesystems; `local` measures it and stops the session's commands past
    it (`workspace_size.py`); None: unbounded."""


def check_writable_paths(workspace: str, writable_paths: Sequence[str]) -> None:
    """Refuse (`SandboxError`) writable paths that nest with the workspace or each other.

    Inside a directory commands may write, a command can rename a mounted
    directory's parent and put a symlink to any host directory in its place; a
    sandbox that mounts that path again (a restart) would mount the symlink's
    target read-write. A writable path inside the workspace is writable already;
    one that holds the workspace or another writable path cannot be allowed. The
    paths are compared resolved; the same path twice is one path.
    """
    ws = os.path.realpath(workspace)
    seen: dict[str, str] = {}
    for given in writable_paths:
        real = os.path.realpath(given)
        if real in seen:
            continue
        if _nests(real, ws):
            if real == ws:
                why = "is the workspace"
            elif inside(real, ws):
                why = f"is inside the workspace {ws} (which commands may write already)"
            else:
                why = f"holds the workspace {ws}"
            raise SandboxError(
                f"writable path {given!r} {why}: a command could move a directory above the "
                "inner one and put a link to any host directory in its place; drop it, or "
                "choose paths that do not nest"
            )
        for other_real, other in seen.items():
            if _nests(real, other_real):
                raise SandboxError(
                    f"writable paths {other!r} and {given!r} nest: a command could move the "
                    "inner one's parent and put a link to any host directory in its place; "
                    "give only the outer one"
                )
        seen[real] = given


def _nests(a: str, b: str) -> bool:
    """`a` is `b`, or one holds the other (both resolved)."""
    return inside(a, b) or inside(b, a)


@runtime_checkable
class Sandbox(Protocol):
    """One session's execution environment. Use as an async context manager."""

    name: str

    @property
    def workspace_mount(self) -> str:
        """The workspace's path as commands see it (their working directory's root)."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def run(
        self,
        argv: Sequence[str] | None = None,
        *,
        script: str | None = None,
        cwd: str = ".",
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        output_limit: int | None = None,
        user: str | None = None,
    ) -> CommandResult:
        """Run `argv`, or `script` with `sh -c`, inside the sandbox.

        `cwd` is workspace-relative. A timeout kills the whole process tree and
        returns `timed_out=True`. Raises `SandboxError` only for problems of the
        sandbox itself (a bad `cwd`, an unsupported `user`), never for a command
        that fails.
        """
        ...

    async def read_file(self, path: str, *, max_bytes: int | None = None) -> bytes:
        """A workspace file's content; `FileTooLarge` when it has more than `max_bytes`.

        The limit holds for the bytes read, not only for the size checked
        first: a file growing meanwhile is refused too, and at most
        `max_bytes + 1` bytes are ever held.
        """
        ...

    async def write_file(self, path: str, data: bytes, *, mode: int | None = None) -> None:
        """Atomically replace (or create) a workspace file, creating parents."""
        ...

    async def delete_file(self, path: str) -> None: ...

    async def stat(self, path: str) -> FileStat | None:
        """`None` when the path does not exist."""
        ...

    async def list_dir(self, path: str = ".") -> list[FileStat]: ...
