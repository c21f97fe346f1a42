"""The in-sandbox runner: one per session, starts commands on request.

This file is run as a script by a Python inside the sandbox (`python3 -I -S
_runner.py --fd N` with its socket inherited, or its source given with `-c`
when the sandbox cannot see the file; `--connect PATH` in a Docker container,
which connects back to the runtime), so it uses the standard library only and
stays compatible with Python 3.8. The runtime's side is
`runner_channel.RunnerChannel`: every sandbox's commands go through a runner
(Docker's only when the image has python3), so starting a command costs a
message and a `posix_spawn`, not a new namespace or container.

Protocol, over one Unix stream socket, one JSON object per line:

  runtime -> runner  {"op": "run", "id": N, "argv": [...], "cwd": "/abs",
                     "env": {...}, "user": null, "rlimits": {"CPU": n, ...}}
                     with two file descriptors attached: the write ends of the
                     command's stdout and stderr pipes. The runtime reads the
                     other ends itself; output never passes through here.
                     A line is at most `MAX_LINE` bytes.
  runtime -> runner  {"op": "kill", "id": N}
  runner -> runtime  {"ev": "ready", "pid": P}, with "seccomp": "installed" or
                     why not, when started with `--seccomp HEX`
                     {"ev": "exit", "id": N, "code": C, "killed": bool}
                     {"ev": "error", "id": N, "message": "..."}
                     Every text sent back is cut to `MAX_TEXT` characters, so a
                     line stays far below what the runtime accepts.

Process trees. A command is started by a *keeper*: a forked copy of the runner
that is a child subreaper (PR_SET_CHILD_SUBREAPER) and spawns the command in a
new session. Whatever the command leaves behind - background jobs, daemons that
double-fork and call setsid again - is re-parented to the keeper, never past
it, so on `kill` the keeper SIGKILLs every descendant it has, again and again
until none is left.

A keeper whose command exited and left nothing running is reused for the next
command, and the runner keeps one idle keeper forked ahead, so forking (about
1 ms for a Python process) is off the path of a command. A keeper that was
killed, switched user, or whose command left background processes retires: it
exits, and what it held is re-parented to the runner (a subreaper too), where
it lives on - a server started by one command can serve the next - until the
session ends. When the runtime's end of the socket closes, the runner SIGKILLs
everything it holds and exits.

What a command can do to them. Commands run as the runner's uid, so:

- The runner and its keepers make themselves non-dumpable (PR_SET_DUMPABLE 0)
  before anything else: without CAP_SYS_PTRACE (commands have no capability)
  no process can ptrace them, open their /proc/PID/mem or /proc/PID/fd/N, take
  their descriptors with pidfd_getfd or read their memory with
  process_vm_readv. The control socket stays theirs alone. A runner that
  cannot make itself so does not start. (Commands are spawned with exec, which
  makes them dumpable again, as usual.)
- A command can signal its keeper. A keeper kills its command only on a
  SIGUSR1 that the runner sent (the sender is checked), so a stray one does
  nothing; the runner continues a keeper (SIGCONT) before it hands it a
  command or tells it to kill, so a stopped one does not stall either. A
  keeper that is killed (`kill -9 $PPID`, `kill -9 -1`) leaves its command to
  the runner, re-parented to it as a subreaper: the runner knows it by the
  PID the keeper wrote to memory they share (`Slot`) or, when the keeper was
  killed before it could, by where its PID must lie (`Runner.find_command`),
  answers for it when it exits, and kills it on `kill` (its descendants and
  its session, as far as they are found).
- In Docker the runner is started with `--seccomp HEX`: a seccomp filter
  (`seccomp.container_filter`, built by the runtime for the engine's
  architecture) that it installs on itself before it connects, so it binds
  every keeper and command: no set-ID file is made in the workspace, and
  pidfd_getfd / process_vm_* are refused. One that cannot be installed does
  not stop the runner: its `ready` says why, and the runtime tells the user.
- The runner itself can be killed by a command unless it is PID 1 of its PID
  namespace, which the local sandbox makes it (the kernel drops signals from
  inside the namespace that PID 1 does not handle). In Docker it is not, and
  the runtime restarts the sandbox when it is gone (see `channel_sandbox`).
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import pwd
import resource
import selectors
import signal
import socket
import struct
import sys
import time
from typing import Any

PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2
BPF_INSN_BYTES = 8
SI_USER = 0
MAX_LINE = 16 * 1024 * 1024
"""The longest request line the runner takes (the runtime refuses to send a longer one)."""
MAX_TEXT = 2000
"""The most characters of any message the runner sends back."""
MAX_NAME = 200
"""The most characters of a name (a user, a directory, a program) it quotes in one."""
MAX_FDS = 64
RLIMITS = {
    "CPU": resource.RLIMIT_CPU,
    "FSIZE": resource.RLIMIT_FSIZE,
    "NPROC": resource.RLIMIT_NPROC,
    "AS": resource.RLIMIT_AS,
}
DEFAULT_SIGNALS = [s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)]

_LIBC: list[Any] = []


class StartError(Exception):
    pass


def prctl(option: int, *args: Any) -> None:
    """prctl(option, *args), unused arguments 0; each an int or a ctypes pointer."""
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    full = [a if not isinstance(a, int) else ctypes.c_ulong(a) for a in args]
    full += [ctypes.c_ulong(0)] * (4 - len(full))
    if _LIBC[0].prctl(ctypes.c_int(option), *full) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class SockFprog(ctypes.Structure):
    """struct sock_fprog: a classic BPF program's length (instructions) and address."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_filter(program: bytes) -> None:
    """Install the seccomp filter `program` (an array of struct sock_filter) on this
    process; every process it forks or spawns from now on inherits it, for good."""
    count = len(program) // BPF_INSN_BYTES
    if not program or len(program) % BPF_INSN_BYTES or count > 0xFFFF:
        raise ValueError(f"not a BPF program: {len(program)} bytes")
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(count, ctypes.cast(buf, ctypes.c_void_p))
    # Docker's no-new-privileges set it already; without it the kernel asks for CAP_SYS_ADMIN.
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog))


def set_subreaper() -> None:
    try:
        prctl(PR_SET_CHILD_SUBREAPER, 1)
    except Exception:
        pass


def short(text: str, limit: int = MAX_NAME) -> str:
    """`text` cut to `limit` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters in all)"


def process_table(*, zombies: bool = False, only: int = 0) -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, session id) of every live process (and zombie, if asked), from
    /proc; of process `only`, if given."""
    table: dict[int, tuple[int, int]] = {}
    for name in [str(only)] if only else os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/" + name + "/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2 :].split()
        if len(rest) < 4 or (rest[0] == b"Z" and not zombies):
            continue
        table[int(name)] = (int(rest[1]), int(rest[3]))
    return table


def descendants(root: int, table: dict[int, tuple[int, int]] | None = None) -> list[int]:
    """PIDs of every live (non-zombie) descendant of `root`."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _sid) in (process_table() if table is None else table).items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    todo = [root]
    while todo:
        for kid in children.get(todo.pop(), ()):
            found.append(kid)
            todo.append(kid)
    return found


def reap_all() -> bool:
    """Reap every exited child; False when no child is left at all."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def kill_tree() -> None:
    """SIGKILL every descendant of this (subreaper) process until none is left."""
    me = os.getpid()
    while True:
        for pid in descendants(me):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if not reap_all():
            return
        time.sleep(0.001)


def send(sock: socket.socket, obj: dict[str, Any]) -> None:
    if "message" in obj:
        obj["message"] = short(str(obj["message"]), MAX_TEXT)
    sock.sendall((json.dumps(obj) + "\n").encode())


def recv_message(sock: socket.socket, buf: bytearray, fds: list[int]) -> dict[str, Any] | None:
    """One JSON line from `sock` (blocking); received fds are appended to `fds`."""
    while b"\n" not in buf:
        data, anc, _, _ = sock.recvmsg(
            65536, socket.CMSG_SPACE(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC
        )
        if not data:
            return None
        take_fds(anc, fds)
        buf += data
        if len(buf) > MAX_LINE:
            raise ValueError("request too long")
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    result: dict[str, Any] = json.loads(line)
    return result


def take_fds(anc: list[tuple[int, int, bytes]], fds: list[int]) -> None:
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            n = len(payload) // 4
            fds.extend(memoryview(payload)[: n * 4].cast("i"))


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"


class Slot:
    """A keeper's two words in memory it shares with the runner (and no one else).

    Before spawning, the keeper writes the namespace's last PID (the command's
    will be above it), after, the command's PID. A command that kills its
    keeper may do it before the keeper is even scheduled again to write the
    second: the runner then finds the command from the first (`find_command`).
    Plain stores: no system call, nothing on the command's path.
    """

    SIZE = 16

    def __init__(self, mem: mmap.mmap | None, index: int) -> None:
        self.mem = mem
        self.off = index * self.SIZE

    def clear(self) -> None:
        if self.mem is not None:
            struct.pack_into("=qq", self.mem, self.off, 0, 0)

    def set_floor(self, pid: int) -> None:
        if self.mem is not None:
            struct.pack_into("=q", self.mem, self.off, pid)

    def set_command(self, pid: int) -> None:
        if self.mem is not None:
            struct.pack_into("=q", self.mem, self.off + 8, pid)

    def read(self) -> tuple[int, int]:
        """(floor, command PID); 0 for what the keeper did not write."""
        if self.mem is None:
            return 0, 0
        floor, pid = struct.unpack_from("=qq", self.mem, self.off)
        return int(floor), int(pid)


def last_pid() -> int:
    """The last PID the namespace handed out (0 when the kernel does not say)."""
    try:
        with open("/proc/sys/kernel/ns_last_pid", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


# --- keeper -------------------------------------------------------------------


def keeper_main(ctl: socket.socket, ks: socket.socket, slot: Slot) -> None:
    """The forked keeper's life; never returns."""
    code = 0
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        # Both stay blocked: the keeper waits for them with sigwaitinfo, which says who sent one.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGCHLD})
        set_subreaper()
        runner = os.getppid()
        buf = bytearray()
        fds: list[int] = []
        while True:
            req = recv_message(ks, buf, fds)
            if req is None:
                break
            # A kill meant for the previous command may still be pending: drop it.
            while signal.sigtimedwait([signal.SIGUSR1], 0) is not None:
                pass
            out_fd, err_fd = fds.pop(0), fds.pop(0)
            if not serve(ctl, ks, slot, runner, req, out_fd, err_fd):
                break
    except BaseException:
        code = 1
    os._exit(code)


def serve(
    ctl: socket.socket,
    ks: socket.socket,
    slot: Slot,
    runner: int,
    req: dict[str, Any],
    out_fd: int,
    err_fd: int,
) -> bool:
    """Run one command and answer for it; True when this keeper can take another one."""
    rid = req.get("id")
    state = {"reusable": True}
    try:
        try:
            pid = start(req, out_fd, err_fd, state, slot)
        except StartError as e:
            if state["reusable"]:
                ks.sendall(b"free\n")
            send(ctl, {"ev": "error", "id": rid, "message": str(e)})
            return state["reusable"]
        except OSError as e:
            # The command could not be executed: answer like a shell would.
            name = short(str(req["argv"][0]))
            os.write(err_fd, (f"itemloop: {name}: {e.strerror}\n").encode())
            if state["reusable"]:
                ks.sendall(b"free\n")
            code = 127 if isinstance(e, FileNotFoundError) else 126
            send(ctl, {"ev": "exit", "id": rid, "code": code, "killed": False})
            return state["reusable"]
        except Exception as e:  # a request this runner cannot make sense of
            send(ctl, {"ev": "error", "id": rid, "message": "cannot start the command: " + repr(e)})
            return False
    finally:
        os.close(out_fd)
        os.close(err_fd)
    slot.set_command(pid)  # should this keeper be killed, the runner answers in its place
    status = wait_for(pid, runner)
    if status is None:
        kill_tree()
        send(ctl, {"ev": "exit", "id": rid, "code": 137, "killed": True})
        return False
    # Anything left running (background jobs) stays under this keeper: retire.
    reusable = state["reusable"] and not reap_all()
    if reusable:
        ks.sendall(b"free\n")  # before the runtime hears of the exit and sends more
    send(ctl, {"ev": "exit", "id": rid, "code": exit_code(status), "killed": False})
    return reusable


def wait_for(pid: int, runner: int) -> int | None:
    """The command's wait status, or None when the runner asked for it to be killed.

    SIGCHLD and SIGUSR1 are blocked; sigwaitinfo returns either, with its
    sender. A SIGUSR1 counts only from the runner itself: user space cannot
    forge a kill()'s sender (rt_sigqueueinfo to another process must use a
    negative si_code).
    """
    while True:
        while True:
            got, status = os.waitpid(-1, os.WNOHANG)  # the command is a child until reaped
            if got == 0:
                break
            if got == pid and (os.WIFEXITED(status) or os.WIFSIGNALED(status)):
                return status
        info = signal.sigwaitinfo({signal.SIGCHLD, signal.SIGUSR1})
        if info.si_signo == signal.SIGUSR1 and info.si_code == SI_USER and info.si_pid == runner:
            return None


def start(req: dict[str, Any], out_fd: int, err_fd: int, state: dict[str, bool], slot: Slot) -> int:
    """Spawn the command; clears `state["reusable"]` when this keeper must retire after it."""
    env = {str(k): str(v) for k, v in req.get("env", {}).items()}
    argv = [str(a) for a in req["argv"]]
    for i, arg in enumerate(argv):
        check_text(f"argv[{i}]", arg)
    for key, val in env.items():
        check_text(f"the environment variable name {short(key)!r}", key)
        check_text(f"the environment variable {short(key)}", val)
    check_text("the working directory", req["cwd"])
    try:
        os.chdir(req["cwd"])
    except OSError as e:
        raise StartError(
            "cannot enter working directory {}: {}".format(short(req["cwd"]), e.strerror)
        ) from None
    for name, value in (req.get("rlimits") or {}).items():
        which = RLIMITS.get(name)
        if which is None or value is None:
            continue
        value = int(value)
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        if name == "CPU":
            # Counts the keeper's own CPU time too: retire before it nears the limit.
            used = resource.getrusage(resource.RUSAGE_SELF)
            if used.ru_utime + used.ru_stime > value / 2:
                state["reusable"] = False
        if (soft, hard) != (value, value):
            try:
                resource.setrlimit(which, (value, value))
            except (OSError, ValueError):
                pass
    user = req.get("user")
    if user:
        state["reusable"] = False  # setuid is for good
        switch_user(str(user), env)
    path = argv[0]
    if "/" not in path:
        path = which_in(path, env.get("PATH", "/usr/bin:/bin"))
    devnull = os.open(os.devnull, os.O_RDONLY)
    slot.set_floor(last_pid())  # before the command exists: it cannot outrun this
    try:
        pid = os.posix_spawn(
            path,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, out_fd, 1),
                (os.POSIX_SPAWN_DUP2, err_fd, 2),
            ],
            setsid=True,
            setsigmask=(),
            setsigdef=DEFAULT_SIGNALS,
        )
    finally:
        os.close(devnull)
    return pid


def check_text(what: str, text: str) -> None:
    """Refuse a string no program can be given (a lone surrogate has no bytes)."""
    try:
        os.fsencode(text)
    except UnicodeEncodeError as e:
        raise StartError(
            f"cannot start the command: {what} contains a lone surrogate (U+{ord(text[e.start]):04X}), which is "
            "not text a program can be given"
        ) from None


def which_in(name: str, path: str) -> str:
    for d in path.split(":"):
        full = os.path.join(d or ".", name)
        if os.path.isfile(full) and os.access(full, os.X_OK):
            return full
    raise FileNotFoundError(2, "command not found", name)


def switch_user(user: str, env: dict[str, str]) -> None:
    """Become `user`, for good."""
    try:
        pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, ValueError, OverflowError):
        raise StartError(
            f"cannot run as user {short(user)!r}: no such user in this sandbox"
        ) from None
    if pw.pw_uid == os.getuid():
        return
    try:
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    except OSError as e:
        raise StartError(
            f"cannot run as user {short(user)!r}: this sandbox has no privilege to switch users ({e.strerror})"
        ) from None
    env.setdefault("USER", pw.pw_name)


# --- runner -------------------------------------------------------------------

MAX_SLOTS = 4096
"""Keepers alive at once that get a `Slot` (one without is found by no one if killed)."""


class Keeper:
    """The runner's view of one keeper."""

    def __init__(self, pid: int, sock: socket.socket, slot: Slot, index: int) -> None:
        self.pid = pid
        self.sock: socket.socket | None = sock  # None once it closed (it retired or died)
        self.slot = slot
        self.index = index
        self.buf = b""
        self.rid: int | None = None  # the request it serves


class Runner:
    def __init__(self, ctl: socket.socket, ready: dict[str, Any] | None = None) -> None:
        self.ctl = ctl
        self.ready = dict(ready or {})  # more to say in the `ready` event
        self.sel = selectors.DefaultSelector()
        self.keepers: dict[int, Keeper] = {}  # keeper pid -> keeper, until reaped
        self.idle: list[int] = []  # keeper pids ready for a command
        self.busy: dict[int, int] = {}  # request id -> keeper pid
        self.adopted: dict[int, int] = {}  # command pid -> request id, once its keeper died
        self.adopted_killed: set[int] = set()
        # Children of ours reaped lately that no keeper claimed: pid -> (status, session).
        self.reaped: dict[int, tuple[int, int]] = {}
        self.buf = bytearray()
        self.fds: list[int] = []
        try:
            self.mem: mmap.mmap | None = mmap.mmap(-1, MAX_SLOTS * Slot.SIZE)
        except OSError:
            self.mem = None
        self.free_slots = list(range(MAX_SLOTS - 1, -1, -1))

    def fork_keeper(self) -> None:
        index = self.free_slots.pop() if self.free_slots and self.mem is not None else -1
        slot = Slot(self.mem if index >= 0 else None, max(index, 0))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            ours.close()
            for k in self.keepers.values():
                if k.sock is not None:
                    k.sock.close()
            for fd in self.fds:
                os.close(fd)
            keeper_main(self.ctl, theirs, slot)
        theirs.close()
        self.keepers[pid] = Keeper(pid, ours, slot, index)
        self.idle.append(pid)
        self.sel.register(ours, selectors.EVENT_READ, pid)

    def close_keeper_socket(self, k: Keeper) -> None:
        if k.sock is not None:
            self.sel.unregister(k.sock)
            k.sock.close()
            k.sock = None
        if k.pid in self.idle:
            self.idle.remove(k.pid)

    def on_keeper_message(self, k: Keeper, *, dying: bool = False) -> None:
        """Take what keeper `k` said (`free`: ready for another command)."""
        if k.sock is None:
            return
        while True:
            try:
                data = k.sock.recv(4096, socket.MSG_DONTWAIT if dying else 0)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data:
                k.buf += data
            if not data or not dying:
                break
        while b"\n" in k.buf:
            line, _, k.buf = k.buf.partition(b"\n")
            if line == b"free":
                if k.rid is not None:
                    self.busy.pop(k.rid, None)
                k.rid = None
                if k.pid not in self.idle and k.sock is not None and not dying:
                    self.idle.append(k.pid)
        if data == b"":  # it retired (or died); the SIGCHLD that follows reaps it
            self.close_keeper_socket(k)

    def keeper_died(self, k: Keeper, status: int) -> None:
        self.on_keeper_message(k, dying=True)
        self.close_keeper_socket(k)
        floor, cmd = k.slot.read()
        if k.index >= 0:
            self.free_slots.append(k.index)
        rid = k.rid
        if rid is None:
            return
        self.busy.pop(rid, None)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return  # it answered, then retired
        # Killed while serving (by its own command, most likely): answer in its place.
        if not cmd and floor:
            cmd = self.find_command(floor)
        if not cmd:
            self.error(
                rid,
                f"the command's keeper was killed ({describe_status(status)}) before it could say which process the "
                "command is; the command's exit status is unknown",
            )
        elif cmd in self.reaped:
            self.answer(rid, cmd, self.reaped.pop(cmd)[0])
        else:
            try:
                got, st = os.waitpid(cmd, os.WNOHANG)
            except ChildProcessError:
                self.error(
                    rid,
                    f"the command's keeper was killed ({describe_status(status)}) after the command ended; its exit "
                    "status is lost",
                )
                return
            if got == 0:
                self.adopted[cmd] = rid  # re-parented to us: answered when it exits
            else:
                self.answer(rid, cmd, st)

    def find_command(self, floor: int) -> int:
        """The command of a keeper killed before it wrote its PID, or 0.

        Re-parented to us with its keeper's death (alive, a zombie, or reaped
        already), it is a session leader (spawned with setsid; a session
        leader cannot leave its session) with a PID above `floor`, the first
        one: whatever it started came later.
        """
        pid_max = 1 << 22
        try:
            with open("/proc/sys/kernel/pid_max", "rb") as f:
                pid_max = int(f.read())
        except (OSError, ValueError):
            pass
        me = os.getpid()
        found = [
            p
            for p, (ppid, sid) in process_table(zombies=True).items()
            if ppid == me and sid == p and p not in self.keepers and p not in self.adopted
        ]
        found += [p for p, (_st, sid) in self.reaped.items() if sid == p]
        after = [p for p in found if 0 < (p - floor) % pid_max < pid_max // 2]
        return min(after, key=lambda p: (p - floor) % pid_max) if after else 0

    def answer(self, rid: int, cmd: int, status: int) -> None:
        killed = cmd in self.adopted_killed
        self.adopted_killed.discard(cmd)
        code = 137 if killed else exit_code(status)
        send(self.ctl, {"ev": "exit", "id": rid, "code": code, "killed": killed})

    def error(self, rid: Any, message: str) -> None:
        send(self.ctl, {"ev": "error", "id": rid, "message": message})

    def on_request(self, req: dict[str, Any]) -> None:
        op = req.get("op")
        if op == "run":
            if len(self.fds) < 2:
                self.error(req.get("id"), "a run request came without its output pipes")
                return
            out_fd, err_fd = self.fds.pop(0), self.fds.pop(0)
            try:
                data = (json.dumps(req) + "\n").encode()
                anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _pack_fds([out_fd, err_fd]))]
                for _ in range(3):
                    if not self.idle:
                        try:
                            self.fork_keeper()
                        except OSError as e:  # out of processes (a fork bomb, the PIDs limit)
                            self.error(req["id"], f"cannot start a command keeper: {e.strerror}")
                            return
                    k = self.keepers[self.idle.pop(0)]
                    k.slot.clear()
                    try:
                        assert k.sock is not None
                        k.sock.sendmsg([data], anc)
                        os.kill(k.pid, signal.SIGCONT)  # a command may have stopped it
                    except OSError:  # that keeper is gone; take another
                        self.close_keeper_socket(k)
                        continue
                    self.busy[req["id"]] = k.pid
                    k.rid = req["id"]
                    break
                else:
                    self.error(req["id"], "no command keeper")
            finally:
                os.close(out_fd)
                os.close(err_fd)
            if not self.idle:
                try:
                    self.fork_keeper()  # the next command should not wait for a fork
                except OSError:
                    pass  # it forks when it comes, or says why it cannot
        elif op == "kill":
            self.kill(req["id"])

    def kill(self, rid: int) -> None:
        target = self.busy.get(rid)
        if target is not None:
            for sig in (signal.SIGCONT, signal.SIGUSR1):  # a stopped keeper first goes on
                try:
                    os.kill(target, sig)
                except OSError:
                    pass
            return
        for cmd, r in self.adopted.items():
            if r == rid:
                # Its keeper is gone: its descendants and its session, as far as they are found.
                table = process_table()
                pids = [cmd, *descendants(cmd, table)]
                pids += [p for p, (_ppid, sid) in table.items() if sid == cmd]
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                self.adopted_killed.add(cmd)
                return

    def reap(self) -> None:
        while True:
            # Look before reaping: a child no keeper claims may be a killed keeper's
            # command, recognised by its session (`find_command`), readable only until reaped.
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == 0:
                return
            pid = info.si_pid
            sid = 0
            if pid not in self.keepers and pid not in self.adopted:
                sid = process_table(zombies=True, only=pid).get(pid, (0, 0))[1]
            _, status = os.waitpid(pid, 0)
            k = self.keepers.pop(pid, None)
            if k is not None:
                self.keeper_died(k, status)
            elif pid in self.adopted:
                self.answer(self.adopted.pop(pid), pid, status)
            elif sid == pid:
                self.reaped[pid] = (status, sid)
                while len(self.reaped) > 256:
                    del self.reaped[next(iter(self.reaped))]

    def loop(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda s, f: None)
        self.sel.register(self.ctl, selectors.EVENT_READ, "ctl")
        self.sel.register(wake_r, selectors.EVENT_READ, "wake")
        self.fork_keeper()
        send(self.ctl, {"ev": "ready", "pid": os.getpid(), **self.ready})
        while True:
            events = self.sel.select()
            # Keepers' "free" first, so a request that follows can reuse them.
            events.sort(key=lambda e: e[0].data in ("ctl", "wake"))
            for key, _ in events:
                if key.data == "wake":
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
                    self.reap()
                elif key.data == "ctl":
                    data, anc, _, _ = self.ctl.recvmsg(
                        65536, socket.CMSG_SPACE(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC
                    )
                    if not data:
                        return 0
                    take_fds(anc, self.fds)
                    self.buf += data
                    if len(self.buf) > MAX_LINE:
                        sys.stderr.write(f"itemloop runner: a request over {MAX_LINE} bytes\n")
                        return 3
                    while b"\n" in self.buf:
                        line, _, rest = bytes(self.buf).partition(b"\n")
                        self.buf[:] = rest
                        try:
                            self.on_request(json.loads(line))
                        except Exception as e:  # the runtime's bug; this runner goes on
                            sys.stderr.write(f"itemloop runner: bad request: {e!r}\n")
                elif isinstance(key.data, int) and key.data in self.keepers:
                    self.on_keeper_message(self.keepers[key.data])


def _pack_fds(fds: list[int]) -> bytes:
    import array

    return array.array("i", fds).tobytes()


def main() -> int:
    try:
        # First of all: from here on no command (same uid, no capability) can reach
        # this process's memory or descriptors, nor those of the keepers it forks.
        prctl(PR_SET_DUMPABLE, 0)
    except Exception as e:
        sys.stderr.write(f"itemloop runner: cannot make itself non-dumpable: {e}\n")
        return 2
    args = sys.argv[1:]
    ready: dict[str, Any] = {}
    if args[2:3] == ["--seccomp"] and len(args) > 3:
        # Before the first command, and before anything the runtime says is read.
        try:
            install_filter(bytes.fromhex(args[3]))
            ready["seccomp"] = "installed"
        except Exception as e:  # the runtime says so in its notices; commands still run
            ready["seccomp"] = f"cannot install the seccomp filter: {e}"
    if args[:1] == ["--fd"]:
        ctl = socket.socket(fileno=int(args[1]))
    elif args[:1] == ["--connect"]:
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ctl.connect(args[1])
    else:
        sys.stderr.write("usage: _runner.py (--fd N | --connect PATH) [--seccomp HEX]\n")
        return 2
    ctl.set_inheritable(False)
    set_subreaper()
    # SIGUSR1 stays blocked here; a keeper waits for it with sigwaitinfo.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        return Runner(ctl, ready).loop()
    finally:
        kill_tree()


if __name__ == "__main__":
    sys.exit(main())
