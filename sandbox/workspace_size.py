"""The workspace's total size, measured: what `max_workspace_bytes` is checked against.

Where the filesystem cannot bound a directory (ext4 without project quotas,
as on this project's machines; a size-limited mount would hide the user's
files behind a copy), the `local` sandbox measures the workspace instead:
before each command, every `WATCH_INTERVAL_S` while one runs, and after it.
Growth past the limit stops the session's commands (`bubblewrap.py`).

The measure is disk usage (`st_blocks`), not apparent size: a sparse file
costs what it holds. A file with several links counts once; symbolic links
are not followed; a directory on another filesystem (a mount inside the
workspace) is not entered.

Not covered: between two measures a fast writer can go past the limit by
what it writes in `WATCH_INTERVAL_S` (at most `max_file_size` per file, an
rlimit); the disk itself is not reserved. Walking a large tree costs time,
so the interval grows with the time one walk takes (`interval`).
"""

from __future__ import annotations

import os
import stat

WATCH_INTERVAL_S = 0.5
"""The shortest time between two measures while a command runs."""
WATCH_COST = 20
"""The interval is at least this many times the last walk's duration (<= 5% of a core)."""


def disk_usage(root: str) -> int:
    """Bytes of disk the tree at `root` uses (see the module docstring)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    try:
        dev = os.lstat(root).st_dev
    except OSError:
        return 0
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            entries = os.scandir(d)
        except OSError:
            continue  # gone meanwhile, or unreadable
        with entries:
            for e in entries:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_blocks * 512
                if stat.S_ISDIR(st.st_mode) and st.st_dev == dev:
                    stack.append(e.path)
    return total


def interval(last_walk_s: float) -> float:
    return max(WATCH_INTERVAL_S, WATCH_COST * last_walk_s)


def shown(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
