"""Start bubblewrap as an unprivileged uid, the workspace writable through idmapped mounts.

Run as a script by the host's Python, as root, from `idmap.launcher_argv`:

  python3 -I -S _idmap_launcher.py U G STAGE [--procs PATH]...
      [--mount NAME OWNER SOURCE]... -- BWRAP ARGV...

`--procs`: a `cgroup.procs` file of the session's cgroup; `--mount`: a source
to stage at STAGE/NAME, idmapped from OWNER (`uid:gid`) to U and G, or a
read-only plain clone when OWNER is `-`. Standard library only, and as little
of it as will do: it runs at every start of a sandbox (json, platform and
signal would double its start-up time).

In order: join the session's cgroup (before anything forks), take a clone of
each source (`open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`, detached), make the
ones with an `owner` idmapped (`mount_setattr(MOUNT_ATTR_IDMAP)` with a user
namespace whose map sends `owner` to U and G: what the owner has on disk
shows as U's, what U creates is stored as the owner's), then, in a new
private mount namespace (`/` made rprivate first, so nothing propagates to
the host), mount a small tmpfs on `stage` and attach each clone at
`stage/name`. Then drop to U and G (no supplementary groups), ask for SIGKILL
when the parent (itemloop) dies, and exec bubblewrap, which binds the staged
clones where commands see them. The mounts live only in this process's mount
namespace: when bubblewrap and the sandbox are gone (a SIGKILL of itemloop
included), nothing is left mounted on the host.

Any failure before the exec is reported on stderr as one line starting with
`FAILED` ("itemloop-idmap:") and exit status 125; the caller falls back
to running as root (see `bubblewrap.py`).
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

FAILED = "itemloop-idmap:"
EXIT_FAILED = 125

# The "new mount API" system calls have one number on every architecture but
# alpha and MIPS.
SYSCALLS = {"open_tree": 428, "move_mount": 429, "mount_setattr": 442}
MACHINES = ("x86_64", "aarch64", "riscv64", "ppc64le", "s390x", "loongarch64")

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4
MOUNT_ATTR_IDMAP = 0x00100000
PR_SET_PDEATHSIG = 1
SIGKILL = 9

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class Failed(Exception):
    """A step failed; the message says which and why."""


def _check(r: int, what: str) -> int:
    if r < 0:
        e = ctypes.get_errno()
        raise Failed(f"{what}: {os.strerror(e)}")
    return r


def _syscall(name: str, *args: object) -> int:
    return int(_check(_libc.syscall(ctypes.c_long(SYSCALLS[name]), *args), name))


def unshare(flags: int, what: str) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), what)


def idmap_userns(owner: tuple[int, int], uid: int, gid: int) -> int:
    """A descriptor of a new user namespace mapping `owner` (inside) to `uid`/`gid`."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child only holds the namespace open until its map is written
        try:
            os.close(ready_r)
            os.close(done_w)
            ok = _libc.unshare(ctypes.c_int(CLONE_NEWUSER)) == 0
            os.write(ready_w, b"1" if ok else b"0")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise Failed("cannot create a user namespace for the idmapped mount")
        with open(f"/proc/{pid}/uid_map", "w", encoding="ascii") as f:
            f.write(f"{owner[0]} {uid} 1\n")
        with open(f"/proc/{pid}/gid_map", "w", encoding="ascii") as f:
            f.write(f"{owner[1]} {gid} 1\n")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise Failed(f"user namespace map: {e.strerror}") from None
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def clone_tree(source: str) -> int:
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE
    return _syscall("open_tree", ctypes.c_int(AT_FDCWD), source.encode(), ctypes.c_uint(flags))


def set_attrs(tree: int, attrs: int, userns: int = 0) -> None:
    """`mount_setattr` on every mount of a detached tree."""
    # struct mount_attr { u64 attr_set, attr_clr, propagation, userns_fd; }
    packed = struct.pack("QQQQ", attrs, 0, 0, userns)
    buf = ctypes.create_string_buffer(packed, len(packed))
    flags = AT_EMPTY_PATH | AT_RECURSIVE
    _syscall(
        "mount_setattr",
        ctypes.c_int(tree),
        b"",
        ctypes.c_uint(flags),
        buf,
        ctypes.c_size_t(len(packed)),
    )


def attach(tree: int, target: str) -> None:
    _syscall(
        "move_mount",
        ctypes.c_int(tree),
        b"",
        ctypes.c_int(AT_FDCWD),
        target.encode(),
        ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH),
    )


def mount(source: bytes | None, target: str, fstype: bytes | None, flags: int, data: bytes | None,
          what: str) -> None:  # fmt: skip
    _check(
        _libc.mount(source, target.encode(), fstype, ctypes.c_ulong(flags), data),
        what,
    )


class Spec:
    """The command line before `--` (see the module docstring)."""

    def __init__(self, args: list[str]) -> None:
        self.uid, self.gid, self.stage = int(args[0]), int(args[1]), args[2]
        self.procs: list[str] = []
        self.mounts: list[tuple[str, tuple[int, int] | None, str]] = []
        i = 3
        while i < len(args):
            if args[i] == "--procs":
                self.procs.append(args[i + 1])
                i += 2
            elif args[i] == "--mount":
                name, owner, source = args[i + 1 : i + 4]
                ids = None if owner == "-" else owner.split(":")
                self.mounts.append(
                    (name, None if ids is None else (int(ids[0]), int(ids[1])), source)
                )
                i += 4
            else:
                raise ValueError(f"unknown option {args[i]!r}")


def prepare(spec: Spec) -> None:
    """Everything before the exec (see the module docstring); raises `Failed`."""
    machine = os.uname().machine
    if machine not in MACHINES:
        raise Failed(f"the mount API's system call numbers are not known on {machine}")
    uid, gid = spec.uid, spec.gid
    for path in spec.procs:
        try:
            with open(path, "w", encoding="ascii") as f:
                f.write(str(os.getpid()))
        except OSError as e:
            raise Failed(f"cannot join the session's cgroup ({path}): {e.strerror}") from None
    userns: dict[tuple[int, int], int] = {}
    trees: list[tuple[int, str]] = []
    for name, owner, source in spec.mounts:
        try:
            tree = clone_tree(source)
        except Failed as e:
            raise Failed(f"{source}: {e}") from None
        if owner is None:
            set_attrs(tree, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
        else:
            key = owner
            if key not in userns:
                userns[key] = idmap_userns(key, uid, gid)
            try:
                set_attrs(
                    tree, MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, userns[key]
                )
            except Failed as e:
                raise Failed(f"idmapped mount of {source}: {e}") from None
        trees.append((tree, name))
    unshare(CLONE_NEWNS, "a private mount namespace")
    mount(None, "/", None, MS_REC | MS_PRIVATE, None, "making / private")
    stage = spec.stage
    mount(b"tmpfs", stage, b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=0755,size=64k", "stage")
    for tree, name in trees:
        target = os.path.join(stage, name)
        os.mkdir(target)
        attach(tree, target)
        os.close(tree)
    for fd in userns.values():
        os.close(fd)
    os.chdir("/")
    parent = os.getppid()
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getgid() != gid:
        raise Failed("the uid switch did not hold")
    # A change of uid clears the parent-death signal: ask for it again, then make
    # sure the parent did not die before (bubblewrap's --die-with-parent takes over).
    _check(_libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "prctl")
    if os.getppid() != parent:
        raise Failed("itemloop exited")


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") + 1 >= len(argv):
        print(f"{FAILED} usage: _idmap_launcher.py U G STAGE ... -- BWRAP ARGV...", file=sys.stderr)
        return EXIT_FAILED
    split = argv.index("--")
    command = argv[split + 1 :]
    try:
        prepare(Spec(argv[:split]))
    except (Failed, OSError, ValueError, IndexError) as e:
        print(f"{FAILED} {e}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    try:
        os.execv(command[0], command)
    except OSError as e:
        print(f"{FAILED} cannot execute {command[0]}: {e.strerror}", file=sys.stderr, flush=True)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
