"""A 5,000-item history with many tool calls of every answered type compacts into
a valid, small history, through the real client and the local Responses server."""

from __future__ import annotations

import json
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

pytestmark = pytest.mark.anyio

INPUT = pydantic.TypeAdapter(list[ResponseInputItemParam])
TOOLS = [{"type": "function", "name": "add", "parameters": {"type": "object"}, "strict": False}]
THRESHOLD = 20_000


@pytest.mark.parametrize("compact", ["remote", "local"])
async def test_five_thousand_items_compact_into_a_valid_history(compact: str) -> None:
    history = long_history(5_000)
    assert len(history) >= 5_000
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
            tail = items[items.index(notes[0]) + 1 :]
            # The recent turns are kept verbatim, each call with its output.
            assert tail == history[len(history) - len(tail) :]
            assert any(i["type"].endswith("_output") for i in tail)
            assert len(items) < len(history) // 10

        # The compacted history is what the next request carries.
        await model.respond(ModelRequest(input=items, tools=TOOLS))
        assert server.response_requests()[-1]["input"] == items
