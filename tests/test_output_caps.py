"""Function, custom and MCP tool outputs are capped like shell output (issue 9, item 17):
text keeps its head and tail, a JSON value is never cut, an oversize image is replaced
by a note. Through the real runtime and a real MCP server."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest
from helpers import assert_valid_input_item, fcall, message, toolset_of

from itemloop.runtime.loop import Runtime
from itemloop.runtime.scripted import ScriptedModel
from itemloop.tools.config import ToolsetConfig
from itemloop.tools.custom import custom_tool
from itemloop.tools.mcp import McpServer
from itemloop.tools.output_cap import cap_tool_output
from itemloop.tools.toolset import Toolset

pytestmark = pytest.mark.anyio

BIG = 5_000_000


def big_text() -> str:
    return "start " + "x" * BIG + " end"


def big_json() -> dict[str, list[int]]:
    return {"rows": list(range(BIG // 4))}


def big_image() -> dict[str, str]:
    png = base64.b64encode(b"\x89PNG" + b"\0" * 3_000_000).decode()
    return {"type": "input_image", "image_url": f"data:image/png;base64,{png}"}


async def _outputs(calls: list[dict[str, object]], toolset: Toolset) -> dict[str, object]:
    model = ScriptedModel([calls, [message("ok")]])
    async with Runtime(model, toolset) as rt:
        await rt.run_until_done("go")
    outs = {i["call_id"]: i["output"] for i in rt.history if i["type"].endswith("_call_output")}
    for item in rt.history:
        if item["type"].endswith("_call_output"):
            assert_valid_input_item(item)
    return outs


async def test_function_and_custom_outputs_are_capped_with_head_and_tail() -> None:
    calls = [
        fcall("t", "big_text", {}),
        {"type": "custom_tool_call", "call_id": "c", "name": "echo_big", "input": "x"},
    ]
    tools = toolset_of(big_text, custom_tool(lambda _: big_text(), name="echo_big"))
    outs = await _outputs(calls, tools)
    for cid in ("t", "c"):
        text = outs[cid]
        assert isinstance(text, str)
        assert len(text) <= 100_000
        assert text.startswith("start xxx") and text.endswith("xxx end")
        assert "characters cut" in text


async def test_a_json_value_is_never_cut_and_an_image_over_its_limit_becomes_a_note() -> None:
    outs = await _outputs(
        [fcall("j", "big_json", {}), fcall("i", "big_image", {})],
        toolset_of(big_json, big_image, output_limit=10_000),
    )
    assert isinstance(outs["j"], str) and "JSON value of" in outs["j"]
    assert "it was not sent" in outs["j"] and len(outs["j"]) < 1_000
    small = cap_tool_output(
        {"type": "function_call_output", "call_id": "x", "output": [big_image()]},
        10_000,
        binary_limit=1_000_000,
    )
    assert small["output"][0]["type"] == "input_text"
    assert "an image of" in small["output"][0]["text"]


async def test_an_mcp_tool_output_is_capped(tmp_path: Path) -> None:
    server = tmp_path / "server.py"
    server.write_text(
        "from mcp.server.mcpserver import MCPServer\n"
        "app = MCPServer('big', log_level='WARNING')\n"
        "@app.tool()\n"
        "def flood() -> str:\n"
        f"    return 'head ' + 'y' * {BIG} + ' tail'\n"
        "app.run('stdio')\n"
    )
    config = ToolsetConfig(
        builtins=(),
        mcp_servers=(McpServer("big", command=sys.executable, args=(str(server),)),),
        output_limit=50_000,
    )
    outs = await _outputs([fcall("m", "big__flood", {})], Toolset(config))
    text = outs["m"]
    assert isinstance(text, str) and len(text) <= 50_000
    assert text.startswith("head yyy") and text.endswith("yyy tail")
    assert json.dumps(text)  # plain text the model can read
