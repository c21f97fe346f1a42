"""`BrowserComputer`: headless Debian Chromium, driven through Playwright.

The `playwright` Python package brings its driver (a bundled binary in the
wheel) but no browser: this backend launches the system's Chromium through
`executable_path` (default /usr/bin/chromium) and never runs `playwright
install`. The screen is the viewport of one page (the newest tab, when the page
opens another), starting at `start_url`. On exit the browser and the driver
are closed.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

import anyio

from .computer import Button, ComputerError, ComputerUnavailable, Environment, Point, canonical_key

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

_PLAYWRIGHT_KEYS = {"Space": " ", "PrintScreen": "PrintScreen", "ContextMenu": "ContextMenu"}
_MOUSE: dict[Button, Literal["left", "middle", "right"]] = {
    "left": "left",
    "wheel": "middle",
    "right": "right",
}


def playwright_key(name: str) -> str:
    """The key name Playwright's keyboard takes, for a key named any way `canonical_key` accepts."""
    key = canonical_key(name)
    return _PLAYWRIGHT_KEYS.get(key, key)


class BrowserComputer:
    """A `Computer` that is one page of a headless Chromium (environment "browser")."""

    def __init__(
        self,
        width: int = 1024,
        height: int = 768,
        *,
        start_url: str = "about:blank",
        executable_path: str = CHROMIUM,
        extra_args: Sequence[str] = (),
        headless: bool = True,
        action_timeout_s: float = 10.0,
        start_timeout_s: float = 30.0,
    ) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"display size must be positive, got {width}x{height}")
        self._width = width
        self._height = height
        self.start_url = start_url
        self.executable_path = executable_path
        self.extra_args = list(extra_args)
        self.headless = headless
        self.action_timeout_s = action_timeout_s
        self.start_timeout_s = start_timeout_s
        self._stack: AsyncExitStack | None = None
        self._context: BrowserContext | None = None
        self._page: Page | None = None

    @property
    def display_width(self) -> int:
        return self._width

    @property
    def display_height(self) -> int:
        return self._height

    @property
    def environment(self) -> Environment:
        return "browser"

    @property
    def page(self) -> Page:
        """The Playwright page on screen (for the program that embeds this, not for the model)."""
        if self._page is None:
            raise ComputerError("the browser is not open: use `async with BrowserComputer() as b:`")
        return self._page

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if shutil.which(self.executable_path) is None:
            raise ComputerUnavailable(
                f"{self.executable_path} not found: install Debian's chromium "
                "(.ci/setup-computer.sh)"
            )
        try:
            from playwright.async_api import Error as PlaywrightError
            from playwright.async_api import async_playwright
        except ImportError as e:
            raise ComputerUnavailable(
                f"the `playwright` Python package is not installed: {e}"
            ) from None
        stack = AsyncExitStack()
        self._stack = stack
        try:
            with anyio.fail_after(self.start_timeout_s):
                pw = await stack.enter_async_context(async_playwright())
                browser: Browser = await pw.chromium.launch(
                    executable_path=self.executable_path,
                    headless=self.headless,
                    args=[*CHROMIUM_ARGS, *self.extra_args],
                    timeout=self.start_timeout_s * 1000,
                )
                stack.push_async_callback(browser.close)
                context = await browser.new_context(
                    viewport={"width": self._width, "height": self._height}
                )
                context.set_default_timeout(self.action_timeout_s * 1000)
                context.on("page", self._on_new_page)
                self._context = context
                self._page = await context.new_page()
                if self.start_url and self.start_url != "about:blank":
                    await self._page.goto(self.start_url)
        except BaseException as e:
            with anyio.CancelScope(shield=True):
                await self._close()
            if isinstance(e, TimeoutError):
                raise ComputerError(
                    f"chromium did not start within {self.start_timeout_s:g} s"
                ) from None
            if isinstance(e, PlaywrightError):
                raise ComputerError(f"chromium did not start: {e.message}") from None
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self._close()

    async def _close(self) -> None:
        stack, self._stack = self._stack, None
        self._page = None
        self._context = None
        if stack is not None:
            with anyio.move_on_after(self.start_timeout_s):
                await stack.aclose()

    def _on_new_page(self, page: Page) -> None:
        self._page = page  # a link or script opened a tab: the screen follows it

    async def goto(self, url: str) -> None:
        """Load `url` in the page on screen (for the embedding program)."""
        async with self._action("goto"):
            await self.page.goto(url)

    # -- actions ---------------------------------------------------------------

    async def screenshot(self) -> bytes:
        async with self._action("screenshot"):
            return await self.page.screenshot(type="png", full_page=False)
        raise AssertionError("unreachable")  # pragma: no cover - _action re-raises

    async def click(
        self, x: int, y: int, button: Button = "left", *, keys: Sequence[str] = ()
    ) -> None:
        async with self._action("click"), self._holding(keys):
            page = self.page
            if button == "back":
                await page.go_back()
            elif button == "forward":
                await page.go_forward()
            else:
                await page.mouse.click(x, y, button=_MOUSE[button])

    async def double_click(self, x: int, y: int, *, keys: Sequence[str] = ()) -> None:
        async with self._action("double_click"), self._holding(keys):
            await self.page.mouse.dblclick(x, y)

    async def scroll(
        self, x: int, y: int, scroll_x: int, scroll_y: int, *, keys: Sequence[str] = ()
    ) -> None:
        async with self._action("scroll"), self._holding(keys):
            await self.page.mouse.move(x, y)
            await self.page.mouse.wheel(scroll_x, scroll_y)

    async def type(self, text: str) -> None:
        async with self._action("type"):
            await self.page.keyboard.type(text)

    async def keypress(self, keys: Sequence[str]) -> None:
        names = [playwright_key(k) for k in keys]
        async with self._action("keypress"):
            keyboard = self.page.keyboard
            pressed: list[str] = []
            try:
                for k in names:
                    if len(k) == 1 and not k.isascii():
                        await keyboard.insert_text(k)  # not on Playwright's US layout
                        continue
                    await keyboard.down(k)
                    pressed.append(k)
            finally:
                for k in reversed(pressed):
                    await keyboard.up(k)

    async def move(self, x: int, y: int, *, keys: Sequence[str] = ()) -> None:
        async with self._action("move"), self._holding(keys):
            await self.page.mouse.move(x, y)

    async def drag(self, path: Sequence[Point], *, keys: Sequence[str] = ()) -> None:
        if not path:
            return
        async with self._action("drag"), self._holding(keys):
            mouse = self.page.mouse
            await mouse.move(*path[0])
            await mouse.down()
            try:
                for x, y in path[1:]:
                    await mouse.move(x, y)
            finally:
                await mouse.up()

    async def wait(self, ms: int) -> None:
        await anyio.sleep(max(0, ms) / 1000)

    # -- helpers ---------------------------------------------------------------

    @asynccontextmanager
    async def _action(self, name: str) -> AsyncIterator[None]:
        """Turn Playwright's errors and hangs into `ComputerError`s."""
        from playwright.async_api import Error as PlaywrightError

        try:
            with anyio.fail_after(self.action_timeout_s * 2):
                yield
        except TimeoutError:
            raise ComputerError(
                f"{name} timed out after {self.action_timeout_s * 2:g} s in the browser"
            ) from None
        except PlaywrightError as e:
            raise ComputerError(f"{name} failed in the browser: {e.message}") from None

    @asynccontextmanager
    async def _holding(self, keys: Sequence[str]) -> AsyncIterator[None]:
        """Hold the modifier `keys` down around the block."""
        names = [playwright_key(k) for k in keys]
        keyboard = self.page.keyboard
        pressed: list[str] = []
        try:
            for k in names:
                await keyboard.down(k)
                pressed.append(k)
            yield
        finally:
            for k in reversed(pressed):
                await keyboard.up(k)
