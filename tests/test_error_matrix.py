"""Contract 2: every call gets exactly one output, and a failing call's output
says specifically what went wrong — one test per way a call can fail."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from helpers import assert_valid_input_item, fcall, message, toolset_of

from itemloop.runtime.loop import Runtime
from itemloop.runtime.scripted import ScriptedModel
from itemloop.tools.config import SandboxConfig
from itemloop.tools.custom import custom_tool
from itemloop.tools.function import function_tool

pytestmark = pytest.mark.anyio


def forecast(city: str, days: int) -> str:
    """Weather forecast."""
    return f"{city}: sunny for {days} days"


def divide(a: float, b: float) -> float:
    return a / b


async def _one_call(call: dict[str, object], **kw: object) -> dict[str, object]:
    model = ScriptedModel([[call], [message("ok")]])
    tools = kw.pop("tools", [forecast, divide])
    config = kw.pop("config", {})
    rt = Runtime(model, toolset_of(*tools, **config), **kw)  # type: ignore[arg-type]
    async with rt:
        result = await rt.run_until_done("go")
    assert result.reason == "completed"
    outs = [
        i
        for i in rt.history
        if i.get("type", "").endswith("_output") or i.get("type") == "mcp_approval_response"
    ]
    assert len(outs) == 1, outs
    assert_valid_input_item(outs[0])
    return outs[0]


async def test_success() -> None:
    out = await _one_call(fcall("c1", "forecast", {"city": "Oslo", "days": 3}))
    assert out == {
        "type": "function_call_output",
        "call_id": "c1",
        "output": "Oslo: sunny for 3 days",
    }


async def test_malformed_json_arguments() -> None:
    out = await _one_call(fcall("c1", "forecast", '{"city": "Oslo", "days": 3'))
    assert "not valid JSON" in out["output"]
    assert "forecast" in out["output"]


async def test_arguments_not_an_object() -> None:
    out = await _one_call(fcall("c1", "forecast", "[1, 2]"))
    assert "must be a JSON object" in out["output"]


async def test_arguments_fail_validation() -> None:
    out = await _one_call(fcall("c1", "forecast", {"city": "Oslo", "days": "many"}))
    text = str(out["output"])
    assert "invalid arguments for 'forecast'" in text
    assert "days" in text and "integer" in text


async def test_missing_and_unexpected_arguments() -> None:
    out = await _one_call(fcall("c1", "forecast", {"town": "Oslo", "days": 1}))
    text = str(out["output"])
    assert "city: Field required" in text
    assert "town: unexpected argument" in text


async def test_unknown_tool_lists_the_tools_that_exist() -> None:
    out = await _one_call(fcall("c1", "forcast", {"city": "Oslo", "days": 1}))
    text = str(out["output"])
    assert "there is no function tool named 'forcast'" in text
    assert "divide (function tool)" in text and "forecast (function tool)" in text


async def test_exception_inside_tool() -> None:
    out = await _one_call(fcall("c1", "divide", {"a": 1, "b": 0}))
    text = str(out["output"])
    assert "ZeroDivisionError" in text
    assert "divide" in text
    assert "test_error_matrix.py" in text  # where it was raised


async def test_tool_timeout() -> None:
    async def slow() -> str:
        await anyio.sleep(60)
        return "late"

    out = await _one_call(fcall("c1", "slow", {}), tools=[function_tool(slow, timeout_s=0.05)])
    assert "did not finish within 0.05 s" in str(out["output"])


async def test_builtin_tool_not_enabled() -> None:
    call = {
        "type": "shell_call",
        "call_id": "c1",
        "action": {"commands": ["ls"]},
        "status": "completed",
    }
    out = await _one_call(call)
    assert out["type"] == "shell_call_output"
    assert "shell tool is not enabled" in str(out["output"])


async def test_unknown_custom_tool() -> None:
    call = {"type": "custom_tool_call", "call_id": "c1", "name": "grep", "input": "x"}
    out = await _one_call(call, tools=[custom_tool(str.upper, name="upper")])
    assert out["type"] == "custom_tool_call_output"
    assert "there is no custom tool named 'grep'" in str(out["output"])
    assert "upper (custom tool)" in str(out["output"])


async def test_unknown_function_without_function_tools_names_it_and_lists_the_tools(
    tmp_path: Path,
) -> None:
    config = {"builtins": ("shell", "apply_patch"), "sandbox": SandboxConfig(workspace=tmp_path)}
    out = await _one_call(fcall("c1", "no_such_tool", {}), tools=[], config=config)
    assert out["output"] == (
        "error: there is no function tool named 'no_such_tool'. "
        "Tools you can call: shell, apply_patch"
    )


async def test_custom_call_to_a_builtin_says_what_the_builtin_is(tmp_path: Path) -> None:
    config = {"builtins": ("shell", "apply_patch"), "sandbox": SandboxConfig(workspace=tmp_path)}
    call = {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "x"}
    out = await _one_call(call, config=config)
    assert out["output"] == (
        "error: there is no custom tool named 'apply_patch'; 'apply_patch' is the built-in "
        "apply_patch tool, not a custom tool. Tools you can call: forecast (function tool), "
        "divide (function tool), shell, apply_patch"
    )


async def test_two_custom_tools_with_one_name_are_refused() -> None:
    tools = toolset_of(custom_tool(str.upper, name="upper"), custom_tool(str.lower, name="upper"))
    with pytest.raises(ValueError, match="two tools are named 'upper'"):
        async with tools:
            pass


async def test_custom_tool_runs_on_raw_input() -> None:
    call = {"type": "custom_tool_call", "call_id": "c1", "name": "upper", "input": "raw {not json"}
    out = await _one_call(call, tools=[custom_tool(str.upper, name="upper")])
    assert out["output"] == "RAW {NOT JSON"


async def test_mcp_approval_denied_by_default_and_says_how_to_allow() -> None:
    req = {
        "type": "mcp_approval_request",
        "id": "mcpr_1",
        "server_label": "deepwiki",
        "name": "ask",
        "arguments": "{}",
    }
    out = await _one_call(req)
    assert out["approval_request_id"] == "mcpr_1"
    assert out["approve"] is False
    assert "--approve-mcp" in str(out["reason"])


async def test_cancellation_still_answers_every_call() -> None:
    started = anyio.Event()

    async def hang() -> str:
        started.set()
        await anyio.sleep(3600)
        return "never"

    model = ScriptedModel([[fcall("c1", "hang", {}), fcall("c2", "hang", {})], [message("x")]])
    rt = Runtime(model, toolset_of(hang))
    async with rt:
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                async for _ in rt.run("go"):
                    pass

            tg.start_soon(consume)
            await started.wait()
            tg.cancel_scope.cancel()
    outs = [i for i in rt.history if i.get("type") == "function_call_output"]
    assert [o["call_id"] for o in outs] == ["c1", "c2"]
    assert all("cancelled" in o["output"] for o in outs)
