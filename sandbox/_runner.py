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
  runtime -> runner  {"op": "kill", "id": N}
  runner -> runtime  {"ev": "ready", "pid": P}
                     {"ev": "exit", "id": N, "code": C, "killed": bool}
                     {"ev": "error", "id": N, "message": "..."}

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
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import resource
import selectors
import signal
import socket
import sys
import time
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
MAX_LINE = 16 * 1024 * 1024
MAX_FDS = 64
RLIMITS = {
    "CPU": resource.RLIMIT_CPU,
    "FSIZE": resource.RLIMIT_FSIZE,
    "NPROC": resource.RLIMIT_NPROC,
    "AS": resource.RLIMIT_AS,
}
DEFAULT_SIGNALS = [s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)]

_LIBC: list[Any] = []


class KillRequested(Exception):
    pass


class StartError(Exception):
    pass


def set_subreaper() -> None:
    try:
        if not _LIBC:
            _LIBC.append(ctypes.CDLL(None, use_errno=True))
        _LIBC[0].prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except Exception:
        pass


def descendants(root: int) -> list[int]:
    """PIDs of every live (non-zombie) descendant of `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/" + name + "/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2 :].split()
        if len(rest) < 2 or rest[0] == b"Z":
            continue
        children.setdefault(int(rest[1]), []).append(int(name))
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


# --- keeper -------------------------------------------------------------------


def keeper_main(ctl: socket.socket, ks: socket.socket) -> None:
    """The forked keeper's life; never returns."""
    code = 0
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)

        def on_kill(signum: int, frame: object) -> None:
            raise KillRequested()

        signal.signal(signal.SIGUSR1, on_kill)
        set_subreaper()
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
            reuse = serve(ctl, ks, req, out_fd, err_fd)
            if not reuse:
                break
    except BaseException:
        code = 1
    os._exit(code)


def serve(
    ctl: socket.socket, ks: socket.socket, req: dict[str, Any], out_fd: int, err_fd: int
) -> bool:
    """Run one command; True when this keeper can take another one."""
    rid = req["id"]
    state = {"reusable": True}
    try:
        try:
            pid = start(req, out_fd, err_fd, state)
        except StartError as e:
            if state["reusable"]:
                ks.sendall(b"free\n")
            send(ctl, {"ev": "error", "id": rid, "message": str(e)})
            return state["reusable"]
        except OSError as e:
            # The command could not be executed: answer like a shell would.
            os.write(err_fd, ("itemloop: {}: {}\n".format(req["argv"][0], e.strerror)).encode())
            if state["reusable"]:
                ks.sendall(b"free\n")
            code = 127 if isinstance(e, FileNotFoundError) else 126
            send(ctl, {"ev": "exit", "id": rid, "code": code, "killed": False})
            return state["reusable"]
    finally:
        os.close(out_fd)
        os.close(err_fd)
    try:
        # A kill requested while we were starting is delivered right here.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        while True:
            got, status = os.waitpid(-1, 0)
            if got == pid:
                break
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    except KillRequested:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        kill_tree()
        send(ctl, {"ev": "exit", "id": rid, "code": 137, "killed": True})
        return False
    # Anything left running (background jobs) stays under this keeper: retire.
    reusable = state["reusable"] and not reap_all()
    if reusable:
        ks.sendall(b"free\n")  # before the runtime hears of the exit and sends more
    send(ctl, {"ev": "exit", "id": rid, "code": exit_code(status), "killed": False})
    return reusable


def start(req: dict[str, Any], out_fd: int, err_fd: int, state: dict[str, bool]) -> int:
    """Spawn the command; clears `state["reusable"]` when this keeper must retire after it."""
    env = {str(k): str(v) for k, v in req.get("env", {}).items()}
    try:
        os.chdir(req["cwd"])
    except OSError as e:
        raise StartError(
            "cannot enter working directory {}: {}".format(req["cwd"], e.strerror)
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
    argv = [str(a) for a in req["argv"]]
    path = argv[0]
    if "/" not in path:
        path = which_in(path, env.get("PATH", "/usr/bin:/bin"))
    devnull = os.open(os.devnull, os.O_RDONLY)
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
    except (KeyError, ValueError):
        raise StartError(f"cannot run as user {user!r}: no such user in this sandbox") from None
    if pw.pw_uid == os.getuid():
        return
    try:
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    except OSError as e:
        raise StartError(
            f"cannot run as user {user!r}: this sandbox has no privilege to switch users ({e.strerror})"
        ) from None
    env.setdefault("USER", pw.pw_name)


# --- runner -------------------------------------------------------------------


class Runner:
    def __init__(self, ctl: socket.socket) -> None:
        self.ctl = ctl
        self.sel = selectors.DefaultSelector()
        self.idle: list[int] = []  # keeper pids ready for a command
        self.ks: dict[int, socket.socket] = {}  # keeper pid -> its socket
        self.busy: dict[int, int] = {}  # request id -> keeper pid
        self.serving: dict[int, int] = {}  # keeper pid -> request id
        self.buf = bytearray()
        self.fds: list[int] = []

    def fork_keeper(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            ours.close()
            for s in self.ks.values():
                s.close()
            for fd in self.fds:
                os.close(fd)
            keeper_main(self.ctl, theirs)
        theirs.close()
        self.ks[pid] = ours
        self.idle.append(pid)
        self.sel.register(ours, selectors.EVENT_READ, pid)

    def drop_keeper(self, pid: int) -> None:
        s = self.ks.pop(pid, None)
        if s is not None:
            self.sel.unregister(s)
            s.close()
        if pid in self.idle:
            self.idle.remove(pid)
        rid = self.serving.pop(pid, None)
        if rid is not None:
            self.busy.pop(rid, None)

    def on_keeper_message(self, pid: int) -> None:
        s = self.ks[pid]
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:  # the keeper retired (or died); SIGCHLD reaps it
            self.drop_keeper(pid)
            return
        for _ in range(data.count(b"free")):
            rid = self.serving.pop(pid, None)
            if rid is not None:
                self.busy.pop(rid, None)
            if pid not in self.idle:
                self.idle.append(pid)

    def on_request(self, req: dict[str, Any]) -> None:
        op = req.get("op")
        if op == "run":
            out_fd, err_fd = self.fds.pop(0), self.fds.pop(0)
            try:
                data = (json.dumps(req) + "\n").encode()
                anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _pack_fds([out_fd, err_fd]))]
                for _ in range(3):
                    if not self.idle:
                        self.fork_keeper()
                    pid = self.idle.pop(0)
                    try:
                        self.ks[pid].sendmsg([data], anc)
                    except OSError:  # that keeper is gone; take another
                        self.drop_keeper(pid)
                        continue
                    self.busy[req["id"]] = pid
                    self.serving[pid] = req["id"]
                    break
                else:
                    send(self.ctl, {"ev": "error", "id": req["id"], "message": "no command keeper"})
            finally:
                os.close(out_fd)
                os.close(err_fd)
            if not self.idle:
                self.fork_keeper()  # the next command should not wait for a fork
        elif op == "kill":
            target = self.busy.get(req["id"])
            if target is not None:
                try:
                    os.kill(target, signal.SIGUSR1)
                except OSError:
                    pass

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            rid = self.serving.get(pid)
            if pid in self.ks or rid is not None:
                self.drop_keeper(pid)
            if rid is not None and not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
                send(
                    self.ctl,
                    {
                        "ev": "error",
                        "id": rid,
                        "message": f"command keeper died (status {status})",
                    },
                )

    def loop(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda s, f: None)
        self.sel.register(self.ctl, selectors.EVENT_READ, "ctl")
        self.sel.register(wake_r, selectors.EVENT_READ, "wake")
        self.fork_keeper()
        send(self.ctl, {"ev": "ready", "pid": os.getpid()})
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
                        return 3
                    while b"\n" in self.buf:
                        line, _, rest = bytes(self.buf).partition(b"\n")
                        self.buf[:] = rest
                        self.on_request(json.loads(line))
                elif isinstance(key.data, int) and key.data in self.ks:
                    self.on_keeper_message(key.data)


def _pack_fds(fds: list[int]) -> bytes:
    import array

    return array.array("i", fds).tobytes()


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--fd"]:
        ctl = socket.socket(fileno=int(args[1]))
    elif args[:1] == ["--connect"]:
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ctl.connect(args[1])
    else:
        sys.stderr.write("usage: _runner.py --fd N | --connect PATH\n")
        return 2
    ctl.set_inheritable(False)
    set_subreaper()
    # SIGUSR1 stays blocked here; a keeper unblocks it only while a command runs.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        return Runner(ctl).loop()
    finally:
        kill_tree()


if __name__ == "__main__":
    sys.exit(main())
