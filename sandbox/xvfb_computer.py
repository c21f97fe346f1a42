"""`XvfbComputer`: a virtual X display of its own, driven with xdotool.

On enter it starts `Xvfb` on a free display number (`-displayfd` lets the
server pick one and report it), with `-noreset` (otherwise the server resets,
and recentres the pointer, whenever its last client disconnects) and no TCP.
Every action is one `xdotool` process with its own timeout, killed when it runs
out. Screenshots are taken in-process by Pillow's `ImageGrab` over XCB and
encoded as PNG. `launch()` starts a program on the display; on exit those
programs (their whole process groups) and Xvfb are killed.

There is no window manager: keyboard input goes to the window under the
pointer, and windows keep the geometry their programs ask for.
"""

from __future__ import annotations

import io
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import IO, Any, Self

import anyio
import anyio.abc
import anyio.to_thread

from .command import STANDARD_PATH
from .computer import (
    MODIFIERS,
    Button,
    ComputerError,
    ComputerUnavailable,
    Environment,
    Point,
    canonical_key,
)

KILL_WAIT_S = 5.0

BUTTON_NUMBERS: dict[Button, int] = {"left": 1, "wheel": 2, "right": 3, "back": 8, "forward": 9}

_KEYSYMS = {
    "Control": "Control_L",
    "Shift": "Shift_L",
    "Alt": "Alt_L",
    "Meta": "Super_L",
    "Enter": "Return",
    "Escape": "Escape",
    "Tab": "Tab",
    "Backspace": "BackSpace",
    "Delete": "Delete",
    "Insert": "Insert",
    "Home": "Home",
    "End": "End",
    "PageUp": "Prior",
    "PageDown": "Next",
    "ArrowUp": "Up",
    "ArrowDown": "Down",
    "ArrowLeft": "Left",
    "ArrowRight": "Right",
    "Space": "space",
    "CapsLock": "Caps_Lock",
    "PrintScreen": "Print",
    "ContextMenu": "Menu",
    **{f"F{n}": f"F{n}" for n in range(1, 13)},
}

_CHAR_KEYSYMS = {
    " ": "space",
    "!": "exclam",
    '"': "quotedbl",
    "#": "numbersign",
    "$": "dollar",
    "%": "percent",
    "&": "ampersand",
    "'": "apostrophe",
    "(": "parenleft",
    ")": "parenright",
    "*": "asterisk",
    "+": "plus",
    ",": "comma",
    "-": "minus",
    ".": "period",
    "/": "slash",
    ":": "colon",
    ";": "semicolon",
    "<": "less",
    "=": "equal",
    ">": "greater",
    "?": "question",
    "@": "at",
    "[": "bracketleft",
    "\\": "backslash",
    "]": "bracketright",
    "^": "asciicircum",
    "_": "underscore",
    "`": "grave",
    "{": "braceleft",
    "|": "bar",
    "}": "braceright",
    "~": "asciitilde",
    "\n": "Return",
    "\t": "Tab",
}


def xdotool_key(name: str) -> str:
    """The X keysym name xdotool takes for a key named any way `canonical_key` accepts."""
    key = canonical_key(name)
    if len(key) > 1:
        return _KEYSYMS[key]
    if key.isascii() and key.isalnum():
        return key
    if key in _CHAR_KEYSYMS:
        return _CHAR_KEYSYMS[key]
    return f"U{ord(key):04X}"  # Xlib's name for any Unicode keysym


class XvfbComputer:
    """A `Computer` on a private Xvfb display (environment "linux")."""

    def __init__(
        self,
        width: int = 1024,
        height: int = 768,
        *,
        scroll_step_px: int = 100,
        type_delay_ms: int = 12,
        action_timeout_s: float = 10.0,
        start_timeout_s: float = 15.0,
        xvfb: str = "Xvfb",
        xdotool: str = "xdotool",
    ) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"display size must be positive, got {width}x{height}")
        self._width = width
        self._height = height
        self.scroll_step_px = scroll_step_px
        self.type_delay_ms = type_delay_ms
        self.action_timeout_s = action_timeout_s
        self.start_timeout_s = start_timeout_s
        self._xvfb_cmd = xvfb
        self._xdotool_cmd = xdotool
        self._xdotool: str | None = None
        self._xvfb: anyio.abc.Process | None = None
        self._xvfb_log: IO[bytes] | None = None
        self._launched: list[anyio.abc.Process] = []
        self.display: str | None = None
        """The X display name (":N") while the computer is open."""

    @property
    def display_width(self) -> int:
        return self._width

    @property
    def display_height(self) -> int:
        return self._height

    @property
    def environment(self) -> Environment:
        return "linux"

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        xvfb = shutil.which(self._xvfb_cmd)
        xdotool = shutil.which(self._xdotool_cmd)
        missing = [n for n, p in ((self._xvfb_cmd, xvfb), (self._xdotool_cmd, xdotool)) if not p]
        if missing or xvfb is None or xdotool is None:
            raise ComputerUnavailable(
                f"{' and '.join(missing)} not found: install Debian's xvfb and xdotool "
                "(.ci/setup-computer.sh)"
            )
        self._xdotool = xdotool
        try:
            await self._start_xvfb(xvfb)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._close()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self._close()

    async def _start_xvfb(self, xvfb: str) -> None:
        self._xvfb_log = tempfile.TemporaryFile()
        read_fd, write_fd = os.pipe()
        try:
            self._xvfb = await anyio.open_process(
                [
                    xvfb,
                    "-displayfd",
                    str(write_fd),
                    "-screen",
                    "0",
                    f"{self._width}x{self._height}x24",
                    "-nolisten",
                    "tcp",
                    "-noreset",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._xvfb_log,
                pass_fds=(write_fd,),
                env={"PATH": STANDARD_PATH},
                start_new_session=True,
            )
            os.close(write_fd)
            write_fd = -1
            owner, read_fd = read_fd, -1  # from here on, _read_line closes it
            number = await anyio.to_thread.run_sync(
                _read_line, owner, self.start_timeout_s, abandon_on_cancel=True
            )
        finally:
            if write_fd >= 0:
                os.close(write_fd)
            if read_fd >= 0:
                os.close(read_fd)
        if not number.strip().isdigit():
            with anyio.move_on_after(2):  # it closed the pipe: give it a moment to exit
                await self._xvfb.wait()
            code = self._xvfb.returncode
            why = "timed out" if code is None else f"exited with code {code}"
            raise ComputerError(f"Xvfb did not start ({why}): {self._log_tail()}")
        self.display = f":{number.strip()}"

    def _log_tail(self) -> str:
        if self._xvfb_log is None:
            return ""
        self._xvfb_log.seek(0)
        text = self._xvfb_log.read().decode("utf-8", "replace").strip()
        return text[-2000:] or "(no output)"

    async def _close(self) -> None:
        for proc in reversed(self._launched):
            await _kill(proc)
        self._launched.clear()
        if self._xvfb is not None:
            await _kill(self._xvfb, signal.SIGTERM)
            self._xvfb = None
        if self._xvfb_log is not None:
            self._xvfb_log.close()
            self._xvfb_log = None
        self.display = None

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a program on this display: PATH, HOME, LANG, DISPLAY, and `extra`."""
        if self.display is None:
            raise ComputerError("the computer is not open: use `async with XvfbComputer() as c:`")
        env = {
            "PATH": os.environ.get("PATH", STANDARD_PATH),
            "HOME": os.environ.get("HOME", "/"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "DISPLAY": self.display,
        }
        env.update(extra or {})
        return env

    async def launch(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdout: int | None = subprocess.DEVNULL,
        cwd: str | None = None,
    ) -> anyio.abc.Process:
        """Start a program on the display; it (and its process group) is killed on close.

        `stdout=subprocess.PIPE` gives the caller `process.stdout` to read.
        """
        proc = await anyio.open_process(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.DEVNULL,
            env=self.env(env),
            cwd=cwd,
            start_new_session=True,
        )
        self._launched.append(proc)
        return proc

    # -- actions ---------------------------------------------------------------

    async def screenshot(self) -> bytes:
        display = self._open_display()
        try:
            with anyio.fail_after(self.action_timeout_s):
                png = await anyio.to_thread.run_sync(_grab_png, display, abandon_on_cancel=True)
        except TimeoutError:
            raise ComputerError(
                f"screenshot of {display} timed out after {self.action_timeout_s:g} s"
            ) from None
        except OSError as e:
            raise ComputerError(f"screenshot of {display} failed: {e}") from None
        return png

    async def click(
        self, x: int, y: int, button: Button = "left", *, keys: Sequence[str] = ()
    ) -> None:
        await self._xdo(
            ["mousemove", str(x), str(y), "click", str(BUTTON_NUMBERS[button])], keys=keys
        )

    async def double_click(self, x: int, y: int, *, keys: Sequence[str] = ()) -> None:
        await self._xdo(
            ["mousemove", str(x), str(y), "click", "--repeat", "2", "--delay", "80", "1"],
            keys=keys,
        )

    async def scroll(
        self, x: int, y: int, scroll_x: int, scroll_y: int, *, keys: Sequence[str] = ()
    ) -> None:
        args = ["mousemove", str(x), str(y)]
        for amount, negative, positive in ((scroll_y, 4, 5), (scroll_x, 6, 7)):
            clicks = self._wheel_clicks(amount)
            if clicks:
                button = negative if amount < 0 else positive
                args += ["click", "--repeat", str(clicks), "--delay", "10", str(button)]
        await self._xdo(args, keys=keys)

    def _wheel_clicks(self, pixels: int) -> int:
        """Wheel clicks for a scroll of `pixels` (at least one for any non-zero amount)."""
        if pixels == 0:
            return 0
        return min(100, max(1, round(abs(pixels) / self.scroll_step_px)))

    async def type(self, text: str) -> None:
        if not text:
            return
        extra = len(text) * self.type_delay_ms * 3 / 1000
        await self._xdo(
            ["type", "--delay", str(self.type_delay_ms), "--", text], extra_timeout_s=extra
        )

    async def keypress(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        await self._xdo(["key", "--delay", "0", "+".join(xdotool_key(k) for k in keys)])

    async def move(self, x: int, y: int, *, keys: Sequence[str] = ()) -> None:
        await self._xdo(["mousemove", str(x), str(y)], keys=keys)

    async def drag(self, path: Sequence[Point], *, keys: Sequence[str] = ()) -> None:
        if not path:
            return
        (x0, y0), rest = path[0], path[1:]
        args = ["mousemove", str(x0), str(y0), "mousedown", "1"]
        for x, y in rest:
            args += ["mousemove", str(x), str(y)]
        await self._xdo([*args, "mouseup", "1"], keys=keys)

    async def wait(self, ms: int) -> None:
        await anyio.sleep(max(0, ms) / 1000)

    # -- xdotool ---------------------------------------------------------------

    def _open_display(self) -> str:
        if self.display is None or self._xvfb is None:
            raise ComputerError("the computer is not open: use `async with XvfbComputer() as c:`")
        if self._xvfb.returncode is not None:
            raise ComputerError(
                f"Xvfb {self.display} exited with code {self._xvfb.returncode}: {self._log_tail()}"
            )
        return self.display

    async def _xdo(
        self, args: list[str], *, keys: Sequence[str] = (), extra_timeout_s: float = 0.0
    ) -> None:
        """Run one xdotool command line, with the modifier `keys` held around it."""
        display = self._open_display()
        held = [xdotool_key(k) for k in keys]
        if held:
            args = ["keydown", "+".join(held), *args, "keyup", "+".join(reversed(held))]
        assert self._xdotool is not None
        timeout = self.action_timeout_s + extra_timeout_s
        try:
            await _run(
                [self._xdotool, *args],
                {"DISPLAY": display, "PATH": STANDARD_PATH, "LC_ALL": "C.UTF-8"},
                timeout,
            )
        except ComputerError:
            if held:  # a killed xdotool may have left the modifiers down
                with anyio.move_on_after(self.action_timeout_s):
                    await _run(
                        [self._xdotool, "keyup", "+".join(_KEYSYMS[m] for m in MODIFIERS)],
                        {"DISPLAY": display, "PATH": STANDARD_PATH, "LC_ALL": "C.UTF-8"},
                        self.action_timeout_s,
                    )
            raise


async def _run(argv: list[str], env: dict[str, str], timeout_s: float) -> None:
    """Run `argv` to completion; ComputerError when it fails or outlives `timeout_s` (then killed)."""
    proc = await anyio.open_process(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    err = b""
    try:
        with anyio.fail_after(timeout_s):
            assert proc.stderr is not None
            async for chunk in proc.stderr:
                if len(err) < 4096:
                    err += chunk
            code = await proc.wait()
    except TimeoutError:
        await _kill(proc)
        raise ComputerError(
            f"{os.path.basename(argv[0])} timed out after {timeout_s:g} s and was killed"
        ) from None
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _kill(proc)
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await proc.aclose()
    if code != 0:
        text = err.decode("utf-8", "replace").strip() or "(no output)"
        raise ComputerError(f"{os.path.basename(argv[0])} exited with code {code}: {text}")


async def _kill(proc: anyio.abc.Process, sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal `proc`'s process group (it leads one), then make sure it is gone."""
    with anyio.CancelScope(shield=True):
        if proc.returncode is None:
            _signal_group(proc, sig)
            with anyio.move_on_after(KILL_WAIT_S):
                await proc.wait()
        if proc.returncode is None:
            _signal_group(proc, signal.SIGKILL)
            await proc.wait()
        else:
            _signal_group(proc, signal.SIGKILL)  # whatever it left behind in its group
        await proc.aclose()


def _signal_group(proc: anyio.abc.Process, sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _read_line(fd: int, timeout_s: float) -> str:
    """Read from `fd` until a newline, EOF or `timeout_s`, then close it; what was read."""
    deadline = time.monotonic() + timeout_s
    data = b""
    try:
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 64)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return data.decode("ascii", "replace")


def _grab_png(display: str) -> bytes:
    from PIL import ImageGrab

    image: Any = ImageGrab.grab(xdisplay=display)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()
