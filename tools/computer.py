"""`computer_call` -> `computer_call_output`: the call's actions on a `Computer`, then a screenshot.

A call carries one `action`, or (the newer, batched form) a list of `actions`
to run in order. The whole call is checked before anything runs; then each
action runs on the computer, and the output is a PNG screenshot of the screen
afterwards, as a data URL.

Tool definition. The current `openai` types define two computer tools:
`computer_use_preview` (`ComputerUsePreviewTool`: display size and environment,
for the `computer-use-preview` model, which sends one `action` per call) and
`computer` (`ComputerTool`: no parameters, for the newer models, which may send
batched `actions` and get the display size from the screenshots). `tool_type`
picks which one `definitions()` offers; the executor answers both call forms
either way.

Safety checks. A call may carry `pending_safety_checks` (the API suspects a
prompt injection, an off-task domain, a sensitive site). Its actions run only
when the `acknowledge_safety_checks` policy approves them all; the output then
echoes them as `acknowledged_safety_checks`. Without a policy, or when it says
no, nothing runs: the output is a screenshot of the screen as it is, without
acknowledgements, and the model is told why (below).

Errors. `computer_call_output` has no text field, so a problem (a malformed
action, an off-screen coordinate, an unknown key, an action the display failed
to do, an unapproved safety check) reaches the model as a red banner drawn
across the top of the screenshot, and the person through `ExecResult.summary`.
The banner can be turned off with `annotate_errors=False`. Exactly one output
is returned whatever happens; when even the screenshot fails, the image is a
blank screen of the display's size carrying the banner.

Notes. A computer that has something to tell the model about what happened
meanwhile (`Noting.take_notes`: the contained browser's refused connections,
downloads saved to the workspace, an open file chooser) has it drawn in the
same banner and sent as a message right after the output (`ExecResult.notes`),
and added to the summary. Notes arriving after the screenshot (a connection the
page opens later) come with the next call. The message's role is `user`, not
`developer`: notes carry strings a page chose (a download's name, a host name;
quoted and cut by the computer, but still the page's), and the developer role
carries the operator's authority, which nothing a page controls may borrow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import anyio

from itemloop.sandbox.computer import (
    BUTTONS,
    Button,
    Computer,
    ComputerError,
    Point,
    UnknownKey,
    canonical_key,
)

from .base import ExecResult
from .items import Item, call_id_of
from .screenshot import annotate, data_url

ToolType = Literal["computer_use_preview", "computer"]
ToolEnvironment = Literal["windows", "mac", "linux", "ubuntu", "browser"]
SafetyCheckPolicy = Callable[[Item, list[Item]], bool]
"""(the call, its pending safety checks) -> True to acknowledge them all and run the call."""

TOOL_ENVIRONMENTS: tuple[ToolEnvironment, ...] = ("windows", "mac", "linux", "ubuntu", "browser")
MAX_ACTIONS = 100


def acknowledge_all(call: Item, checks: list[Item]) -> bool:
    """A policy that acknowledges every safety check (for supervised or throwaway environments)."""
    return True


def acknowledge_codes(codes: set[str]) -> SafetyCheckPolicy:
    """A policy that acknowledges a call when every pending check's `code` is in `codes`."""
    return lambda call, checks: all(str(c.get("code")) in codes for c in checks)


@runtime_checkable
class Noting(Protocol):
    """A computer with notes for the model (see the module docstring)."""

    def take_notes(self) -> list[str]:
        """What the model should be told since the last call; clears them."""
        ...


@dataclass(frozen=True, slots=True)
class Step:
    """One checked action, ready to run."""

    describe: str
    run: Callable[[Computer], Awaitable[None]]


class ComputerExecutor:
    """Answers `computer_call` items on a `Computer` (opened and closed by its owner)."""

    item_types: tuple[str, ...] = ("computer_call",)
    sequential = True

    def __init__(
        self,
        computer: Computer,
        *,
        environment: ToolEnvironment | None = None,
        tool_type: ToolType = "computer_use_preview",
        acknowledge_safety_checks: SafetyCheckPolicy | None = None,
        wait_ms: int = 1000,
        call_timeout_s: float = 120.0,
        annotate_errors: bool = True,
    ) -> None:
        env = environment or computer.environment
        if env not in TOOL_ENVIRONMENTS:
            raise ValueError(f"environment must be one of {TOOL_ENVIRONMENTS}, got {env!r}")
        if tool_type not in ("computer_use_preview", "computer"):
            raise ValueError(
                f"tool_type must be 'computer_use_preview' or 'computer', got {tool_type!r}"
            )
        self.computer = computer
        self.environment: ToolEnvironment = env
        self.tool_type: ToolType = tool_type
        self.policy = acknowledge_safety_checks
        self.wait_ms = wait_ms
        self.call_timeout_s = call_timeout_s
        self.annotate_errors = annotate_errors

    def definitions(self) -> list[Item]:
        if self.tool_type == "computer":
            return [{"type": "computer"}]
        return [
            {
                "type": "computer_use_preview",
                "display_width": self.computer.display_width,
                "display_height": self.computer.display_height,
                "environment": self.environment,
            }
        ]

    async def execute(self, call: Item) -> ExecResult:
        problem: str | None = None
        acknowledged: list[Item] | None = None
        steps: list[Step] = []
        try:
            steps = self.parse(call)
        except ValueError as e:
            problem = f"invalid computer_call: {e}. No action was run."
        if problem is None:
            problem, acknowledged = self._check_safety(call)
        if problem is None:
            problem = await self._run(steps)
        try:
            png = await self.computer.screenshot()
        except ComputerError as e:
            png = None
            problem = f"{problem} " if problem else ""
            problem += f"The screenshot failed: {e}"
        notes = self.computer.take_notes() if isinstance(self.computer, Noting) else []
        banner = " ".join(filter(None, [problem, *notes]))
        if png is None or (banner and self.annotate_errors):
            png = annotate(png, banner, self.computer.display_width, self.computer.display_height)
        output: Item = {
            "type": "computer_call_output",
            "call_id": call_id_of(call),
            "output": {"type": "computer_screenshot", "image_url": data_url(png)},
        }
        if acknowledged:
            output["acknowledged_safety_checks"] = acknowledged
        summary = problem or ", ".join(s.describe for s in steps) or "screenshot"
        if notes:
            summary += " | " + " ".join(notes)
        said = (_note_message(call, " ".join(notes)),) if notes else ()
        return ExecResult(output, ok=problem is None, summary=summary, notes=said)

    # -- checking --------------------------------------------------------------

    def parse(self, call: Item) -> list[Step]:
        """The call's actions as steps; ValueError (with a message for the model) if any is malformed."""
        action, actions = call.get("action"), call.get("actions")
        if actions is not None:
            if not isinstance(actions, list):
                raise ValueError("`actions` must be a list of action objects")
            if action is not None:
                raise ValueError("a call carries either `action` or `actions`, not both")
            if len(actions) > MAX_ACTIONS:
                raise ValueError(f"at most {MAX_ACTIONS} actions per call, got {len(actions)}")
            return [self._step(a, f"actions[{i}]") for i, a in enumerate(actions)]
        if action is None:
            raise ValueError("the call has neither `action` nor `actions`")
        return [self._step(action, "action")]

    def _step(self, raw: Any, where: str) -> Step:
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be an object, got {type(raw).__name__}")
        kind = raw.get("type")
        w, h = self.computer.display_width, self.computer.display_height

        def xy() -> Point:
            return (
                _coordinate(raw.get("x"), f"{where}.x", w, "width"),
                _coordinate(raw.get("y"), f"{where}.y", h, "height"),
            )

        def held() -> list[str]:
            return _keys(raw.get("keys"), f"{where}.keys", required=False)

        if kind == "click":
            x, y = xy()
            button = raw.get("button", "left")
            if button not in BUTTONS:
                raise ValueError(
                    f"{where}.button must be one of {', '.join(BUTTONS)}, got {button!r}"
                )
            keys = held()
            b: Button = button
            return Step(f"click {b} ({x}, {y})", lambda c: c.click(x, y, b, keys=keys))
        if kind == "double_click":
            x, y = xy()
            keys = held()
            return Step(f"double_click ({x}, {y})", lambda c: c.double_click(x, y, keys=keys))
        if kind == "move":
            x, y = xy()
            keys = held()
            return Step(f"move ({x}, {y})", lambda c: c.move(x, y, keys=keys))
        if kind == "scroll":
            x, y = xy()
            sx = _integer(raw.get("scroll_x", 0), f"{where}.scroll_x")
            sy = _integer(raw.get("scroll_y", 0), f"{where}.scroll_y")
            keys = held()
            return Step(
                f"scroll ({sx}, {sy}) at ({x}, {y})",
                lambda c: c.scroll(x, y, sx, sy, keys=keys),
            )
        if kind == "drag":
            path = _path(raw.get("path"), f"{where}.path", w, h)
            keys = held()
            return Step(f"drag {len(path)} points", lambda c: c.drag(path, keys=keys))
        if kind == "keypress":
            keys = _keys(raw.get("keys"), f"{where}.keys", required=True)
            return Step(f"keypress {'+'.join(keys)}", lambda c: c.keypress(keys))
        if kind == "type":
            text = raw.get("text")
            if not isinstance(text, str):
                raise ValueError(f"{where}.text must be a string, got {_show(text)}")
            return Step(f"type {len(text)} chars", lambda c: c.type(text))
        if kind == "wait":
            ms = self.wait_ms
            return Step(f"wait {ms} ms", lambda c: c.wait(ms))
        if kind == "screenshot":
            return Step("screenshot", _nothing)
        raise ValueError(
            f"{where}.type {_show(kind)} is not an action; use one of click, double_click, drag, "
            "keypress, move, screenshot, scroll, type, wait"
        )

    def _check_safety(self, call: Item) -> tuple[str | None, list[Item] | None]:
        raw = call.get("pending_safety_checks") or []
        checks = [c for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []
        if not checks:
            return None, None
        if self.policy is not None and self.policy(call, checks):
            return None, [_safety_check(c) for c in checks]
        listed = "; ".join(
            f"{c.get('code') or 'check'}: {c.get('message') or c.get('id')}" for c in checks
        )
        return (
            f"Not run: the user has not acknowledged the pending safety "
            f"check{'s' if len(checks) > 1 else ''} ({listed}). No action was run.",
            None,
        )

    # -- running ---------------------------------------------------------------

    async def _run(self, steps: Sequence[Step]) -> str | None:
        """Run `steps` in order within `call_timeout_s`; what went wrong, or None."""
        n = len(steps)
        i = 0
        try:
            with anyio.fail_after(self.call_timeout_s):
                while i < n:
                    await steps[i].run(self.computer)
                    i += 1
        except (ComputerError, UnknownKey, TimeoutError) as e:
            why = str(e) or f"the call timed out after {self.call_timeout_s:g} s"
            where = f"action {i + 1} of {n}" if n > 1 else "the action"
            ran = f" Actions 1-{i} ran; the rest were not run." if i else ""
            return f"{where} ({steps[i].describe}) failed: {why}.{ran}"
        return None


def _note_message(call: Item, text: str) -> Item:
    return {
        "type": "message",
        "role": "user",  # notes carry page-chosen words: the weaker role (module docstring)
        "content": [{"type": "input_text", "text": f"[computer {call_id_of(call)}] {text}"}],
    }


async def _nothing(computer: Computer) -> None:
    return None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be an integer, got {_show(value)}")
    if value != value or value in (float("inf"), float("-inf")) or int(value) != value:
        raise ValueError(f"{name} must be an integer, got {_show(value)}")
    return int(value)


def _coordinate(value: Any, name: str, size: int, dimension: str) -> int:
    if value is None:
        raise ValueError(f"{name} is missing")
    v = _integer(value, name)
    if not 0 <= v < size:
        raise ValueError(
            f"{name}={v} is off the screen: the display {dimension} is {size} pixels "
            f"(0 to {size - 1})"
        )
    return v


def _path(value: Any, name: str, w: int, h: int) -> list[Point]:
    if not isinstance(value, list) or len(value) < 2:
        raise ValueError(f"{name} must be a list of at least two {{x, y}} points")
    points: list[Point] = []
    for i, p in enumerate(value):
        if not isinstance(p, dict):
            raise ValueError(f"{name}[{i}] must be an {{x, y}} object, got {_show(p)}")
        points.append(
            (
                _coordinate(p.get("x"), f"{name}[{i}].x", w, "width"),
                _coordinate(p.get("y"), f"{name}[{i}].y", h, "height"),
            )
        )
    return points


def _keys(value: Any, name: str, *, required: bool) -> list[str]:
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise ValueError(f"{name} must be a non-empty list of key names")
    keys: list[str] = []
    for i, k in enumerate(value):
        if not isinstance(k, str) or not k:
            raise ValueError(f"{name}[{i}] must be a key name, got {_show(k)}")
        try:
            keys.append(canonical_key(k))
        except UnknownKey as e:
            raise ValueError(f"{name}[{i}]: {e}") from None
    return keys


def _safety_check(check: Item) -> Item:
    out: Item = {"id": str(check.get("id", ""))}
    for field in ("code", "message"):
        if check.get(field) is not None:
            out[field] = str(check[field])
    return out
