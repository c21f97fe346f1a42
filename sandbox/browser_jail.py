"""The contained browser's bubblewrap sandbox: a launcher Playwright runs instead of Chromium.

Playwright launches `BrowserJail.launcher` (`launch(executable_path=...)`)
with Chromium's arguments and the DevTools pipe on fds 3 and 4. The launcher
(on the host, as the user running itemloop):

1. connects to the jail's control socket (a Unix socket in a 0700 temp dir)
   and keeps the connection as an inherited fd;
2. joins the jail's session cgroup (`cgroups.SessionCgroup`, made by
   `BrowserJail` with `BROWSER_LIMITS`: the memory and process defaults of
   `SandboxOptions`) while still itemloop's user and before anything forks,
   so Chromium and all it starts are held by those limits; `cleanup`
   removes the cgroup, killing what is left in it. Where no cgroup can be
   made (not root, nothing delegated), `notices` says the browser runs
   without limits;
3. when run as root, opens the Python prefix the helper needs (it may live
   under 0700 /root), then switches to `jail_ids()` (the commands' own
   unallocated id, `idmap.COMMAND_ID`), so the browser is an unprivileged
   user on the host side too;
4. execs bubblewrap: own user, PID, IPC, UTS, cgroup and network namespaces
   (the network one is empty: no route anywhere), the host filesystem
   read-only, a private tmpfs at /tmp (HOME is /tmp/home; Playwright's
   `--user-data-dir` under /tmp lands there, so the profile is private to
   the sandbox and gone with it), /run, the invoking user's homes and /home
   (nothing of the host's home), the root-only paths of
   `bubblewrap.root_only_paths` hidden, a clean environment, and only the
   downloads staging directory writable on the host. bubblewrap keeps
   inherited fds: the DevTools pipe reaches Chromium.
5. inside, a tiny helper (`HELPER`, stdlib Python with -I -S) makes the
   listening socket on 127.0.0.1 of the sandbox's namespace, sends it to
   itemloop over the control connection (SCM_RIGHTS) with whether a nested
   user namespace can be made, and execs Chromium with
   `--proxy-server=http://127.0.0.1:PORT --proxy-bypass-list=<-loopback>`
   (loopback through the proxy too) and, only when no nested user namespace
   can be made, `--no-sandbox` (reported in `notices`).

itemloop accepts the control connection (`accept`), learns bubblewrap's pid
from the peer credentials, and serves the proxy (`browser_proxy.py`) on the
received socket on the host side.

The jail's directories in the temp dir are named after itemloop's pid; a
killed itemloop's are removed by the next jail made (`leftovers.py`), only
real directories owned by itemloop's user or the jail uid.

Not covered: the read-only host view shows world-readable files; a pathname
Unix socket the uid may write to is connectable from inside (the docker and
X sockets under /run and /tmp are hidden; Chromium's own sandbox keeps
renderers from sockets altogether).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import anyio.abc

from .base import SandboxOptions, SandboxUnavailable
from .bubblewrap import INSTALL_HINT, bwrap_path, root_only_paths
from .cgroups import DELEGATION, CgroupUnavailable, Limits, SessionCgroup
from .command import STANDARD_PATH
from .hidden import inside, invoking_homes
from .idmap import COMMAND_ID, allocated
from .leftovers import remove_temp_dirs, remove_tree, temp_prefix

NOBODY = 65534
_DEFAULTS = SandboxOptions()
BROWSER_LIMITS = Limits(memory_bytes=_DEFAULTS.memory_bytes, max_processes=_DEFAULTS.max_processes)
"""The browser sandbox's cgroup limits: the memory and process defaults of the commands'
sandbox (`SandboxOptions`, their one home)."""


def jail_ids() -> tuple[int, int]:
    """The host uid and gid the browser runs as when itemloop runs as root.

    `idmap.COMMAND_ID`, which no one else on the host runs as (the commands that
    share it are in user and PID namespaces of their own), rather than nobody:
    a process of a user namespace's owner uid in the host's namespace holds every
    capability inside it, and host daemons run as nobody. Where that id is
    allocated to someone, nobody after all."""
    ids = NOBODY if allocated(COMMAND_ID) is not None else COMMAND_ID
    return ids, ids


HOME = "/tmp/home"
DIR_PREFIX = "itemloop-browser-"
DOWNLOADS_PREFIX = "itemloop-browser-downloads-"
"""The jail's directories in the temp dir are `<prefix><itemloop's pid>-<random>`."""

HELPER = r"""
import ctypes, os, socket, sys
ctl = socket.socket(fileno=int(sys.argv[1]))
lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lst.bind(("127.0.0.1", 0))
lst.listen(128)
port = lst.getsockname()[1]
pid = os.fork()
if pid == 0:
    os._exit(0 if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) == 0 else 1)
nested = os.waitpid(pid, 0)[1] == 0
socket.send_fds(ctl, [b"sandbox" if nested else b"nosandbox"], [lst.fileno()])
ctl.close()
lst.close()
extra = ["--proxy-server=http://127.0.0.1:%d" % port, "--proxy-bypass-list=<-loopback>"]
if not nested:
    extra.append("--no-sandbox")
os.execv(sys.argv[2], [sys.argv[2], *sys.argv[3:], *extra])
"""

LAUNCHER = r"""
import json, os, socket, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "jail.json")) as f:
    cfg = json.load(f)
ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
ctl.connect(os.path.join(here, "control"))
fd = ctl.detach()
os.set_inheritable(fd, True)
for procs in cfg["cgroup_procs"]:  # before dropping root, before anything forks
    with open(procs, "w") as f:
        f.write(str(os.getpid()))
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(cfg["gid"])
    os.setuid(cfg["uid"])
argv = [*cfg["bwrap"], "--", cfg["python"],
        "-I", "-S", "-c", cfg["helper"], str(fd), cfg["chromium"], *sys.argv[1:]]
os.execv(argv[0], argv)
"""


@dataclass(frozen=True, slots=True)
class Handoff:
    """What the sandbox sent back: the proxy's listening socket and how Chromium is sandboxed."""

    listener: socket.socket
    chromium_sandbox: bool
    sandbox_pid: int
    """bubblewrap's pid on the host (the launcher exec'd into it)."""


class BrowserJail:
    """The temp directory holding the launcher, its config and the control socket."""

    def __init__(self, chromium: str, *, ids: tuple[int, int] | None = None) -> None:
        bwrap = bwrap_path()
        if bwrap is None:
            raise SandboxUnavailable(f"the browser sandbox needs bubblewrap: {INSTALL_HINT}")
        self.root_run = os.geteuid() == 0
        uid, gid = ids if ids is not None else jail_ids()
        self.uid = uid if self.root_run else os.getuid()
        self.gid = gid if self.root_run else os.getgid()
        self.cgroup: SessionCgroup | None = None
        self.notices: list[str] = []
        """What holds the browser and what does not, for the model (the cgroup's limits)."""
        remove_temp_dirs((DIR_PREFIX, DOWNLOADS_PREFIX), owners=(self.uid,))
        self.dir = tempfile.mkdtemp(prefix=temp_prefix(DIR_PREFIX))
        self.downloads = tempfile.mkdtemp(prefix=temp_prefix(DOWNLOADS_PREFIX))
        try:
            self._prepare(bwrap, chromium)
        except BaseException:
            self.cleanup()
            raise

    def _prepare(self, bwrap: str, chromium: str) -> None:
        if self.root_run:
            os.chown(self.downloads, self.uid, self.gid)
        self.launcher = os.path.join(self.dir, "launcher")
        self.control = os.path.join(self.dir, "control")
        python, prefix = self._python()
        try:
            self.cgroup = SessionCgroup.create(BROWSER_LIMITS)
            self.notices.append(f"browser limits: {self.cgroup.describe()}")
        except CgroupUnavailable as e:
            self.notices.append(
                f"the browser runs without memory or process limits: no cgroup could be made "
                f"({e}); that needs root or a cgroup delegated to you ({DELEGATION})"
            )
        config = {
            "uid": self.uid,
            "gid": self.gid,
            "cgroup_procs": self.cgroup.procs_files if self.cgroup else [],
            "bwrap": [bwrap, *self._bwrap_args(prefix)],
            "python": python,
            "helper": HELPER,
            "chromium": chromium,
        }
        with open(os.path.join(self.dir, "jail.json"), "w", encoding="utf-8") as f:
            json.dump(config, f)
        with open(self.launcher, "w", encoding="utf-8") as f:
            f.write(f"#!{os.path.realpath(sys.executable)} -I\n{LAUNCHER}")
        os.chmod(self.launcher, stat.S_IRWXU)

    def _python(self) -> tuple[str, str]:
        """A Python for the helper that the jail's uid can run, and its prefix."""
        ours = (os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix))
        for python, prefix in (ours, ("/usr/bin/python3", "/usr")):
            if os.path.exists(python) and _reachable(python, self.uid, self.gid):
                return python, prefix
        raise SandboxUnavailable(
            f"the browser sandbox runs a small Python helper as uid {self.uid}, which cannot "
            f"run {ours[0]}: install a system Python (Debian: apt-get install python3-minimal)"
        )

    def _bwrap_args(self, prefix: str) -> list[str]:
        args = [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-net",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/run",
        ]
        hidden = ["/home", *invoking_homes()]
        for h in dict.fromkeys(hidden):
            if os.path.isdir(h):
                args += ["--tmpfs", h]
        for p in root_only_paths():
            if any(inside(p, h) for h in hidden):
                continue
            args += ["--tmpfs", p] if os.path.isdir(p) else ["--ro-bind", "/dev/null", p]
        if any(inside(prefix, h) for h in hidden):
            args += ["--ro-bind", prefix, prefix]  # the helper's Python, in a hidden home
        args += ["--dir", HOME, "--bind", self.downloads, self.downloads, "--clearenv"]
        env = {"HOME": HOME, "PATH": STANDARD_PATH, "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
        for k, v in env.items():
            args += ["--setenv", k, v]
        return args

    async def listen(self) -> anyio.abc.SocketListener:
        return await anyio.create_unix_listener(self.control)

    async def accept(self, listener: anyio.abc.SocketListener) -> Handoff:
        """The sandbox's handoff on the control socket (the launcher connects once)."""
        stream = await listener.accept()
        async with stream:
            raw: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            creds = raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            pid = int.from_bytes(creds[:4], sys.byteorder)
            assert isinstance(stream, anyio.abc.UNIXSocketStream)
            msg, fds = await stream.receive_fds(64, 1)
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise SandboxUnavailable("the browser sandbox did not hand over its proxy socket")
        return Handoff(socket.socket(fileno=fds[0]), msg == b"sandbox", pid)

    def cleanup(self) -> None:
        """Remove the cgroup (killing what is left in it) and the directories."""
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        remove_tree(self.dir)
        remove_tree(self.downloads)


def _reachable(path: str, uid: int, gid: int) -> bool:
    """`uid` can reach and run `path` by its mode bits (every directory searchable)."""
    if uid == os.getuid():
        return os.access(path, os.X_OK)
    parts = os.path.realpath(path).split("/")
    for i in range(1, len(parts) + 1):
        st = os.stat("/".join(parts[:i]) or "/")
        bit = 1  # search on directories, execute on the file
        if st.st_uid == uid:
            ok = st.st_mode & (bit << 6)
        elif st.st_gid == gid:
            ok = st.st_mode & (bit << 3)
        else:
            ok = st.st_mode & bit
        if not ok:
            return False
    return True


def launch_args(extra: Sequence[str]) -> list[str]:
    """Chromium's arguments in the jail (the helper adds the proxy and sandbox ones)."""
    return [a for a in extra if not a.startswith(("--proxy-server", "--proxy-bypass-list"))]


__all__ = ["HELPER", "BrowserJail", "Handoff", "jail_ids", "launch_args"]
