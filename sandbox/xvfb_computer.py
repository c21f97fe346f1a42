"""`XvfbComputer`: an X display (Xvfb) inside a sandbox, driven with xdotool there.

Everything of the display runs in a sandbox (`sandbox.base.Sandbox`): Xvfb,
the applications (`apps`, `launch`), the window manager and every xdotool
action, each started through the sandbox's command path (`Sandbox.run`; a
program left in the background lives on under the runner's keeper). Nothing
on the host connects to the display: screenshots are read from Xvfb's
framebuffer file, and the display's address, cookie and files are those of a
`desktop_display.DesktopDisplay` (its docstring says where the display listens
and why nothing outside the sandbox reaches it).

Whose sandbox. Given a started `sandbox` (the session's `local` one, started
with the display's `sandbox_options`), the display lives in it, and the
session's shell commands see DISPLAY and XAUTHORITY and can start GUI
programs on it. Without one, the computer starts a bubblewrap sandbox of its
own over `workspace` (a private directory when None), with the network off:
what `--sandbox docker` and `host` sessions get, whose commands do not see
the display (`notices` says so).

Start. Xvfb reports its display number on `-displayfd` when it accepts
clients; a start that fails or takes over `start_timeout_s` is an error with
Xvfb's log. Then the window manager, if any (ready once it has claimed the
root window: `_NET_SUPPORTING_WM_CHECK`), then each app of `apps` (a shell
command line), ready once a new window is visible; an app that exits with an
error, or shows no window within `app_timeout_s`, is a line in `notices` (it
is left running), never a hang. A window manager claims the root window before
its event loop runs, and openbox 3.6 reads the events that arrive meanwhile (an
app's MapRequest) into a queue of its own that it looks at only when the next
X event wakes it: while an app has no window yet, each look also changes a
property of the root window (`_ITEMLOOP_WAKE`; window managers listen to the
root's properties), so a request held that way is handled at the next look. On exit the process groups started here are
killed; a sandbox of its own is closed.

The X server can die under the computer (a command killed it, or the sandbox
was restarted after its runner was lost): the next action or screenshot is a
`ComputerError` saying so; the display is not restarted.

Without a window manager, keyboard input goes to the window under the
pointer, and windows keep the geometry their programs ask for.
"""

from __future__ import annotations

import os
import select
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio
import anyio.to_thread

from .base import CommandResult, Sandbox, SandboxError, SandboxOptions
from .computer import (
    MODIFIERS,
    Button,
    ComputerError,
    ComputerUnavailable,
    Environment,
    Point,
    canonical_key,
)
from .desktop_display import DesktopDisplay, DisplayError

POLL_S = 0.05
"""How often a starting app or window manager is looked at (bounded by its timeout)."""
LOG_TAIL = 2000

# Starts Xvfb ("$@") in the background of this command's process group; prints the
# group and the display number Xvfb writes on -displayfd once it accepts clients
# (empty when it exited first). Its log goes to $1.
_START_XVFB = (
    'log=$1; shift; n=$("$@" -displayfd 3 3>&1 >/dev/null 2>"$log" </dev/null &); echo "$$ $n"'
)
# Starts the shell command line $3 in the background of this command's process group;
# its output goes to $1, its exit status, once it exits, to $2. Prints the group.
_START_APP = (
    '( sh -c "$3" </dev/null >"$1" 2>&1; echo $? >"$2" ) </dev/null >/dev/null 2>&1 & echo $$'
)

# A PropertyNotify on the root window, for a window manager that holds queued events
# until one arrives (see the module docstring).
_WAKE_WINDOW_MANAGER = [
    "xprop",
    "-root",
    "-f",
    "_ITEMLOOP_WAKE",
    "8s",
    "-set",
    "_ITEMLOOP_WAKE",
    "1",
]

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
    """A `Computer` on an Xvfb display inside a sandbox (environment "linux")."""

    def __init__(
        self,
        width: int = 1024,
        height: int = 768,
        *,
        sandbox: Sandbox | None = None,
        display: DesktopDisplay | None = None,
        workspace: Path | None = None,
        apps: Sequence[str] = (),
        window_manager: str | None = None,
        scroll_step_px: int = 100,
        type_delay_ms: int = 12,
        action_timeout_s: float = 10.0,
        start_timeout_s: float = 15.0,
        app_timeout_s: float = 10.0,
        xvfb: str = "Xvfb",
        xdotool: str = "xdotool",
    ) -> None:
        """`sandbox`, when given, is started and was started with `display`'s
        `sandbox_options` (both are then required); the computer closes `display`
        but not the sandbox."""
        if width < 1 or height < 1:
            raise ValueError(f"display size must be positive, got {width}x{height}")
        if (sandbox is None) != (display is None):
            raise ValueError(
                "give both `sandbox` and the `display` it was started with, or neither"
            )
        self._width = width
        self._height = height
        self._given_sandbox = sandbox
        self._given_display = display
        self._workspace = workspace
        self.apps = list(apps)
        self.window_manager = window_manager
        self.scroll_step_px = scroll_step_px
        self.type_delay_ms = type_delay_ms
        self.action_timeout_s = action_timeout_s
        self.start_timeout_s = start_timeout_s
        self.app_timeout_s = app_timeout_s
        self._xvfb_cmd = xvfb
        self._xdotool_cmd = xdotool
        self.sandbox: Sandbox | None = None
        """The sandbox the display runs in, while open."""
        self.desktop: DesktopDisplay | None = None
        self._own: Sandbox | None = None
        self._own_dir: tempfile.TemporaryDirectory[str] | None = None
        self._groups: list[int] = []  # process groups started here, in the sandbox
        self._xvfb_pidfd: int | None = None
        self._notices: list[str] = []
        self._wm_started = False

    @property
    def display_width(self) -> int:
        return self._width

    @property
    def display_height(self) -> int:
        return self._height

    @property
    def environment(self) -> Environment:
        return "linux"

    @property
    def display(self) -> str | None:
        """The X display's name (DISPLAY) inside the sandbox while the computer is open."""
        return None if self.desktop is None else self.desktop.address

    @property
    def notices(self) -> list[str]:
        """What a person should know: where the display runs, apps that did not start."""
        return list(self._notices)

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            await self._open()
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close()

    async def _open(self) -> None:
        if self._given_sandbox is not None:
            self.sandbox, self.desktop = self._given_sandbox, self._given_display
        else:
            from .bubblewrap import BubblewrapSandbox

            self.desktop = DesktopDisplay(network=False)
            workspace = self._workspace
            if workspace is None:
                self._own_dir = tempfile.TemporaryDirectory(prefix="itemloop-desktop-")
                workspace = Path(self._own_dir.name)
            own = BubblewrapSandbox(workspace, self.desktop.sandbox_options(SandboxOptions()))
            await own.__aenter__()
            self._own = self.sandbox = own
            self._notices.append(
                "computer: the X display runs in a bubblewrap sandbox of its own (over the "
                "workspace, network off); shell commands do not see it"
            )
        await self._start_xvfb()
        if self.window_manager:
            await self._start_window_manager(self.window_manager)
        for app in self.apps:
            note = await self.start_app(app)
            if note:
                self._notices.append(note)

    async def _start_xvfb(self) -> None:
        desktop = self._desktop()
        log = os.path.join(desktop.dir, "xvfb.log")
        argv = desktop.xvfb_argv(self._xvfb_cmd, self._width, self._height)
        r = await self._run(["sh", "-c", _START_XVFB, "sh", log, *argv], self.start_timeout_s)
        group, _, number = r.stdout.strip().partition(" ")
        if r.timed_out or not number.strip().isdigit():
            why = "timed out" if r.timed_out else "exited"
            tail = _tail(log) or r.stderr.strip() or "(no output)"
            if "not found" in tail and self._xvfb_cmd in tail:
                raise ComputerUnavailable(
                    f"{self._xvfb_cmd} not found in the sandbox: install Debian's xvfb and "
                    "xdotool (.ci/setup-computer.sh)"
                )
            raise ComputerError(f"Xvfb did not start ({why}): {tail}")
        self._groups.append(int(group))
        try:
            desktop.open_framebuffer()
        except (OSError, DisplayError) as e:
            raise ComputerError(f"Xvfb's framebuffer could not be opened: {e}") from None
        self._xvfb_pidfd = _pidfd_of_xvfb(desktop.dir)

    async def _close(self) -> None:
        groups, self._groups = self._groups, []
        if groups and self.sandbox is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(self.action_timeout_s):
                try:
                    await self.sandbox.run(
                        ["kill", "-KILL", *(f"-{g}" for g in reversed(groups))], timeout_s=5
                    )
                except SandboxError:
                    pass  # the sandbox is gone, and what ran in it
        if self._xvfb_pidfd is not None:
            os.close(self._xvfb_pidfd)
            self._xvfb_pidfd = None
        own, self._own = self._own, None
        if own is not None:  # (not in a shielded scope: it exits its own task group)
            await own.__aexit__(None, None, None)
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None
        if self.desktop is not None:
            self.desktop.close()
            self.desktop = None
        self.sandbox = None

    # -- programs on the display -----------------------------------------------

    async def launch(self, argv: Sequence[str]) -> int:
        """Start `argv` on the display, in the sandbox, in the background; its process
        group (killed on close). Its output goes to a log in the display's directory."""
        return (await self._launch(shlex.join(argv)))[0]

    async def start_app(self, command: str) -> str | None:
        """Start the shell command line `command` on the display and wait (at most
        `app_timeout_s`) for a new window or its exit; None when it showed a window
        (or exited with 0), else a notice saying what happened."""
        before = await self._windows()
        _, log, status = await self._launch(command)
        shown = f"computer: app {command!r}"
        with anyio.move_on_after(self.app_timeout_s):
            while True:
                code = _read_small(status)
                if code:
                    if code.strip() == "0":
                        return None
                    return f"{shown} exited with code {code.strip()}: {_tail(log) or '(no output)'}"
                if self._wm_started:
                    await self._run(_WAKE_WINDOW_MANAGER)
                if (await self._windows()) - before:
                    return None
                await anyio.sleep(POLL_S)
        return f"{shown} showed no window within {self.app_timeout_s:g} s (left running)"

    async def _launch(self, command: str) -> tuple[int, str, str]:
        desktop = self._desktop()
        n = len(self._groups)
        log = os.path.join(desktop.dir, "apps", f"{n}.log")
        status = os.path.join(desktop.dir, "apps", f"{n}.status")
        r = await self._run(["sh", "-c", _START_APP, "sh", log, status, command])
        if r.exit_code != 0 or not r.stdout.strip().isdigit():
            raise ComputerError(f"could not start {command!r}: {r.stderr.strip() or r.stdout}")
        group = int(r.stdout.strip())
        self._groups.append(group)
        return group, log, status

    async def _windows(self) -> set[str]:
        """The ids of the visible windows."""
        r = await self._run([self._xdotool_cmd, "search", "--onlyvisible", ""])
        return set(r.stdout.split()) if r.exit_code == 0 else set()

    async def _start_window_manager(self, command: str) -> None:
        _, log, status = await self._launch(command)
        self._wm_started = True
        with anyio.move_on_after(self.app_timeout_s):
            while True:
                code = _read_small(status)
                if code:
                    self._notices.append(
                        f"computer: window manager {command!r} exited with code "
                        f"{code.strip()}: {_tail(log) or '(no output)'}"
                    )
                    return
                r = await self._run(["xprop", "-root", "_NET_SUPPORTING_WM_CHECK"])
                if "window id" in r.stdout:
                    return
                await anyio.sleep(POLL_S)
        self._notices.append(
            f"computer: window manager {command!r} did not claim the display within "
            f"{self.app_timeout_s:g} s (left running)"
        )

    # -- actions ---------------------------------------------------------------

    async def screenshot(self) -> bytes:
        desktop = self._open_display()
        try:
            return await anyio.to_thread.run_sync(desktop.screenshot_png, self._width, self._height)
        except (OSError, DisplayError) as e:
            raise ComputerError(f"screenshot of {desktop.address} failed: {e}") from None

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

    # -- the sandbox -----------------------------------------------------------

    def _desktop(self) -> DesktopDisplay:
        if self.desktop is None or self.sandbox is None:
            raise ComputerError("the computer is not open: use `async with XvfbComputer() as c:`")
        return self.desktop

    def _open_display(self) -> DesktopDisplay:
        desktop = self._desktop()
        fd = self._xvfb_pidfd
        if fd is not None and select.select([fd], [], [], 0)[0]:
            raise ComputerError(
                f"the X server of display {desktop.address} has exited (a command killed it, "
                "or its sandbox was restarted); the display is gone for this session"
            )
        return desktop

    async def _run(self, argv: list[str], timeout_s: float | None = None) -> CommandResult:
        """Run `argv` in the sandbox with the display's environment."""
        desktop = self._desktop()
        assert self.sandbox is not None
        try:
            return await self.sandbox.run(
                argv,
                env={**desktop.env, "LC_ALL": "C.UTF-8"},
                timeout_s=self.action_timeout_s if timeout_s is None else timeout_s,
                output_limit=64 * 1024,
            )
        except SandboxError as e:
            raise ComputerError(f"{os.path.basename(argv[0])} could not run: {e}") from None

    async def _xdo(
        self, args: list[str], *, keys: Sequence[str] = (), extra_timeout_s: float = 0.0
    ) -> None:
        """Run one xdotool command line, with the modifier `keys` held around it."""
        self._open_display()
        held = [xdotool_key(k) for k in keys]
        if held:
            args = ["keydown", "+".join(held), *args, "keyup", "+".join(reversed(held))]
        timeout = self.action_timeout_s + extra_timeout_s
        r = await self._run([self._xdotool_cmd, *args], timeout)
        if r.exit_code == 0 and not r.timed_out:
            return
        if held:  # a killed xdotool may have left the modifiers down
            await self._run([self._xdotool_cmd, "keyup", "+".join(_KEYSYMS[m] for m in MODIFIERS)])
        if r.timed_out:
            raise ComputerError(f"xdotool timed out after {timeout:g} s and was killed")
        text = r.stderr.strip() or "(no output)"
        if r.exit_code == 127:
            raise ComputerUnavailable(f"xdotool not found in the sandbox: {text}")
        raise ComputerError(f"xdotool exited with code {r.exit_code}: {text[-2000:]}")


def _read_small(path: str) -> str:
    """A small file's text ("" when it is missing); at most LOG_TAIL bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        return os.read(fd, LOG_TAIL).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def _tail(path: str) -> str:
    """The last LOG_TAIL bytes of a log written in the sandbox ("" when missing)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, LOG_TAIL, max(0, size - LOG_TAIL))
    except OSError:
        return ""
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace").strip()


def _pidfd_of_xvfb(directory: str) -> int | None:
    """A pidfd of the Xvfb serving `directory` (its -fbdir, unique to it), found in the
    host's /proc; None where it cannot be found (then its death is seen by the next
    xdotool only)."""
    needle = f"-fbdir\0{directory}\0".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read(8192)
        except OSError:
            continue
        if needle in cmdline and os.path.basename(cmdline.split(b"\0")[0]) == b"Xvfb":
            try:
                return os.pidfd_open(int(entry.name))
            except OSError:
                return None
    return None
