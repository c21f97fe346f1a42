"""What the local sandbox keeps from host Unix sockets and the user's credentials,
and how the Docker sandbox guards its control socket."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import struct
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import anyio.abc
import pytest

from itemloop.sandbox import SandboxOptions, SandboxUnavailable
from itemloop.sandbox import seccomp as seccomp_mod
from itemloop.sandbox.bubblewrap import BubblewrapSandbox
from itemloop.sandbox.channel_sandbox import ChannelSandbox
from itemloop.sandbox.docker_sandbox import DockerSandbox, peer_is_us, peer_uid
from itemloop.sandbox.hidden import CREDENTIAL_PATHS

Make = Callable[..., ChannelSandbox]

pytestmark = pytest.mark.anyio

SECRET = "itemloop-credential-" + uuid.uuid4().hex


@pytest.fixture
def var_tmp() -> Iterator[Path]:
    """A host directory outside /tmp and /run (which the local sandbox replaces)."""
    d = Path("/var/tmp") / f"itemloop-test-{uuid.uuid4().hex}"
    d.mkdir()
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def host_socket(var_tmp: Path) -> Iterator[Path]:
    """A listening pathname Unix socket (stream) and a datagram one, on the host."""
    path = var_tmp / "x.sock"
    with (
        socket.socket(socket.AF_UNIX) as server,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dgram,
    ):
        server.bind(str(path))
        server.listen(8)
        dgram.bind(str(var_tmp / "d.sock"))
        # Anyone may connect: what is under test is the filter, not the sockets' modes
        # (as root, `local` runs commands under another uid: idmap.COMMAND_ID).
        for sock in (path, var_tmp / "d.sock"):
            os.chmod(sock, 0o777)
        yield path


def connect_script(path: Path) -> str:
    return (
        'python3 -c "import socket; s = socket.socket(socket.AF_UNIX); '
        f"s.connect('{path}'); print('connected')\""
    )


def dgram_script(path: Path) -> str:
    # A datagram socketpair can be pointed at any datagram socket with sendto().
    return (
        'python3 -c "import socket; a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM); '
        f"a.sendto(b'x', '{path}'); print('sent')\""
    )


@pytest.mark.bwrap
async def test_local_sandbox_cannot_connect_to_host_unix_sockets(
    workspace: Path, host_socket: Path, make: Make
) -> None:
    # Control: the host sandbox connects.
    async with make("host", workspace) as host:
        r = await host.run(script=connect_script(host_socket))
        assert r.stdout == "connected\n", r.stderr
    async with make("local", workspace) as sb:
        r = await sb.run(script=connect_script(host_socket))
        assert r.exit_code != 0 and "connected" not in r.stdout
        assert "Permission denied" in r.stderr
        r = await sb.run(script=dgram_script(host_socket.parent / "d.sock"))
        assert r.exit_code != 0 and "sent" not in r.stdout
        # What the runner and ordinary programs need keeps working.
        r = await sb.run(
            script="python3 -c \"import socket; a, b = socket.socketpair(); a.send(b'ok'); "
            'print(b.recv(2).decode()); socket.socket(socket.AF_INET).close()"'
        )
        assert r.stdout == "ok\n", r.stderr
        r = await sb.run(script="sleep 1 & echo started; wait")  # keepers' socketpairs
        assert r.stdout == "started\n", r.stderr


@pytest.mark.bwrap
async def test_local_sandbox_x32_socket_and_io_uring_are_denied(
    workspace: Path, make: Make
) -> None:
    script = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def call(nr, *a):\n"
        "    r = libc.syscall(nr, *a)\n"
        "    return r if r >= 0 else -ctypes.get_errno()\n"
        # x32 socket(AF_UNIX); high bits of the family are ignored by the kernel.
        "print(call(0x40000000 | 41, 1, 1, 0), call(41, 1 | 1 << 32, 1, 0), call(425, 1, 0))\n"
    )
    async with make("local", workspace) as sb:
        await sb.write_file("t.py", script.encode())
        r = await sb.run(["python3", "t.py"])
        assert r.stdout.split() == ["-13", "-13", "-38"], r.stderr


@pytest.mark.bwrap
async def test_with_network_on_the_socket_filter_is_off(
    workspace: Path, host_socket: Path, make: Make
) -> None:
    async with make("local", workspace, SandboxOptions(network=True)) as sb:
        r = await sb.run(script=connect_script(host_socket))
        assert r.stdout == "connected\n", r.stderr


def test_filter_program_shape() -> None:
    for arch in seccomp_mod.ARCHES.values():
        for network in (False, True):
            prog = seccomp_mod.command_filter(arch, network=network)
            assert len(prog) % 8 == 0 and 0 < len(prog) // 8 < 64
            first = struct.unpack("=HBBI", prog[:8])
            assert first == (seccomp_mod.BPF_LD_W_ABS, 0, 0, seccomp_mod.OFF_ARCH)
            assert struct.pack("=I", arch.audit) in prog
            assert (struct.pack("=I", arch.compat.audit) in prog) == network


async def test_unknown_architecture_refuses_to_start_with_network_off(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(seccomp_mod.platform, "machine", lambda: "riscv64")
    with pytest.raises(SandboxUnavailable, match="riscv64"):
        async with BubblewrapSandbox(workspace):
            pass
    assert BubblewrapSandbox(workspace, SandboxOptions(network=True)).seccomp_filter() is None


@pytest.fixture
def fake_home(var_tmp: Path) -> Path:
    home = var_tmp / "home"
    for rel in (".ssh", ".aws", ".config/gh", ".kube"):
        (home / rel).mkdir(parents=True)
        (home / rel / "secret").write_text(SECRET)
    for rel in (".netrc", ".git-credentials"):
        (home / rel).write_text(SECRET)
    (home / "notes.txt").write_text("visible")
    return home


@pytest.mark.bwrap
async def test_credentials_in_home_are_hidden(workspace: Path, fake_home: Path, make: Make) -> None:
    assert make("local", workspace)  # skips without bubblewrap
    script = (
        f"cd {fake_home}; cat notes.txt; echo; "
        "cat .ssh/secret .aws/secret .config/gh/secret .kube/secret .netrc .git-credentials; "
        "ls -A .ssh .aws"
    )
    async with BubblewrapSandbox(workspace, host_home=str(fake_home)) as sb:
        r = await sb.run(script=script)
        assert r.stdout.startswith("visible\n"), r.stderr
        assert SECRET not in r.stdout + r.stderr
        # Writing there goes nowhere near the host's files.
        await sb.run(script=f"echo x >> {fake_home}/.netrc; echo y > {fake_home}/.ssh/secret")
    assert (fake_home / ".netrc").read_text() == SECRET
    assert (fake_home / ".ssh" / "secret").read_text() == SECRET
    # With the network on too: a secret read there could be sent anywhere.
    opts = SandboxOptions(network=True)
    async with BubblewrapSandbox(workspace, opts, host_home=str(fake_home)) as sb:
        r = await sb.run(script=f"cat {fake_home}/.ssh/secret")
        assert SECRET not in r.stdout


@pytest.mark.bwrap
async def test_credential_dir_holding_the_workspace_is_not_hidden(
    fake_home: Path, make: Make
) -> None:
    ws = fake_home / ".ssh" / "project"
    ws.mkdir()
    assert make("local", ws)  # skips without bubblewrap
    async with BubblewrapSandbox(ws, host_home=str(fake_home)) as sb:
        r = await sb.run(script="cat ../secret; echo; cat ../../.aws/secret")
        assert r.stdout.startswith(SECRET + "\n")
        assert r.stdout.count(SECRET) == 1  # .aws is still hidden


@pytest.mark.bwrap
async def test_home_as_workspace_still_hides_credentials(fake_home: Path, make: Make) -> None:
    assert make("local", fake_home)  # skips without bubblewrap
    async with BubblewrapSandbox(fake_home, host_home=str(fake_home)) as sb:
        r = await sb.run(script="cat notes.txt .ssh/secret .netrc")
        assert r.stdout.startswith("visible")
        assert SECRET not in r.stdout


def test_credential_list() -> None:
    assert {".ssh", ".gnupg", ".aws", ".netrc", ".pypirc", ".docker", ".kube"} <= set(
        CREDENTIAL_PATHS
    )


# --- docker control socket --------------------------------------------------------


@pytest.mark.docker
async def test_docker_control_socket_is_private(workspace: Path, make: Make) -> None:
    sb = make("docker-python", workspace)
    assert isinstance(sb, DockerSandbox)
    async with sb:
        assert sb.mode == "runner"  # the container (our uid) still reaches it
        assert sb.ctl_dir is not None
        assert stat.S_IMODE(sb.ctl_dir.stat().st_mode) == 0o700
        sock = sb.ctl_dir / "ctl.sock"
        assert stat.S_IMODE(sock.lstat().st_mode) & 0o077 == 0
        if os.getuid() == 0:
            r = ls_as_nobody(sock)
            assert r.returncode != 0 and "Permission denied" in r.stderr, r
        r2 = await sb.run(script="echo ok")
        assert r2.stdout == "ok\n"


def connect_as_nobody(path: Path) -> int:
    """The uid SO_PEERCRED reports for a process of uid 65534 connecting to `path`."""
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        path.chmod(0o666)
        server.listen(1)
        code = f"import socket; s = socket.socket(socket.AF_UNIX); s.connect('{path}'); s.recv(1)"
        proc = subprocess.Popen(["/usr/bin/python3", "-c", code], user=65534)
        try:
            conn, _ = server.accept()
            with conn:
                return peer_uid(conn)
        finally:
            proc.kill()
            proc.wait()


def test_peer_credentials_are_checked(var_tmp: Path) -> None:
    async def check() -> None:
        a, b = socket.socketpair()
        stream = await anyio.abc.UNIXSocketStream.from_socket(a)
        try:
            assert peer_uid(a) == os.getuid()
            assert peer_is_us(stream)
            assert not peer_is_us(stream, uid=os.getuid() + 1)
        finally:
            await stream.aclose()
            b.close()

    anyio.run(check)
    if os.getuid() == 0:
        # A real peer of another uid is told apart.
        var_tmp.chmod(0o755)
        assert connect_as_nobody(var_tmp / "peer.sock") == 65534


def ls_as_nobody(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ls", "-l", str(path)], user=65534, capture_output=True, text=True, check=False
    )
