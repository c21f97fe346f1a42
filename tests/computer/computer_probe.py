"""Helpers shared by the computer tests: the Tk probe on an XvfbComputer, and PNG checks.

The probe runs where the display does, inside the computer's sandbox; its events
come out through a FIFO in the display's directory (bound into the sandbox),
which the test opens read-write so that it never sees an end of file.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from itemloop.sandbox.net_policy import NetworkPolicy
from itemloop.sandbox.xvfb_computer import XvfbComputer

HERE = Path(__file__).parent
DEADLINE_S = 15.0
"""How long a condition may take to come true before the test fails (not a timing assertion)."""

Event = dict[str, Any]
CHROMIUM = "/usr/bin/chromium"
LOCAL = NetworkPolicy.of("all")
"""The test pages are served from 127.0.0.1, which the default policy refuses."""
W, H = 800, 600
"""The display size of the browser tests."""


class XProbe:
    """The Tk window of x_probe.py on `computer`, and the events it has reported."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""
        self.events: list[Event] = []

    @classmethod
    async def start(cls, computer: XvfbComputer) -> XProbe:
        assert computer.desktop is not None
        fifo = os.path.join(computer.desktop.dir, f"probe-{id(computer)}.fifo")
        os.mkfifo(fifo, 0o600)
        probe = cls(os.open(fifo, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC))
        try:
            await computer.launch(
                [
                    sys.executable,
                    str(HERE / "x_probe.py"),
                    str(computer.display_width),
                    str(computer.display_height),
                    fifo,
                ]
            )
            await probe.wait_for(lambda e: e["event"] == "ready")
        except BaseException:
            probe.close()
            raise
        return probe

    def close(self) -> None:
        """Close the test's end of the FIFO (the probe itself dies with the display)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def _line(self) -> bytes:
        while b"\n" not in self._buffer:
            await anyio.wait_readable(self._fd)
            try:
                self._buffer += os.read(self._fd, 1 << 16)
            except BlockingIOError:
                continue
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    async def wait_for(self, match: Callable[[Event], bool]) -> Event:
        """The first event (already seen or coming) that matches; fails after DEADLINE_S."""
        for e in self.events:
            if match(e):
                return e
        with anyio.fail_after(DEADLINE_S):
            while True:
                event: Event = json.loads(await self._line())
                self.events.append(event)
                if match(event):
                    return event

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e["event"] == kind]


async def until(get: Callable[[], Any], ok: Callable[[Any], bool]) -> Any:
    """`await get()` again until `ok` of its value, within DEADLINE_S; the value."""
    with anyio.fail_after(DEADLINE_S):
        while True:
            value = await get()
            if ok(value):
                return value
            await anyio.sleep(0.05)


def png_size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG"
        return im.size


def pixel(png: bytes, x: int, y: int) -> tuple[int, ...]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        value = im.convert("RGB").getpixel((x, y))
    assert isinstance(value, tuple)
    return value


def require(*, binaries: tuple[str, ...] = (), modules: tuple[str, ...] = ()) -> None:
    """Skip (fail in CI, where a skip would hide a broken install) when any is missing."""
    missing = [b for b in binaries if shutil.which(b) is None]
    missing += [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    reason = (
        f"needs {', '.join(missing)} (bash .ci/setup-computer.sh; pip install playwright pillow)"
    )
    if os.environ.get("CI"):
        pytest.fail(f"computer-use dependencies missing in CI: {reason}")
    pytest.skip(reason)
