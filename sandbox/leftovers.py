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
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Collection


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


def remove_temp_dirs(prefixes: Collection[str], owners: Collection[int] = ()) -> None:
    """Remove the temp directories named `<prefix><pid>-...` whose itemloop is gone: only
    real directories owned by us or `owners`, never a link another user planted in /tmp
    (rmtree never follows one)."""
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
            shutil.rmtree(path, ignore_errors=True)
