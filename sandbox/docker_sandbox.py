"""`DockerSandbox` (`--sandbox docker --image NAME`): one container per session.

The container: the user's image, any Linux image of the host's architecture
(with or without a shell, on any libc); the engine must be on this machine
(a `DOCKER_HOST` of tcp://, ssh://, ... is refused: the bind mounts and the
host-side file operations need it); the workspace bind-mounted at
`/workspace` (and `writable_paths` at their host paths); a read-only root
filesystem with a private tmpfs at `/tmp` (HOME); network `none` unless
`network=True`; memory, CPU and PIDs limits; every capability dropped and
no-new-privileges; commands run as the runtime's own uid:gid, so workspace
files keep their owner (root's when the runtime runs as root: see set-ID
below); Docker's init as PID 1, so orphans are reaped. It is
labelled `itemloop.sandbox`, with the owner's host name and PID, and removed
when the session closes.

It dies with its owner, however the owner dies (SIGKILL included): PID 1's
only child is a watchdog, `read` on the container's stdin, which the runtime
attaches to before starting the container and holds for the session. The
container is created with StdinOnce, so when that connection to the engine
ends the engine closes the stdin; the watchdog and then init exit, the kernel
kills every process left in the container (`docker exec` ones too), and the
engine removes it (auto-remove). This holds for a remote engine as well. An
owner killed between creating the container and attaching leaves it created
but never started; the next DockerSandbox that starts removes it (and any
other container whose owner is gone), with its control directory only when
that is named after the owner's pid label and that pid is not running (a
label is anyone's to write: `_leftover_ctl_dir`). A command can end its own
sandbox by killing the watchdog (it runs as the commands' uid), not keep it
alive.

The channel its commands go through, chosen at start (`mode` says which):

- **Fast path**, `runner`: the runner (`_runner.py`) runs inside the
  container for the whole session, on the host's own Python brought in
  read-only with its loader and libraries (`runner_bundle`: nothing from the
  image is used, so any image of the host's architecture works), and connects
  back over a Unix socket in a bind-mounted directory; it is a
  `RunnerChannel`, as in the `local` sandbox: a command costs a message and a
  spawn, with the same process-tree handling. Commands start from the
  image's ENV, as under `docker exec`; scripts run under the image's
  `/bin/sh`, or the bundled static busybox when the image has none
  (`ChannelSandbox.shell`). The socket's host directory is private to the
  runtime's uid (0700; the container runs as that uid), and the connection
  is accepted only from a peer with that uid (SO_PEERCRED). That runner
  cannot switch users: a command asking for another user is refused.
- **Exec path**, `exec` (the bundle cannot be built or cannot run on the
  engine's machine, the runner did not come up, or `fast_path=False`): a
  `DockerExecChannel`, one `docker exec` per command (tens of milliseconds
  each; the image needs `/bin/sh`); another user is passed on to Docker. Why
  it was taken is in `notices`.

Set-ID files. A command owns the workspace files it makes, so as root it
could `chmod 4755` one and leave a setuid-root program on the host. On the
fast path the runner is handed `seccomp.container_filter` (built here for
the host's architecture, which the fast path requires the engine to share)
and installs it on itself before it connects, so it binds every command:
set-ID modes in chmod/fchmod/fchmodat/fchmodat2 and open/creat/openat/
mknod(at) fail with EPERM, openat2 and io_uring_setup with ENOSYS. Its
`ready` says whether it took; the notices say set-ID modes are refused (as
root), or are not and why (no filter for this architecture, the kernel
refused it). Set-ID bits a file already had are left alone there. The exec
path cannot refuse them (`docker exec` processes are not the runner's
children, and a custom Docker seccomp profile would have to restate Docker's
default one, which the engine does not expose and Debian's docker.io does
not ship), so it removes them instead (`setid_sweep`): from the workspace and
writable paths, at start (bits already there included: it cannot tell who
set one), after each command (the command's result, or its
error, names the paths, bounded and quoted) and once the container is gone
at close (said in `notices`). Its notice says so, and that a process left
running in the background can set them between two commands: that window
stays open until the next sweep.

Commands run as the runner's uid without capabilities: they cannot reach its
memory or socket (it is non-dumpable, see `_runner.py`; Docker's seccomp
profile and the runner's filter refuse `pidfd_getfd` too), but they can
kill every process of the container (`kill -9 -1`), the runner and the
process that keeps the container running among them. The container then stops; the next command finds its
channel lost and the sandbox restarts (`channel_sandbox`): this container is
removed (`discard_channel`) and a new one started, and the command is told.
The engine's bind mounts follow symlinks in their source, so no writable path
may nest with the workspace or another one (`base.check_writable_paths`, at
construction: inside a directory commands may write, a command could move
one's parent and put a link to a host directory in its place), and a new
container binds the workspace and writable paths only if they are still the
directories of the first start (`pinned.py`), else the restart is refused.
Masks inside the workspace or a writable path cannot be carried away by a
command (`mv .config .config2`): each directory between the root and the mask
is bound on itself, a mount point no command can rename (`hidden.py`), and a
new container hides the masks of the containers before it (pinned: a symlink
a mask was found through, `~/.ssh -> dotfiles/ssh`, may be gone since).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import docker  # type: ignore[import-untyped,unused-ignore]
import docker.errors  # type: ignore[import-untyped,unused-ignore]
from docker.types import Mount  # type: ignore[import-untyped,unused-ignore]

from .base import (
    CommandResult,
    SandboxError,
    SandboxOptions,
    SandboxUnavailable,
    check_writable_paths,
)
from .channel import CommandChannel
from .channel_sandbox import ChannelSandbox
from .command import DEFAULT_SHELL, STANDARD_PATH
from .docker_exec import PIDS_DIR, DockerExecChannel, close_stream
from .hidden import Mask, between, inside, invoking_homes, link_notice, masks, writable_links
from .leftovers import gone, remove_temp_dirs, remove_tree, temp_dir_of, temp_prefix
from .pinned import Pins
from .runner_bundle import BundleUnavailable, RunnerBundle, engine_problem, runner_bundle
from .runner_channel import READY_TIMEOUT_S, RunnerChannel
from .seccomp import UnsupportedArch, container_filter, native_arch
from .setid_sweep import sweep

WORKSPACE = "/workspace"
CTL_PREFIX = "itemloop-docker-"
"""The host directory of a session's control socket: `<prefix><pid>-...` in the temp dir."""
CTL_DIR = "/run/itemloop"
HOME = "/tmp"
LABEL = "itemloop.sandbox"
REMOVE_WAIT_S = 30.0
"""How long closing waits for a container the engine is already removing."""
MASK_TMPFS_BYTES = 1024 * 1024
"""Size of the empty tmpfs over a hidden directory (writable only by a command run as root)."""

NO_ENGINE_HINT = (
    "start the Docker engine (e.g. `dockerd &` or `systemctl start docker`) and make sure "
    "this user may use it (DOCKER_HOST, or membership of the docker group), or choose "
    "another sandbox: --sandbox local (bubblewrap) or --sandbox host"
)
EXEC_PATH_COST = "each command is a `docker exec` (~50 ms) instead of a runner message (~1 ms)"
SETID_REFUSED = "docker sandbox: set-user-ID and set-group-ID modes are refused (seccomp)"
SETID_NOT_REFUSED = (
    "docker sandbox: set-user-ID and set-group-ID modes are not refused ({why}): a command "
    "can leave a set-ID program, owned by uid {uid}, in the workspace"
)
SETID_SWEEP_WHY = (
    " (the docker exec path cannot refuse set-user-ID and set-group-ID modes, so itemloop "
    "removes them)"
)
SETID_SWEPT = (
    "docker sandbox: set-user-ID and set-group-ID modes are not refused on the exec path "
    "(`docker exec` runs commands outside the runner's filter); set-ID bits in the workspace "
    "and writable paths are removed after each command and when the session ends, but a "
    "process left running in the background can set them between commands"
)


def remote_engine_problem(docker_host: str | None) -> str | None:
    """Why the engine `DOCKER_HOST` names cannot serve this sandbox; None for a local socket."""
    if not docker_host or docker_host.startswith("unix://"):
        return None
    return (
        f"--sandbox docker needs a Docker engine on this machine, and DOCKER_HOST={docker_host} "
        "is reached over the network: the workspace bind mount and the host-side file "
        "operations need a local engine; unset DOCKER_HOST or point it to the local socket "
        "(unix:///var/run/docker.sock)"
    )


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


class DockerSandbox(ChannelSandbox):
    name = "docker"

    def __init__(
        self,
        workspace: Path,
        options: SandboxOptions | None = None,
        *,
        image: str,
        fast_path: bool = True,
        host_home: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__(workspace, options)
        check_writable_paths(str(self.workspace), self.options.writable_paths)
        self.pins = Pins()
        """The workspace and writable paths as they were at the first start (`pinned.py`)."""
        self.host_homes = (
            invoking_homes()
            if host_home is None
            else [host_home]
            if isinstance(host_home, str)
            else list(host_home)
        )
        if not image:
            raise SandboxUnavailable("--sandbox docker needs an image: --image NAME")
        self.image = image
        self.fast_path = fast_path
        self.client: Any = None
        self.container: Any = None
        self._owner_link: Any = None
        """The attached stdin of the container's watchdog; closing it ends the container."""
        self.ctl_dir: Path | None = None
        self.bundle: RunnerBundle | None = None
        """The runner bundle mounted in the container (the fast path); None for the exec path."""
        self.image_env: dict[str, str] = {}
        """The image's ENV, which commands start from on the fast path (as `docker exec` does)."""
        self.sweeps_setid = False
        """Whether set-ID bits are removed after each command and at close (`setid_sweep`):
        from the moment the exec path is taken, for the rest of the session."""

    @property
    def mode(self) -> str:
        """`runner` (fast path) or `exec`: the channel commands go through, once started."""
        return "runner" if isinstance(self.channel, RunnerChannel) else "exec"

    @property
    def workspace_mount(self) -> str:
        return WORKSPACE

    def home(self) -> str:
        return HOME

    def path_env(self) -> str:
        return STANDARD_PATH

    def inherited_env(self) -> dict[str, str]:
        return dict(self.image_env)

    # --- lifecycle ---------------------------------------------------------------

    async def open_channel(self, tg: anyio.abc.TaskGroup, stack: AsyncExitStack) -> CommandChannel:
        # At a restart too: the same directories as at the first start, or none.
        self.pins.resolve([str(self.workspace), *self.options.writable_paths])
        self.client = await anyio.to_thread.run_sync(self._connect_engine)
        await anyio.to_thread.run_sync(remove_leftovers, self.client)
        # 0700: only this uid (the container's commands run as it) reaches ctl.sock.
        remove_temp_dirs((CTL_PREFIX,))  # a killed itemloop's (its container died with it)
        self.ctl_dir = Path(tempfile.mkdtemp(prefix=temp_prefix(CTL_PREFIX)))
        stack.callback(self._remove_ctl_dir, self.ctl_dir)
        self.ctl_dir.chmod(0o700)
        pids = self.ctl_dir / "pids"
        pids.mkdir()
        pids.chmod(0o1777)  # mounted on its own: a command run as another user writes here
        self.bundle, why_not = await anyio.to_thread.run_sync(self._prepare_fast_path)
        self.container = await anyio.to_thread.run_sync(self._create_container)
        stack.push_async_callback(self._remove_container)
        await anyio.to_thread.run_sync(self._attach_and_start)
        if self.bundle is not None:
            runner = await self._start_runner(tg)
            if runner is not None:
                if runner.seccomp == "installed":
                    if os.getuid() == 0:
                        self._notice(SETID_REFUSED)
                else:
                    why = runner.seccomp or "the runner did not say it installed its filter"
                    self._notice(SETID_NOT_REFUSED.format(why=why, uid=os.getuid()))
                await self._choose_shell(runner, self.bundle)
                return runner
            why_not = await self._runner_failure(self.bundle)
        self._notice(f"docker sandbox: not the fast path ({why_not}); {EXEC_PATH_COST}")
        self._notice(SETID_SWEPT)
        self.sweeps_setid = True
        note = await self._sweep_setid("docker sandbox", "in the workspace at start")
        if note is not None:
            self._notice(note)
        return DockerExecChannel(self.container, pids)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
        finally:
            if self.sweeps_setid:  # once more, with the container gone: nothing sets them again
                with anyio.CancelScope(shield=True):
                    note = await self._sweep_setid("docker sandbox", "when the session ended")
                if note is not None:
                    self._notice(note)

    async def around_command(
        self, command: Callable[[], Awaitable[CommandResult]]
    ) -> CommandResult:
        """On the exec path, set-ID bits removed after each command, and said."""
        try:
            result = await command()
        except SandboxError as e:
            note = await self._sweep_after_command()
            if note is not None:
                e.args = (f"{e}\n{note}", *e.args[1:])  # the same error, its type kept
            raise
        note = await self._sweep_after_command()
        return result if note is None else result.with_note(note)

    async def _sweep_after_command(self) -> str | None:
        if not self.sweeps_setid:
            return None
        return await self._sweep_setid("itemloop", "after this command", SETID_SWEEP_WHY)

    async def _sweep_setid(self, who: str, when: str, why: str = "") -> str | None:
        """Remove set-ID bits from the workspace and writable paths (off the event loop);
        what was done, for a person, or None when there were none."""
        try:
            # as pinned at the start: never a name a command could have swapped since
            roots = [
                str(self.workspace),
                *self.pins.resolve(self.options.writable_paths, check=False),
            ]
            swept = await anyio.to_thread.run_sync(lambda: sweep(*roots))
        except Exception as e:  # MemoryError among them: the command's output still goes back
            what = (
                str(e)
                if isinstance(e, OSError)
                else type(e).__name__ + (f": {e}" if str(e) else "")
            )
            return f"{who}: the search for set-ID files {when} failed ({what}): some may be left"
        if not swept:
            return None
        found = (
            "set-ID bits found" if swept.count or swept.failed else "the search for set-ID files"
        )
        return f"{who}: {found} {when}: {swept.shown()}{why}"

    def _remove_ctl_dir(self, ctl_dir: Path) -> None:
        """Remove the control directory (commands may have filled its pids directory);
        what is left is said, and goes at the next session's start (`remove_temp_dirs`)."""
        left = remove_tree(str(ctl_dir))
        if left:
            shown = "; ".join(left[:3])[:500]
            self._notice(f"docker sandbox: could not remove all of {ctl_dir}: {shown}")

    def _notice(self, text: str) -> None:
        """Add `text` to the notices once (a restarted sandbox says the same again)."""
        if text not in self.notices:
            self.notices.append(text)

    def seccomp_program(self) -> bytes:
        """The seccomp filter the runner installs (`seccomp.container_filter`) for this
        host's architecture, which is the engine's on the fast path (`engine_problem`).

        Raises `UnsupportedArch`.
        """
        return container_filter(native_arch())

    async def lost_reason(
        self, channel: CommandChannel, outcome: SandboxError | CommandResult
    ) -> str | None:
        why = await super().lost_reason(channel, outcome)
        if why is not None or not isinstance(channel, DockerExecChannel):
            return why
        # On the exec path an exec into a stopped (or stopping) container is an error,
        # or Docker's own 126 "cannot exec" result: nothing ran.
        if isinstance(outcome, CommandResult) and outcome.exit_code != 126:
            return None
        if await self._running():
            return None
        return (
            "its container stopped: a command killed the processes that keep it running, "
            "e.g. with `kill -9 -1`"
        )

    async def discard_channel(self) -> None:
        await self._remove_container()

    async def _running(self) -> bool:
        """Whether the container still runs (True when the engine cannot say)."""
        container = self.container
        if container is None:
            return False

        def check() -> bool:
            try:
                container.reload()
            except docker.errors.NotFound:
                return False
            except docker.errors.DockerException:
                return True
            return bool(container.status == "running")

        return await anyio.to_thread.run_sync(check)

    def _prepare_fast_path(self) -> tuple[RunnerBundle | None, str]:
        """The runner bundle for this engine (and the image's ENV), or why there is none."""
        if not self.fast_path:
            return None, "turned off: fast_path=False"
        try:
            why = engine_problem(self.client.version())
        except docker.errors.DockerException as e:
            why = f"cannot ask the engine for its platform: {e}"
        if why is not None:
            return None, why
        try:
            bundle = runner_bundle()
        except BundleUnavailable as e:
            return None, str(e)
        try:
            config = self.client.images.get(self.image).attrs.get("Config") or {}
        except docker.errors.DockerException as e:
            return None, f"cannot read the image's environment: {e}"
        self.image_env = image_env(config.get("Env") or [])
        return bundle, ""

    async def _choose_shell(self, runner: RunnerChannel, bundle: RunnerBundle) -> None:
        """Scripts run under the image's /bin/sh; under the bundled one when it has none."""
        r = await runner.run(
            [DEFAULT_SHELL, "-c", "exit 0"],
            cwd=WORKSPACE,
            env={"PATH": STANDARD_PATH},
            user=None,
            rlimits={},
            timeout_s=READY_TIMEOUT_S,
            output_limit=4096,
        )
        if r.exit_code == 0:
            return
        if bundle.shell is not None:
            self.shell = bundle.shell
        else:
            self.notices.append(
                "docker sandbox: the image has no /bin/sh and this host no static busybox to "
                "bring one (Debian: busybox-static): scripts and shell calls cannot run"
            )

    async def _runner_failure(self, bundle: RunnerBundle) -> str:
        """Why the runner did not come up: the bundled interpreter's own complaint, if any."""
        try:
            probe = await anyio.to_thread.run_sync(
                lambda: self.container.exec_run(bundle.python_argv("-c", "pass"))
            )
        except docker.errors.DockerException as e:
            return f"the container is not running: {e}"
        if probe.exit_code != 0:
            lines = bytes(probe.output or b"").decode(errors="replace").strip().splitlines()
            detail = lines[-1] if lines else f"exit status {probe.exit_code}"
            return f"the bundled Python does not start in this image: {detail}"
        return f"the runner did not connect within {READY_TIMEOUT_S:g}s"

    def _connect_engine(self) -> Any:
        remote = remote_engine_problem(os.environ.get("DOCKER_HOST"))
        if remote is not None:
            raise SandboxUnavailable(remote)
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
        if self.bundle is not None:
            volumes[str(self.bundle.path)] = {"bind": self.bundle.mount, "mode": "ro"}
        writable = self.pins.resolve(o.writable_paths)
        for extra, real in zip(o.writable_paths, writable, strict=True):
            if not os.path.isdir(real):
                raise SandboxUnavailable(f"writable path {extra!r} is not a directory")
            volumes[real] = {"bind": real, "mode": "rw"}
        # `read` on a stdin nobody writes to: a PID-1 child; the bundle's when mounted,
        # so the image needs no shell. Given as the entrypoint: the image's own is not run.
        first = (
            self.bundle.keepalive_argv()
            if self.bundle is not None
            else ["/bin/sh", "-c", "read -r _; exit 0"]
        )
        kwargs: dict[str, Any] = {
            "mounts": self._mask_mounts(),
            # The owner's watchdog (the bundle's shell when mounted, so the image
            # needs none): PID 1's child reads the stdin the runtime holds attached,
            # which the engine closes when the runtime's connection ends (stdin_open
            # without detach: StdinOnce). The entrypoint: the image's own is not run.
            "entrypoint": first[:1],
            "command": first[1:],
            "detach": False,
            "stdin_open": True,
            "init": True,
            "auto_remove": True,
            "network_mode": "bridge" if o.network else "none",
            "volumes": volumes,
            "working_dir": WORKSPACE,
            "labels": {**_owner_labels(), "itemloop.ctl": str(self.ctl_dir)},
            "user": f"{os.getuid()}:{os.getgid()}",
            "read_only": True,
            "tmpfs": {HOME: "rw,exec,nosuid,nodev,mode=1777"},
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            # The bundle's loader must not load what the image's ENV asks for.
            "environment": {
                "PATH": STANDARD_PATH,
                **(self.bundle.loader_env() if self.bundle is not None else {}),
            },
        }
        if o.memory_bytes:
            kwargs["mem_limit"] = int(o.memory_bytes)
        if o.cpus:
            kwargs["nano_cpus"] = int(o.cpus * 1e9)
        if o.max_processes:
            kwargs["pids_limit"] = int(o.max_processes)
        try:
            return self.client.containers.create(self.image, **kwargs)
        except docker.errors.DockerException as e:
            raise SandboxUnavailable(f"--sandbox docker: cannot create a container: {e}") from None

    def _attach_and_start(self) -> None:
        """Attach to the container's stdin, then start it: from then on it dies with us."""
        try:
            self._owner_link = self.client.api.attach_socket(
                self.container.id, params={"stdin": 1, "stream": 1}
            )
            self.container.start()
        except docker.errors.DockerException as e:
            raise SandboxUnavailable(f"--sandbox docker: cannot start a container: {e}") from None

    def _mask_mounts(self) -> list[Any]:
        """Mounts hiding the credential locations and `hidden_paths` the container
        would see: those inside the workspace or a writable path (`hidden.py`)."""
        binds = {str(self.workspace): WORKSPACE}
        binds.update({p: p for p in self.pins.resolve(self.options.writable_paths, check=False)})
        roots = list(binds)
        seen: list[Mask] = []
        for m in masks(self.host_homes, self.options.hidden_paths, roots):
            if m.holds_kept:
                continue  # only the kept paths of it are mounted
            if not any(inside(m.path, b) for b in roots):
                continue  # not in the container
            links = writable_links(m, roots)
            if links:
                self._notice(link_notice(m, links))
            seen.append(m)
        mounts: list[Any] = []
        pinned: set[str] = set()
        # With the masks of the starts before (`Pins.masks`): a link a mask was found
        # through may be gone since, its target is hidden all the same.
        for m in self.pins.masks(seen):
            host_root = max((b for b in roots if inside(m.path, b)), key=len)
            # Each directory between the root and the mask, bound on itself: a mount point,
            # which no command can rename or remove, so the mask cannot be carried away
            # with it (`hidden.py`). The engine mounts a parent before its children.
            for d in between(host_root, m.path):
                if d not in pinned:
                    pinned.add(d)
                    mounts.append(Mount(binds[host_root] + d[len(host_root) :], d, type="bind"))
            target = binds[host_root] + m.path[len(host_root) :]
            if m.is_dir:
                mounts.append(
                    Mount(target, None, type="tmpfs", tmpfs_size=MASK_TMPFS_BYTES, tmpfs_mode=0o755)
                )
            else:
                mounts.append(Mount(target, "/dev/null", type="bind", read_only=True))
        return mounts

    async def _remove_container(self) -> None:
        container, self.container = self.container, None
        if container is None:
            return
        link, self._owner_link = self._owner_link, None
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_remove, container)
        if link is not None:
            close_stream(link)

    async def _start_runner(self, tg: anyio.abc.TaskGroup) -> RunnerChannel | None:
        """The runner's channel, or None when it did not come up (the exec path then)."""
        assert self.ctl_dir is not None and self.bundle is not None
        bundle = self.bundle
        sock_path = str(self.ctl_dir / "ctl.sock")
        try:
            program: bytes | None = self.seccomp_program()
            unfiltered = None
        except UnsupportedArch as e:
            program, unfiltered = None, str(e)
        listener = await anyio.create_unix_listener(sock_path)
        async with listener:
            os.chmod(sock_path, 0o600)
            await anyio.to_thread.run_sync(
                lambda: self.container.exec_run(
                    bundle.runner_argv(f"{CTL_DIR}/ctl.sock", program),
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
            return None  # the runner did not come up: exec path
        channel = RunnerChannel(
            stream,
            tg,
            no_user_switch=(
                f"this docker sandbox runs its commands through a runner as uid "
                f"{os.getuid()}, which cannot switch users"
            ),
        )
        try:
            await channel.handshake()
        except (anyio.EndOfStream, anyio.IncompleteRead, TimeoutError, ValueError, OSError):
            await channel.aclose()
            return None
        except BaseException:
            await channel.aclose()
            raise
        if unfiltered is not None:
            channel.seccomp = unfiltered
        return channel


def _remove(container: Any) -> None:
    """Remove `container` now, or wait until it is gone when the engine is removing it
    already (it exited and is auto-removed)."""
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as e:
        if e.status_code == 409:  # "removal already in progress"
            with contextlib.suppress(docker.errors.DockerException, OSError):
                container.wait(condition="removed", timeout=REMOVE_WAIT_S)
    except (docker.errors.DockerException, OSError):
        pass


def image_env(entries: list[str]) -> dict[str, str]:
    """An image's `Config.Env` ("NAME=value" entries) as a mapping; malformed ones skipped."""
    env: dict[str, str] = {}
    for entry in entries:
        name, sep, value = str(entry).partition("=")
        if sep and name and "\x00" not in entry:
            env[name] = value
    return env


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
        ctl_dir = _leftover_ctl_dir(labels)
        if ctl_dir is not None:
            remove_tree(ctl_dir)
    return removed


def _leftover_ctl_dir(labels: dict[str, str]) -> str | None:
    """The control directory of a container whose owner is gone, to remove: a label is
    anyone's to write (any user of the engine), so only a directory right in the temp
    directory (no `..`), named after the owner's pid label, and that pid not running (a
    forged pid-start must not have a live session's directory removed)."""
    try:
        pid = int(labels.get("itemloop.pid", ""))
    except ValueError:
        return None
    ctl_dir = temp_dir_of(labels.get("itemloop.ctl", ""), CTL_PREFIX, pid)
    if ctl_dir is None or not gone(os.path.basename(ctl_dir), CTL_PREFIX):
        return None
    return ctl_dir
