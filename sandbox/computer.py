"""The `Computer` protocol: a screen the computer-use tool looks at and drives.

A backend is an async context manager (it starts its display or browser on
enter and kills everything it started on exit) with one method per action of a
`computer_call`. Coordinates are screen pixels from the top-left corner; the
caller checks they are on the screen. Key names may be spelled any way
`canonical_key` accepts (the model's "CTRL", "ENTER", "ArrowLeft", "cmd", ...):
it maps them to one canonical name, and each backend maps that to its own.

Backends, each in its own module: `xvfb_computer.XvfbComputer` (an X display of
its own, driven with xdotool) and `browser_computer.BrowserComputer` (headless
Chromium through Playwright).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable

from .base import SandboxError, SandboxUnavailable

Environment = Literal["linux", "browser"]
Button = Literal["left", "right", "wheel", "back", "forward"]
BUTTONS: tuple[Button, ...] = ("left", "right", "wheel", "back", "forward")
Point = tuple[int, int]


class ComputerError(SandboxError):
    """The display or browser failed to do an action; the message is meant for a person."""


class ComputerUnavailable(ComputerError, SandboxUnavailable):
    """The backend cannot start here (Xvfb, xdotool or chromium missing, ...)."""


class UnknownKey(ValueError):
    """A key name no backend knows; the message lists what is accepted."""


@runtime_checkable
class Computer(Protocol):
    @property
    def display_width(self) -> int: ...

    @property
    def display_height(self) -> int: ...

    @property
    def environment(self) -> Environment: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def screenshot(self) -> bytes:
        """The whole screen as a PNG of `display_width` x `display_height`."""
        ...

    async def click(
        self, x: int, y: int, button: Button = "left", *, keys: Sequence[str] = ()
    ) -> None:
        """Click `button` at (x, y), holding the modifier `keys` down meanwhile."""
        ...

    async def double_click(self, x: int, y: int, *, keys: Sequence[str] = ()) -> None: ...

    async def scroll(
        self, x: int, y: int, scroll_x: int, scroll_y: int, *, keys: Sequence[str] = ()
    ) -> None:
        """Scroll by (scroll_x, scroll_y) pixels with the pointer at (x, y); positive is right/down."""
        ...

    async def type(self, text: str) -> None: ...

    async def keypress(self, keys: Sequence[str]) -> None:
        """Press `keys` together (a chord, in order) and release them in reverse order."""
        ...

    async def move(self, x: int, y: int, *, keys: Sequence[str] = ()) -> None: ...

    async def drag(self, path: Sequence[Point], *, keys: Sequence[str] = ()) -> None:
        """Press the left button at `path[0]`, move through the rest, release at the last."""
        ...

    async def wait(self, ms: int) -> None: ...


# -- key names -------------------------------------------------------------------

MODIFIERS = ("Control", "Shift", "Alt", "Meta")

NAMED_KEYS = (
    *MODIFIERS,
    "Enter",
    "Escape",
    "Tab",
    "Backspace",
    "Delete",
    "Insert",
    "Home",
    "End",
    "PageUp",
    "PageDown",
    "ArrowUp",
    "ArrowDown",
    "ArrowLeft",
    "ArrowRight",
    "Space",
    "CapsLock",
    "PrintScreen",
    "ContextMenu",
    *(f"F{n}" for n in range(1, 13)),
)
"""Canonical names of the keys that are not one character (Playwright's spelling)."""

_ALIASES = {
    "ctrl": "Control",
    "control": "Control",
    "ctl": "Control",
    "shift": "Shift",
    "alt": "Alt",
    "option": "Alt",
    "opt": "Alt",
    "meta": "Meta",
    "cmd": "Meta",
    "command": "Meta",
    "super": "Meta",
    "win": "Meta",
    "windows": "Meta",
    "enter": "Enter",
    "return": "Enter",
    "esc": "Escape",
    "escape": "Escape",
    "tab": "Tab",
    "backspace": "Backspace",
    "back_space": "Backspace",
    "delete": "Delete",
    "del": "Delete",
    "insert": "Insert",
    "ins": "Insert",
    "home": "Home",
    "end": "End",
    "pageup": "PageUp",
    "page_up": "PageUp",
    "pgup": "PageUp",
    "prior": "PageUp",
    "pagedown": "PageDown",
    "page_down": "PageDown",
    "pgdn": "PageDown",
    "next": "PageDown",
    "up": "ArrowUp",
    "arrowup": "ArrowUp",
    "down": "ArrowDown",
    "arrowdown": "ArrowDown",
    "left": "ArrowLeft",
    "arrowleft": "ArrowLeft",
    "right": "ArrowRight",
    "arrowright": "ArrowRight",
    "space": "Space",
    "spacebar": "Space",
    "capslock": "CapsLock",
    "caps_lock": "CapsLock",
    "printscreen": "PrintScreen",
    "print": "PrintScreen",
    "contextmenu": "ContextMenu",
    "menu": "ContextMenu",
    **{f"f{n}": f"F{n}" for n in range(1, 13)},
}


def canonical_key(name: str) -> str:
    """The canonical name of a key the model named: one character, or one of `NAMED_KEYS`.

    Case and `-`/`_` are ignored for named keys ("CTRL", "Page_Down", "arrowleft");
    a single character is kept as it is ("a", "A", "+", "é"). Raises `UnknownKey`.
    """
    if len(name) == 1:
        return name
    found = _ALIASES.get(name.strip().lower().replace("-", "_"))
    if found is None:
        found = _ALIASES.get(name.strip().lower().replace("-", "").replace("_", ""))
    if found is None:
        raise UnknownKey(
            f"unknown key {name!r}: use one character or one of "
            + ", ".join(n for n in NAMED_KEYS if not n[1:].isdigit() or n == "F1")
            + " (F1-F12); CTRL, CMD, ESC, RETURN, UP, PAGE_DOWN and similar spellings work too"
        )
    return found


def canonical_keys(names: Sequence[str]) -> list[str]:
    return [canonical_key(n) for n in names]


__all__ = [
    "BUTTONS",
    "MODIFIERS",
    "NAMED_KEYS",
    "Button",
    "Computer",
    "ComputerError",
    "ComputerUnavailable",
    "Environment",
    "Point",
    "UnknownKey",
    "canonical_key",
    "canonical_keys",
]
