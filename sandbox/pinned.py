"""The host directories a sandbox mounts, pinned to what they were when it first started.

A sandbox mounts the workspace and each writable path by path, at its first
start and at every restart (a lost runner or container: `channel_sandbox`).
Bubblewrap's `--bind`, the idmap launcher's `open_tree` and Docker's bind
mounts all follow symlinks in the path they are given. So `Pins` records,
at the first start, each directory's resolved path and identity (st_dev,
st_ino), and at every later start checks that the path still leads to that
very directory without a symlink on the way (each component opened with
O_NOFOLLOW from its parent's descriptor): a directory moved or replaced by a
link since is refused, and the sandbox is not restarted.

Model: a start happens while no command of the sandbox runs (the lost
runner's namespace or container is gone first), so what is checked is what
is mounted. `check_writable_paths` (base.py) keeps commands from moving any
of these directories in the first place (none lies inside a directory they
may write); this is the second wall, and it also catches a host-side
change between two starts. Not covered: a directory moved and moved back
(its identity is the same again: it is the same directory).

The masks of hidden paths (`hidden.py`) are pinned too (`Pins.masks`): each
start hides every mask of the starts before it (by its resolved path, as
found then), with whatever new ones resolve now, never fewer. A command may
remove the symlink a mask was found through (stow-style `~/.ssh ->
dotfiles/ssh`: the link is no mount point), but the target stays hidden. A
pinned mask is checked as the directories are: its path must lead to it
without a symlink on the way, else the sandbox does not start (a mask put
through a link would fall elsewhere); nothing there any more hides nothing
and is left out (while the sandbox runs, a mask and the directories between
its root and it are mount points, which no command can remove: only the host
can). The object at the path is hidden whatever it is now (its identity is
not compared: a path without a link on the way is the path the user meant).
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Sequence

from .base import SandboxError
from .hidden import Mask, normalized

_STEP = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PathMoved(SandboxError):
    """A pinned directory is no longer at its path: the sandbox does not (re)start."""


def identity(path: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the directory at the resolved `path`, reached without following
    a symlink; None when a component is missing, a symlink or not a directory."""
    try:
        fd = _descend(path)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        return st.st_dev, st.st_ino
    finally:
        os.close(fd)


def _descend(path: str) -> int:
    """A descriptor of the directory at the resolved `path`, each component opened from
    its parent's with O_NOFOLLOW; the OSError of the first that cannot be (ELOOP or
    ENOTDIR for a symlink on the way, ENOENT for a missing one)."""
    fd = os.open("/", _STEP)
    try:
        for part in path.strip("/").split("/"):
            if part:
                child = os.open(part, _STEP, dir_fd=fd)
                os.close(fd)
                fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


class Pins:
    """Directories pinned at a sandbox's first start, and the masks of every start,
    checked at every later one."""

    def __init__(self) -> None:
        self._pinned: dict[str, tuple[str, tuple[int, int] | None]] = {}
        """Each path as given: its resolved path and identity at the first start."""
        self._masks: dict[str, Mask] = {}
        """Each mask of any start so far, by its resolved path."""

    def masks(self, found: Sequence[Mask]) -> list[Mask]:
        """The masks to make now: `found` (resolved at this start) and every one pinned
        before, each still reached without a symlink (`PathMoved` otherwise; one whose
        path leads to nothing is left out); those of `found` are pinned from now on."""
        for m in found:
            self._masks.setdefault(m.path, m)
        now: list[Mask] = []
        for m in self._masks.values():
            st = _reach(m.path)
            if st is None:
                continue  # nothing there to hide
            now.append(dataclasses.replace(m, is_dir=stat.S_ISDIR(st.st_mode)))
        return normalized(now)

    def resolve(self, paths: Sequence[str], *, check: bool = True) -> list[str]:
        """The resolved paths of `paths`, in order: pinned on the first call for each path,
        checked afterwards unless `check` is false (`PathMoved` when one is no longer
        the directory it was).

        A path that was no directory when pinned is given resolved as it was, for the
        backend to refuse as it does.
        """
        resolved: list[str] = []
        for given in paths:
            if given not in self._pinned:
                real = os.path.realpath(given)
                self._pinned[given] = (real, identity(real))
            real, ident = self._pinned[given]
            if check and ident is not None and identity(real) != ident:
                raise PathMoved(
                    f"{real} is no longer the directory the sandbox started with (it was "
                    f"moved, removed or replaced by a link since, e.g. by a command): "
                    f"the sandbox does not mount it again. Put {given!r} back as it was, or "
                    "start a new session"
                )
            resolved.append(real)
        return resolved


def _reach(path: str) -> os.stat_result | None:
    """The file at the resolved `path`, reached without following a symlink; None when
    nothing is there. `PathMoved` when a symlink (or a non-directory) is on the way."""
    parent, name = os.path.split(path.rstrip("/") or "/")
    try:
        fd = _descend(parent)
    except FileNotFoundError:
        return None
    except OSError:
        raise _mask_moved(path) from None
    try:
        try:
            st = os.stat(name or ".", dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            raise _mask_moved(path)
        return st
    finally:
        os.close(fd)


def _mask_moved(path: str) -> PathMoved:
    return PathMoved(
        f"{path}, hidden from commands since the sandbox started, is now reached through a "
        "link (a directory on its way was moved or replaced, e.g. by a command): the sandbox "
        "does not start again, as the mask would fall elsewhere. Put it back as it was, or "
        "start a new session"
    )
