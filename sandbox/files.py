"""Workspace file operations on a host directory.

Every backend keeps its workspace in a host directory (bind-mounted into
bubblewrap or Docker), so all of them share this one implementation of the
file half of the `Sandbox` protocol. Paths come from the model: they are
resolved inside the root and refused when they leave it.

Races. Commands keep running in the background while these operations run on
the host, and they can change the workspace between any two system calls: a
directory checked by path can be a symlink to `/etc` by the time it is
written through. So nothing here uses a checked path again. Each operation
opens the workspace root (`O_DIRECTORY`) and walks the path one component at
a time with `openat(..., O_DIRECTORY | O_NOFOLLOW)`, holding a descriptor of
each directory it has entered; every later step (creating parents, the
temporary file, the rename over the target, the unlink, the read) is relative
to a descriptor it holds, never to a path. Symlinks met along the way are
resolved by the walk itself (`readlinkat`, then on from the directory the
link is in, or from the root for an absolute target that names a place
inside the workspace), so a symlink that stays inside the workspace still
works, for reads and writes alike (writing through `alias.txt -> real.txt`
replaces real.txt), and one that leaves it (an absolute target elsewhere, or
`..` above the root) is refused with the message `resolve_workspace_path`
gives. A component that turns into a symlink between the check and the
`openat` fails that `openat` (ELOOP) and is walked again. The last component
of a path being written is replaced with `renameat` (which never follows
it) and the last component of a path being deleted is unlinked itself: a
deleted symlink is the link, not its target. Reads open the file with
`O_NOFOLLOW | O_NONBLOCK` and refuse anything but a regular file (a FIFO
would block the runtime).

Size. A read with `max_bytes` checks the size with `fstat` on the descriptor
it opened (not on a path) and refuses a larger file with `FileTooLarge`
before reading any of it; it then reads at most `max_bytes + 1` bytes, so a
file that grew since the check (or one whose size `fstat` does not know, as
in procfs) is refused too, and memory stays bounded by the limit.

Ownership. Run as root on a workspace someone else owns (the `local`
sandbox then runs commands under an unprivileged uid that sees the
workspace owner's files as its own: `idmap.py`), a file written here keeps
the owner of the file it replaces, and a new file or directory gets the
owner of the directory it lands in, so the model's commands can change what
its own `apply_patch` wrote, and the user finds their files still theirs.
Not run as root, the kernel gives new files the caller's ids, as always.

What this does not cover: a directory the walk holds can be renamed away
while the operation runs, but only to where commands can write anyway (the
workspace and the sandbox's writable paths: the rest of the host is
read-only to them), so a write can never land outside those.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat as stat_mod
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from .base import FileStat, FileTooLarge, SandboxError, WorkspacePathError

T = TypeVar("T")

MAX_SYMLINKS = 40
"""Symlinks one path may go through (the kernel's own limit)."""
_ATTEMPTS = 8
"""How often an operation starts over when the workspace changed under it."""

_MAX_STEPS = 4096
"""Components one walk may look at, links and retries included."""

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _lexical(root: Path, path: str) -> tuple[str, str]:
    """(real root, normalized relative path) for a model-supplied path, or the refusal."""
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
    return real_root, os.path.relpath(candidate, real_root)


def resolve_workspace_path(root: Path, path: str) -> Path:
    """Map a model-supplied relative path to a host path inside `root`.

    Refuses empty and absolute paths, `..` that climbs out, and symlinks (at
    any level) whose target lies outside the workspace. The result is only
    good for messages and for paths used inside the sandbox (a command's
    working directory): host-side file operations go through `WorkspaceFiles`,
    which does not trust a path checked earlier.
    """
    real_root, _ = _lexical(root, path)
    candidate = os.path.normpath(os.path.join(real_root, path))
    # realpath follows every symlink along the way, including dangling ones.
    resolved = os.path.realpath(candidate)
    if not _inside(real_root, resolved):
        raise WorkspacePathError(
            f"path {path!r} leaves the workspace through a symlink (to {resolved})"
        )
    return Path(resolved)


def _inside(root: str, candidate: str) -> bool:
    return candidate == root or candidate.startswith(root.rstrip(os.sep) + os.sep)


class _Retry(Exception):
    """The workspace changed under an operation: start it over."""


class _Walked:
    """Where a walk ended: a held directory and a name in it.

    `name` is "." when the path is that directory itself. `rel` is the
    workspace-relative path of the result, as the walk found it.
    """

    def __init__(self, fd: int, name: str, rel: str) -> None:
        self.fd = fd
        self.name = name
        self.rel = rel

    def __enter__(self) -> _Walked:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def lstat(self) -> os.stat_result | None:
        try:
            return os.stat(self.name, dir_fd=self.fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None


def _walk(
    root: Path, path: str, *, follow_last: bool = True, make_parents: bool = False
) -> _Walked:
    """Walk `path` from the workspace root by descriptors (see the module docstring).

    Raises `WorkspacePathError` when it leaves the workspace, `FileNotFoundError`
    when a directory on the way is missing (unless `make_parents`),
    `NotADirectoryError` when one is not a directory, `SandboxError` for a
    symlink loop.
    """
    real_root, rel = _lexical(root, path)
    roots = [real_root]
    given = os.path.abspath(root)
    if given != real_root:
        roots.append(given)
    pending = [] if rel == "." else rel.split("/")
    pending.reverse()  # a stack: the next component last
    stack: list[tuple[int, str]] = [(os.open(real_root, _O_DIR), "")]
    links = 0

    def here() -> str:
        return "/".join(n for _, n in stack[1:])

    def leave_through_link(target: str) -> WorkspacePathError:
        return WorkspacePathError(
            f"path {path!r} leaves the workspace through a symlink (to {target})"
        )

    steps = 0
    try:
        while pending:
            steps += 1
            if steps > _MAX_STEPS:
                raise _Retry()  # something keeps changing the path under the walk
            name = pending.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if len(stack) == 1:
                    # Only a symlink's target can get here (the path itself was
                    # normalized): it climbs above the root.
                    raise leave_through_link(os.path.normpath(os.path.join(real_root, "..")))
                os.close(stack.pop()[0])
                continue
            top = stack[-1][0]
            last = not any(p not in ("", ".") for p in pending)
            if last and not follow_last:
                return _Walked(os.dup(top), name, _join(here(), name))
            try:
                st = os.stat(name, dir_fd=top, follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    return _Walked(os.dup(top), name, _join(here(), name))
                if not make_parents:
                    raise
                try:
                    os.mkdir(name, 0o777, dir_fd=top)
                    _own_like(top, name, os.fstat(top))
                except FileExistsError:
                    pass
                pending.append(name)  # look again: whatever is there now
                continue
            if stat_mod.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise SandboxError(f"{path}: too many levels of symbolic links")
                try:
                    target = os.readlink(name, dir_fd=top)
                except OSError:
                    pending.append(name)  # it changed: look again
                    continue
                if os.path.isabs(target):
                    norm = os.path.normpath(target)
                    base = next((r for r in roots if _inside(r, norm)), None)
                    if base is None:
                        raise leave_through_link(norm)
                    while len(stack) > 1:
                        os.close(stack.pop()[0])
                    inner = os.path.relpath(norm, base)
                    target = "" if inner == "." else inner
                elif _climbs_out(here(), target):
                    shown = os.path.normpath(os.path.join(real_root, here(), target))
                    raise leave_through_link(shown)
                pending.extend(reversed(target.split("/")))
                continue
            if last:
                return _Walked(os.dup(top), name, _join(here(), name))
            try:
                fd = os.open(name, _O_DIR, dir_fd=top)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOENT):
                    pending.append(name)  # replaced since the stat: look again
                    continue
                raise
            stack.append((fd, name))
        # The path (or the last symlink) names a directory the walk holds.
        fd, _ = stack[-1]
        return _Walked(os.dup(fd), ".", here() or ".")
    finally:
        for fd, _ in stack:
            os.close(fd)


def _join(a: str, b: str) -> str:
    return f"{a}/{b}" if a else b


def _climbs_out(here: str, target: str) -> bool:
    """Whether relative `target`, from directory `here`, goes above the root."""
    depth = len(here.split("/")) if here else 0
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def _stat_result(rel: str, st: os.stat_result) -> FileStat:
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
        """The host path `path` names now (for messages; operations do not use it)."""
        return resolve_workspace_path(self.root, path)

    async def read_file(self, path: str, *, max_bytes: int | None = None) -> bytes:
        """The file's content; `FileTooLarge` when it holds more than `max_bytes`."""
        if max_bytes is not None and max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        return await anyio.to_thread.run_sync(_retrying, _read, self.root, path, max_bytes)

    async def write_file(self, path: str, data: bytes, *, mode: int | None = None) -> None:
        await anyio.to_thread.run_sync(_retrying, _write_atomic, self.root, path, data, mode)

    async def delete_file(self, path: str) -> None:
        await anyio.to_thread.run_sync(_retrying, _delete, self.root, path)

    async def stat(self, path: str) -> FileStat | None:
        return await anyio.to_thread.run_sync(_retrying, _stat, self.root, path)

    async def list_dir(self, path: str = ".") -> list[FileStat]:
        return await anyio.to_thread.run_sync(_retrying, _list_dir, self.root, path)


def _retrying(fn: Callable[..., T], root: Path, path: str, *args: Any) -> T:
    for _ in range(_ATTEMPTS - 1):
        try:
            return fn(root, path, *args)
        except _Retry:
            continue
    try:
        return fn(root, path, *args)
    except _Retry:
        raise SandboxError(f"{path}: it keeps changing while being accessed; try again") from None


def _walk_or_error(root: Path, path: str, **kw: bool) -> _Walked:
    try:
        return _walk(root, path, **kw)
    except FileNotFoundError:
        raise SandboxError(f"{path}: no such file") from None
    except NotADirectoryError:
        raise SandboxError(f"{path}: a component of the path is not a directory") from None


def _read(root: Path, path: str, max_bytes: int | None) -> bytes:
    with _walk_or_error(root, path) as w:
        try:
            fd = os.open(
                w.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=w.fd
            )
        except FileNotFoundError:
            raise SandboxError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise SandboxError(f"{path}: is a directory") from None
        except PermissionError:
            raise SandboxError(f"{path}: permission denied") from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise _Retry() from None  # it became a symlink since the walk
            raise SandboxError(f"{path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat_mod.S_ISDIR(st.st_mode):
            raise SandboxError(f"{path}: is a directory")
        if not stat_mod.S_ISREG(st.st_mode):
            raise SandboxError(f"{path}: not a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise FileTooLarge(path, st.st_size, max_bytes)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            if max_bytes is None:
                return f.read()
            # The size as checked, and one byte more to see whether it grew since.
            data = f.read(st.st_size + 1)
            if st.st_size < len(data) <= max_bytes:
                data += f.read(max_bytes + 1 - len(data))  # it grew: on to one byte past the limit
            if len(data) > max_bytes:
                raise FileTooLarge(path, len(data), max_bytes, grew=True)
            return data
    finally:
        os.close(fd)


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _own_like(fd: int, name: str | None, owner: os.stat_result) -> None:
    """Give the file `fd` (or `name` in the directory `fd`) the ids of `owner`, when root.

    Without root nothing can be given away, and nothing needs to be: the file
    is the caller's, as is the rest of the workspace it can write to."""
    if os.geteuid() != 0:
        return
    if name is None:
        os.fchown(fd, owner.st_uid, owner.st_gid)
    else:
        os.chown(name, owner.st_uid, owner.st_gid, dir_fd=fd, follow_symlinks=False)


def _write_atomic(root: Path, path: str, data: bytes, mode: int | None) -> None:
    with _walk_or_error(root, path, make_parents=True) as w:
        if w.name == ".":
            raise SandboxError(f"{path}: is a directory")
        st = w.lstat()
        if st is not None and stat_mod.S_ISDIR(st.st_mode):
            raise SandboxError(f"{path}: is a directory")
        if st is not None and stat_mod.S_ISLNK(st.st_mode):
            raise _Retry()  # it became a symlink since the walk
        if mode is None:
            mode = stat_mod.S_IMODE(st.st_mode) if st is not None else _default_mode()
        # Same directory, so the rename is atomic and the file never appears half-written.
        tmp = f".{w.name[:180]}.{secrets.token_hex(6)}.itemloop-tmp"
        fd = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=w.fd,
        )
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                _own_like(f.fileno(), None, st if st is not None else os.fstat(w.fd))
                os.fchmod(f.fileno(), mode)  # after the chown, which clears set-ID bits
            try:
                # renameat(2) replaces the last component itself, never what it points to.
                os.replace(tmp, w.name, src_dir_fd=w.fd, dst_dir_fd=w.fd)
            except IsADirectoryError:
                raise SandboxError(f"{path}: is a directory") from None
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=w.fd)
            except FileNotFoundError:
                pass
            raise


def _delete(root: Path, path: str) -> None:
    # A symlink at the end must stay inside like any other path (the same refusal
    # as a read or write through it), but what is removed is the link itself.
    with _walk_or_error(root, path):
        pass
    with _walk_or_error(root, path, follow_last=False) as w:
        st = w.lstat()
        if w.name == "." or (st is not None and stat_mod.S_ISDIR(st.st_mode)):
            raise SandboxError(f"{path}: is a directory, not a file")
        try:
            os.unlink(w.name, dir_fd=w.fd)
        except FileNotFoundError:
            raise SandboxError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise SandboxError(f"{path}: is a directory, not a file") from None
        except OSError as e:
            raise SandboxError(f"{path}: {e.strerror}") from None


def _stat(root: Path, path: str) -> FileStat | None:
    try:
        w = _walk(root, path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    with w:
        st = w.lstat()
    return None if st is None else _stat_result(w.rel, st)


def _list_dir(root: Path, path: str) -> list[FileStat]:
    try:
        w = _walk(root, path)
    except (FileNotFoundError, NotADirectoryError):
        raise SandboxError(f"{path!r} is not a directory") from None
    with w:
        try:
            fd = os.open(w.name, _O_DIR, dir_fd=w.fd)
        except OSError:
            raise SandboxError(f"{path!r} is not a directory") from None
    prefix = "" if w.rel == "." else w.rel
    try:
        out = []
        for name in sorted(os.listdir(fd)):
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            out.append(_stat_result(_join(prefix, name), st))
        return out
    finally:
        os.close(fd)
