"""`DockerSandbox` (`--sandbox docker --image NAME`): one container per session.

The container: the user's image, which needs nothing but `/bin/sh`; the
workspace bind-mounted at `/workspace` (and `writable_paths` at their host
paths); a read-only root filesystem with a private tmpfs at `/tmp` (HOME);
network `none` unless `network=True`; memory, CPU and PIDs limits; every
capability dropped and no-new-privileges; commands run as the runtime's own
uid:gid, so workspace files keep their owner; Docker's init as PID 1, so
orphans are reaped. It is labelled `itemloop.sandbox`, with the owner's host
name and PID, and removed when the session closes; a container whose owner is
gone (a killed runtime) is removed by the next DockerSandbox that starts.

Two ways to run a command:

- **Fast path** (the image has `python3`, any version from 3.8): the runner
  (`_runner.py`) runs inside the container for the whole session and connects
  back over a Unix socket in a bind-mounted directory; commands cost a message
  and a spawn, as in the `local` sandbox, with the same process-tree handling.
  The socket's host directory is private to the runtime's uid (0700; the
  container runs as that uid), and the connection is accepted only from a
  peer with that uid (SO_PEERCRED).
- **Exec path** (only `/bin/sh`): one `exec` through the Docker API per command
  (tens of milliseconds each). The command is started by a `/bin/sh` wrapper
  that records its PID; on timeout every process of the container whose PID is
  at least that one is killed (commands run one at a time, so these are the
  command and everything it started, however it detached - up to PID
  wrap-around). Output streams through Docker's multiplexed stream into bounded
  buffers. Docker itself closes the stream about 2 s after the command exits
  when a background child still holds its output.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import struct
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import docker  # type: ignore[import-untyped,unused-ignore]
import docker.errors  # type: ignore[import-untyped,unused-ignore]

from .base import CommandResult, SandboxError, SandboxOptions, SandboxUnavailable
from .capture import HeadTailBuffer
from .process import KILL_WAIT_S, READY_TIMEOUT_S, STANDARD_PATH, RunnerConnection, runner_source
from .session import RunnerSandbox

WORKSPACE = "/workspace"
CTL_DIR = "/run/itemloop"
PIDS_DIR = "/run/itemloop-pids"
HOME = "/tmp"
LABEL = "itemloop.sandbox"

NO_ENGINE_HINT = (
    "start the Docker engine (e.g. `dockerd &` or `systemctl start docker`) and make sure "
    "this user may use it (DOCKER_HOST, or membership of the docker group), or choose "
    "another sandbox: --sandbox local (bubblewrap) or --sandbox host"
)

# Kills, as the command's user, every process whose PID is >= the command's
# own (recorded by the wrapper), except itself; /bin/sh built-ins only.
KILL_SCRIPT = r"""
read -r w < "$1" 2>/dev/null || exit 0
[ -n "$w" ] || exit 0
while :; do
  found=
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" -ge "$w" ] 2>/dev/null || continue
    [ "$p" = "$$" ] && continue
    kill -9 "$p" 2>/dev/null && found=1
  done
  [ -z "$found" ] && break
done
exit 0
"""
WRAPPER = 'echo $$ > "$ITEMLOOP_PIDFILE" && unset ITEMLOOP_PIDFILE && exec "$@"'


def _owner_labels() -> dict[str, str]:
    return {
        LABEL: "docker",
        "itemloop.host": socket.gethostname(),
        "itemloop.pid": str(os.getpid()),
        "itemloop.pid-start": _start_time(os.getpid()),
    }


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rfind(b")") + 2 :].split()[19].decode()
    except (OSError, IndexError):
        return ""


def _owner_alive(labels: dict[str, str]) -> bool:
    if labels.get("itemloop.host") != socket.gethostname():
        return True  # not ours to judge
    try:
        pid = int(labels.get("itemloop.pid", ""))
    except ValueError:
        return False
    if _start_time(pid) == "":
        return False
    return _start_time(pid) == labels.get("itemloop.pid-start", "")


class DockerSandbox(RunnerSandbox):
    name = "docker"

    def __init__(
        self,
        workspace: Path,
        options: SandboxOptions | None = None,
        *,
        image: str,
        fast_path: bool = True,
    ) -> None:
        super().__init__(workspace, options)
        if not image:
            raise SandboxUnavailable("--sandbox docker needs an image: --image NAME")
        self.image = image
        self.fast_path = fast_path
        self.client: Any = None
        self.container: Any = None
        self.ctl_dir: Path | None = None
        self.mode = "exec"
        """`runner` (fast path) or `exec`; known once started."""
        self._exec_lock = anyio.Lock()

    @property
    def workspace_mount(self) -> str:
        return WORKSPACE

    def home(self) -> str:
        return HOME

    def path_env(self) -> str:
        return STANDARD_PATH

    # --- lifecycle ---------------------------------------------------------------

    async def _start(
        self, tg: anyio.abc.TaskGroup, stack: AsyncExitStack
    ) -> RunnerConnection | None:
        self.client = await anyio.to_thread.run_sync(self._connect_engine)
        await anyio.to_thread.run_sync(remove_leftovers, self.client)
        # 0700: only this uid (the container's commands run as it) reaches ctl.sock.
        self.ctl_dir = Path(tempfile.mkdtemp(prefix="itemloop-docker-"))
        stack.callback(shutil.rmtree, self.ctl_dir, True)
        self.ctl_dir.chmod(0o700)
        pids = self.ctl_dir / "pids"
        pids.mkdir()
        pids.chmod(0o1777)  # mounted on its own: a command run as another user writes here
        self.container = await anyio.to_thread.run_sync(self._create_container)
        stack.push_async_callback(self._remove_container)
        if not self.fast_path:
            return None
        probe = await anyio.to_thread.run_sync(
            lambda: self.container.exec_run(
                ["/bin/sh", "-c", "command -v python3"], environment={"PATH": STANDARD_PATH}
            )
        )
        if probe.exit_code != 0:
            return None
        return await self._start_runner(tg, stack)

    def _connect_engine(self) -> Any:
        try:
            client = docker.from_env()
            client.ping()
        except docker.errors.DockerException as e:
            raise SandboxUnavailable(
                f"--sandbox docker: the Docker engine is not reachable ({e}); {NO_ENGINE_HINT}"
            ) from None
        try:
            client.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise SandboxUnavailable(
                f"--sandbox docker: image {self.image!r} is not on this Docker engine; pull or "
                f"build it first (docker pull {self.image}), or pass another --image"
            ) from None
        except docker.errors.DockerException as e:
            raise SandboxUnavailable(f"--sandbox docker: cannot inspect image: {e}") from None
        return client

    def _create_container(self) -> Any:
        assert self.ctl_dir is not None
        o = self.options
        volumes: dict[str, dict[str, str]] = {
            str(self.workspace): {"bind": WORKSPACE, "mode": "rw"},
            str(self.ctl_dir): {"bind": CTL_DIR, "mode": "rw"},
            str(self.ctl_dir / "pids"): {"bind": PIDS_DIR, "mode": "rw"},
        }
        for extra in o.writable_paths:
            real = os.path.realpath(extra)
            if not os.path.isdir(real):
                raise SandboxUnavailable(f"writable path {extra!r} is not a directory")
            volumes[real] = {"bind": real, "mode": "rw"}
        kwargs: dict[str, Any] = {
            # `read` on a stdin nobody writes to: a PID-1 child that needs only /bin/sh.
            "command": ["/bin/sh", "-c", "read -r _; exit 0"],
            "detach": True,
            "stdin_open": True,
            "init": True,
            "network_mode": "bridge" if o.network else "none",
            "volumes": volumes,
            "working_dir": WORKSPACE,
            "labels": {**_owner_labels(), "itemloop.ctl": str(self.ctl_dir)},
            "user": f"{os.getuid()}:{os.getgid()}",
            "read_only": True,
            "tmpfs": {HOME: "rw,exec,nosuid,nodev,mode=1777"},
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "environment": {"PATH": STANDARD_PATH},
        }
        if o.memory_bytes:
            kwargs["mem_limit"] = int(o.memory_bytes)
        if o.cpus:
            kwargs["nano_cpus"] = int(o.cpus * 1e9)
        if o.max_processes:
            kwargs["pids_limit"] = int(o.max_processes)
        try:
            return self.client.containers.run(self.image, **kwargs)
        except docker.errors.DockerException as e:
            raise SandboxUnavailable(f"--sandbox docker: cannot start a container: {e}") from None

    async def _remove_container(self) -> None:
        container, self.container = self.container, None
        if container is None:
            return
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(docker.errors.DockerException):
                await anyio.to_thread.run_sync(lambda: container.remove(force=True))

    async def _start_runner(
        self, tg: anyio.abc.TaskGroup, stack: AsyncExitStack
    ) -> RunnerConnection | None:
        assert self.ctl_dir is not None
        (self.ctl_dir / "runner.py").write_text(runner_source(), encoding="utf-8")
        sock_path = str(self.ctl_dir / "ctl.sock")
        listener = await anyio.create_unix_listener(sock_path)
        async with listener:
            os.chmod(sock_path, 0o600)
            await anyio.to_thread.run_sync(
                lambda: self.container.exec_run(
                    [
                        "python3",
                        "-I",
                        "-S",
                        f"{CTL_DIR}/runner.py",
                        "--connect",
                        f"{CTL_DIR}/ctl.sock",
                    ],
                    detach=True,
                    environment={"PATH": STANDARD_PATH, "LANG": "C.UTF-8"},
                )
            )
            stream: anyio.abc.SocketStream | None = None
            with anyio.move_on_after(READY_TIMEOUT_S):
                while stream is None:
                    stream = await listener.accept()  # type: ignore[attr-defined,unused-ignore]
                    if stream is not None and not peer_is_us(stream):
                        await stream.aclose()
                        stream = None
        if stream is None:
            return None  # python3 is there but the runner did not come up: exec path
        conn = RunnerConnection(stream, tg)
        stack.push_async_callback(conn.aclose)
        try:
            await conn.handshake()
        except (anyio.EndOfStream, anyio.IncompleteRead, TimeoutError, ValueError, OSError):
            return None
        self.mode = "runner"
        return conn

    # --- commands ----------------------------------------------------------------

    async def _dispatch(
        self,
        argv: list[str],
        *,
        cwd: str,
        env: dict[str, str],
        user: str | None,
        timeout_s: float,
        output_limit: int,
    ) -> CommandResult:
        if self._conn is not None:
            if user:
                raise SandboxError(
                    f"cannot run as user {user!r}: this docker sandbox runs its commands "
                    f"through a runner as uid {os.getuid()}, which cannot switch users"
                )
            return await super()._dispatch(
                argv, cwd=cwd, env=env, user=None, timeout_s=timeout_s, output_limit=output_limit
            )
        async with self._exec_lock:  # one at a time: the timeout kill relies on it
            return await self._exec(argv, cwd, env, user, timeout_s, output_limit)

    async def _exec(
        self,
        argv: list[str],
        cwd: str,
        env: dict[str, str],
        user: str | None,
        timeout_s: float,
        limit: int,
    ) -> CommandResult:
        api = self.client.api
        token = secrets.token_hex(8)
        pidfile = f"{PIDS_DIR}/{token}"
        host_pidfile = self._ctl_path("pids", token)
        env = {**env, "ITEMLOOP_PIDFILE": pidfile}
        started = time.monotonic()

        def create() -> tuple[str, Any]:
            try:
                exec_id = api.exec_create(
                    self.container.id,
                    ["/bin/sh", "-c", WRAPPER, "sh", *argv],
                    stdout=True,
                    stderr=True,
                    stdin=False,
                    tty=False,
                    environment=env,
                    workdir=cwd,
                    user=user or "",
                )["Id"]
                return exec_id, api.exec_start(exec_id, socket=True)
            except docker.errors.DockerException as e:
                raise SandboxError(f"docker exec failed: {e}") from None

        exec_id, sock = await anyio.to_thread.run_sync(create)
        out, err = HeadTailBuffer(limit), HeadTailBuffer(limit)
        finished = anyio.Event()
        timed_out = False

        async def read() -> None:
            try:
                await anyio.to_thread.run_sync(_read_frames, sock, out, err)
            finally:
                finished.set()

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                with anyio.move_on_after(timeout_s):
                    await finished.wait()
                if not finished.is_set():
                    info = await anyio.to_thread.run_sync(api.exec_inspect, exec_id)
                    if info.get("Running"):
                        timed_out = True
                        await anyio.to_thread.run_sync(self._kill_from, pidfile, user)
                    with anyio.move_on_after(KILL_WAIT_S):
                        await finished.wait()
                    if not finished.is_set():
                        _close(sock)
        finally:
            if not finished.is_set():  # cancelled from outside
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._kill_from, pidfile, user)
                    _close(sock)
            _close(sock)
            with contextlib.suppress(OSError):
                os.unlink(host_pidfile)
        info = await anyio.to_thread.run_sync(api.exec_inspect, exec_id)
        code = info.get("ExitCode")
        out_text, out_dropped, out_chars = out.text()
        err_text, err_dropped, err_chars = err.text()
        return CommandResult(
            exit_code=None if timed_out or code is None else int(code),
            timed_out=timed_out,
            stdout=out_text,
            stderr=err_text,
            duration_s=time.monotonic() - started,
            stdout_dropped=out_dropped,
            stderr_dropped=err_dropped,
            stdout_dropped_chars=out_chars,
            stderr_dropped_chars=err_chars,
        )

    def _ctl_path(self, *parts: str) -> Path:
        assert self.ctl_dir is not None
        return self.ctl_dir.joinpath(*parts)

    def _kill_from(self, pidfile: str, user: str | None) -> None:
        with contextlib.suppress(docker.errors.DockerException):
            self.container.exec_run(
                ["/bin/sh", "-c", KILL_SCRIPT, "sh", pidfile],
                user=user or "",
                environment={"PATH": STANDARD_PATH},
            )


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def peer_is_us(stream: anyio.abc.SocketStream, uid: int | None = None) -> bool:
    """Whether the peer of `stream` runs as `uid` (default: ours), as the runner does."""
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    try:
        return peer_uid(raw) == (os.getuid() if uid is None else uid)
    except OSError:
        return False


def _close(sock: Any) -> None:
    with contextlib.suppress(Exception):
        sock.close()
    raw = getattr(sock, "_sock", None)
    if raw is not None:
        with contextlib.suppress(Exception):
            raw.shutdown(socket.SHUT_RDWR)


def _read_exactly(sock: Any, n: int) -> bytes:
    chunks = []
    while n > 0:
        data = sock.read(min(n, 256 * 1024))
        if not data:
            break
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def _read_frames(sock: Any, out: HeadTailBuffer, err: HeadTailBuffer) -> None:
    """Demultiplex Docker's attach stream (8-byte headers) into the two buffers."""
    try:
        while True:
            header = _read_exactly(sock, 8)
            if len(header) < 8:
                return
            stream, size = struct.unpack(">BxxxL", header)
            sink = err if stream == 2 else out
            while size > 0:
                data = sock.read(min(size, 256 * 1024))
                if not data:
                    return
                sink.feed(data)
                size -= len(data)
    except (OSError, ValueError):
        return


def remove_leftovers(client: Any) -> list[str]:
    """Remove the containers of itemloop runtimes on this host that are gone."""
    removed: list[str] = []
    try:
        found = client.containers.list(all=True, filters={"label": LABEL})
    except docker.errors.DockerException:
        return removed
    for c in found:
        labels = c.labels or {}
        if _owner_alive(labels):
            continue
        with contextlib.suppress(docker.errors.DockerException):
            c.remove(force=True)
            removed.append(c.id)
        ctl = labels.get("itemloop.ctl", "")
        if ctl.startswith(tempfile.gettempdir()) and "itemloop-docker-" in ctl:
            shutil.rmtree(ctl, ignore_errors=True)
    return removed
