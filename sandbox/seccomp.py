"""The seccomp filter of the `local` sandbox when the network is off.

Why: a network namespace isolates abstract Unix sockets, and read-only bind
mounts do not stop `connect()` on a pathname socket: without this filter a
command could talk to any host daemon whose socket lies outside the sandbox's
private `/tmp` and `/run` (an agent's socket under a home directory, a
database's under `/var/lib`, ...). The kernel has no other mechanism that
covers this here: Landlock only scopes *abstract* sockets (ABI 6) and governs
creating socket files (`MAKE_SOCK`), not connecting to them. (Checked on Linux
6.18, Landlock ABI 7: a process restricted to no filesystem access at all,
abstract sockets scoped, still connects to a pathname socket.)

What it does (a classic BPF program, built by hand below and handed to
bubblewrap with `--seccomp FD`):

- `socket(AF_UNIX, ...)` fails with EACCES. Every way to a pathname socket
  starts there, except:
- `socketpair(AF_UNIX, ...)` stays allowed for `SOCK_STREAM` and
  `SOCK_SEQPACKET` (the runner's own keepers use stream socketpairs; those
  types cannot be re-connected or sent to an address) and fails with EACCES
  for datagram types, which can be `connect()`ed or `sendto()` any pathname
  datagram socket.
- `io_uring_setup` fails with ENOSYS: io_uring's socket and connect operations
  are not seen by seccomp. Programs fall back to ordinary system calls.
- On x86_64 the x32 ABI (syscall number | 0x40000000) gets the same rules.
  A system call of any other ABI (i386 `int 0x80`, 32-bit ARM on aarch64:
  `socketcall` hides its arguments from seccomp) kills the process: 32-bit
  programs do not run in the local sandbox while the network is off.

Only x86_64 and aarch64 are known; on any other architecture the local
sandbox refuses to start with the network off (rather than start unfiltered),
and says so.
"""

from __future__ import annotations

import platform
import struct
import sys
from dataclasses import dataclass

# linux/audit.h
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
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

AF_UNIX = 1
SOCK_TYPE_MASK = 0xF
SOCK_STREAM = 1
SOCK_SEQPACKET = 5
EACCES = 13
ENOSYS = 38


@dataclass(frozen=True, slots=True)
class Arch:
    name: str
    audit: int
    socket: int
    socketpair: int
    io_uring_setup: int
    x32: bool


ARCHES = {
    "x86_64": Arch("x86_64", AUDIT_ARCH_X86_64, 41, 53, 425, x32=True),
    "aarch64": Arch("aarch64", AUDIT_ARCH_AARCH64, 198, 199, 425, x32=False),
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


def deny_unix_sockets_filter(arch: Arch | None = None) -> bytes:
    """The compiled filter (an array of `struct sock_filter`) for `arch`."""
    a = arch or native_arch()
    # Labels are resolved by hand: (name, instruction) with jumps to names.
    prog: list[tuple[str, int, int, str | None, str | None]] = []

    def op(
        code: int, k: int, jt: str | None = None, jf: str | None = None, label: str = ""
    ) -> None:
        prog.append((label, code, k, jt, jf))

    op(BPF_LD_W_ABS, OFF_ARCH)
    op(BPF_JEQ_K, a.audit, None, "kill")
    op(BPF_LD_W_ABS, OFF_NR)
    if a.x32:
        op(BPF_AND_K, 0xFFFFFFFF & ~X32_SYSCALL_BIT)
    op(BPF_JEQ_K, a.socket, "socket", None)
    op(BPF_JEQ_K, a.socketpair, "socketpair", None)
    op(BPF_JEQ_K, a.io_uring_setup, "enosys", "allow")
    op(BPF_LD_W_ABS, OFF_ARG0, label="socket")
    op(BPF_JEQ_K, AF_UNIX, "eacces", "allow")
    op(BPF_LD_W_ABS, OFF_ARG0, label="socketpair")
    op(BPF_JEQ_K, AF_UNIX, None, "allow")
    op(BPF_LD_W_ABS, OFF_ARG1)
    op(BPF_AND_K, SOCK_TYPE_MASK)
    op(BPF_JEQ_K, SOCK_STREAM, "allow", None)
    op(BPF_JEQ_K, SOCK_SEQPACKET, "allow", "eacces")
    op(BPF_RET_K, SECCOMP_RET_ALLOW, label="allow")
    op(BPF_RET_K, SECCOMP_RET_ERRNO | EACCES, label="eacces")
    op(BPF_RET_K, SECCOMP_RET_ERRNO | ENOSYS, label="enosys")
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
