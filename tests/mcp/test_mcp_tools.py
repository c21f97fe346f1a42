"""McpTools against the real demo server, over stdio and streamable HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from collections.abc import Callable
from typing import Any

import anyio
import pydantic
import pytest
from mcp_servers import HttpServer, stdio_server
from openai.types.responses import FunctionToolParam, ResponseInputItemParam

from itemloop.runtime.dispatch import Dispatcher
from itemloop.tools.base import ExecResult
from itemloop.tools.config import ToolsetConfig
from itemloop.tools.mcp import McpConnectError, McpServer, McpTools
from itemloop.tools.toolset import Toolset

pytestmark = pytest.mark.anyio

INPUT_ITEM = pydantic.TypeAdapter(ResponseInputItemParam)
TOOL_DEF = pydantic.TypeAdapter(FunctionToolParam)
NAME_RULE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MakeServer = Callable[..., McpServer]

_ids = iter(range(1_000_000))


def fcall(name: str, args: Any) -> dict[str, Any]:
    arguments = args if isinstance(args, str) else json.dumps(args)
    n = next(_ids)
    return {"type": "function_call", "call_id": f"call_{n}", "name": name, "arguments": arguments}


async def run(ex: Any, name: str, args: Any = None) -> ExecResult:
    call = fcall(name, {} if args is None else args)
    result: ExecResult = await ex.execute(call)
    assert result.output["call_id"] == call["call_id"]
    assert result.output["type"] == "function_call_output"
    INPUT_ITEM.validate_python(result.output)
    return result


def text(result: ExecResult) -> str:
    out = result.output["output"]
    assert isinstance(out, str), out
    return out


async def test_listing_becomes_function_definitions(make_server: MakeServer) -> None:
    async with McpTools([make_server("demo")]) as mcp:
        defs = {d["name"]: d for d in mcp.definitions()}
    assert set(defs) == {f"demo__{t}" for t in ("add", "fail", "slow", "image", "getenv", "pid")}
    for d in defs.values():
        TOOL_DEF.validate_python(d)
        assert NAME_RULE.match(d["name"])
    add = defs["demo__add"]
    assert add["description"] == "Add two integers."
    assert add["strict"] is True  # every parameter required, nothing free-form
    assert add["parameters"]["required"] == ["a", "b"]
    assert add["parameters"]["properties"]["a"]["type"] == "integer"
    assert add["parameters"]["additionalProperties"] is False
    assert defs["demo__fail"]["strict"] is False  # no parameters: sent as given


async def test_calls_answer_with_outputs(make_server: MakeServer) -> None:
    async with McpTools([make_server("demo")]) as mcp:
        add = await run(mcp, "demo__add", {"a": 2, "b": 40})
        assert add.ok and text(add) == "42"

        img = await run(mcp, "demo__image")
        assert img.ok
        [part] = img.output["output"]
        assert part["type"] == "input_image"
        assert part["image_url"].startswith("data:image/png;base64,iVBOR")

        fail = await run(mcp, "demo__fail")
        assert not fail.ok
        assert text(fail).startswith(
            "error: tool 'demo__fail' (MCP server 'demo') reported an error"
        )
        assert "the fail tool always fails" in text(fail)

        wrong = await run(mcp, "demo__add", {"a": "x"})  # the server validates: an isError result
        assert not wrong.ok and "reported an error" in text(wrong) and "b" in text(wrong)


async def test_bad_arguments_never_reach_the_server() -> None:
    async with McpTools([stdio_server()]) as mcp:
        bad = await run(mcp, "demo__add", '{"a": 1,')
        assert not bad.ok
        assert text(bad).startswith("error: arguments for 'demo__add' are not valid JSON")
        arr = await run(mcp, "demo__add", "[1, 2]")
        assert text(arr) == "error: arguments for 'demo__add' must be a JSON object, got list"
        empty = await run(mcp, "demo__pid", "")  # no arguments at all is an empty object
        assert empty.ok


async def _dispatched(toolset: Toolset, name: str, args: Any = None) -> str:
    """The output text of one call, through the dispatcher (which routes by name)."""
    [out] = await Dispatcher(toolset).run([fcall(name, {} if args is None else args)], _ignore)
    INPUT_ITEM.validate_python(out)
    assert isinstance(out["output"], str), out
    return out["output"]


def _ignore(event: object) -> None:
    pass


async def test_unknown_tool_lists_the_available_ones() -> None:
    async with McpTools([stdio_server()]) as mcp, Toolset(executors=[mcp]) as toolset:
        out = await _dispatched(toolset, "demo__nope")
    assert out.startswith(
        "error: there is no function tool named 'demo__nope'. Tools you can call:"
    )
    assert "demo__add (function tool)" in out and "demo__slow (function tool)" in out


def double(x: int) -> int:
    """Twice x."""
    return 2 * x


async def test_toolset_sends_each_name_to_its_executor(http_server: HttpServer) -> None:
    servers = (stdio_server("local"), http_server.server("web"))
    async with Toolset(ToolsetConfig(builtins=(), mcp_servers=servers), functions=[double]) as ts:
        names = [d["name"] for d in ts.definitions() if d["type"] == "function"]
        assert names[0] == "double" and "local__add" in names and "web__add" in names
        assert await _dispatched(ts, "double", {"x": 21}) == "42"
        assert await _dispatched(ts, "local__add", {"a": 1, "b": 1}) == "2"
        assert await _dispatched(ts, "web__add", {"a": 2, "b": 2}) == "4"
        unknown = await _dispatched(ts, "triple", {"x": 1})
    assert "there is no function tool named 'triple'" in unknown
    for n in ("double", "local__add", "web__pid"):
        assert f"{n} (function tool)" in unknown  # Python and MCP tools, from every server


async def test_toolset_refuses_two_tools_of_one_name() -> None:
    def demo__add(a: int, b: int) -> int:
        return a + b

    async with McpTools([stdio_server()]) as mcp:
        with pytest.raises(ValueError, match="two tools are named 'demo__add'"):
            async with Toolset(functions=[demo__add], executors=[mcp]):
                pass


async def test_timeout_gives_an_error_and_the_session_goes_on(make_server: MakeServer) -> None:
    async with McpTools([make_server("demo", call_timeout_s=2)]) as mcp:
        r = await run(mcp, "demo__slow", {"seconds": 60})
        assert not r.ok
        assert text(r) == (
            "error: tool 'demo__slow' (MCP server 'demo') did not finish within 2 s; "
            "the call was abandoned and the server was asked to cancel it"
        )
        assert text(await run(mcp, "demo__add", {"a": 1, "b": 2})) == "3"


async def test_killed_stdio_server_errors_once_then_is_reconnected() -> None:
    async with McpTools([stdio_server()]) as mcp:
        pid = int(text(await run(mcp, "demo__pid")))
        os.kill(pid, signal.SIGKILL)
        lost = await run(mcp, "demo__add", {"a": 1, "b": 2})
        assert not lost.ok
        assert text(lost).startswith(
            "error: MCP server 'demo' closed the connection during the call"
        )
        assert "can be retried" in text(lost)
        again = await run(mcp, "demo__add", {"a": 1, "b": 2})
        assert again.ok and text(again) == "3"
        assert int(text(await run(mcp, "demo__pid"))) != pid  # a new process


async def test_killed_server_without_reconnects_stays_unavailable() -> None:
    async with McpTools([stdio_server(max_reconnects=0), stdio_server("other")]) as mcp:
        pid = int(text(await run(mcp, "demo__pid")))
        os.kill(pid, signal.SIGKILL)
        lost = await run(mcp, "demo__add", {"a": 1, "b": 2})
        assert "It will not be reconnected" in text(lost)
        down = await run(mcp, "demo__add", {"a": 1, "b": 2})
        assert text(down).startswith(
            "error: MCP server 'demo' is unavailable: it closed the connection"
        )
        assert "demo__add" in text(down)
        # the other server is unaffected
        assert text(await run(mcp, "other__add", {"a": 1, "b": 2})) == "3"


async def test_killed_http_server_gives_clear_errors(own_http_server: HttpServer) -> None:
    async with McpTools([own_http_server.server("web"), stdio_server()]) as mcp:
        assert text(await run(mcp, "web__add", {"a": 1, "b": 2})) == "3"
        own_http_server.stop()
        lost = await run(mcp, "web__add", {"a": 1, "b": 2})
        assert text(lost).startswith(
            "error: MCP server 'web' closed the connection during the call"
        )
        down = await run(mcp, "web__add", {"a": 1, "b": 2})
        assert text(down).startswith(
            "error: MCP server 'web' is unavailable: reconnecting to it failed"
        )
        assert text(await run(mcp, "demo__add", {"a": 1, "b": 2})) == "3"


async def test_stdio_server_does_not_see_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-test-key")
    monkeypatch.setenv("ITEMLOOP_MCP_TEST_VAR", "also-not-passed")
    given = stdio_server("given", env={"OPENAI_API_KEY": "sk-passed-on-purpose"})
    async with McpTools([stdio_server(), given]) as mcp:
        assert text(await run(mcp, "demo__getenv", {"name": "OPENAI_API_KEY"})) == "<unset>"
        assert text(await run(mcp, "demo__getenv", {"name": "ITEMLOOP_MCP_TEST_VAR"})) == "<unset>"
        assert text(await run(mcp, "demo__getenv", {"name": "PATH"})) == os.environ["PATH"]
        passed = await run(mcp, "given__getenv", {"name": "OPENAI_API_KEY"})
        assert text(passed) == "sk-passed-on-purpose"


async def test_a_server_that_cannot_start_is_named() -> None:
    broken = McpServer("broken", command="/nonexistent/itemloop-mcp-server")
    with pytest.raises(McpConnectError, match=r"MCP server 'broken' \(stdio: /nonexistent"):
        async with McpTools([stdio_server(), broken]):
            pass


async def test_a_server_that_exits_at_once_is_named() -> None:
    quits = McpServer("quits", command=sys.executable, args=("-c", "pass"))
    with pytest.raises(McpConnectError, match=r"MCP server 'quits'.*could not be started"):
        async with McpTools([quits]):
            pass


async def test_an_optional_server_that_cannot_start_is_skipped() -> None:
    broken = McpServer("broken", command="/nonexistent/itemloop-mcp-server", required=False)
    async with McpTools([stdio_server(), broken]) as mcp:
        assert all(d["name"].startswith("demo__") for d in mcp.definitions())
        assert len(mcp.warnings) == 1 and "'broken'" in mcp.warnings[0]
        r = await run(mcp, "broken__anything")
        assert "there is no MCP tool named 'broken__anything'" in text(r)


async def test_connect_timeout_is_bounded() -> None:
    # A process that never speaks MCP: reads stdin forever and answers nothing.
    mute = McpServer(
        "mute",
        command=sys.executable,
        args=("-c", "import sys; sys.stdin.read()"),
        connect_timeout_s=0.5,
    )
    with pytest.raises(McpConnectError, match=r"'mute'.*no answer within 0.5 s"):
        async with McpTools([mute]):
            pass


async def test_definitions_need_a_connection() -> None:
    with pytest.raises(RuntimeError, match="not connected"):
        McpTools([stdio_server()]).definitions()


async def test_closing_while_a_server_reconnects_does_not_hang() -> None:
    with anyio.fail_after(60):  # the bug: __aexit__ waited forever on a fresh event
        async with McpTools([stdio_server()]) as mcp:
            pid = int(text(await run(mcp, "demo__pid")))
            os.kill(pid, signal.SIGKILL)
            lost = await run(mcp, "demo__add", {"a": 1, "b": 2})
            assert not lost.ok  # the reconnect has started; leave at once
