"""The workspace's total size, measured: what `max_workspace_bytes` is checked against.

Where the filesystem cannot bound a directory (ext4 without project quotas,
as on this project's machines; a size-limited mount would hide the user's
files behind a copy), the `local` sandbox measures what its commands can
write to instead: before and after each command, and, for the whole
session, every `interval` while the sandbox holds anything of a command's
(one running, or what one left running: a detached background writer;
`runs_commands`). Any measure past the limit stops the sandbox, everything
in it, and refuses commands until files are removed (`bubblewrap.py`).

When. Idle (only bubblewrap, the runner and its keepers), the session's
watcher only looks, every `WATCH_INTERVAL_S`, whether something else runs:
the cgroup's process list (or each process's `/proc/PID/task/TID/children`)
and one `/proc/PID/stat` per process, about 0.2 ms here (0.04% of a core);
no walk. While something runs, it walks every `interval`: at least
`WATCH_INTERVAL_S`, at least `WATCH_COST` times the last walk (so at most
5% of a core), at most `MAX_WATCH_INTERVAL_S`, so a huge tree cannot
stretch it. A walk costs about 3 us per entry here (400,000 inodes:
1.1 to 1.4 s), so past about 80,000 entries the cap holds and a walk takes
walk/(walk + 5 s) of one core while commands run (400,000 inodes: 18 to
22%; a tree whose walk takes 5 s, half a core; never more than one thread).
The charge per inode bounds that: a tree within a limit of L bytes has at
most L / `MIN_INODE_BYTES` inodes (1 GiB: 262,144), and one past it stops
the sandbox, after which nothing runs and nothing is walked.

What is measured (`disk_usage`), together against the one limit:

- The workspace and every writable path (`SandboxOptions.writable_paths`,
  the desktop's display directory among them), each on its own filesystem:
  a mount of another filesystem inside one is not entered (its root's own
  blocks count, as its parent lists it); a bind mount of the same device
  is (commands fill that disk through it). A btrfs subvolume, which a
  command can make, has a device of its own on the same mount: it is
  entered and counted.
- Files with no link left that the session's processes hold open
  (`/proc/PID/fd`) or mapped (`/proc/PID/map_files`), on the filesystem of
  one of those roots: a file unlinked at once, or made with O_TMPFILE, is on
  the disk all the same. The processes are the session cgroup's, or, where
  there is none, the descendants of bubblewrap (the whole PID namespace:
  an orphan is re-parented to its PID 1, the runner, never out of it).
  Of their descriptors only those whose `/proc/PID/fd` link shows a path
  ending in " (deleted)" (how the kernel shows a file with no link left, an
  O_TMPFILE one too; one whose path is past a page cannot be read and is
  `stat`-ed all the same) are `stat`-ed: a pipe, socket, memfd or file
  still linked is not. At most `MAX_HELD_FDS` (65,536) descriptors and
  mappings of deleted files, of all the processes together, are examined
  per measure, listed as they are read: past that, the measure stops and
  counts as over the limit (`Usage.too_many_held`; the caller stops the
  sandbox, saying its processes hold more than that many open files). One
  process dup'ing /dev/null up to its RLIMIT_NOFILE in 150 children held
  3 million descriptors, and each measure took 20 to 30 s examining them
  all; the budget bounds that to a `readlink` each of 65,536 (a fraction
  of a second).

With a limit (`disk_usage(limit=...)`, as the sandbox measures), a measure
stops as soon as its running total passes it (`Usage.past_limit`: the
trees hold at least that much); it need not finish to know it is over.

The measure is disk usage (`st_blocks`), not apparent size: a sparse file
costs what it holds. Every inode (file, directory, symlink, device, held
file) costs at least `MIN_INODE_BYTES`, one 4 KiB block, what it costs at
least: an empty file or a short symlink has no blocks but takes one of the
filesystem's inodes (16M here), and a file with any content takes a block
on ext4. A flat 4 KiB rather than `st_blksize`: that is the preferred I/O
size, on some filesystems far above a block (NFS, a ZFS record: up to
1 MiB). So 400,000 empty files count 1.5 GiB, not the 8 MB of their
directories. An inode is counted once however many links or roots show it;
symbolic links are not followed. The walk goes by directory file
descriptors (`openat` with O_NOFOLLOW, `scandir` of a descriptor), never by
full path, so a tree deeper than PATH_MAX counts; it keeps a descriptor for
at most `WINDOW` levels and comes back up by `..` (checked against the
directory it left); it is `walk`, which `setid_sweep` shares. "Another
mount" is decided by mount id (`mnt_id:` in /proc/self/fdinfo: Python 3.11
has no statx; by device where /proc is missing), asked only when the
directory opened is not the inode its parent listed, on the parent's
device (a mount point lists the inode it covers, not the mounted root).
A directory that cannot be opened, other than one gone or replaced
meanwhile, is reported (`Usage.unreadable`, the first `MAX_LISTED`): its
content is not known, and the caller treats the measure as over the limit.
As root that happens only where the filesystem refuses root (NFS with
root_squash); in the non-root fallback, a command can `chmod 000` a
directory of its own.

Memory, against trees a command makes cheaply (tests/sandbox/test_walk_memory.py):
each level the walk is in keeps its own name and a link to its parent, and
a path is built only to be reported (from the names at its two ends, cut
to `MAX_SHOWN`), so a chain of any depth costs O(depth x name): 7000
levels of 255-byte names, 9 MiB. A listing is streamed to the consumer;
of a directory's entries only its subdirectories' names and listed inode
numbers are kept until they are walked, so one directory of a million
hard links costs nothing held, and one of a million subdirectories costs
their names (with `seen`, about 170 bytes each for short names, 420 for
255-byte ones: 100,000 subdirectories, 17 MiB). Every subdirectory costs
its filesystem an inode and, on ext4, a 4 KiB block: the walk's memory
stays within a few percent of the disk it walks. `seen` holds each
directory walked (one moved while the walk runs is walked once, so the
walk ends) and, for `disk_usage`, each file with another link, to count
once (a file of one link is not remembered). Time is linear in the
entries: each is listed and `lstat`-ed once.

Races: a command moving directories while a walk runs could hide them from
it. Where the walk notices it lost its place, it says so (`Skipped.lost`,
`Usage.incomplete`) instead of going on silently: coming back up by `..`
to a directory it left, and finding another one (the child was moved;
what was left to walk above is not walked); a subdirectory listed, gone
when opened (ENOENT, ENOTDIR, ELOOP: moved, perhaps into a place walked
already, or removed); a subdirectory listed, another inode of the same
mount and device when opened (replaced: the one listed moved). A command
watching the walk with inotify used to move a directory aside while the
walk was below it and back after, and wrote 1.5 GiB past a 64 MiB limit.
The sandbox's caller measures again at once while a measure is
incomplete, up to `MEASURE_TRIES` (3) times, one measure at a time; one
still incomplete then counts as over the limit, and the sandbox is
stopped ("kept changing while it was measured"). So a workspace where
directories are removed or renamed without pause while commands run (a
build tree churned in a loop) can be stopped though within its limit.
Still not covered: a directory moved from one the walk has not listed yet
into one it has finished walking is missed by that walk with no sign
(nothing the walk looks at afterwards changed; only the finished
directory's ctime did, and the walk keeps no way back to it). A command
watching the walk with inotify can time that move at every measure, and
then what it hides grows unmeasured. Closing it needs each directory
walked checked again at the end (its ctime, by a descriptor kept or by
handle), which this walk does not do. On a filesystem whose listings show
other inode numbers than `stat` (some overlayfs setups), every directory
would look replaced.

Not covered: between two measures a fast writer can go past the limit by
what it writes in one `interval` (up to `MAX_WATCH_INTERVAL_S`; at most
`max_file_size` per file, an rlimit): a `head -c 1M >> f` loop in a
10 MiB workspace was stopped at 180 to 210 MiB here, in a 0.5 s interval.
The disk itself is not reserved. The watcher is a task of the runtime's
event loop: a caller that blocks the loop (time.sleep) holds it up, and a
writer then runs until the loop runs again. Stopping the sandbox loses
what ran in it, servers a command left running included. Moving directories while a walk
runs: see Races. A deleted file held only by
a descriptor in flight in a Unix socket (sent with SCM_RIGHTS and closed)
is in no process's table and not counted (stopping the sandbox frees it,
as it frees every held file). A process whose `/proc/PID/fd` itemloop cannot
read (not root, and not the commands' uid) is skipped. An automount point
inside a tree is mounted by the walk opening it (to ask its mount id); a
directory bind-mounted on itself is that directory, and walked.
"""

from __future__ import annotations

import errno
import os
import stat
from array import array
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field

WATCH_INTERVAL_S = 0.5
"""The shortest time between two measures while the sandbox runs anything of a command's;
also how often the session's watcher looks whether it does."""
WATCH_COST = 20
"""The interval is at least this many times the last measure's duration (<= 5% of a core),
up to `MAX_WATCH_INTERVAL_S`."""
MAX_WATCH_INTERVAL_S = 5.0
"""The longest time between two measures while the sandbox runs anything of a command's,
however long a measure takes."""
MIN_INODE_BYTES = 4096
"""What one inode (file, directory, symlink, ...) is charged at least: one 4 KiB block."""
MAX_HELD_FDS = 65_536
"""Descriptors and mappings of deleted files, of all the session's processes together, that
one measure examines at most: past it, the measure counts as over the limit (the files they
hold are not all known; `Usage.too_many_held`)."""
MEASURE_TRIES = 3
"""Measures in a row a caller makes while each one loses its place (`Usage.incomplete`):
one still incomplete after them counts as over the limit."""
WINDOW = 32
"""Directory descriptors the walk keeps open at most (deeper levels are left by `..`)."""
MAX_LISTED = 20
"""Paths kept of each kind a walk reports (their counts go on)."""
MAX_SHOWN = 200
"""Characters of one path shown in a message (its middle is cut)."""
_HEAD = MAX_SHOWN // 4
_TAIL = MAX_SHOWN * 3 // 4

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
    """Directories that could not be opened (the first `MAX_LISTED`, each cut to
    `MAX_SHOWN`): their content is not in `total`."""
    incomplete: bool = False
    """The walk lost its place (`Skipped.lost`: a directory moved or replaced while it was
    walked): what it did not reach is not in `total`. The caller measures again, up to
    `MEASURE_TRIES` times; one still incomplete then counts as over the limit."""
    past_limit: bool = False
    """The measure stopped as soon as `total` passed the limit it was given: the trees and
    held files hold at least `total`."""
    too_many_held: bool = False
    """The session's processes hold more than `MAX_HELD_FDS` descriptors and mappings of
    deleted files: not all were examined, and the caller counts the measure as over the
    limit."""


def disk_usage(*roots: str, pids: Iterable[int] = (), limit: int | None = None) -> Usage:
    """Disk used by the trees at `roots` and by the deleted files `pids` hold on their
    filesystems (see the module docstring). With `limit`, the measure stops as soon as its
    total passes it (`Usage.past_limit`)."""
    seen: set[tuple[int, int]] = set()
    devs: set[int] = set()
    skipped = Skipped()
    total = 0
    bound = -1 if limit is None else limit

    def usage(held: int = 0, *, past: bool = False, crowded: bool = False) -> Usage:
        unreadable = tuple(skipped.unreadable.paths)
        return Usage(total, held, unreadable, skipped.lost.count > 0, past, crowded)

    for root in dict.fromkeys(roots):
        with closing(walk(root, seen, skipped, root, device_too=True)) as listings:
            for d in listings:
                devs.add(d.dir.stat.st_dev)  # a subvolume entered has a device of its own
                if d.dir.parent is None:
                    total += charged(d.dir.stat)
                for _name, st in d.entries:
                    if stat.S_ISDIR(st.st_mode):
                        total += charged(st)  # its own blocks, even on another filesystem
                    else:
                        total += _charged_once(st, seen)
                    if total > bound >= 0:  # over already: the rest changes nothing
                        return usage(past=True)
    held, crowded = _held(pids, devs, seen, None if limit is None else limit - total)
    total += held
    return usage(held, past=total > bound >= 0, crowded=crowded)


@dataclass(slots=True)
class Kept:
    """Paths of one kind: how many there were, and the first `limit` (built only for
    those, each cut to `MAX_SHOWN`)."""

    limit: int = MAX_LISTED
    count: int = 0
    paths: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    """Why, for each of `paths` (where `add` was told)."""

    def add(self, at: Dir | str, name: str = "", why: str = "") -> None:
        """`name` in the directory `at` (or `at` itself), or the root shown as `at`."""
        self.count += 1
        if len(self.paths) < self.limit:
            self.paths.append(shown_path(at, []) if isinstance(at, str) else at.path(name))
            self.reasons.append(why)


class Skipped:
    """Directories a walk did not enter."""

    __slots__ = ("lost", "mounts", "unreadable")

    def __init__(self, limit: int = MAX_LISTED) -> None:
        self.unreadable = Kept(limit)
        """Could not be opened (other than gone or replaced meanwhile)."""
        self.mounts = Kept(limit)
        """Another mount's: another filesystem mounted there."""
        self.lost = Kept(limit)
        """Where the walk lost its place: a directory it had left by `..` (more than `WINDOW`
        levels up) was not its parent any more when it came back (what was left to walk
        there, and above, was not walked), or a subdirectory listed was gone or replaced
        when opened (moved meanwhile: maybe to a place walked already)."""


@dataclass(slots=True)
class Dir:
    """One directory of a walk, while the walk is in it or below it."""

    fd: int | None
    """The directory, open (O_RDONLY, O_DIRECTORY) while it is listed; None once the walk
    is more than `WINDOW` levels below it."""
    stat: os.stat_result
    """Its own `fstat`."""
    name: str
    """Its name in its parent (for the root: the path its paths are shown under)."""
    parent: Dir | None
    subdirs: list[str] = field(default_factory=list)
    """Subdirectories listed and not walked yet."""
    inos: array[int] = field(default_factory=lambda: array("Q"))
    """Their inode numbers as listed (`subdirs`' order)."""

    def path(self, name: str = "") -> str:
        """`name` in this directory (or the directory itself) as a path under the root's,
        its middle cut when longer than `MAX_SHOWN` (see `shown_path`)."""
        names = [name] if name else []
        d: Dir | None = self
        while d is not None and d.parent is not None:
            names.append(d.name)
            d = d.parent
        names.reverse()
        return shown_path(d.name if d is not None else "", names)


@dataclass(frozen=True, slots=True)
class Listing:
    """One directory of a walk (`walk`), while the walk is at it."""

    dir: Dir
    entries: Generator[tuple[str, os.stat_result], None, None]
    """Its entries' names and `lstat`s (symlinks not followed), read as they are iterated
    (an entry gone meanwhile is left out); the walk reads the rest itself before it goes
    on."""


def walk(
    root: str,
    seen: set[tuple[int, int]],
    skipped: Skipped,
    shown_as: str,
    *,
    device_too: bool = False,
) -> Generator[Listing, None, None]:
    """Each directory of the tree at `root` on `root`'s mount, by descriptors (see the
    module docstring): a symlink is not followed, another mount not entered, a directory
    whose identity is in `seen` (walked already) not walked again. What is not entered
    goes to `skipped`, its path under `shown_as` (the root's name in paths; "" for
    paths relative to it). With `device_too`, a mount of the root's own device (a bind
    mount of its filesystem) is entered too.

    Each `Listing` is valid until the next one is asked for: its directory's descriptor
    is open and its entries can be read (the walk reads what is left, to find the
    subdirectories, before it goes on).
    """
    try:
        fd = os.open(root, _DIR)
    except OSError as e:
        if e.errno not in _GONE:
            skipped.unreadable.add(shown_as)
        return
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) in seen:  # a root inside another, walked already
        os.close(fd)
        return
    seen.add((st.st_dev, st.st_ino))
    mount = _Mount(mount_id(fd), st.st_dev, device_too)
    frames = [Dir(fd, st, shown_as, None)]
    try:
        yield from _listed(frames[0])
        while frames:
            top = frames[-1]
            if top.subdirs and top.fd is not None:
                name, ino = top.subdirs.pop(), top.inos.pop()
                child = _open_child(top, name, ino, mount, seen, skipped)
                if child is not None:
                    frames.append(child)
                    if len(frames) > WINDOW:  # keep few descriptors, however deep
                        far = frames[-WINDOW - 1]
                        if far.fd is not None:
                            os.close(far.fd)
                            far.fd = None
                    yield from _listed(child)
                continue
            frames.pop()
            if frames and frames[-1].fd is None and top.fd is not None:
                frames[-1].fd = _reopen_parent(top.fd, frames[-1].stat)
                if frames[-1].fd is None:  # moved: the rest above is not walked
                    skipped.lost.add(frames[-1])
            if top.fd is not None:
                os.close(top.fd)
                top.fd = None
    finally:
        for f in frames:
            if f.fd is not None:
                os.close(f.fd)


def _listed(d: Dir) -> Iterator[Listing]:
    """`d`'s listing, given to the consumer and then read to its end (its subdirectories
    are all in `d.subdirs` after)."""
    entries = _entries(d)
    try:
        yield Listing(d, entries)
        for _ in entries:
            pass
    finally:
        entries.close()


def _entries(d: Dir) -> Generator[tuple[str, os.stat_result], None, None]:
    """`d`'s entries streamed; its subdirectories kept in `d.subdirs` to walk."""
    assert d.fd is not None
    try:
        with os.scandir(d.fd) as found:
            for e in found:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone meanwhile
                if stat.S_ISDIR(st.st_mode):
                    d.subdirs.append(e.name)
                    d.inos.append(e.inode())
                yield e.name, st
    except OSError:
        pass  # removed while listed: what was listed is kept


@dataclass(frozen=True, slots=True)
class _Mount:
    """The mount a walk stays on: its id, or where /proc is missing, its device."""

    id: int | None
    dev: int
    device_too: bool
    """A mount of `dev` counts as this one."""


def _open_child(
    parent: Dir,
    name: str,
    ino: int,
    mount: _Mount,
    seen: set[tuple[int, int]],
    skipped: Skipped,
) -> Dir | None:
    assert parent.fd is not None
    try:
        fd = os.open(name, _DIR, dir_fd=parent.fd)
    except OSError as e:
        if e.errno in _GONE:  # removed, or moved: maybe to a place walked already
            skipped.lost.add(parent, name)
        else:
            skipped.unreadable.add(parent, name)
        return None
    st = os.fstat(fd)
    ident = (st.st_dev, st.st_ino)
    # A mount point lists the inode it covers, not the mounted root's: the directory listed,
    # on the parent's device, is on the parent's mount. Otherwise (another device: a btrfs
    # subvolume or a mount; another inode: a bind mount, or a name replaced meanwhile) ask.
    if ident != (parent.stat.st_dev, ino):
        if mount.id is not None and st.st_dev == parent.stat.st_dev and mount_id(fd) == mount.id:
            # The same mount and device, another inode than listed: the name was replaced
            # meanwhile (the one listed moved, maybe to a place walked already).
            skipped.lost.add(parent, name)
        elif not _on(mount, fd, st):
            os.close(fd)
            skipped.mounts.add(parent, name)
            return None
    if ident in seen:  # one moved here and walked already
        os.close(fd)
        return None
    seen.add(ident)  # a directory moved while the walk runs is walked once
    return Dir(fd, st, name, parent)


def _on(mount: _Mount, fd: int, st: os.stat_result) -> bool:
    """Whether `fd` (`st`) is on the walk's mount, or may be walked as if it were."""
    if mount.device_too and st.st_dev == mount.dev:
        return True
    if mount.id is None:
        return st.st_dev == mount.dev
    return mount_id(fd) == mount.id


def mount_id(fd: int) -> int | None:
    """The id of the mount `fd` is on (`mnt_id:` in /proc/self/fdinfo: Python 3.11 has no
    statx); None without /proc."""
    try:
        info = os.open(f"/proc/self/fdinfo/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = os.read(info, 4096)
    finally:
        os.close(info)
    for line in text.splitlines():
        if line.startswith(b"mnt_id:"):
            return int(line[7:])
    return None


def _reopen_parent(child_fd: int, parent: os.stat_result) -> int | None:
    """The directory the walk left, by `..`; None when it is not that one any more (the
    child was moved meanwhile: what is left to walk there is skipped in this walk)."""
    try:
        fd = os.open("..", _DIR, dir_fd=child_fd)
    except OSError:
        return None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (parent.st_dev, parent.st_ino):
        os.close(fd)
        return None
    return fd


def shown_path(root: str, names: Sequence[str]) -> str:
    """`names` under `root` ("." for `root` "" itself), its middle cut when longer than
    `MAX_SHOWN` (the first quarter and the last three kept): built from the ends, so a
    path of any depth costs no more than the names it keeps."""
    if sum(map(len, names)) <= 4 * MAX_SHOWN:
        path = os.path.join(root, *names) if names else root or "."
        return cut_middle(path)
    head, i = root, 0
    while len(head) < _HEAD:
        head, i = os.path.join(head, names[i]), i + 1
    tail, j = "", len(names)
    while len(tail) < _TAIL:
        j -= 1
        tail = f"{names[j]}/{tail}" if tail else names[j]
    return f"{head[:_HEAD]}...{tail[-_TAIL:]}"


def cut_middle(path: str) -> str:
    """`path`, its middle cut when longer than `MAX_SHOWN` (the first quarter and the last
    three kept: the name at its end stays)."""
    return path if len(path) <= MAX_SHOWN else f"{path[:_HEAD]}...{path[-_TAIL:]}"


def charged(st: os.stat_result) -> int:
    """What one inode counts: its blocks, and at least `MIN_INODE_BYTES`."""
    return max(st.st_blocks * 512, MIN_INODE_BYTES)


def _charged_once(st: os.stat_result, seen: set[tuple[int, int]]) -> int:
    # Only a file with another link is remembered (to count once).
    if st.st_nlink > 1:
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return 0
        seen.add(key)
    return charged(st)


def _held(
    pids: Iterable[int], devs: set[int], seen: set[tuple[int, int]], room: int | None
) -> tuple[int, bool]:
    """Blocks of the files with no link left on `devs` that `pids` hold open or mapped (once
    past `room`, what was found so far), and whether they hold more than `MAX_HELD_FDS`
    descriptors and mappings of deleted files (then not all were examined)."""
    total = 0
    budget = MAX_HELD_FDS
    for pid in pids:
        for path, deleted in _open_files(pid):
            budget -= 1
            if budget < 0:
                return total, True
            if not deleted and not _unlinked(path):
                continue
            try:
                st = os.stat(path)  # follows the magic link to the open file itself
            except OSError:
                continue  # closed or gone meanwhile
            key = (st.st_dev, st.st_ino)
            if st.st_nlink == 0 and st.st_dev in devs and key not in seen:
                seen.add(key)
                total += charged(st)
                if room is not None and total > room:
                    return total, False
    return total, False


def _unlinked(fd_link: str) -> bool:
    """Whether the descriptor at `fd_link` (`/proc/PID/fd/N`) may be a file with no link
    left: the kernel shows such a file's path (an O_TMPFILE one's too) with " (deleted)".
    A pipe, socket or other anonymous inode has none: it is not `stat`-ed."""
    try:
        return os.readlink(fd_link).endswith(" (deleted)")
    except FileNotFoundError:
        return False  # closed meanwhile
    except OSError:
        return True  # its path is past a page (ENAMETOOLONG): `stat` says


def _open_files(pid: int) -> Iterator[tuple[str, bool]]:
    """`/proc` links to what `pid` holds: its descriptors, and its mappings of deleted
    files (these with True: known to be deleted), read as they are iterated."""
    base = f"/proc/{pid}"
    try:
        with os.scandir(f"{base}/fd") as fds:
            for e in fds:
                yield f"{base}/fd/{e.name}", False
    except OSError:
        return  # gone (or not readable: see the module docstring)
    try:
        with open(f"{base}/maps", "rb") as f:
            for line in f:
                if line.endswith(b" (deleted)\n"):
                    yield f"{base}/map_files/{line.split(b' ', 1)[0].decode()}", True
    except OSError:
        pass


def session_pids(leader: int) -> set[int]:
    """`leader` and its descendants (every process of a PID namespace whose init it
    started): from each one's children (`/proc/PID/task/TID/children`, a few reads per
    process), or where the kernel has no such files, from the parent pids of all of
    /proc. A process forked or re-parented while they are read may be missed by one
    call (the next one finds it)."""
    found = {leader}
    todo = [leader]
    while todo:
        kids = _children(todo.pop())
        if kids is None:
            return _descendants_by_scan(leader)
        for child in kids:
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _children(pid: int) -> list[int] | None:
    """The children of every thread of `pid` ([] when it is gone); None where the kernel
    has no `children` files (CONFIG_PROC_CHILDREN)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    kids: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                kids += map(int, f.read().split())
        except FileNotFoundError:
            if os.path.isdir(f"/proc/{pid}/task/{tid}"):
                return None  # the thread is there, its file is not
        except OSError:
            pass  # gone meanwhile
    return kids


def _descendants_by_scan(leader: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        got = _ppid_sid(int(name))
        if got is not None:
            children.setdefault(got[0], []).append(int(name))
    found = {leader}
    todo = [leader]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _ppid_sid(pid: int) -> tuple[int, int] | None:
    """`pid`'s parent and session (as this process's PID namespace numbers them); None
    when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[1]), int(fields[3])
    except (OSError, IndexError, ValueError):
        return None


def runs_commands(leader: int, pids: Iterable[int]) -> bool:
    """Whether `pids`, a sandbox's processes (`leader`: its bubblewrap), hold one besides
    the sandbox's own: `leader`, its children (the runner; the launcher's helpers while
    it starts) and their sessions (the runner's keepers, forked by it). Every command is
    spawned in a session of its own, and no process joins a session it was not born in,
    so whatever a command started, detached or not, is in none of those. Reads one
    `/proc/PID/stat` per process."""
    found = {p: _ppid_sid(p) for p in pids}
    own = {ps[1] for p, ps in found.items() if ps is not None and leader in (p, ps[0])}
    return any(ps is not None and p != leader and ps[1] not in own for p, ps in found.items())


def interval(last_walk_s: float) -> float:
    """The time to the next measure after one that took `last_walk_s` (see the module
    docstring)."""
    return min(MAX_WATCH_INTERVAL_S, max(WATCH_INTERVAL_S, WATCH_COST * last_walk_s))


def shown(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
