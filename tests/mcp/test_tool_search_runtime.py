"""Deferred MCP tools found through client-executed tool search (issue 14), end to end:
three real MCP servers with 200 tools in all, the real `openai` client over HTTP to
the local Responses server, namespaces, and the journal across a resume."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest
from openai.types.responses import ResponseInputItemParam
from openai.types.responses.response_tool_search_output_item_param import (
    ResponseToolSearchOutputItemParam,
)
from responses_server import ScriptedResponsesServer

from itemloop.runtime.loop import Runtime
from itemloop.runtime.openai_model import OpenAIModel
from itemloop.tools.config import ToolsetConfig
from itemloop.tools.mcp import McpServer
from itemloop.tools.toolset import Toolset

pytestmark = pytest.mark.anyio

CATALOG = Path(__file__).parent / "servers" / "catalog_server.py"
SEARCH_OUTPUT = pydantic.TypeAdapter(ResponseToolSearchOutputItemParam)
INPUT_ITEM = pydantic.TypeAdapter(ResponseInputItemParam)


def catalog(theme: str, count: int) -> McpServer:
    return McpServer(theme, command=sys.executable, args=(str(CATALOG), theme, str(count)))


def search_call(cid: str, query: str) -> dict[str, Any]:
    return {
        "type": "tool_search_call",
        "id": f"ts_{cid}",
        "call_id": cid,
        "execution": "client",
        "arguments": {"query": query, "limit": 3},
        "status": "completed",
    }


def ns_call(cid: str, namespace: str, name: str, value: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{cid}",
        "call_id": cid,
        "namespace": namespace,
        "name": name,
        "arguments": json.dumps({"value": value}),
        "status": "completed",
    }


def answer(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


async def test_deferred_tools_are_found_by_search_and_called_by_namespace(
    tmp_path: Path,
) -> None:
    turns = [
        [search_call("s1", "file a bug report in the tracker")],
        [ns_call("c1", "tickets", "file_bug_report", "crash on start")],
        [answer("filed")],
    ]
    config = ToolsetConfig(
        builtins=(),
        mcp_servers=(catalog("tickets", 64), catalog("files", 64), catalog("mail", 72)),
        mcp_namespaces=True,
        mcp_defer=("*",),
    )
    journal = tmp_path / "s.jsonl"
    with ScriptedResponsesServer(turns=turns) as server:
        model = OpenAIModel("gpt-test", base_url=server.url, api_key="sk-test", stream=True)
        async with Runtime(model, Toolset(config, functions=[shout]), session=journal) as rt:
            final = await rt.run_until_done("file a bug about the crash")
            assert rt.toolset.search is not None and len(rt.toolset.search) == 200
        requests = server.response_requests()
    assert final.reason == "completed", final
    first_tools = requests[0]["tools"]
    # Up front: only the non-deferred tools and the tool_search tool, not 200 tools.
    assert [t["type"] for t in first_tools] == ["function", "tool_search"]
    assert first_tools[0]["name"] == "shout" and first_tools[1]["execution"] == "client"
    history = rt.history
    [output] = [i for i in history if i["type"] == "tool_search_output"]
    SEARCH_OUTPUT.validate_python(output)
    INPUT_ITEM.validate_python(output)
    assert output["call_id"] == "s1" and output["execution"] == "client"
    found = [(t["name"], [x["name"] for x in t.get("tools", [])]) for t in output["tools"]]
    assert found[0][0] == "tickets" and found[0][1][0] == "file_bug_report", found
    assert sum(len(names) or 1 for _, names in found) <= 3  # the call's limit
    [result] = [i for i in history if i["type"] == "function_call_output"]
    assert result == {
        "type": "function_call_output",
        "call_id": "c1",
        "output": "tickets:file_bug_report:crash on start",
        "namespace": "tickets",
    }
    INPUT_ITEM.validate_python(result)
    loaded = [json.loads(line) for line in journal.read_text().splitlines()]
    [recorded] = [r["tools_loaded"] for r in loaded if "tools_loaded" in r]
    assert ["tickets", "file_bug_report"] in recorded  # a resumed run offers it again


async def test_a_loaded_tool_is_sent_again_once_its_search_output_is_gone() -> None:
    config = ToolsetConfig(
        builtins=(), mcp_servers=(catalog("mail", 10),), mcp_namespaces=True, mcp_defer=("mail",)
    )
    async with Toolset(config) as toolset:
        searcher = toolset.executor_for(search_call("s1", "schedule a meeting"))
        assert searcher is not None
        result = await searcher.execute(search_call("s1", "schedule a meeting"))
        assert ("mail", "schedule_meeting") in toolset.loaded
        with_output = toolset.definitions_for([search_call("s1", "x"), result.output])
        without = toolset.definitions_for([])  # compaction removed the output
    assert [t["type"] for t in with_output] == ["tool_search"]
    assert without[-1]["type"] == "namespace" and without[-1]["name"] == "mail"
    assert "schedule_meeting" in [t["name"] for t in without[-1]["tools"]]


async def test_a_malformed_search_gets_an_empty_answer_and_a_message() -> None:
    config = ToolsetConfig(builtins=(), mcp_servers=(catalog("files", 5),), mcp_defer=("*",))
    call = {**search_call("s1", "x"), "arguments": "{not json"}
    async with Toolset(config) as toolset:
        searcher = toolset.executor_for(call)
        assert searcher is not None
        result = await searcher.execute(call)
    assert result.output["status"] == "incomplete" and result.output["tools"] == []
    assert not result.ok and result.notes and "JSON" in json.dumps(result.notes[0])


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def test_python_functions_grouped_in_a_namespace_are_routed_by_it() -> None:
    from itemloop.runtime.dispatch import Dispatcher

    toolset = Toolset(functions=[shout], function_groups={"math": ("Arithmetic.", [add])})
    call = {**ns_call("c1", "math", "add", ""), "arguments": json.dumps({"a": 2, "b": 3})}
    wrong = {**call, "call_id": "c2", "namespace": "text"}
    async with toolset:
        defs = toolset.definitions()
        outs = await Dispatcher(toolset).run([call, wrong], lambda e: None)
    assert [d["type"] for d in defs[:2]] == ["function", "namespace"]
    assert defs[1]["name"] == "math" and [t["name"] for t in defs[1]["tools"]] == ["add"]
    assert outs[0] == {
        "type": "function_call_output",
        "call_id": "c1",
        "output": "5",
        "namespace": "math",
    }
    assert "there is no function tool named 'add' in namespace 'text'" in outs[1]["output"]
    assert "math.add (function tool)" in outs[1]["output"]
