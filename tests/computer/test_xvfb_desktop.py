"""The contained desktop: Xvfb, its apps and the session's shell commands in one real
bubblewrap sandbox; the display needs its cookie and is out of the host's reach."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from computer_probe import DEADLINE_S, pixel, png_size
from helpers import dead_pid

from itemloop.sandbox.base import SandboxOptions
from itemloop.sandbox.bubblewrap import BubblewrapSandbox
from itemloop.sandbox.computer import ComputerError
from itemloop.sandbox.desktop_display import DesktopDisplay
from itemloop.sandbox.xvfb_computer import XvfbComputer
from itemloop.tools.config import ComputerConfig, SandboxConfig, ToolsetConfig
from itemloop.tools.toolset import Toolset

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("need_desktop")]

W, H = 640, 480
RED, BLUE, BLACK = (255, 0, 0), (0, 0, 255), (0, 0, 0)
FIRST_APP = "xlogo -bg red -geometry 200x200+50+50"
ON_FIRST = (150, 53)  # the top edge of its window: background, drawn by the server on map
ON_SECOND = (450, 303)  # where the second app (from a shell command) shows
SECOND_APP = (
    "xlogo -bg blue -title second -geometry 100x100+400+300 & "
    "xdotool search --sync --onlyvisible --name '^second$'"
)


@pytest.fixture
def need_desktop() -> None:
    from computer_probe import require

    require(binaries=("Xvfb", "xdotool", "xlogo", "xprop", "bwrap"), modules=("PIL",))


def computer_call(cid: str) -> dict[str, Any]:
    return {
        "type": "computer_call",
        "id": f"cu_{cid}",
        "call_id": cid,
        "status": "completed",
        "pending_safety_checks": [],
        "action": {"type": "screenshot"},
    }


def shell_call(cid: str, command: str) -> dict[str, Any]:
    return {"type": "shell_call", "call_id": cid, "action": {"commands": [command]}}


def png_of(output: dict[str, Any]) -> bytes:
    url = output["output"]["image_url"]
    return base64.b64decode(url.split(",", 1)[1])


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[Toolset]:
    """A session with shell and computer (`--computer xvfb --computer-app ...`)."""
    config = ToolsetConfig(
        builtins=("shell", "computer"),
        sandbox=SandboxConfig(workspace=tmp_path),
        computer=ComputerConfig(
            backend="xvfb",
            display_width=W,
            display_height=H,
            apps=(FIRST_APP,),
            tool="computer",
        ),
    )
    async with Toolset(config) as tools:
        yield tools


async def run_call(tools: Toolset, call: dict[str, Any]) -> dict[str, Any]:
    executor = tools.executor_for(call)
    assert executor is not None
    result = await executor.execute(call)
    assert result.ok, result.summary
    return dict(result.output)


async def test_apps_show_first_and_shell_commands_start_more(session: Toolset) -> None:
    png = png_of(await run_call(session, computer_call("c1")))
    assert png_size(png) == (W, H)
    assert pixel(png, *ON_FIRST) == RED, "the --computer-app shows in the first screenshot"
    assert pixel(png, *ON_SECOND) == BLACK

    out = await run_call(session, shell_call("s1", SECOND_APP))
    assert "exit_code" in json.dumps(out) and '"exit_code": 0' in json.dumps(out), out

    png = png_of(await run_call(session, computer_call("c2")))
    assert pixel(png, *ON_SECOND) == BLUE, "the app a shell command started shows"
    assert pixel(png, *ON_FIRST) == RED


async def test_the_display_needs_its_cookie(session: Toolset) -> None:
    assert session.sandbox is not None
    r = await session.sandbox.run(script="echo $DISPLAY; xdpyinfo >/dev/null && echo with-cookie")
    assert r.stdout.split() == ["127.0.0.1:0", "with-cookie"], r.stderr
    r = await session.sandbox.run(script="XAUTHORITY=/dev/null xdpyinfo", timeout_s=DEADLINE_S)
    assert r.exit_code != 0
    assert "Authorization required" in r.stderr or "No protocol specified" in r.stderr, r.stderr


FORGE_LINE_LENGTH = """
import os, struct, sys
path = os.path.join(os.path.dirname(os.environ["XAUTHORITY"]), "Xvfb_screen0")
fd = os.open(path, os.O_RDWR)
if sys.argv[1] == "save":
    print(os.pread(fd, 4, 48).hex())
else:
    os.pwrite(fd, bytes.fromhex(sys.argv[1]), 48)
"""


async def test_a_forged_framebuffer_header_is_an_error_not_a_huge_read(session: Toolset) -> None:
    # Commands can write the framebuffer file itemloop reads screenshots from: a line
    # length it forged must neither size itemloop's read (gigabytes, outside the
    # session's memory limit) nor escape as an internal error; the display is
    # usable again once the header is right.
    assert session.sandbox is not None
    computer = session.computer
    assert isinstance(computer, XvfbComputer)
    r = await session.sandbox.run(["python3", "-c", FORGE_LINE_LENGTH, "save"])
    original = r.stdout.strip()
    assert len(original) == 8, r
    for forged in (8 * 1024 * 1024, 0xFFFFFFFF, 1):
        r = await session.sandbox.run(
            ["python3", "-c", FORGE_LINE_LENGTH, struct.pack(">I", forged).hex()]
        )
        assert r.exit_code == 0, r
        with pytest.raises(ComputerError, match="line length"):
            await computer.screenshot()
    executor = session.executor_for(computer_call("c1"))
    assert executor is not None
    result = await executor.execute(computer_call("c1"))  # one output, saying why
    assert not result.ok and "line length" in result.summary, result.summary
    await session.sandbox.run(["python3", "-c", FORGE_LINE_LENGTH, original])
    assert pixel(await computer.screenshot(), *ON_FIRST) == RED


def xvfb_pid(computer: XvfbComputer) -> int:
    assert computer._xvfb_pidfd is not None
    with open(f"/proc/self/fdinfo/{computer._xvfb_pidfd}") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["Pid"])


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def host_sockets(table: str) -> dict[str, str]:
    """This (the host's) network namespace's sockets of /proc/net/TABLE: inode -> line."""
    with open(f"/proc/self/net/{table}") as f:
        rows = f.read().splitlines()[1:]
    column = 7 if table == "unix" else 9
    return {row.split()[column]: row for row in rows if len(row.split()) > column}


async def test_the_display_is_out_of_the_hosts_reach(session: Toolset) -> None:
    computer = session.computer
    assert isinstance(computer, XvfbComputer)
    pid = xvfb_pid(computer)
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    listening = socket_inodes(pid)
    assert listening, "Xvfb has sockets"
    for table in ("tcp", "tcp6", "unix"):
        assert not listening & set(host_sockets(table)), f"an Xvfb socket in the host's {table}"


async def test_with_the_network_on_the_display_is_a_private_socket(tmp_path: Path) -> None:
    display = DesktopDisplay(network=True)
    options = display.sandbox_options(SandboxOptions(network=True))
    async with (
        BubblewrapSandbox(tmp_path, options) as sandbox,
        XvfbComputer(W, H, sandbox=sandbox, display=display, apps=(FIRST_APP,)) as computer,
    ):
        assert pixel(await computer.screenshot(), *ON_FIRST) == RED
        number = display.number
        assert computer.display == f":{number}"
        # Neither TCP nor an abstract socket of Xvfb in the (shared) host namespace.
        inodes = socket_inodes(xvfb_pid(computer))
        assert not inodes & set(host_sockets("tcp")) and not inodes & set(host_sockets("tcp6"))
        unix = host_sockets("unix")
        assert not [unix[i] for i in inodes & set(unix) if "@" in unix[i]]
        # The abstract name clients try first is held: nothing else on the host can bind
        # it and pose as the display; and it does not listen: clients are refused there
        # and go on to the private socket.
        name = f"\0/tmp/.X11-unix/X{number}"
        squatter = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with squatter, pytest.raises(OSError, match="in use"):
            squatter.bind(name)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with probe, pytest.raises(ConnectionRefusedError):
            probe.connect(name)
        # A host client, even with the cookie, finds no display.
        r = await anyio.run_process(
            ["xdpyinfo"],
            env={**display.env, "PATH": os.environ["PATH"]},
            check=False,
        )
        assert r.returncode != 0
        # Commands in the sandbox do reach it.
        r2 = await sandbox.run(script="xdpyinfo | head -1")
        assert r2.exit_code == 0 and f":{number}" in r2.stdout, r2.stderr


async def test_a_window_manager_decorates_and_focuses(tmp_path: Path) -> None:
    from computer_probe import require

    require(binaries=("openbox",))
    async with XvfbComputer(
        W, H, workspace=tmp_path, apps=(FIRST_APP,), window_manager="openbox --sm-disable"
    ) as computer:
        assert computer.notices[1:] == [], computer.notices
        assert computer.sandbox is not None
        script = (
            "w=$(xdotool search --onlyvisible --class xlogo | head -1); "
            "xprop -id $w _NET_FRAME_EXTENTS; xdotool getwindowfocus"
        )
        with anyio.fail_after(DEADLINE_S):
            while True:  # focus follows the map, as the window manager gets to it
                r = await computer.sandbox.run(script=script)
                lines = r.stdout.splitlines()
                if len(lines) == 2 and "=" in lines[0]:
                    extents = [int(v) for v in lines[0].split("=")[1].split(",")]
                    focus = int(lines[1])
                    frame = await computer.sandbox.run(
                        script=f"xprop -id {focus} WM_CLASS 2>/dev/null"
                    )
                    if "xlogo" in frame.stdout:
                        break
                await anyio.sleep(0.05)
        assert extents[2] > 0, "a title bar above the window (_NET_FRAME_EXTENTS: l, r, top, b)"


async def test_an_app_that_cannot_start_is_a_notice(tmp_path: Path) -> None:
    async with XvfbComputer(
        W, H, workspace=tmp_path, apps=("no-such-app-for-itemloop", FIRST_APP)
    ) as computer:
        notes = computer.notices
        assert any(
            "'no-such-app-for-itemloop' exited with code 127" in n and "not found" in n
            for n in notes
        ), notes
        assert pixel(await computer.screenshot(), *ON_FIRST) == RED, "the next app still starts"


def test_exec_with_computer_app_flag(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "itemloop.runtime.cli",
            "exec",
            "--tools",
            "computer",
            "--computer",
            "xvfb",
            "--computer-app",
            FIRST_APP,
            "--display-size",
            f"{W}x{H}",
            "--workspace",
            str(tmp_path),
        ],
        input=json.dumps(computer_call("c1")) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    png = png_of(json.loads(r.stdout))
    assert pixel(png, *ON_FIRST) == RED


# openbox claims the display (_NET_SUPPORTING_WM_CHECK), then reads its config: held here
# in a FIFO until xlogo's window exists, so xlogo's MapRequest reaches openbox while it is
# still starting up. openbox 3.6 reads such events into its own queue during startup and
# handles them only when the next X event wakes it.
SLOW_OPENBOX = (
    "d=$(mktemp -d); mkfifo $d/rc.xml; "
    "(xdotool search --sync --name '^xlogo$' >/dev/null; "
    "cat /etc/xdg/openbox/rc.xml >$d/rc.xml) & "
    "exec openbox --sm-disable --config-file $d/rc.xml"
)


async def test_an_app_that_maps_while_the_window_manager_starts_is_shown(tmp_path: Path) -> None:
    from computer_probe import require

    require(binaries=("openbox",))
    async with XvfbComputer(
        W, H, workspace=tmp_path, apps=(FIRST_APP,), window_manager=SLOW_OPENBOX
    ) as computer:
        assert computer.notices[1:] == [], computer.notices
        assert computer.sandbox is not None
        r = await computer.sandbox.run(
            script="xprop -id $(xdotool search --onlyvisible --class xlogo | head -1) "
            "_NET_FRAME_EXTENTS"
        )
        assert "_NET_FRAME_EXTENTS(CARDINAL) =" in r.stdout, (r.stdout, r.stderr)


def test_a_killed_itemloops_display_directory_is_removed_by_the_next(tmp_path: Path) -> None:
    # A SIGKILLed itemloop leaves its display directory (cookie, framebuffer) in /tmp;
    # the next display made removes those whose itemloop is gone, and nothing else:
    # not a live one's, not what a link planted under such a name points at.
    gone = dead_pid()
    tmp = Path(tempfile.gettempdir())
    left = tmp / f"itemloop-display-{gone}-left"
    live = tmp / f"itemloop-display-{os.getpid()}-live"
    planted = tmp / f"itemloop-display-{gone}-link"
    target = tmp_path / "keep"
    target.mkdir()
    (target / "file").write_text("mine")
    try:
        for d in (left, live):
            d.mkdir()
            (d / "Xauthority").write_bytes(b"cookie")
        planted.symlink_to(target)
        DesktopDisplay().close()
        assert not left.exists()
        assert live.exists() and planted.is_symlink() and (target / "file").exists()
    finally:
        for d in (left, live):
            shutil.rmtree(d, ignore_errors=True)
        planted.unlink(missing_ok=True)
