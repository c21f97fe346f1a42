"""XvfbComputer against a real Xvfb and xdotool inside a real bubblewrap sandbox (one of
the computer's own), and a real X client (a Tk window) on the display there."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import anyio
import pytest
from computer_probe import DEADLINE_S, XProbe, pixel, png_size

from itemloop.sandbox.computer import ComputerError, ComputerUnavailable, UnknownKey
from itemloop.sandbox.xvfb_computer import XvfbComputer, xdotool_key

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("need_x")]

W, H = 640, 480


@pytest.fixture
async def computer() -> AsyncIterator[XvfbComputer]:
    async with XvfbComputer(W, H) as c:
        yield c


@pytest.fixture
async def probe(computer: XvfbComputer) -> AsyncIterator[XProbe]:
    p = await XProbe.start(computer)
    try:
        yield p
    finally:
        p.close()


async def pointer(computer: XvfbComputer) -> tuple[int, int]:
    assert computer.sandbox is not None
    r = await computer.sandbox.run(["xdotool", "getmouselocation"])
    assert r.exit_code == 0, r.stderr
    fields = dict(f.split(":") for f in r.stdout.split())
    return int(fields["x"]), int(fields["y"])


async def test_screenshot_is_a_png_of_the_display_size(computer: XvfbComputer) -> None:
    png = await computer.screenshot()
    assert png_size(png) == (W, H)
    assert computer.display == "127.0.0.1:0"  # TCP in the sandbox's own network namespace


async def test_move_is_seen_by_the_x_server(computer: XvfbComputer) -> None:
    await computer.move(123, 321)
    assert await pointer(computer) == (123, 321)
    await computer.drag([(10, 20), (200, 100), (300, 400)])
    assert await pointer(computer) == (300, 400)


async def test_a_window_shows_in_the_screenshot(computer: XvfbComputer, probe: XProbe) -> None:
    png = await computer.screenshot()
    assert pixel(png, W - 5, H - 5) == (255, 255, 255)  # the probe's white canvas


async def test_clicks_reach_the_window_at_their_coordinates(
    computer: XvfbComputer, probe: XProbe
) -> None:
    await computer.click(400, 300)
    await computer.click(410, 310, "right", keys=["CTRL"])
    await computer.click(420, 320, "wheel")
    for button, x, y in ((1, 400, 300), (3, 410, 310), (2, 420, 320)):
        e = await probe.wait_for(lambda e, b=button: e["event"] == "press" and e["button"] == b)
        assert (e["x"], e["y"]) == (x, y)
    right = await probe.wait_for(lambda e: e["event"] == "press" and e["button"] == 3)
    assert right["state"] & 0x4, "Control was held during the right click"
    left = probe.of("press")[0]
    assert not left["state"] & 0x4, "and released after it"


async def test_double_click_scroll_and_drag(computer: XvfbComputer, probe: XProbe) -> None:
    await computer.double_click(500, 400)
    e = await probe.wait_for(lambda e: e["event"] == "double")
    assert (e["x"], e["y"]) == (500, 400)

    await computer.scroll(450, 350, 0, 300)  # 3 wheel clicks down at 100 px each
    await computer.scroll(450, 350, 0, -100)  # one up
    await computer.move(1, 1)
    await probe.wait_for(lambda e: e["event"] == "press" and e["button"] == 4)
    downs = [e for e in probe.of("press") if e["button"] == 5]
    assert len(downs) == 3 and all((e["x"], e["y"]) == (450, 350) for e in downs)

    await computer.drag([(400, 200), (420, 220), (460, 260)])
    release = await probe.wait_for(
        lambda e: e["event"] == "release" and e["button"] == 1 and (e["x"], e["y"]) == (460, 260)
    )
    press = [e for e in probe.of("press") if e["button"] == 1][-1]
    assert (press["x"], press["y"]) == (400, 200)
    # Tk compresses queued motion events, so the middle point may not be reported alone.
    assert [(e["x"], e["y"]) for e in probe.of("motion")][-1] == (460, 260)
    assert release["state"] & 0x100, "button 1 was held down during the motion"


async def test_typing_and_keys_reach_the_focused_entry(
    computer: XvfbComputer, probe: XProbe
) -> None:
    await computer.click(100, 35)  # into the entry
    await computer.type("Hello, wörld -x+y")
    await computer.keypress(["ctrl", "a"])  # Tk's entry: beginning of line
    await computer.type(">")
    await computer.keypress(["ENTER"])
    e = await probe.wait_for(lambda e: e["event"] == "entry")
    assert e["text"] == ">Hello, wörld -x+y"
    ctrl_a = await probe.wait_for(lambda e: e["event"] == "key" and e["keysym"] == "a")
    assert ctrl_a["state"] & 0x4


async def test_key_names_map_to_keysyms() -> None:
    assert [xdotool_key(k) for k in ["CTRL", "Return", "ArrowLeft", "PAGE_DOWN", "cmd"]] == [
        "Control_L",
        "Return",
        "Left",
        "Next",
        "Super_L",
    ]
    assert [xdotool_key(k) for k in ["a", "A", "+", " ", "é"]] == [
        "a",
        "A",
        "plus",
        "space",
        "U00E9",
    ]
    with pytest.raises(UnknownKey, match="unknown key 'HYPERDRIVE'"):
        xdotool_key("HYPERDRIVE")


async def test_closing_kills_xvfb_and_removes_the_display_files() -> None:
    async with XvfbComputer(W, H) as c:
        assert c.desktop is not None and c._xvfb_pidfd is not None
        directory = c.desktop.dir
        pidfd = os.dup(c._xvfb_pidfd)
        await c.launch(["sleep", "600"])
        assert await anyio.Path(directory, "Xauthority").exists()
    try:
        with anyio.fail_after(DEADLINE_S):
            await anyio.wait_readable(pidfd)  # the X server has exited
    finally:
        os.close(pidfd)
    assert not await anyio.Path(directory).exists()
    assert c.display is None and c.sandbox is None
    with pytest.raises(ComputerError, match="not open"):
        await c.screenshot()


async def test_two_computers_get_separate_displays() -> None:
    async with XvfbComputer(320, 200) as a, XvfbComputer(200, 100) as b:
        assert a.desktop is not None and b.desktop is not None
        assert a.desktop.dir != b.desktop.dir and a.desktop.cookie != b.desktop.cookie
        assert png_size(await a.screenshot()) == (320, 200)
        assert png_size(await b.screenshot()) == (200, 100)


async def test_xdotool_failure_is_a_computer_error(computer: XvfbComputer) -> None:
    with pytest.raises(ComputerError, match="xdotool exited"):
        await computer._xdo(["no-such-command"])


async def test_a_server_that_cannot_start_is_an_error() -> None:
    with pytest.raises(ComputerUnavailable, match="no-such-xvfb not found"):
        async with XvfbComputer(xvfb="no-such-xvfb"):
            pass
    with pytest.raises(ComputerError, match=r"Xvfb did not start \(exited\)"):
        async with XvfbComputer(xvfb="false"):
            pass
