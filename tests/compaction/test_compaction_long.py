"""A 5,000-item history with many tool calls of every answered type compacts into
a valid, small history, through the real client and the local Responses server."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pydantic
import pytest
from corpus import long_history, user
from openai.types.responses import ResponseInputItemParam
from responses_server import ScriptedResponsesServer
from test_compaction_runtime import final, remote_compact, summary_turn

from itemloop.runtime.compaction import SUMMARY_PREFIX, SUMMARY_PROMPT, ThresholdCompactor, orphans
from itemloop.runtime.model import ModelRequest
from itemloop.runtime.openai_model import OpenAIModel
from itemloop.runtime.tokens import EstimateTokenizer
from itemloop.tools.items import KINDS
from itemloop.tools.screenshot import BLANK_PNG

OUTPUT_TYPES = {k.call_type: k.output_type for k in KINDS.values()}

pytestmark = pytest.mark.anyio

INPUT = pydantic.TypeAdapter(list[ResponseInputItemParam])
TOOLS = [{"type": "function", "name": "add", "parameters": {"type": "object"}, "strict": False}]
THRESHOLD = 20_000


def other_pairs(n: int) -> list[dict[str, Any]]:
    """Calls of the answered types `long_history` has none of, each with its output."""
    return [
        {"type": "custom_tool_call", "call_id": f"ct{n}", "name": "grep", "input": "parser"},
        {"type": "custom_tool_call_output", "call_id": f"ct{n}", "output": "parser.py:1"},
        {
            "type": "apply_patch_call",
            "call_id": f"ap{n}",
            "status": "completed",
            "operation": {"type": "update_file", "path": "parser.py", "diff": "@@\n-a\n+b\n"},
        },
        {"type": "apply_patch_call_output", "call_id": f"ap{n}", "status": "completed"},
        {
            "type": "computer_call",
            "id": f"cu_{n}",
            "call_id": f"cu{n}",
            "action": {"type": "screenshot"},
            "pending_safety_checks": [],
            "status": "completed",
        },
        {
            "type": "computer_call_output",
            "call_id": f"cu{n}",
            "output": {"type": "computer_screenshot", "image_url": BLANK_PNG},
        },
        {
            "type": "tool_search_call",
            "id": f"ts_{n}",
            "call_id": f"ts{n}",
            "execution": "client",
            "arguments": {"query": "parse a file"},
            "status": "completed",
        },
        {
            "type": "tool_search_output",
            "call_id": f"ts{n}",
            "execution": "client",
            "status": "completed",
            "tools": [],
        },
    ]


def assert_each_call_answered_once(items: list[dict[str, Any]]) -> None:
    """Every answered call has exactly one output of its type after it, and every
    output answers an earlier call: checked here, not by the code under test."""
    waiting: dict[str, str] = {}
    for item in items:
        t = item["type"]
        if t in OUTPUT_TYPES:
            key = item["id"] if t == "mcp_approval_request" else item["call_id"]
            assert key not in waiting, item
            waiting[key] = OUTPUT_TYPES[t]
        elif t in OUTPUT_TYPES.values():
            key = {"mcp_approval_response": "approval_request_id", "local_shell_call_output": "id"}
            assert waiting.pop(item[key.get(t, "call_id")], None) == t, item
    assert waiting == {}


def every_type_history() -> list[dict[str, Any]]:
    """`long_history(5_000)` with the other answered types before each later user message."""
    history: list[dict[str, Any]] = []
    for n, item in enumerate(long_history(5_000)):
        if n and item.get("role") == "user":
            history += other_pairs(n)
        history.append(item)
    return history


@pytest.mark.parametrize("compact", ["remote", "local"])
async def test_five_thousand_items_compact_into_a_valid_history(compact: str) -> None:
    history = every_type_history()
    # The fixture is what the name says: 5,000 valid items, calls of every type the
    # runtime answers, many of each, every one with its output.
    INPUT.validate_python(history)
    assert len(history) >= 5_000
    assert_each_call_answered_once(history)
    types = Counter(i["type"] for i in history)
    assert all(
        types[call] >= 20 and types[call] == types[out] for call, out in OUTPUT_TYPES.items()
    )
    server_compact: Any = remote_compact if compact == "remote" else 404
    turns: list[Any] = [summary_turn] if compact == "local" else []
    with ScriptedResponsesServer(turns=[*turns, [final()]], compact=server_compact) as server:
        model = OpenAIModel("gpt-test", base_url=server.url, api_key="sk-test", max_retries=0)
        comp = ThresholdCompactor(model, threshold=THRESHOLD, tokenizer=EstimateTokenizer())
        request = ModelRequest(input=history, tools=TOOLS, instructions="Be careful.")
        result = await comp.maybe_compact(history, request)
        assert result is not None
        items = result.items

        assert orphans(items) == []
        assert_each_call_answered_once(items)
        INPUT.validate_python(items)
        event = result.event
        assert event.strategy == compact and event.warning is None
        assert event.tokens_before > 4 * THRESHOLD and event.tokens_after < THRESHOLD
        assert (event.items_before, len(items)) == (len(history), event.items_after)
        assert items[0] == user("Build the parser and make the tests pass.")

        if compact == "remote":
            (body,) = server.compact_requests()
            assert body["input"] == history and body["instructions"] == "Be careful."
            assert items == remote_compact(body)
        else:
            (summary_req,) = server.response_requests()
            assert summary_req["instructions"] == SUMMARY_PROMPT and "tools" not in summary_req
            (prompt,) = summary_req["input"]
            text = prompt["content"][0]["text"]
            # Bounded by the threshold (no window known here), the first request kept.
            assert len(text) < 3 * THRESHOLD + 200 and "Build the parser" in text
            notes = [i for i in items if SUMMARY_PREFIX in json.dumps(i)]
            assert len(notes) == 1
            # Nothing is forged or altered: every other item is one of the history's.
            assert [i for i in items if i not in history] == notes
            tail = items[items.index(notes[0]) + 1 :]
            # The recent turns are kept verbatim, each call with its output.
            assert tail == history[len(history) - len(tail) :]
            assert any(i["type"].endswith("_output") for i in tail)
            assert len(items) < len(history) // 10

        # The compacted history is what the next request carries.
        await model.respond(ModelRequest(input=items, tools=TOOLS))
        assert server.response_requests()[-1]["input"] == items
