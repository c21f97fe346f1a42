"""ComputerExecutor on the real backends: one valid `computer_call_output` per call, always."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import pytest
from computer_probe import DEADLINE_S, H, W, XProbe, pixel, png_size
from openai.types.responses import ResponseComputerToolCall, ResponseInputItemParam, ToolParam
from pydantic import TypeAdapter

from itemloop.sandbox.browser_computer import BrowserComputer
from itemloop.sandbox.xvfb_computer import XvfbComputer
from itemloop.tools.base import ExecResult, Executor
from itemloop.tools.computer import ComputerExecutor, acknowledge_all, acknowledge_codes

pytestmark = pytest.mark.anyio

BUTTON = (120, 65)
INPUT = (190, 135)
BANNER_RED = (170, 0, 0)

input_item = TypeAdapter(ResponseInputItemParam)
tool_param = TypeAdapter(ToolParam)


def call(
    action: dict[str, Any] | None = None,
    *,
    actions: list[dict[str, Any]] | None = None,
    checks: list[dict[str, Any]] | None = None,
    cid: str = "call_1",
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "computer_call",
        "id": "cu_1",
        "call_id": cid,
        "status": "completed",
        "pending_safety_checks": checks or [],
    }
    if action is not None:
        item["action"] = action
    if actions is not None:
        item["actions"] = actions
    return item


def screenshot_of(result: ExecResult, cid: str = "call_1") -> bytes:
    """The PNG in a result, after checking the output is a valid input item for `cid`."""
    out = result.output
    input_item.validate_python(out)
    assert out["type"] == "computer_call_output" and out["call_id"] == cid
    assert out["output"]["type"] == "computer_screenshot"
    url = out["output"]["image_url"]
    assert url.startswith("data:image/png;base64,")
    png = base64.b64decode(url.removeprefix("data:image/png;base64,"))
    assert png_size(png) == (W, H)
    return png


async def clicks(browser: BrowserComputer) -> int:
    return int(await browser.page.evaluate("window.clicks"))


async def test_definitions_are_valid_tool_params(browser: BrowserComputer) -> None:
    ex = ComputerExecutor(browser)
    assert isinstance(ex, Executor)
    assert ex.item_types == ("computer_call",) and ex.sequential
    assert ex.definitions() == [
        {
            "type": "computer_use_preview",
            "display_width": W,
            "display_height": H,
            "environment": "browser",
        }
    ]
    assert (
        ComputerExecutor(browser, environment="ubuntu").definitions()[0]["environment"] == "ubuntu"
    )
    assert ComputerExecutor(browser, tool_type="computer").definitions() == [{"type": "computer"}]
    for d in [*ex.definitions(), {"type": "computer"}]:
        tool_param.validate_python(d)
    with pytest.raises(ValueError, match="environment"):
        ComputerExecutor(browser, environment="amiga")  # type: ignore[arg-type]


async def test_a_click_runs_and_returns_a_screenshot(browser: BrowserComputer) -> None:
    c = call({"type": "click", "button": "left", "x": BUTTON[0], "y": BUTTON[1]})
    ResponseComputerToolCall.model_validate(c)
    result = await ComputerExecutor(browser).execute(c)
    assert result.ok, result.summary
    assert result.summary == f"click left ({BUTTON[0]}, {BUTTON[1]})"
    assert await clicks(browser) == 1
    png = screenshot_of(result)
    assert pixel(png, 5, H - 5) == (136, 255, 136)  # the page after the click
    assert "acknowledged_safety_checks" not in result.output


async def test_batched_actions_run_in_order(browser: BrowserComputer) -> None:
    c = call(
        actions=[
            {"type": "click", "button": "left", "x": INPUT[0], "y": INPUT[1]},
            {"type": "type", "text": "first"},
            {"type": "keypress", "keys": ["CTRL", "A"]},
            {"type": "type", "text": "second"},
            {"type": "keypress", "keys": ["END"]},
            {"type": "type", "text": "!"},
            {"type": "screenshot"},
            {"type": "click", "button": "left", "x": BUTTON[0], "y": BUTTON[1]},
        ]
    )
    ResponseComputerToolCall.model_validate(c)
    result = await ComputerExecutor(browser).execute(c)
    assert result.ok, result.summary
    assert await browser.page.evaluate("document.getElementById('name').value") == "second!"
    assert await clicks(browser) == 1
    screenshot_of(result)
    assert result.summary.startswith("click left (190, 135), type 5 chars, keypress Control+A")


async def test_wait_uses_the_executor_default(browser: BrowserComputer) -> None:
    result = await ComputerExecutor(browser, wait_ms=5).execute(call({"type": "wait"}))
    assert result.ok and result.summary == "wait 5 ms"
    screenshot_of(result)


MALFORMED: list[tuple[dict[str, Any], str]] = [
    (call({"type": "teleport", "x": 1, "y": 1}), "'teleport' is not an action"),
    (call({"type": "click", "button": "left", "y": 10}), "action.x is missing"),
    (call({"type": "click", "button": "left", "x": 10, "y": H}), f"action.y={H} is off the screen"),
    (call({"type": "move", "x": -1, "y": 5}), "action.x=-1 is off the screen"),
    (call({"type": "click", "button": "middle", "x": 1, "y": 1}), "action.button must be one of"),
    (call({"type": "click", "x": 1.5, "y": 1}), "action.x must be an integer, got 1.5"),
    (call({"type": "keypress", "keys": ["HYPERDRIVE"]}), "unknown key 'HYPERDRIVE'"),
    (call({"type": "keypress", "keys": []}), "non-empty list of key names"),
    (call({"type": "type"}), "action.text must be a string"),
    (call({"type": "drag", "path": [{"x": 1, "y": 1}]}), "at least two"),
    (call({"type": "drag", "path": [{"x": 1, "y": 1}, {"x": 5000, "y": 1}]}), "path[1].x=5000"),
    (call("click"), "action must be an object"),  # type: ignore[arg-type]
    (call(), "neither `action` nor `actions`"),
    (call({"type": "wait"}, actions=[{"type": "wait"}]), "either `action` or `actions`"),
    (call(actions=[{"type": "screenshot"}] * 101), "at most 100 actions"),
    # A valid click first: the batch is checked whole, so it must not run either.
    (
        call(
            actions=[
                {"type": "click", "button": "left", "x": BUTTON[0], "y": BUTTON[1]},
                {"type": "scroll", "x": 1, "y": 1, "scroll_x": 0, "scroll_y": "lots"},
            ]
        ),
        "actions[1].scroll_y must be an integer",
    ),
]


@pytest.mark.parametrize(("bad", "message"), MALFORMED)
async def test_a_malformed_call_gets_one_screenshot_with_the_error(
    browser: BrowserComputer, bad: dict[str, Any], message: str
) -> None:
    before = await browser.screenshot()
    result = await ComputerExecutor(browser).execute(bad)
    assert not result.ok
    assert message in result.summary and "No action was run" in result.summary
    png = screenshot_of(result)
    assert pixel(png, 2, 2) == BANNER_RED, "the model sees the error as a banner"
    assert pixel(png, 5, H - 5) == pixel(before, 5, H - 5), "below it, the screen as it is"
    assert await clicks(browser) == 0

    quiet = await ComputerExecutor(browser, annotate_errors=False).execute(bad)
    assert not quiet.ok and pixel(screenshot_of(quiet), 2, 2) != BANNER_RED


CHECKS = [{"id": "sc_1", "code": "malicious_instructions", "message": "The page asks for secrets."}]


async def test_pending_safety_checks_are_not_acknowledged_by_default(
    browser: BrowserComputer,
) -> None:
    c = call({"type": "click", "button": "left", "x": BUTTON[0], "y": BUTTON[1]}, checks=CHECKS)
    ResponseComputerToolCall.model_validate(c)
    result = await ComputerExecutor(browser).execute(c)
    assert not result.ok
    assert "not acknowledged" in result.summary and "malicious_instructions" in result.summary
    assert "acknowledged_safety_checks" not in result.output
    assert pixel(screenshot_of(result), 2, 2) == BANNER_RED
    assert await clicks(browser) == 0

    refusing = ComputerExecutor(browser, acknowledge_safety_checks=acknowledge_codes({"other"}))
    assert not (await refusing.execute(c)).ok
    assert await clicks(browser) == 0


async def test_approved_safety_checks_are_acknowledged(browser: BrowserComputer) -> None:
    c = call({"type": "click", "button": "left", "x": BUTTON[0], "y": BUTTON[1]}, checks=CHECKS)
    for policy in (acknowledge_all, acknowledge_codes({"malicious_instructions"})):
        result = await ComputerExecutor(browser, acknowledge_safety_checks=policy).execute(c)
        assert result.ok, result.summary
        assert result.output["acknowledged_safety_checks"] == CHECKS
        screenshot_of(result)
    assert await clicks(browser) == 2


async def test_on_xvfb_a_call_drives_a_real_window(need_x: None) -> None:
    async with XvfbComputer(W, H) as computer:
        probe = await XProbe.start(computer)
        ex = ComputerExecutor(computer)
        assert ex.definitions()[0]["environment"] == "linux"
        result = await ex.execute(
            call(
                actions=[
                    {"type": "click", "button": "left", "x": 100, "y": 35},
                    {"type": "type", "text": "from the model"},
                    {"type": "keypress", "keys": ["Return"]},
                ]
            )
        )
        assert result.ok, result.summary
        screenshot_of(result)
        e = await probe.wait_for(lambda e: e["event"] == "entry")
        assert e["text"] == "from the model"


async def test_a_dead_display_still_gets_one_output(need_x: None) -> None:
    async with XvfbComputer(W, H) as computer:
        ex = ComputerExecutor(computer)
        assert computer.sandbox is not None and computer._xvfb_pidfd is not None
        # The X server dies under the executor (a command of the sandbox kills it).
        await computer.sandbox.run(["kill", "-KILL", f"-{computer._groups[0]}"])
        with anyio.fail_after(DEADLINE_S):
            await anyio.wait_readable(computer._xvfb_pidfd)
        result = await ex.execute(
            call(actions=[{"type": "move", "x": 5, "y": 5}, {"type": "type", "text": "x"}])
        )
        assert not result.ok
        assert "action 1 of 2 (move (5, 5)) failed" in result.summary
        assert "The screenshot failed" in result.summary
        png = screenshot_of(result)  # a blank screen of the display's size, with the banner
        assert pixel(png, 2, 2) == BANNER_RED
