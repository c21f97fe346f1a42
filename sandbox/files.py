"""Workspace file operations on a host directory.

Every backend keeps its workspace in a host directory (bind-mounted into
bubblewrap or Docker), so all of them share this one implementation of the
file half of the `Sandbox` protocol. Paths come from the model: they are
resolved inside the root and refused when they leave it.
"""

from __future__ import annotations

import os
import stat as stat_mod
import tempfile
from pathlib import Path

import anyio.to_thread

from .base import FileStat, SandboxError, WorkspacePathError


def resolve_workspace_path(root: Path, path: str) -> Path:
    """Map a model-supplied relative path to a host path inside `root`.

    Refuses empty and absolute paths, `..` that climbs out, and symlinks (at
    any level) whose target lies outside the workspace.
    """
    if not path or not path.strip():
        raise WorkspacePathError("empty path: give a path relative to the workspace root")
    if "\x00" in path:
        raise WorkspacePathError(f"path {path!r} contains a NUL byte")
    if os.path.isabs(path) or path.startswith("~"):
        raise WorkspacePathError(
            f"path {path!r} is absolute; use a path relative to the workspace root"
        )
    real_root = os.path.realpath(root)
    candidate = os.path.normpath(os.path.join(real_root, path))
    if not _inside(real_root, candidate):
        raise WorkspacePathError(f"path {path!r} leaves the workspace (through '..')")
    # realpath follows every symlink along the way, including dangling ones.
    resolved = os.path.realpath(candidate)
    if not _inside(real_root, resolved):
        raise WorkspacePathError(
            f"path {path!r} leaves the workspace through a symlink (to {resolved})"
        )
    return Path(resolved)


def _inside(root: str, candidate: str) -> bool:
    return candidate == root or candidate.startswith(root.rstrip(os.sep) + os.sep)


def _stat_of(root: Path, full: Path) -> FileStat:
    st = full.lstat()
    rel = os.path.relpath(full, os.path.realpath(root))
    return FileStat(
        path=rel,
        is_dir=stat_mod.S_ISDIR(st.st_mode),
        is_file=stat_mod.S_ISREG(st.st_mode),
        is_symlink=stat_mod.S_ISLNK(st.st_mode),
        size=st.st_size,
        mode=stat_mod.S_IMODE(st.st_mode),
    )


class WorkspaceFiles:
    """The file operations of the `Sandbox` protocol over a host directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, path: str) -> Path:
        return resolve_workspace_path(self.root, path)

    async def read_file(self, path: str) -> bytes:
        full = self.resolve(path)
        return await anyio.to_thread.run_sync(_read, full, path)

    async def write_file(self, path: str, data: bytes, *, mode: int | None = None) -> None:
        full = self.resolve(path)
        await anyio.to_thread.run_sync(_write_atomic, full, data, mode, path)

    async def delete_file(self, path: str) -> None:
        full = self.resolve(path)
        await anyio.to_thread.run_sync(_delete, full, path)

    async def stat(self, path: str) -> FileStat | None:
        full = self.resolve(path)
        try:
            return _stat_of(self.root, full)
        except FileNotFoundError:
            return None

    async def list_dir(self, path: str = ".") -> list[FileStat]:
        full = self.resolve(path)
        if not full.is_dir():
            raise SandboxError(f"{path!r} is not a directory")
        return [_stat_of(self.root, child) for child in sorted(full.iterdir())]


def _read(full: Path, shown: str) -> bytes:
    try:
        return full.read_bytes()
    except FileNotFoundError:
        raise SandboxError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise SandboxError(f"{shown}: is a directory") from None
    except PermissionError:
        raise SandboxError(f"{shown}: permission denied") from None


def _write_atomic(full: Path, data: bytes, mode: int | None, shown: str) -> None:
    if full.is_dir():
        raise SandboxError(f"{shown}: is a directory")
    full.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = stat_mod.S_IMODE(full.stat().st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
    # Same directory, so the rename is atomic and the file never appears half-written.
    fd, tmp = tempfile.mkstemp(prefix=f".{full.name}.", suffix=".itemloop-tmp", dir=full.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, full)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _delete(full: Path, shown: str) -> None:
    try:
        if full.is_dir() and not full.is_symlink():
            raise SandboxError(f"{shown}: is a directory, not a file")
        full.unlink()
    except FileNotFoundError:
        raise SandboxError(f"{shown}: no such file") from None
