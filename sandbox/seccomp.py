"""The seccomp filters of the `local` and `docker` sandboxes: classic BPF, built by hand.

`command_filter` is the `local` sandbox's: handed to bubblewrap with
`--seccomp FD`, so it binds the runner and every command. `container_filter`
is the `docker` sandbox's fast path: the runner installs it on itself
(`_runner.install_filter`, prctl PR_SET_SECCOMP; the container has
no-new-privileges, so no capability is needed) before it takes any command,
stacked on Docker's own profile (the kernel runs both; the stricter answer
wins). It is `command_filter` with the network on: the same rules but the
Unix-socket ones (the container's network namespace and filesystem are its
own; the rules below keep it from leaving set-ID files in the bind-mounted
workspace, which Docker's profile allows). Built here, on the host, for the
host's architecture: the docker sandbox takes the fast path only when the
engine runs on that same architecture (`runner_bundle.engine_problem`), and
a local engine shares the host's kernel. `docker exec` processes (the exec
path) are not the runner's children and are not covered.

The rules:

- Always: `pidfd_getfd`, `process_vm_readv` and `process_vm_writev` fail with
  EPERM. They are how a process takes another's file descriptors or reads and
  writes its memory; the runner keeps its control socket out of reach by being
  non-dumpable (`_runner.py`), and this is a second wall in front of the first.
  `ptrace` is not refused: debuggers (gdb, strace) need it on their own
  children, and non-dumpability already keeps it off the runner and its
  keepers. 32-bit system calls (i386 on x86_64, arm on aarch64) get the same
  rule by their own numbers.
- Always: no set-user-ID or set-group-ID file is made. `chmod`, `fchmod`,
  `fchmodat`, `fchmodat2` with S_ISUID or S_ISGID in the mode fail with
  EPERM, and so do `open`, `creat`, `openat`, `mknod`, `mknodat` (a file
  created with such a mode keeps it; the filter does not look at O_CREAT:
  a set-ID mode without it means nothing anyway). `openat2` (its mode is in a
  struct the filter cannot read) and `io_uring_setup` (io_uring's open ops
  bypass seccomp) fail with ENOSYS: programs fall back to the calls above.
  Without this, a command of itemloop run as root could leave a setuid-root
  program in the workspace (`chmod 4755` on a copy of /bin/sh). Other ways to
  a privileged file are closed elsewhere: file capabilities need
  CAP_SETFCAP (bubblewrap and Docker drop every capability; as root the
  local sandbox also refuses nested user namespaces, where a command would
  have it over the files it owns: `bubblewrap.py`), a hard link to a
  host's or an image's set-ID program crosses mounts (EXDEV), `chown` clears
  the bits. Set-ID bits
  a file already had (the workspace came with one) are left alone. The rule
  holds for every uid (a non-root user's setuid file grants nothing, and a
  uniform filter is simpler to test).
- With the network off: host Unix sockets are out of reach. A network
  namespace isolates abstract Unix sockets only, and read-only bind mounts do
  not stop `connect()` on a pathname socket: without this a command could talk
  to any host daemon whose socket lies outside the sandbox's private `/tmp` and
  `/run`. The kernel has no other mechanism that covers this here: Landlock
  only scopes *abstract* sockets (ABI 6) and governs creating socket files
  (`MAKE_SOCK`), not connecting to them (checked on Linux 6.18, Landlock ABI 7).
  So:
  - `socket(AF_UNIX, ...)` fails with EACCES. Every way to a pathname socket
    starts there, except:
  - `socketpair(AF_UNIX, ...)` stays allowed for `SOCK_STREAM` and
    `SOCK_SEQPACKET` (the runner's keepers use stream socketpairs; those types
    cannot be re-connected or sent to an address) and fails with EACCES for
    datagram types, which can be `connect()`ed or `sendto()` any pathname
    datagram socket.
  - `io_uring_setup` fails (see above): io_uring's socket and connect
    operations are not seen by seccomp either.
  - A 32-bit system call kills the process (`socketcall` hides its arguments
    from seccomp): 32-bit programs do not run while the network is off.

On x86_64 the x32 ABI (syscall number | 0x40000000) gets the native rules. Any
other ABI kills the process. Only x86_64 and aarch64 are known: on any other
architecture the local sandbox refuses to start with the network off (rather
than start unfiltered), and starts without this filter with the network on
(the runner's non-dumpability still holds); the docker sandbox's runner runs
without `container_filter`, and its notices say set-ID modes are not refused.

Why by hand: Debian's libseccomp binding is built for the system interpreter,
not a virtual environment, and the PyPI bindings are unmaintained; the program
is small, and `tests/sandbox/test_seccomp_rules.py` runs every rule for real.
"""

from __future__ import annotations

import platform
import struct
import sys
from dataclasses import dataclass

# linux/audit.h
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
AUDIT_ARCH_ARM = 0x40000028
X32_SYSCALL_BIT = 0x40000000

# linux/seccomp.h
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

# linux/filter.h, linux/bpf_common.h
BPF_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
BPF_AND_K = 0x04 | 0x50 | 0x00  # BPF_ALU | BPF_AND | BPF_K
BPF_RET_K = 0x06 | 0x00  # BPF_RET | BPF_K

# struct seccomp_data offsets (little-endian: the low half of an argument first)
OFF_NR = 0
OFF_ARCH = 4
OFF_ARG0 = 16
OFF_ARG1 = 24

S_ISUID = 0o4000
S_ISGID = 0o2000
AF_UNIX = 1
SOCK_TYPE_MASK = 0xF
SOCK_STREAM = 1
SOCK_SEQPACKET = 5
EPERM = 1
EACCES = 13
ENOSYS = 38


@dataclass(frozen=True, slots=True)
class Compat:
    """The 32-bit ABI an architecture's kernel also accepts."""

    name: str
    audit: int
    process_access: tuple[int, ...]
    """pidfd_getfd, process_vm_readv, process_vm_writev."""
    mode_args: tuple[tuple[int, int], ...]
    """(system call, index of its mode argument): the calls that set a file's mode."""
    refused: tuple[int, ...]
    """openat2 and io_uring_setup: calls whose mode the filter cannot see (ENOSYS)."""


@dataclass(frozen=True, slots=True)
class Arch:
    name: str
    audit: int
    socket: int
    socketpair: int
    io_uring_setup: int
    process_access: tuple[int, ...]
    """pidfd_getfd, process_vm_readv, process_vm_writev (and x32's own numbers of the last two)."""
    mode_args: tuple[tuple[int, int], ...]
    """(system call, index of its mode argument): chmod, fchmod, fchmodat, fchmodat2, and
    open, creat, openat, mknod, mknodat (a file created with a set-ID mode keeps it)."""
    openat2: int
    x32: bool
    compat: Compat


ARCHES = {
    "x86_64": Arch(
        "x86_64",
        AUDIT_ARCH_X86_64,
        socket=41,
        socketpair=53,
        io_uring_setup=425,
        process_access=(438, 310, 311, 539, 540),
        # chmod, fchmod, fchmodat, fchmodat2, open, creat, openat, mknod, mknodat
        mode_args=(
            (90, 1),
            (91, 1),
            (268, 2),
            (452, 2),
            (2, 2),
            (85, 1),
            (257, 3),
            (133, 1),
            (259, 2),
        ),
        openat2=437,
        x32=True,
        compat=Compat(
            "i386",
            AUDIT_ARCH_I386,
            (438, 347, 348),
            mode_args=(
                (15, 1),
                (94, 1),
                (306, 2),
                (452, 2),
                (5, 2),
                (8, 1),
                (295, 3),
                (14, 1),
                (297, 2),
            ),
            refused=(437, 425),
        ),
    ),
    "aarch64": Arch(
        "aarch64",
        AUDIT_ARCH_AARCH64,
        socket=198,
        socketpair=199,
        io_uring_setup=425,
        process_access=(438, 270, 271),
        # fchmod, fchmodat, fchmodat2, openat, mknodat
        mode_args=((52, 1), (53, 2), (452, 2), (56, 3), (33, 2)),
        openat2=437,
        x32=False,
        compat=Compat(
            "arm",
            AUDIT_ARCH_ARM,
            (438, 376, 377),
            mode_args=(
                (15, 1),
                (94, 1),
                (333, 2),
                (452, 2),
                (5, 2),
                (8, 1),
                (322, 3),
                (14, 1),
                (324, 2),
            ),
            refused=(437, 425),
        ),
    ),
}
_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


class UnsupportedArch(Exception):
    pass


def native_arch() -> Arch:
    """The ABI of this Python (the runner and the host's programs run with it)."""
    machine = platform.machine().lower()
    machine = _ALIASES.get(machine, machine)
    arch = ARCHES.get(machine)
    if arch is None or sys.maxsize <= 2**32 or sys.byteorder != "little":
        raise UnsupportedArch(
            f"no seccomp filter for this architecture ({platform.machine()}, "
            f"{'64' if sys.maxsize > 2**32 else '32'}-bit, {sys.byteorder}-endian); "
            f"known: {', '.join(ARCHES)}"
        )
    return arch


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def command_filter(arch: Arch | None = None, *, network: bool) -> bytes:
    """The compiled filter (an array of `struct sock_filter`) for `arch`.

    `network`: the sandbox shares the host's network, so Unix sockets and
    io_uring stay allowed (and 32-bit programs run).
    """
    a = arch or native_arch()
    # Labels are resolved by hand: (name, instruction) with jumps to names.
    prog: list[tuple[str, int, int, str | None, str | None]] = []

    def op(
        code: int, k: int, jt: str | None = None, jf: str | None = None, label: str = ""
    ) -> None:
        prog.append((label, code, k, jt, jf))

    op(BPF_LD_W_ABS, OFF_ARCH)
    if network:
        op(BPF_JEQ_K, a.audit, "native", None)
        op(BPF_JEQ_K, a.compat.audit, "compat", "kill")
    else:
        op(BPF_JEQ_K, a.audit, "native", "kill")
    op(BPF_LD_W_ABS, OFF_NR, label="native")
    if a.x32:
        op(BPF_AND_K, 0xFFFFFFFF & ~X32_SYSCALL_BIT)
    for nr in a.process_access:
        op(BPF_JEQ_K, nr, "eperm", None)
    for nr, arg in a.mode_args:
        op(BPF_JEQ_K, nr, f"mode{arg}", None)
    op(BPF_JEQ_K, a.openat2, "enosys", None)
    op(BPF_JEQ_K, a.io_uring_setup, "enosys", None)
    if not network:
        op(BPF_JEQ_K, a.socket, "socket", None)
        op(BPF_JEQ_K, a.socketpair, "socketpair", None)
    op(BPF_RET_K, SECCOMP_RET_ALLOW)
    if network:
        op(BPF_LD_W_ABS, OFF_NR, label="compat")
        for nr in a.compat.process_access:
            op(BPF_JEQ_K, nr, "eperm", None)
        for nr, arg in a.compat.mode_args:
            op(BPF_JEQ_K, nr, f"mode{arg}", None)
        for nr in a.compat.refused:
            op(BPF_JEQ_K, nr, "enosys", None)
        op(BPF_RET_K, SECCOMP_RET_ALLOW)
    else:
        op(BPF_LD_W_ABS, OFF_ARG0, label="socket")
        op(BPF_JEQ_K, AF_UNIX, "eacces", "allow")
        op(BPF_LD_W_ABS, OFF_ARG0, label="socketpair")
        op(BPF_JEQ_K, AF_UNIX, None, "allow")
        op(BPF_LD_W_ABS, OFF_ARG1)
        op(BPF_AND_K, SOCK_TYPE_MASK)
        op(BPF_JEQ_K, SOCK_STREAM, "allow", None)
        op(BPF_JEQ_K, SOCK_SEQPACKET, "allow", "eacces")
    for arg in sorted({arg for _nr, arg in (*a.mode_args, *a.compat.mode_args)}):
        # The mode's low 32 bits are what the kernel reads (a mode_t / umode_t).
        op(BPF_LD_W_ABS, OFF_ARG0 + 8 * arg, label=f"mode{arg}")
        op(BPF_AND_K, S_ISUID | S_ISGID)
        op(BPF_JEQ_K, 0, "allow", "eperm")
    op(BPF_RET_K, SECCOMP_RET_ALLOW, label="allow")
    op(BPF_RET_K, SECCOMP_RET_ERRNO | EACCES, label="eacces")
    op(BPF_RET_K, SECCOMP_RET_ERRNO | ENOSYS, label="enosys")
    op(BPF_RET_K, SECCOMP_RET_ERRNO | EPERM, label="eperm")
    op(BPF_RET_K, SECCOMP_RET_KILL_PROCESS, label="kill")

    where = {label: i for i, (label, *_rest) in enumerate(prog) if label}
    out = []
    for i, (_label, code, k, jt, jf) in enumerate(prog):
        # A jump's offsets count from the next instruction; None: fall through.
        t = where[jt] - i - 1 if jt else 0
        f = where[jf] - i - 1 if jf else 0
        assert 0 <= t < 256 and 0 <= f < 256
        out.append(_insn(code, k, t, f))
    return b"".join(out)


def container_filter(arch: Arch | None = None) -> bytes:
    """The filter the docker sandbox's runner installs in its container (see the module):
    process access and set-ID modes refused, openat2 and io_uring_setup ENOSYS, 32-bit
    programs filtered by their own numbers; Unix sockets left to the container."""
    return command_filter(arch, network=True)
