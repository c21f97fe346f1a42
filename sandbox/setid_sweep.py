"""Set-ID bits removed from host trees: what the `docker` sandbox's exec path does instead
of refusing them.

On the exec path (`docker exec` per command) no seccomp filter refuses
set-user-ID and set-group-ID modes, and a command run as root in the
container owns the files it makes: it could leave a setuid-root program in
the workspace on the host. `sweep` finds such bits afterwards and removes
them: every regular file and every directory of the trees (the workspace and
the writable paths) with S_ISUID or S_ISGID gets its mode without those two
bits (the others, the sticky bit among them, are kept). Directories lose
both: S_ISUID means nothing on a Linux directory, and S_ISGID on one that a
command made (owned by root, as the commands are) gives root's group to every
file a host user later creates in it. The fast path's filter refuses both on
directories too (it cannot tell a directory from a file), so the two paths
leave the same workspace. Other kinds of file (FIFOs, sockets, symlinks) keep
their mode: set-ID bits mean nothing on them.

The walk is `workspace_size.walk`: by directory descriptors, symlinks never
followed, a tree deeper than PATH_MAX walked all the same, in memory linear
in its depth and streaming each listing. Another mount inside a tree (by
mount id: a bind mount of the same filesystem too) is not entered, and
said ("not searched: another filesystem mounted at ..."): it is the host's,
set-ID files there are not the commands'; a file that is a mount is left
and said likewise. A btrfs subvolume a command makes (another device, the
same mount) is entered and swept. A directory's bits are cleared
with `fchmod` on the descriptor the walk opened (O_NOFOLLOW, relative to
its parent's). A file is opened by name relative to its directory's
descriptor with O_PATH | O_NOFOLLOW, which neither follows a symlink nor
opens the file itself (no FIFO blocks, no device is opened, no read
permission is needed); `fstat` on that descriptor must show the regular
file, same filesystem and inode, the listing showed, still with set-ID bits;
then `chmod` of `/proc/self/fd/N` changes that inode (fchmod refuses O_PATH
descriptors, and the magic link names the inode itself, not a path to look
up again).

The report (`Swept`) keeps the first `MAX_LISTED` paths of each kind with
the true counts; a path is built only for those, from the names of the
directories the walk is in, its middle cut to `MAX_SHOWN`.

Races: a command running meanwhile (one in the background: the sweep runs
after each command) can rename, replace or swap any name for a symlink
between any two steps. A name swapped for a symlink fails no step but the
`fstat` check (the descriptor is the link's own) and is skipped; a name
replaced by another file is skipped too, and that file is found by the next
sweep. Nothing is ever looked up by a path the command can change after the
check, so no file outside the trees is changed: every inode touched was an
entry of a directory the walk holds. A mode the command changes between the
`fstat` and the `chmod` is overwritten (with its set-ID bits removed).

Not covered: a background process can set the bits again right after a
sweep, and they stay until the next one (after the next command, or when the
session closes); the sweep narrows that window, it does not close it. A hard
link is the file itself, so a set-ID file linked into a tree from elsewhere
on its filesystem loses its bits everywhere (commands cannot make such a
link: they see only the trees). A directory the walk cannot open (not
root, and a command made it unreadable) is not searched; it is reported.
Without /proc mounted, files cannot be changed (they are reported as failed).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from .workspace_size import MAX_LISTED, MAX_SHOWN, Kept, Skipped, cut_middle, mount_id, walk

__all__ = ["MAX_LISTED", "MAX_SHOWN", "SETID", "Swept", "listed", "sweep"]

SETID = stat.S_ISUID | stat.S_ISGID

_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep did (paths as `sweep` gives them, each cut to `MAX_SHOWN`; at most
    `MAX_LISTED` of each kind, with the true counts)."""

    cleared: tuple[str, ...] = ()
    """Files and directories whose set-ID bits were removed."""
    count: int = 0
    """How many there were (`cleared` keeps the first few)."""
    failed: tuple[str, ...] = ()
    """Those whose bits could not be removed, each with the reason."""
    unreadable: tuple[str, ...] = ()
    """Directories that could not be opened: not searched."""
    mounts: tuple[str, ...] = ()
    """Directories not entered, and set-ID files left, because another filesystem is
    mounted there: not searched."""
    failed_count: int = 0
    unreadable_count: int = 0
    mounts_count: int = 0

    def __bool__(self) -> bool:
        return bool(self.count or self.failed or self.unreadable or self.mounts)

    def shown(self) -> str:
        """For a message: the paths cleared, then what could not be done, quoted."""
        parts = []
        if self.count:
            s = "" if self.count == 1 else "s"
            parts.append(f"removed from {self.count} path{s}: {listed(self.cleared, self.count)}")
        if self.failed:
            failed = ", ".join(self.failed)  # quoted already, each with its reason
            more = self.failed_count - len(self.failed)
            parts.append(
                f"could not be removed from {failed}{f' and {more} more' if more > 0 else ''}"
            )
        if self.unreadable:
            parts.append(
                f"directories not searched: {listed(self.unreadable, self.unreadable_count)}"
            )
        if self.mounts:
            one = self.mounts_count == 1
            what = "another filesystem" if one else "other filesystems"
            parts.append(
                f"not searched: {what} mounted at {listed(self.mounts, self.mounts_count)}"
            )
        return "; ".join(parts)


def sweep(root: str, *others: str, limit: int = MAX_LISTED) -> Swept:
    """Remove the set-ID bits in the trees at `root` and `others` (see the module
    docstring). Paths under `root` are given relative to it ("." for `root` itself);
    those under `others` in full. A tree inside another is walked once."""
    seen: set[tuple[int, int]] = set()
    cleared, failed, skipped = Kept(limit), Kept(limit), Skipped(limit)
    for i, top in enumerate(dict.fromkeys((root, *others))):
        for listing in walk(top, seen, skipped, top if i else ""):
            d = listing.dir
            assert d.fd is not None
            if d.stat.st_mode & SETID:
                why = _clear_dir(d.fd, d.stat)
                if why is None:
                    cleared.add(d)
                else:
                    failed.add(d, why=why)
            for name, st in listing.entries:
                if not st.st_mode & SETID or not stat.S_ISREG(st.st_mode):
                    continue
                why = _clear_file(d.fd, name, st)
                if why is None:
                    cleared.add(d, name)
                elif why == _MOUNTED:
                    skipped.mounts.add(d, name)
                elif why:
                    failed.add(d, name, why)
    unreadable, mounts = skipped.unreadable, skipped.mounts
    return Swept(
        tuple(cleared.paths),
        cleared.count,
        tuple(f"{_quoted(p)} ({why})" for p, why in zip(failed.paths, failed.reasons, strict=True)),
        tuple(unreadable.paths),
        tuple(mounts.paths),
        failed.count,
        unreadable.count,
        mounts.count,
    )


def _clear_dir(fd: int, st: os.stat_result) -> str | None:
    """None when done, else why not."""
    try:
        os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~SETID)
    except OSError as e:
        return e.strerror or str(e)
    return None


_MOUNTED = "mounted"


def _clear_file(dir_fd: int, name: str, listed_st: os.stat_result) -> str | None:
    """None when done; "" when the name is not that set-ID file any more (gone, replaced,
    a symlink now: skipped); `_MOUNTED` when it is another mount's (a file mounted there:
    left); else why it could not be done."""
    try:
        fd = os.open(name, _PATH, dir_fd=dir_fd)
    except OSError:
        return ""  # gone meanwhile
    try:
        st = os.fstat(fd)
        if (
            not stat.S_ISREG(st.st_mode)
            or (st.st_dev, st.st_ino) != (listed_st.st_dev, listed_st.st_ino)
            or not st.st_mode & SETID
        ):
            return ""
        if mount_id(fd) != mount_id(dir_fd):
            return _MOUNTED
        os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(st.st_mode) & ~SETID)
    except OSError as e:
        return e.strerror or str(e)
    finally:
        os.close(fd)
    return None


def listed(paths: Sequence[str], count: int) -> str:
    """`paths` quoted, and how many more of `count` there were."""
    text = ", ".join(_quoted(p) for p in paths)
    more = count - len(paths)
    return f"{text} and {more} more" if more > 0 else text


def _quoted(path: str) -> str:
    """`path` as a Python literal (control characters and undecodable bytes escaped), its
    middle cut when long (`cut_middle`)."""
    return repr(cut_middle(path))
