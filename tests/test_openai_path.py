"""The loop through the real `openai` client over HTTP to a local scripted
Responses server; assertions are on the requests that server received."""

from __future__ import annotations

import copy
import json
import time

import anyio
import pytest
from helpers import assert_valid_input_item, fcall, message, toolset_of
from responses_server import ScriptedResponsesServer

from itemloop.runtime.events import CallFinished, CallStarted, RunFinished
from itemloop.runtime.loop import Runtime
from itemloop.runtime.openai_model import OpenAIModel

pytestmark = pytest.mark.anyio


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def upper(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


REASONING = {
    "type": "reasoning",
    "id": "rs_1",
    "summary": [{"type": "summary_text", "text": "thinking"}],
    "encrypted_content": "gAAAA-opaque-blob==",
}
HOSTED = {
    "type": "web_search_call",
    "id": "ws_1",
    "status": "completed",
    "action": {"type": "search", "query": "itemloop"},
}
FUTURE = {"type": "hologram_call", "id": "hg_1", "payload": {"nested": [1, 2.5, None, "ü"]}}


def _model(server: ScriptedResponsesServer, *, stream: bool, **kw: object) -> OpenAIModel:
    return OpenAIModel("gpt-test", base_url=server.url, api_key="sk-test", stream=stream, **kw)  # type: ignore[arg-type]


async def _run(
    model: OpenAIModel, prompt: str = "go", **kw: object
) -> tuple[Runtime, list[object]]:
    events: list[object] = []
    rt = Runtime(model, toolset_of(add, upper), **kw)  # type: ignore[arg-type]
    async with rt:
        async for ev in rt.run(prompt):
            events.append(ev)
    return rt, events


@pytest.mark.parametrize("stream", [True, False], ids=["sse", "json"])
async def test_calls_answered_once_in_order_and_items_round_trip(stream: bool) -> None:
    turn1 = [
        copy.deepcopy(REASONING),
        fcall("c1", "add", {"a": 2, "b": 3}),
        copy.deepcopy(HOSTED),
        fcall("c2", "upper", {"text": "hi"}),
        copy.deepcopy(FUTURE),
        fcall("c3", "add", {"a": 10, "b": -1}),
    ]
    with ScriptedResponsesServer(turns=[turn1, [message("all done")]]) as server:
        rt, events = await _run(_model(server, stream=stream))
    reqs = server.response_requests()
    assert len(reqs) == 2
    first, second = reqs
    assert first["store"] is False
    assert first["include"] == ["reasoning.encrypted_content"]
    assert first.get("stream", False) is stream
    assert {t["name"] for t in first["tools"] if t["type"] == "function"} == {"add", "upper"}
    # The second request is the whole history: the user message, the model's
    # items exactly as sent (reasoning, hosted and unknown types included),
    # then one output per call, in call order.
    sent = second["input"]
    assert sent[0]["role"] == "user"
    assert sent[1 : 1 + len(turn1)] == turn1
    outputs = sent[1 + len(turn1) :]
    assert [o["call_id"] for o in outputs] == ["c1", "c2", "c3"]
    assert [o["output"] for o in outputs] == ["5", "HI", "9"]
    for o in outputs:
        assert_valid_input_item(o)
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert finished[-1].reason == "completed" and finished[-1].final_text == "all done"
    assert rt.history[-1] == message("all done")


async def test_unknown_item_bytes_survive_exactly() -> None:
    with ScriptedResponsesServer(
        turns=[[FUTURE, fcall("c1", "add", {"a": 1, "b": 1})], [message("ok")]]
    ) as server:
        await _run(_model(server, stream=True))
    raw_second = json.dumps(server.response_requests()[1]["input"][1], sort_keys=True)
    assert raw_second == json.dumps(FUTURE, sort_keys=True)


async def test_429_then_success_is_retried_without_rerunning_tools() -> None:
    calls: list[int] = []

    def count(n: int) -> int:
        calls.append(n)
        return n

    turns = [[fcall("c1", "count", {"n": 1})], [message("done")]]
    with ScriptedResponsesServer(turns=turns, faults=[]) as server:
        model = _model(server, stream=True)
        rt = Runtime(model, toolset_of(count))
        async with rt:
            server.faults.extend([429])  # the first request is refused once
            result = await rt.run_until_done("go")
    assert result.reason == "completed"
    assert calls == [1]
    assert len(server.response_requests()) == 3  # 429, turn 1, turn 2


async def test_stream_dropped_mid_way_is_retried_and_tool_runs_once() -> None:
    calls: list[int] = []

    def count(n: int) -> int:
        calls.append(n)
        return n

    turns = [[fcall("c1", "count", {"n": 7}), message("calling")], [message("done")]]
    with ScriptedResponsesServer(turns=turns, faults=["drop"]) as server:
        rt = Runtime(_model(server, stream=True), toolset_of(count))
        async with rt:
            result = await rt.run_until_done("go")
    assert result.reason == "completed", result.error
    assert calls == [7]
    reqs = server.response_requests()
    assert len(reqs) == 3  # dropped, retried turn 1, turn 2
    assert reqs[0] == reqs[1]  # the retry is the same request
    outputs = [i for i in reqs[2]["input"] if i.get("type") == "function_call_output"]
    assert outputs == [{"type": "function_call_output", "call_id": "c1", "output": "7"}]


async def test_persistent_server_error_ends_run_with_clear_error() -> None:
    with ScriptedResponsesServer(turns=[[message("never")]], faults=[500] * 10) as server:
        model = OpenAIModel("gpt-test", base_url=server.url, api_key="k", max_retries=1)
        rt = Runtime(model)
        async with rt:
            result = await rt.run_until_done("go")
    assert result.reason == "error"
    assert "500" in (result.error or "")


async def test_previous_response_id_mode_sends_only_new_items() -> None:
    turns = [[fcall("c1", "add", {"a": 1, "b": 2})], [message("three")]]
    with ScriptedResponsesServer(turns=turns) as server:
        await _run(_model(server, stream=True, store=True), previous_response_id=True)
    first, second = server.response_requests()
    assert "previous_response_id" not in first
    assert second["previous_response_id"] == "resp_0000"
    assert second["store"] is True
    assert second["input"] == [{"type": "function_call_output", "call_id": "c1", "output": "3"}]


async def test_events_report_each_call_with_duration() -> None:
    c2_finished = anyio.Event()
    inside: list[float] = []

    async def slow_add(a: int, b: int) -> int:
        """Add two integers once the other call has finished."""
        start = time.perf_counter()
        await c2_finished.wait()
        inside.append(time.perf_counter() - start)
        return a + b

    turns = [[fcall("c1", "slow_add", {"a": 1, "b": 2}), fcall("c2", "nope", {})], [message("x")]]
    events: list[object] = []
    with ScriptedResponsesServer(turns=turns) as server:
        began = time.perf_counter()
        async with Runtime(_model(server, stream=True), toolset_of(slow_add)) as rt:
            with anyio.fail_after(60):  # c1 waits for c2: calls that did not overlap never end
                async for ev in rt.run("go"):
                    events.append(ev)
                    if isinstance(ev, CallFinished) and ev.call_id == "c2":
                        c2_finished.set()
        elapsed = time.perf_counter() - began
    calls = [e for e in events if isinstance(e, (CallStarted, CallFinished))]
    # Each call is reported once started and once finished, in that order; c1 finished last.
    for cid in ("c1", "c2"):
        kinds = [type(e).__name__ for e in calls if e.call_id == cid]
        assert kinds == ["CallStarted", "CallFinished"]
    finished = [e for e in calls if isinstance(e, CallFinished)]
    assert [(e.call_id, e.name, e.item_type, e.ok) for e in finished] == [
        ("c2", "nope", "function_call", False),
        ("c1", "slow_add", "function_call", True),
    ]
    # The output in each event is the one the model was sent.
    sent = server.response_requests()[1]["input"]
    assert [i for i in sent if i.get("type") == "function_call_output"] == [
        next(e.output for e in finished if e.call_id == cid) for cid in ("c1", "c2")
    ]
    assert finished[1].output["output"] == "3"
    # c1's duration covers the time the function itself ran; both lie within the run.
    (ran,) = inside
    assert 0 < ran <= finished[1].duration_s <= elapsed
    assert 0 <= finished[0].duration_s <= elapsed
