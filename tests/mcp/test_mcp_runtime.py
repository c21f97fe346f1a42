"""MCP tools end to end through `Runtime`, with a scripted model."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pydantic
import pytest
from mcp_servers import HttpServer, stdio_server
from openai.types.responses import ResponseInputItemParam

from itemloop.runtime import Runtime, ScriptedModel
from itemloop.runtime.events import CallFinished, RunFinished
from itemloop.runtime.model import ModelRequest
from itemloop.tools.mcp import McpTools
from itemloop.tools.toolset import Toolset

pytestmark = pytest.mark.anyio

INPUT_ITEM = pydantic.TypeAdapter(ResponseInputItemParam)


def fcall(call_id: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": json.dumps(args),
        "status": "completed",
    }


def answer(text: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
    ]


def output_of(request: ModelRequest, call_id: str) -> Any:
    for item in request.input:
        if item.get("type") == "function_call_output" and item.get("call_id") == call_id:
            return item["output"]
    raise AssertionError(f"no output for {call_id}")


def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


async def test_a_run_mixes_python_and_mcp_tools(http_server: HttpServer) -> None:
    def kill_then_call(request: ModelRequest) -> list[dict[str, Any]]:
        os.kill(int(output_of(request, "c_pid")), signal.SIGKILL)
        return [fcall("c_dead", "demo__add", {"a": 1, "b": 1})]

    model = ScriptedModel(
        [
            [
                fcall("c_add", "demo__add", {"a": 20, "b": 22}),
                fcall("c_web", "web__image", {}),
                fcall("c_py", "shout", {"text": "hi"}),
                fcall("c_fail", "demo__fail", {}),
                fcall("c_nope", "nope", {}),
                fcall("c_pid", "demo__pid", {}),
            ],
            kill_then_call,  # the stdio server dies between turns
            [fcall("c_again", "demo__add", {"a": 2, "b": 3})],
            answer("done"),
        ]
    )
    async with McpTools([stdio_server("demo"), http_server.server("web")]) as mcp:
        async with Runtime(model, Toolset(functions=[shout], executors=[mcp])) as rt:
            events = [e async for e in rt.run("use the tools")]
            history = rt.history

    final = events[-1]
    assert isinstance(final, RunFinished) and final.reason == "completed", final
    assert final.final_text == "done"

    offered = {t["name"] for t in model.requests[0].tools}
    assert {"shout", "demo__add", "web__image", "web__add"} <= offered

    outputs = {i["call_id"]: i["output"] for i in history if i["type"] == "function_call_output"}
    assert outputs["c_add"] == "42"
    assert outputs["c_web"][0]["type"] == "input_image"
    assert outputs["c_py"] == "HI"
    assert outputs["c_fail"].startswith(
        "error: tool 'demo__fail' (MCP server 'demo') reported an error"
    )
    assert "there is no function tool named 'nope'" in outputs["c_nope"]
    assert "shout" in outputs["c_nope"] and "web__add" in outputs["c_nope"]
    assert outputs["c_dead"].startswith("error: MCP server 'demo' closed the connection")
    assert outputs["c_again"] == "5"  # reconnected

    finished = [e for e in events if isinstance(e, CallFinished)]
    assert len(finished) == 8
    assert {e.call_id for e in finished if not e.ok} == {"c_fail", "c_nope", "c_dead"}
    for item in history:
        if item["type"] == "function_call_output":
            INPUT_ITEM.validate_python(item)
