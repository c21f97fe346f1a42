"""What a killed itemloop leaves behind, and how the next one knows it is free to remove.

A SIGKILLed itemloop cannot clean up: its session cgroups (`cgroups.py`),
display directories (`desktop_display.py`), browser jail directories
(`browser_jail.py`) and docker control directories (`docker_sandbox.py`)
stay. Each is named after the pid of the itemloop that made it
(`<prefix><pid>-...`), and whoever makes the next one beside them removes
those whose pid is gone (`gone`; temp directories: `remove_temp_dirs`).

Not covered: a pid reused by another program keeps its leftovers until that
program exits (a live pid is never judged gone); an itemloop in another PID
namespace sharing the same directory is judged by a pid that means something
else here, which is why only what holds nothing is removed (an empty cgroup;
a directory whose owner is us).

Removal (`remove_tree`) is of trees a command may have shaped: any depth
(iterative, one directory descriptor held at a time, so neither Python's
recursion limit nor the descriptor limit is reached), never following a
symlink (each directory is opened with O_NOFOLLOW relative to its parent's
descriptor) and never entering another filesystem (a mount point inside is
left, and said). It never raises: what it could not remove is returned and
logged, and stays for the next sweep. A tree still being changed while it is
removed (a command running meanwhile) may keep what was added behind it.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def gone(name: str, prefix: str) -> bool:
    """`name` is `<prefix><pid>-...` and that pid is not running."""
    if not name.startswith(prefix):
        return False
    pid = name[len(prefix) :].split("-", 1)[0]
    return pid.isdigit() and not pid_alive(int(pid))


def temp_prefix(prefix: str) -> str:
    """The `mkdtemp` prefix for a directory of this itemloop: `<prefix><pid>-`."""
    return f"{prefix}{os.getpid()}-"


def temp_dir_of(path: str, prefix: str, pid: int | None = None) -> str | None:
    """The path of `path` in the temp directory when it names a directory that
    `mkdtemp(prefix=temp_prefix(prefix))` could have made: right in the temp directory
    (its parent resolved: no `..` or link leads elsewhere) and named
    `<prefix><pid>-<mkdtemp's letters>`, with `pid` when given; else None. For a path
    read from somewhere a command could shape (a container's label), before removing it
    (`remove_tree` removes a link there, never what it leads to)."""
    tmp = os.path.realpath(tempfile.gettempdir())
    parent, name = os.path.split(path)
    if not parent or os.path.realpath(parent) != tmp:
        return None
    named = re.fullmatch(re.escape(prefix) + r"([0-9]+)-[a-z0-9_]+", name)
    if named is None or (pid is not None and int(named.group(1)) != pid):
        return None
    return os.path.join(tmp, name)


def remove_temp_dirs(prefixes: Collection[str], owners: Collection[int] = ()) -> None:
    """Remove the temp directories named `<prefix><pid>-...` whose itemloop is gone: only
    real directories owned by us or `owners`, never a link another user planted in /tmp
    (`remove_tree` never follows one). What cannot be removed is logged and left."""
    tmp = tempfile.gettempdir()
    allowed = {os.geteuid(), *owners}
    try:
        names = os.listdir(tmp)
    except OSError:
        return
    for n in names:
        if not any(gone(n, p) for p in prefixes):
            continue
        path = os.path.join(tmp, n)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid in allowed:
            remove_tree(path)


@dataclass
class _Frame:
    """A directory on the way down: its name in its parent, its identity, and the names
    of its subdirectories still to remove (listed once)."""

    name: str
    ident: tuple[int, int]
    subdirs: list[str] = field(default_factory=list)


def remove_tree(path: str) -> list[str]:
    """Remove `path` and everything below it (see the module docstring); never raises.

    Returns what was left, one `path: why` each (empty when all went); each is
    logged too. A symlink at `path` is removed, not followed.
    """
    left: list[str] = []
    path = os.path.abspath(path)
    try:
        _remove(path, left)
    except OSError as e:
        if not isinstance(e, FileNotFoundError):
            left.append(f"{path}: {e.strerror}")
    for what in left:
        log.warning("itemloop could not remove %s", what)
    return left


def _remove(path: str, left: list[str]) -> None:
    parent, name = os.path.split(path)
    pfd = os.open(parent, _DIR)
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=pfd)
            return
        fd = os.open(name, _DIR, dir_fd=pfd)
        root = os.fstat(fd)
        frames = [_Frame(path, _ident(root))]
        if _empty(fd, frames, root.st_dev, left):
            os.rmdir(name, dir_fd=pfd)
    finally:
        os.close(pfd)


def _empty(fd: int, frames: list[_Frame], dev: int, left: list[str]) -> bool:
    """Empty the tree whose root, `frames[0]`, is open as `fd` (closed on return), going
    down and back up with one descriptor; False when it had to stop (a directory moved)."""
    try:
        frames[-1].subdirs = _clear(fd, frames, left)
        while True:
            top = frames[-1]
            if top.subdirs:
                name = top.subdirs.pop()
                child = _enter(fd, name, dev, frames, left)
                if child is not None:
                    cfd, ident = child
                    os.close(fd)
                    fd = cfd
                    frames.append(_Frame(name, ident))
                    frames[-1].subdirs = _clear(fd, frames, left)
                continue
            if len(frames) == 1:
                return True
            # Back up through "..", checked to be the directory we came from: a
            # directory moved meanwhile does not lead elsewhere.
            pfd = os.open("..", _DIR, dir_fd=fd)
            os.close(fd)
            fd = pfd
            here = _shown(frames)
            done = frames.pop()
            if _ident(os.fstat(fd)) != frames[-1].ident:
                left.append(f"{here}: moved while it was removed")
                return False
            try:
                os.rmdir(done.name, dir_fd=fd)
            except FileNotFoundError:
                pass
            except OSError as e:
                left.append(f"{here}: {e.strerror}")
    finally:
        os.close(fd)


def _ident(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _shown(frames: list[_Frame], name: str = "") -> str:
    """The path of the deepest frame (and `name` in it), for a person: built only when
    something is left, as a deep tree's paths would take memory by the square."""
    return "/".join([f.name for f in frames] + ([name] if name else []))


def _enter(
    fd: int, name: str, dev: int, frames: list[_Frame], left: list[str]
) -> tuple[int, tuple[int, int]] | None:
    """Open subdirectory `name` of `fd`: never through a symlink, never another filesystem."""
    try:
        cfd = os.open(name, _DIR, dir_fd=fd)
    except FileNotFoundError:
        return None
    except OSError as e:
        left.append(f"{_shown(frames, name)}: {e.strerror}")
        return None
    st = os.fstat(cfd)
    if st.st_dev != dev:
        os.close(cfd)
        left.append(f"{_shown(frames, name)}: another filesystem is mounted there")
        return None
    if st.st_uid == os.geteuid() and st.st_mode & 0o700 != 0o700:
        try:  # a directory of ours a command made unwritable: its entries must go
            os.fchmod(cfd, 0o700)
        except OSError:
            pass
    return cfd, _ident(st)


def _clear(fd: int, frames: list[_Frame], left: list[str]) -> list[str]:
    """Unlink every entry of the directory `fd` but its subdirectories; their names."""
    subdirs: list[str] = []
    try:
        names = os.listdir(fd)
    except OSError as e:
        left.append(f"{_shown(frames)}: {e.strerror}")
        return subdirs
    for name in names:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(name)
            else:
                os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            pass
        except OSError as e:
            left.append(f"{_shown(frames, name)}: {e.strerror}")
    return subdirs
