"""The workspace's total size, measured: what `max_workspace_bytes` is checked against.

Where the filesystem cannot bound a directory (ext4 without project quotas,
as on this project's machines; a size-limited mount would hide the user's
files behind a copy), the `local` sandbox measures what its commands can
write to instead: before each command, every `WATCH_INTERVAL_S` while one
runs, and after it. Growth past the limit stops the session's commands
(`bubblewrap.py`).

What is measured (`disk_usage`), together against the one limit:

- The workspace and every writable path (`SandboxOptions.writable_paths`,
  the desktop's display directory among them), each on its own filesystem:
  a directory on another filesystem (a mount inside one) is not entered.
- Files with no link left that the session's processes hold open
  (`/proc/PID/fd`) or mapped (`/proc/PID/map_files`), on the filesystem of
  one of those roots: a file unlinked at once, or made with O_TMPFILE, is on
  the disk all the same. The processes are the session cgroup's, or, where
  there is none, the descendants of bubblewrap (the whole PID namespace:
  an orphan is re-parented to its PID 1, the runner, never out of it).

The measure is disk usage (`st_blocks`), not apparent size: a sparse file
costs what it holds. An inode is counted once however many links or roots
show it; symbolic links are not followed. The walk goes by directory file
descriptors (`openat` with O_NOFOLLOW, `scandir` of a descriptor), never by
full path, so a tree deeper than PATH_MAX counts; it keeps a descriptor for
at most `WINDOW` levels and comes back up by `..` (checked against the
directory it left); it is `walk`, which `setid_sweep` shares. A directory
that cannot be opened, other than one gone or replaced meanwhile, is
reported (`Usage.unreadable`): its content is not known, and the caller
treats the measure as over the limit. As root that
happens only where the filesystem refuses root (NFS with root_squash); in
the non-root fallback, a command can `chmod 000` a directory of its own.

Not covered: between two measures a fast writer can go past the limit by
what it writes in `WATCH_INTERVAL_S` (at most `max_file_size` per file, an
rlimit); the disk itself is not reserved. A command that moves directories
while a walk runs can hide them from that walk. A deleted file held only by
a descriptor in flight in a Unix socket (sent with SCM_RIGHTS and closed)
is in no process's table and not counted (stopping the sandbox frees it,
as it frees every held file). A process whose `/proc/PID/fd` itemloop cannot
read (not root, and not the commands' uid) is skipped. Walking a large tree
costs time, so the interval grows with the time one measure takes
(`interval`).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

WATCH_INTERVAL_S = 0.5
"""The shortest time between two measures while a command runs."""
WATCH_COST = 20
"""The interval is at least this many times the last measure's duration (<= 5% of a core)."""
WINDOW = 32
"""Directory descriptors the walk keeps open at most (deeper levels are left by `..`)."""

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ESRCH)
"""Why opening a listed directory may fail when a command removed or replaced it."""


@dataclass(frozen=True, slots=True)
class Usage:
    total: int
    """Bytes of disk used by the roots' trees and the held files."""
    held: int = 0
    """Of `total`: files with no link left, held open or mapped by the session's processes
    (stopping the sandbox frees them)."""
    unreadable: tuple[str, ...] = ()
    """Directories that could not be opened: their content is not in `total`."""


def disk_usage(*roots: str, pids: Iterable[int] = ()) -> Usage:
    """Disk used by the trees at `roots` and by the deleted files `pids` hold on their
    filesystems (see the module docstring)."""
    seen: set[tuple[int, int]] = set()
    devs: set[int] = set()
    unreadable: list[str] = []
    total = sum(_tree(root, seen, devs, unreadable) for root in dict.fromkeys(roots))
    held = _held(pids, devs, seen)
    return Usage(total + held, held, tuple(unreadable))


@dataclass(frozen=True, slots=True)
class Listing:
    """One directory of a walk (`walk`), while the walk is at it."""

    fd: int
    """The directory, open (O_RDONLY, O_DIRECTORY) until the walk goes on."""
    rel: str
    """Its path from the root ("" for the root; it may be longer than PATH_MAX)."""
    stat: os.stat_result
    """Its own `fstat`."""
    entries: list[tuple[str, os.stat_result]]
    """Its entries' names and `lstat`s (symlinks not followed); an entry gone meanwhile is
    left out."""


@dataclass(slots=True)
class _Frame:
    fd: int | None
    ident: tuple[int, int]
    rel: str
    subdirs: list[str] = field(default_factory=list)


def walk(root: str, seen: set[tuple[int, int]], unreadable: list[str]) -> Iterator[Listing]:
    """Each directory of the tree at `root` on `root`'s filesystem, by descriptors (see the
    module docstring): a symlink is not followed, another filesystem not entered, a
    directory whose identity is in `seen` (walked already) not walked again. Directories
    that cannot be opened, other than those gone or replaced meanwhile, go to `unreadable`.
    """
    try:
        fd = os.open(root, _DIR)
    except OSError as e:
        if e.errno not in _GONE:
            unreadable.append(root)
        return
    st = os.fstat(fd)
    dev = st.st_dev
    if (dev, st.st_ino) in seen:  # a root inside another, walked already
        os.close(fd)
        return
    seen.add((dev, st.st_ino))
    frames = [_Frame(fd, (dev, st.st_ino), "")]
    try:
        yield _list(frames[0], st, dev)
        while frames:
            top = frames[-1]
            if top.subdirs and top.fd is not None:
                name = top.subdirs.pop()
                opened = _open_child(root, top, name, dev, seen, unreadable)
                if opened is not None:
                    child, child_st = opened
                    frames.append(child)
                    if len(frames) > WINDOW:  # keep few descriptors, however deep
                        far = frames[-WINDOW - 1]
                        if far.fd is not None:
                            os.close(far.fd)
                            far.fd = None
                    yield _list(child, child_st, dev)
                continue
            frames.pop()
            if frames and frames[-1].fd is None and top.fd is not None:
                frames[-1].fd = _reopen_parent(top.fd, frames[-1].ident)
            if top.fd is not None:
                os.close(top.fd)
    finally:
        for f in frames:
            if f.fd is not None:
                os.close(f.fd)


def _tree(root: str, seen: set[tuple[int, int]], devs: set[int], unreadable: list[str]) -> int:
    total = 0
    for d in walk(root, seen, unreadable):
        if not d.rel:
            devs.add(d.stat.st_dev)
            total += d.stat.st_blocks * 512
        for _name, st in d.entries:
            if stat.S_ISDIR(st.st_mode):
                total += st.st_blocks * 512  # its own blocks, even on another filesystem
            else:
                total += _blocks(st, seen)
    return total


def _open_child(
    root: str,
    parent: _Frame,
    name: str,
    dev: int,
    seen: set[tuple[int, int]],
    unreadable: list[str],
) -> tuple[_Frame, os.stat_result] | None:
    assert parent.fd is not None
    rel = os.path.join(parent.rel, name)
    try:
        fd = os.open(name, _DIR, dir_fd=parent.fd)
    except OSError as e:
        if e.errno not in _GONE:
            unreadable.append(os.path.join(root, rel))
        return None
    st = os.fstat(fd)
    ident = (st.st_dev, st.st_ino)
    if st.st_dev != dev or ident in seen:  # a mount, or one moved here and walked already
        os.close(fd)
        return None
    seen.add(ident)  # a directory moved while the walk runs is walked once
    return _Frame(fd, ident, rel), st


def _reopen_parent(child_fd: int, ident: tuple[int, int]) -> int | None:
    """The directory the walk left, by `..`; None when it is not that one any more (the
    child was moved meanwhile: what is left to walk there is skipped in this walk)."""
    try:
        fd = os.open("..", _DIR, dir_fd=child_fd)
    except OSError:
        return None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != ident:
        os.close(fd)
        return None
    return fd


def _list(frame: _Frame, st: os.stat_result, dev: int) -> Listing:
    """`frame`'s entries; its subdirectories on `dev` are kept to walk."""
    assert frame.fd is not None
    entries: list[tuple[str, os.stat_result]] = []
    try:
        with os.scandir(frame.fd) as found:
            for e in found:
                try:
                    est = e.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone meanwhile
                entries.append((e.name, est))
                if stat.S_ISDIR(est.st_mode) and est.st_dev == dev:
                    frame.subdirs.append(e.name)
    except OSError:
        pass  # removed while listed: what was listed is kept
    return Listing(frame.fd, frame.rel, st, entries)


def _blocks(st: os.stat_result, seen: set[tuple[int, int]]) -> int:
    if st.st_nlink > 1:
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return 0
        seen.add(key)
    return st.st_blocks * 512


def _held(pids: Iterable[int], devs: set[int], seen: set[tuple[int, int]]) -> int:
    """Blocks of the files with no link left on `devs` that `pids` hold open or mapped."""
    total = 0
    for pid in pids:
        for path in _open_files(pid):
            try:
                st = os.stat(path)  # follows the magic link to the open file itself
            except OSError:
                continue  # closed or gone meanwhile
            key = (st.st_dev, st.st_ino)
            if st.st_nlink == 0 and st.st_dev in devs and key not in seen:
                seen.add(key)
                total += st.st_blocks * 512
    return total


def _open_files(pid: int) -> list[str]:
    """`/proc` links to what `pid` holds: its descriptors, and its mappings of deleted files."""
    found: list[str] = []
    base = f"/proc/{pid}"
    try:
        found += [f"{base}/fd/{n}" for n in os.listdir(f"{base}/fd")]
    except OSError:
        return found  # gone (or not readable: see the module docstring)
    try:
        with open(f"{base}/maps", "rb") as f:
            for line in f:
                if line.endswith(b" (deleted)\n"):
                    found.append(f"{base}/map_files/{line.split(b' ', 1)[0].decode()}")
    except OSError:
        pass
    return found


def session_pids(leader: int) -> set[int]:
    """`leader` and its descendants (every process of a PID namespace whose init it
    started): found from the parent pids of all of /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    found = {leader}
    todo = [leader]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def interval(last_walk_s: float) -> float:
    return max(WATCH_INTERVAL_S, WATCH_COST * last_walk_s)


def shown(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
