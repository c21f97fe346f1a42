"""BrowserComputer: Debian's Chromium through Playwright, on a page served from 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from computer_probe import DEADLINE_S, LOCAL, H, W, pixel, png_size

from itemloop.sandbox.browser_computer import BrowserComputer, playwright_key
from itemloop.sandbox.computer import NAMED_KEYS, ComputerError, ComputerUnavailable

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("need_browser")]

BUTTON = (120, 65)  # the centre of #go
INPUT = (190, 135)  # inside #name


async def until(browser: BrowserComputer, script: str, ok: Callable[[Any], bool]) -> Any:
    """Evaluate `script` in the page until `ok(value)`; fails after DEADLINE_S."""
    from playwright.async_api import Error as PlaywrightError

    with anyio.fail_after(DEADLINE_S):
        while True:
            try:
                value = await browser.page.evaluate(script)
            except PlaywrightError:  # the page is between two documents
                value = None
            if ok(value):
                return value
            await anyio.sleep(0.02)


async def test_click_and_type_by_coordinates(browser: BrowserComputer) -> None:
    before = await browser.screenshot()
    assert png_size(before) == (W, H)
    assert pixel(before, 5, H - 5) == (255, 255, 255)

    await browser.click(*BUTTON)
    assert await until(browser, "window.clicks", lambda v: v == 1) == 1
    await browser.click(*INPUT)
    await browser.type("hello wörld")
    await browser.keypress(["CTRL", "a"])
    await browser.type("replaced")
    await browser.keypress(["Enter"])
    value = await until(browser, "document.getElementById('name').value", bool)
    assert value == "replaced"
    keys = await browser.page.evaluate("window.keys")
    assert "C-a" in keys and keys[-1] == "Enter"

    after = await browser.screenshot()
    assert after != before
    assert pixel(after, 5, H - 5) == (136, 255, 136)  # the button turned the page green


async def test_double_click_scroll_move_and_drag(browser: BrowserComputer) -> None:
    await browser.double_click(400, 300)
    assert await until(browser, "window.dbl", bool) == [400, 300]
    await browser.scroll(400, 300, 0, 250)
    assert await until(browser, "window.scrollY", lambda v: v > 0) == 250
    await browser.scroll(400, 300, 0, -100, keys=["shift"])
    await browser.move(10, 10)
    await browser.drag([(10, 10), (50, 50), (90, 20)])
    await browser.keypress(["Shift", "Tab"])
    keys = await browser.page.evaluate("window.keys")
    assert keys[-2:] == ["S-Shift", "S-Tab"]


async def test_every_named_key_is_known_to_playwright(browser: BrowserComputer) -> None:
    for name in NAMED_KEYS:
        if name in ("Meta", "Control", "Alt", "Shift", "CapsLock"):
            continue
        await browser.keypress([name])
    await browser.keypress(["é"])
    assert playwright_key("space") == " " and playwright_key("ESC") == "Escape"


async def test_back_and_forward_buttons_navigate(browser: BrowserComputer, site: str) -> None:
    await browser.goto(site + "other.html")  # a 404 page is still a page
    await browser.click(1, 1, "back")
    assert await until(browser, "location.pathname", lambda p: p == "/") == "/"
    await browser.click(1, 1, "forward")
    assert await until(browser, "location.pathname", lambda p: p != "/") == "/other.html"


async def test_a_new_tab_becomes_the_screen(need_browser: None, site: str) -> None:
    async with BrowserComputer(W, H, start_url=site, policy=LOCAL) as browser:
        await browser.page.evaluate(f"window.open({site + '?second'!r})")
        # The screen follows the new tab; its button exists once it has loaded.
        await until(
            browser, "location.search + document.readyState", lambda v: v == "?secondcomplete"
        )
        await browser.click(*BUTTON)
        assert await until(browser, "window.clicks", lambda v: v == 1) == 1


async def test_missing_browser_is_unavailable() -> None:
    with pytest.raises(ComputerUnavailable, match="not found"):
        async with BrowserComputer(executable_path="/nonexistent/chromium"):
            pass


async def test_closed_browser_refuses_actions(site: str) -> None:
    async with BrowserComputer(320, 240, start_url=site, policy=LOCAL) as b:
        assert png_size(await b.screenshot()) == (320, 240)
    with pytest.raises(ComputerError, match="not open"):
        await b.screenshot()
