"""Compaction through `Runtime`, the real `openai` client and a local Responses
server over HTTP; assertions are on the requests that server received."""

from __future__ import annotations

import copy
import json
from typing import Any

import pydantic
import pytest
from corpus import compaction_item, user
from helpers import toolset_of
from openai.types.responses import ResponseInputItemParam
from responses_server import ScriptedResponsesServer

from itemloop.runtime.compaction import (
    SUMMARY_PREFIX,
    SUMMARY_PROMPT,
    ThresholdCompactor,
    orphans,
)
from itemloop.runtime.events import Compacted, Notice, RunFinished
from itemloop.runtime.loop import Runtime
from itemloop.runtime.openai_model import OpenAIModel
from itemloop.runtime.tokens import EstimateTokenizer, count_item

pytestmark = pytest.mark.anyio

INPUT = pydantic.TypeAdapter(list[ResponseInputItemParam])
INSTRUCTIONS = "You are a careful assistant."
BIG = "word " * 300


def read(path: str) -> str:
    """Read a file."""
    return {"small": "ok", "big": BIG, "medium": "token " * 150, "huge": "data " * 2_000}[path]


def call(call_id: str, path: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": "read",
        "arguments": json.dumps({"path": path}),
        "status": "completed",
    }


def final(text: str = "done") -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_final",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def usage(total: int) -> dict[str, Any]:
    return {
        "input_tokens": total - 10,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 10,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": total,
    }


def summary_turn(body: dict[str, Any]) -> list[dict[str, Any]]:
    assert body.get("instructions") == SUMMARY_PROMPT, "expected the summary request here"
    return [final("SUMMARY: the user asked to read files; small read returned ok.")]


def remote_compact(body: dict[str, Any]) -> list[dict[str, Any]]:
    users = [i for i in body["input"] if i.get("role") == "user"]
    return [*copy.deepcopy(users), compaction_item(7)]


def compactor(
    server: ScriptedResponsesServer, threshold: int, strategy: str = "auto"
) -> ThresholdCompactor:
    return ThresholdCompactor(
        _model(server), threshold=threshold, strategy=strategy, tokenizer=EstimateTokenizer()
    )


def _model(server: ScriptedResponsesServer) -> OpenAIModel:
    return OpenAIModel("gpt-test", base_url=server.url, api_key="sk-test", max_retries=0)


async def run(
    server: ScriptedResponsesServer, comp: ThresholdCompactor, **kw: Any
) -> tuple[Runtime, list[Any]]:
    events: list[Any] = []
    rt = Runtime(comp.model, toolset_of(read), instructions=INSTRUCTIONS, compactor=comp, **kw)
    async with rt:
        async for ev in rt.run("Read the files and report."):
            events.append(ev)
    assert isinstance(events[-1], RunFinished) and events[-1].reason == "completed", events[-1]
    return rt, events


def paths(server: ScriptedResponsesServer) -> list[str]:
    return ["compact" if r.path.endswith("/compact") else "responses" for r in server.requests]


def assert_sendable(items: list[dict[str, Any]]) -> None:
    assert orphans(items) == []
    INPUT.validate_python(items)


def crossing_turns() -> list[Any]:
    return [
        {"output": [call("c1", "small")], "usage": usage(500)},
        {"output": [call("c2", "big")], "usage": usage(900)},
        {"output": [final()], "usage": usage(100)},
    ]


async def boundary() -> int:
    """The count before the third request: 900 from usage plus the big output, estimated."""
    with ScriptedResponsesServer(turns=crossing_turns()) as server:
        rt, _ = await run(server, compactor(server, 10**9))
    big_output = next(i for i in rt.history if i.get("call_id") == "c2" and "output" in i)
    return 900 + count_item(EstimateTokenizer(), big_output)


async def test_remote_compaction_fires_exactly_when_the_threshold_is_reached() -> None:
    at = await boundary()

    with ScriptedResponsesServer(turns=crossing_turns(), compact=remote_compact) as server:
        _, events = await run(server, compactor(server, at + 1))
        assert paths(server) == ["responses"] * 3
        assert not [e for e in events if isinstance(e, Compacted)]

    with ScriptedResponsesServer(turns=crossing_turns(), compact=remote_compact) as server:
        _, events = await run(server, compactor(server, at))
        assert paths(server) == ["responses", "responses", "compact", "responses"]
        compact_body = server.compact_requests()[0]
        second, third = server.response_requests()[1:]
        assert compact_body["model"] == "gpt-test"
        assert compact_body["instructions"] == INSTRUCTIONS
        assert "previous_response_id" not in compact_body
        # The whole history went to /responses/compact, the big output included.
        assert compact_body["input"][: len(second["input"])] == second["input"]
        assert compact_body["input"][-1]["call_id"] == "c2"
        assert compact_body["input"][-1]["output"] == BIG
        # The next request is the compacted output, byte for byte, and nothing else.
        assert third["input"] == remote_compact(compact_body)
        assert_sendable(third["input"])
        assert third["tools"] and third["instructions"] == INSTRUCTIONS
        (event,) = [e for e in events if isinstance(e, Compacted)]
        assert event.strategy == "remote"
        assert event.tokens_before == at and event.tokens_after < at
        assert (event.items_before, event.items_after) == (5, 2)


async def test_local_fallback_after_404_summarises_and_keeps_the_conversation_valid() -> None:
    turns: list[Any] = [
        {"output": [call("c1", "small")], "usage": usage(500)},
        {"output": [call("c2", "big")], "usage": usage(900)},
        summary_turn,
        {"output": [call("c3", "big")], "usage": usage(900)},
        summary_turn,
        {"output": [final()], "usage": usage(100)},
    ]
    with ScriptedResponsesServer(turns=turns, compact=404) as server:
        rt, events = await run(server, compactor(server, 1000))
        assert paths(server) == ["responses", "responses", "compact"] + ["responses"] * 4
        assert len(server.compact_requests()) == 1  # learnt once per session
        reqs = server.response_requests()
        summary_req, after = reqs[2], reqs[3]
        assert summary_req["instructions"] == SUMMARY_PROMPT
        assert "tools" not in summary_req
        (msg,) = summary_req["input"]
        text = msg["content"][0]["text"]
        assert msg["role"] == "user" and "Read the files and report." in text
        assert '{"path": "small"}' in text and "FUNCTION_CALL_OUTPUT: ok" in text
        assert BIG.strip() not in text  # the most recent turn stays verbatim instead
        # First user message, the summary, then the recent turn with its call and output.
        kinds = [(i.get("type"), i.get("role"), i.get("call_id")) for i in after["input"]]
        assert kinds == [
            ("message", "user", None),
            ("message", "user", None),
            ("function_call", None, "c2"),
            ("function_call_output", None, "c2"),
        ]
        assert after["input"][0]["content"][0]["text"] == "Read the files and report."
        note = after["input"][1]["content"][0]["text"]
        assert note.startswith(SUMMARY_PREFIX) and "SUMMARY: the user asked" in note
        for body in reqs:
            assert_sendable(body["input"])
        compactions = [e for e in events if isinstance(e, Compacted)]
        assert [e.strategy for e in compactions] == ["local", "local"]
        warnings = [e.message for e in events if isinstance(e, Notice)]
        assert len(warnings) == 1 and "/responses/compact" in warnings[0]
        # The second summary covers the first one: summaries do not pile up.
        second_summary_text = reqs[4]["input"][0]["content"][0]["text"]
        assert "SUMMARY: the user asked" in second_summary_text
        last = reqs[5]["input"]
        assert sum(SUMMARY_PREFIX in json.dumps(i) for i in last) == 1
        assert rt.history[: len(last)] == last


async def test_server_mode_sends_context_management_and_keeps_its_compaction_item() -> None:
    cmp = compaction_item(3)
    turns: list[Any] = [
        {"output": [call("c1", "small")], "usage": usage(500)},
        {"output": [cmp, call("c2", "small")], "usage": usage(400)},
        {"output": [final()], "usage": usage(100)},
    ]
    with ScriptedResponsesServer(turns=turns, compact=remote_compact) as server:
        _, events = await run(server, compactor(server, 1000, "server"))
        assert server.compact_requests() == []
        reqs = server.response_requests()
        for body in reqs:
            assert body["context_management"] == [{"type": "compaction", "compact_threshold": 1000}]
        assert reqs[2]["input"][0] == cmp  # byte for byte, and nothing before it
        assert [i.get("type") for i in reqs[2]["input"]] == [
            "compaction",
            "function_call",
            "function_call_output",
        ]
        assert_sendable(reqs[2]["input"])
        (event,) = [e for e in events if isinstance(e, Compacted)]
        assert event.strategy == "server" and event.items_before == 6 and event.items_after == 3


async def test_server_mode_falls_back_to_the_client_when_the_server_ignores_it() -> None:
    turns: list[Any] = [
        {"output": [call("c1", "big")], "usage": usage(1500)},
        {"output": [final()], "usage": usage(100)},
    ]
    with ScriptedResponsesServer(turns=turns, compact=remote_compact) as server:
        _, events = await run(server, compactor(server, 1000, "server"))
        assert paths(server) == ["responses", "compact", "responses"]
        assert any("without compacting" in e.message for e in events if isinstance(e, Notice))


async def test_stateful_mode_compacts_from_the_previous_response_and_then_drops_it() -> None:
    with ScriptedResponsesServer(turns=crossing_turns(), compact=remote_compact) as server:
        await run(server, compactor(server, 1000), previous_response_id=True)
        compact_body = server.compact_requests()[0]
        assert compact_body["previous_response_id"] == "resp_0001"
        assert [i["type"] for i in compact_body["input"]] == ["function_call_output"]
        third = server.response_requests()[2]
        assert "previous_response_id" not in third
        assert third["input"] == remote_compact(compact_body)


async def test_many_compactions_in_a_row_stay_bounded_and_valid() -> None:
    n_calls = 40

    def turn(body: dict[str, Any]) -> list[dict[str, Any]]:
        if body.get("instructions") == SUMMARY_PROMPT:
            return [final("SUMMARY: reading medium files, " + str(len(body["input"])))]
        done = sum(1 for i in body["input"] if i.get("type") == "function_call_output")
        turn.count += 1  # type: ignore[attr-defined]
        if turn.count > n_calls:  # type: ignore[attr-defined]
            return [final()]
        return [call(f"m{turn.count}_{done}", "medium")]  # type: ignore[attr-defined]

    turn.count = 0  # type: ignore[attr-defined]
    with ScriptedResponsesServer(turns=[turn] * 200, compact=404) as server:
        rt, events = await run(server, compactor(server, 800), max_turns=100)
        compactions = [e for e in events if isinstance(e, Compacted)]
        assert len(compactions) >= 8
        assert all(e.tokens_after < 800 and e.warning is None for e in compactions)
        work = [b for b in server.response_requests() if b.get("instructions") != SUMMARY_PROMPT]
        assert len(work) == n_calls + 1
        assert max(len(b["input"]) for b in work) <= 12
        for body in work:
            assert_sendable(body["input"])
            assert body["input"][0]["content"][0]["text"] == "Read the files and report."
        assert len(rt.history) <= 12


async def test_a_turn_too_large_to_compact_is_said_then_summarised_once_it_is_older() -> None:
    turns: list[Any] = [
        {"output": [call("h1", "huge")]},
        {"output": [call("s1", "small")]},
        summary_turn,
        {"output": [final()]},
    ]
    with ScriptedResponsesServer(turns=turns, compact=404) as server:
        rt, events = await run(server, compactor(server, 300))
        first, second = [e for e in events if isinstance(e, Compacted)]
        # Nothing older than the huge turn to summarise: it says so and drops what it can.
        warning = first.warning or ""
        assert "not under the threshold of 300" in warning and "most recent turn alone" in warning
        assert first.strategy == "local" and first.tokens_after >= 300
        reqs = server.response_requests()
        assert reqs[1]["input"][0]["content"][0]["text"].startswith("[itemloop] Earlier turns")
        assert [i["type"] for i in reqs[1]["input"][1:]] == [
            "function_call",
            "function_call_output",
        ]
        # A turn later the huge output is older history: the summary replaces it.
        assert second.warning is None and second.tokens_after < 300
        assert reqs[2]["instructions"] == SUMMARY_PROMPT
        assert "characters cut" in reqs[2]["input"][0]["content"][0]["text"]
        assert [i.get("call_id") for i in reqs[3]["input"]] == [None, "s1", "s1"]
        for body in reqs:
            assert_sendable(body["input"])
        assert len(rt.history) == 4


async def test_no_second_compaction_while_nothing_was_added() -> None:
    with ScriptedResponsesServer(turns=[], compact=404) as server:
        comp = compactor(server, 300)
        history = [
            user("go"),
            call("h1", "huge"),
            {"type": "function_call_output", "call_id": "h1", "output": read("huge")},
        ]
        from itemloop.runtime.model import ModelRequest

        first = await comp.maybe_compact(history, ModelRequest(input=history))
        assert first is not None and first.event.warning
        again = first.items
        assert await comp.maybe_compact(again, ModelRequest(input=again)) is None
        # Only the probe of /responses/compact; nothing to summarise either time.
        assert paths(server) == ["compact"]
