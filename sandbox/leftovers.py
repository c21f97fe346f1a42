"""What a killed itemloop leaves behind, and how the next one knows it is free to remove.

A SIGKILLed itemloop cannot clean up: its session cgroups (`cgroups.py`) and
its display directories (`desktop_display.py`) stay. Each is named after the
pid of the itemloop that made it (`<prefix><pid>-...`), and whoever makes the
next one beside them removes those whose pid is gone (`gone`).

Not covered: a pid reused by another program keeps its leftovers until that
program exits (a live pid is never judged gone); an itemloop in another PID
namespace sharing the same directory is judged by a pid that means something
else here, which is why only what holds nothing is removed (an empty cgroup;
a directory whose owner is us).
"""

from __future__ import annotations

import os


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
