"""One cgroup per `local` sandbox session: memory, process and CPU limits, as root or not.

Rlimits do not bound a session: RLIMIT_NPROC is per user and not enforced for
root, and there is no rlimit for a process tree's memory. A cgroup is. Which
one, the host decides:

- cgroup v2, when the unified hierarchy has the controllers: a child cgroup
  with `memory.max` (and `memory.swap.max` 0), `pids.max`, `cpu.max`, made
  in our own cgroup; else in the nearest ancestor that already enables the
  controllers for its children and whose `cgroup.procs` we may write (moving
  a process needs the common ancestor's): a subtree delegated the systemd
  way (user@UID.service and below are the user's); else in the hierarchy's
  root (as root). Enabling the controllers (`cgroup.subtree_control`) is
  tried in our own cgroup and the root only, and fails in a cgroup that
  holds processes and is not the root (the "no internal processes" rule; our
  own, as a rule). Where none works, v1 is tried. (This path is not
  exercised on the project's machines and CI, which have no v2 controllers:
  it is kept correct by reading.)
- cgroup v1 (also hybrid mode: v1 controllers mounted under /sys/fs/cgroup,
  none in v2, as on this project's machines and CI): a child of our own
  cgroup in each of the memory, pids and cpu hierarchies, with
  `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes` where swap is
  accounted), `pids.max`, `cpu.cfs_quota_us`/`cpu.cfs_period_us`. Not root,
  that works where an administrator gave the user (chown) the cgroup its
  processes are in: what the user makes inside is the user's, and v1 lets a
  user move its own processes into a cgroup whose `cgroup.procs` it may
  write. Each hierarchy stands alone: where some are delegated and some not,
  the limits of the first hold, and `unheld` says which are not, and why.

A child is created only for a limit that is set (`None`: unlimited). A
process joins by writing its pid to each `cgroup.procs`; what it forks from
then on is inside, so it must join before it forks (`join_argv` starts a
program through a shell that joins first, then execs it). Removing the
cgroup kills what is left in it first.

Not covered: without write access to any hierarchy (not root, nothing
delegated), `CgroupUnavailable` names each cgroup that is not the user's and
the session runs without these limits (the caller reports it, with
`DELEGATION`). A v2 cgroup delegated to us that holds us (a `Delegate=yes`
service whose parent is root's) is not used: that needs itemloop to move
itself into a leaf first. Names are `itemloop-<pid>-<n>`: one left behind by
a killed itemloop (it holds no process: the sandbox dies with itemloop) is
removed by the next session made beside it, once that pid is gone
(`_remove_leftovers`; rmdir only ever removes an empty cgroup).
"""

from __future__ import annotations

import errno
import itertools
import os
import shlex
import signal
from dataclasses import dataclass
from pathlib import Path

from .leftovers import gone

V1_CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
"""The CPU bandwidth period: `cpus` CPUs is `cpus * period` of run time per period."""
DELEGATION = (
    "cgroup v2: itemloop inside a cgroup of yours enabling memory, pids and cpu for its "
    "children, as systemd's user@UID.service is (systemd-run --user --scope itemloop ...); "
    "cgroup v1: a cgroup in each of the memory, pids and cpu hierarchies chowned to you "
    "by an administrator, holding your processes"
)
"""What a user who is not root needs for the limits, for a person (the notices say it)."""
_names = itertools.count(1)


class CgroupUnavailable(Exception):
    """No cgroup can hold the session here; the message says why, for a person."""


@dataclass(frozen=True, slots=True)
class Limits:
    memory_bytes: int | None = None
    max_processes: int | None = None
    cpus: float | None = None

    def any(self) -> bool:
        return any(v is not None for v in (self.memory_bytes, self.max_processes, self.cpus))


@dataclass(frozen=True, slots=True)
class _Mount:
    path: str
    root: str
    """The hierarchy's path mounted there (not `/` inside a cgroup namespace)."""
    fstype: str
    options: frozenset[str]


def _mounts() -> list[_Mount]:
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, tail = pre.split(), post.split()
            if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
                continue
            found.append(
                _Mount(
                    _unescape(fields[4]),
                    _unescape(fields[3]),
                    tail[0],
                    frozenset(tail[2].split(",")),
                )
            )
    return found


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def _own_cgroups() -> dict[str, str]:
    """Our cgroup per hierarchy: controller name (or "" for v2) -> path."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            _id, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                own[c] = path
    return own


def _in_mount(mount: _Mount, path: str) -> Path:
    rel = path
    if mount.root != "/" and (path == mount.root or path.startswith(mount.root + "/")):
        rel = path[len(mount.root) :]
    return Path(mount.path) / rel.lstrip("/")


def _write(path: Path, value: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(value)


class SessionCgroup:
    """The cgroup(s) of one session; `create` makes them, `remove` takes them away."""

    def __init__(
        self, dirs: list[Path], version: int, limits: Limits, asked: Limits | None = None
    ) -> None:
        self.dirs = dirs
        self.version = version
        self.limits = limits
        """The limits in force."""
        self.asked = limits if asked is None else asked
        """The limits asked for: more than `limits` where a v1 controller was not delegated."""
        self.unheld: list[str] = []
        """Why each limit asked for and not in force is not (v1: per controller)."""

    @classmethod
    def create(cls, limits: Limits) -> SessionCgroup:
        """A new cgroup with `limits`, v2 where the host has the controllers, else v1
        (there, the limits of the controllers that can be had; `unheld` says why not the rest)."""
        name = f"itemloop-{os.getpid()}-{next(_names)}"
        mounts, own = _mounts(), _own_cgroups()
        why: list[str] = []
        try:
            return cls._create_v2(name, limits, mounts, own)
        except CgroupUnavailable as e:
            why.append(str(e))
        try:
            return cls._create_v1(name, limits, mounts, own)
        except CgroupUnavailable as e:
            why.append(str(e))
        raise CgroupUnavailable("; ".join(why))

    @classmethod
    def _create_v2(
        cls, name: str, limits: Limits, mounts: list[_Mount], own: dict[str, str]
    ) -> SessionCgroup:
        mount = next((m for m in mounts if m.fstype == "cgroup2"), None)
        if mount is None or "" not in own:
            raise CgroupUnavailable("no cgroup v2 hierarchy")
        wanted = _v2_controllers(limits)
        # Our own cgroup first (it usually holds us, so the "no internal processes"
        # rule refuses its subtree_control); then, nearest first, its ancestors that
        # already enable the controllers for their children: a cgroup delegated to
        # us the systemd way (user@UID.service and below); then the hierarchy's root,
        # which that rule does not bind (as root). Only our own cgroup and the root
        # are ever changed; an ancestor's subtree_control is its manager's.
        top, mine = Path(mount.path), _in_mount(mount, own[""])
        candidates = [mine, *(p for p in mine.parents if p.is_relative_to(top) and p != top)]
        if top not in candidates:
            candidates.append(top)
        why = []
        for parent in candidates:
            try:
                child = _v2_child(parent, name, wanted, enable=parent in (mine, top))
                break
            except CgroupUnavailable as e:
                why.append(str(e))
        else:
            raise CgroupUnavailable("; ".join(why))
        cg = cls([child], 2, limits)
        try:
            if limits.memory_bytes is not None:
                _write(child / "memory.max", str(limits.memory_bytes))
                if (child / "memory.swap.max").exists():
                    _write(child / "memory.swap.max", "0")
            if limits.max_processes is not None:
                _write(child / "pids.max", str(limits.max_processes))
            if limits.cpus is not None:
                _write(child / "cpu.max", f"{_quota(limits.cpus)} {CPU_PERIOD_US}")
        except OSError as e:
            cg.remove()
            raise CgroupUnavailable(f"cgroup v2: cannot set limits: {e.strerror}") from None
        return cg

    @classmethod
    def _create_v1(
        cls, name: str, limits: Limits, mounts: list[_Mount], own: dict[str, str]
    ) -> SessionCgroup:
        # Each controller is its own hierarchy: one delegated (or root's) and another
        # not still gives the first one's limit; `unheld` names the rest.
        held: dict[str, Path] = {}
        refused: list[str] = []
        cg = cls([], 1, Limits(), limits)
        for c in _v1_controllers(limits):
            mount = next((m for m in mounts if m.fstype == "cgroup" and c in m.options), None)
            if mount is None or c not in own:
                cg.unheld.append(f"no cgroup v1 {c} controller mounted")
                continue
            parent = _in_mount(mount, own[c])
            _remove_leftovers(parent)
            child = parent / name
            try:
                if child not in cg.dirs:  # controllers mounted together share a directory
                    child.mkdir()
                    cg.dirs.append(child)
                _set_v1(c, child, limits)
            except OSError as e:
                if e.errno in (errno.EACCES, errno.EPERM):
                    refused.append(f"{parent} ({c})")
                else:
                    cg.unheld.append(
                        f"cgroup v1 {c}: cannot make or set {e.filename} ({e.strerror})"
                    )
                if child in cg.dirs and child not in held.values():
                    cg.dirs.remove(child)
                    _rmdir(child)
                continue
            held[c] = child
        if refused:
            cg.unheld.append(
                f"cgroup v1: not delegated to uid {os.geteuid()} (Permission denied: not root "
                f"and no delegated subtree): {', '.join(refused)}"
            )
        if not held:
            raise CgroupUnavailable("; ".join(cg.unheld))
        cg.limits = Limits(
            limits.memory_bytes if "memory" in held else None,
            limits.max_processes if "pids" in held else None,
            limits.cpus if "cpu" in held else None,
        )
        return cg

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def join_argv(self, argv: list[str]) -> list[str]:
        """`argv` started through a shell that first joins this cgroup (before anything forks)."""
        joins = " && ".join(f"echo $$ > {shlex.quote(p)}" for p in self.procs_files)
        return ["/bin/sh", "-c", f'{joins} && exec "$@"', "sh", *argv]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for p in self.procs_files:
            try:
                found |= {int(x) for x in Path(p).read_text().split()}
            except OSError:
                pass
        return found

    def remove(self) -> None:
        """Kill what is left in the cgroup, then remove it (what cannot be removed stays)."""
        for _ in range(100):  # a process forking while killed: a few rounds
            left = self.pids()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for d in reversed(self.dirs):
            for _ in range(1000):  # rmdir is EBUSY until the killed processes are reaped
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if not self.pids():
                        try:
                            d.rmdir()
                        except OSError:
                            pass
                        break
                    os.sched_yield()

    def describe(self) -> str:
        """The limits in force, and those asked for and not, with why."""
        text = f"{', '.join(_parts(self.limits))} (cgroup v{self.version})"
        unheld = [p for p in _parts(self.asked) if p not in _parts(self.limits)]
        if unheld:
            text += f"; NOT in force: {', '.join(unheld)}, because {'; '.join(self.unheld)}"
        return text


def _parts(lim: Limits) -> list[str]:
    parts = []
    if lim.memory_bytes is not None:
        parts.append(f"memory {_size(lim.memory_bytes)}")
    if lim.max_processes is not None:
        parts.append(f"{lim.max_processes} processes")
    if lim.cpus is not None:
        parts.append(f"{lim.cpus:g} CPUs")
    return parts


def _set_v1(controller: str, child: Path, limits: Limits) -> None:
    """Write `controller`'s limit of `limits` into v1 cgroup `child`."""
    if controller == "memory" and limits.memory_bytes is not None:
        _write(child / "memory.limit_in_bytes", str(limits.memory_bytes))
        if (child / "memory.memsw.limit_in_bytes").exists():
            # Swap counted with memory: the limit binds memory and swap together.
            _write(child / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
    if controller == "pids" and limits.max_processes is not None:
        _write(child / "pids.max", str(limits.max_processes))
    if controller == "cpu" and limits.cpus is not None:
        _write(child / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        _write(child / "cpu.cfs_quota_us", str(_quota(limits.cpus)))


def _remove_leftovers(parent: Path) -> None:
    """Remove the empty `itemloop-<pid>-<n>` children of `parent` whose itemloop is gone.

    A live pid (ours, or one reused by another program) keeps its cgroups: a
    session's cgroup is empty for a moment after it is made. rmdir refuses a
    cgroup that holds a process, so nothing running is ever touched."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for n in names:
        if gone(n, "itemloop-"):
            _rmdir(parent / n)


def _rmdir(d: Path) -> None:
    try:
        d.rmdir()
    except OSError:
        pass  # it holds no process: left for whoever removes it by hand


def _v2_child(parent: Path, name: str, wanted: list[str], *, enable: bool) -> Path:
    """A new child of v2 cgroup `parent` with the `wanted` controllers enabled for it
    (by writing `parent`'s subtree_control where `enable`, else only where it does)."""
    try:
        have = set((parent / "cgroup.controllers").read_text().split())
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
    except OSError as e:
        raise CgroupUnavailable(f"cgroup v2: {parent}: {e.strerror}") from None
    missing = [c for c in wanted if c not in have]
    if missing:
        raise CgroupUnavailable(f"cgroup v2 has no {', '.join(missing)} controller in {parent}")
    todo = [c for c in wanted if c not in enabled]
    if todo and not enable:
        raise CgroupUnavailable(f"cgroup v2: {parent} does not enable {', '.join(todo)}")
    # Moving our processes into the child needs `parent`'s cgroup.procs too (the
    # common ancestor's, in v2): delegated the systemd way, it is the user's.
    if not os.access(parent / "cgroup.procs", os.W_OK):
        raise CgroupUnavailable(
            f"cgroup v2: {parent} is not delegated to uid {os.geteuid()} "
            "(not root and no delegated subtree)"
        )
    try:
        if todo:
            _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in todo))
        _remove_leftovers(parent)
        child = parent / name
        child.mkdir()
    except OSError as e:
        raise CgroupUnavailable(
            f"cgroup v2: cannot make a child of {parent} ({e.strerror}: not root and no "
            "delegated subtree, or that cgroup holds processes)"
        ) from None
    return child


def _v1_controllers(limits: Limits) -> list[str]:
    chosen = []
    if limits.memory_bytes is not None:
        chosen.append("memory")
    if limits.max_processes is not None:
        chosen.append("pids")
    if limits.cpus is not None:
        chosen.append("cpu")
    return chosen


def _v2_controllers(limits: Limits) -> list[str]:
    return _v1_controllers(limits)


def _quota(cpus: float) -> int:
    return max(1000, int(cpus * CPU_PERIOD_US))


def _size(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"
