"""`OpenAIModel` against a misbehaving Responses server, through the real `openai`
client over HTTP: time limits, cut streams, unreachable servers and the `store`
flag. Limits are small so that no test waits long; nothing here asserts a time."""

from __future__ import annotations

import socket

import pytest
from helpers import fcall, message, toolset_of
from responses_server import ScriptedResponsesServer

from itemloop.runtime.loop import Runtime
from itemloop.runtime.model import ModelError, ModelRequest
from itemloop.runtime.openai_model import (
    DEFAULT_MODEL_MAX_TIME_S,
    DEFAULT_MODEL_TIMEOUT_S,
    OpenAIModel,
)

pytestmark = pytest.mark.anyio

GO = ModelRequest(input=[{"role": "user", "content": "go"}])


def _model(server: ScriptedResponsesServer, **kw: object) -> OpenAIModel:
    return OpenAIModel("gpt-test", base_url=server.url, api_key="sk-test", **kw)  # type: ignore[arg-type]


async def _error(model: OpenAIModel, request: ModelRequest = GO) -> str:
    with pytest.raises(ModelError) as caught:
        await model.respond(request)
    await model.aclose()
    return str(caught.value)


# -- time limits (issue 9, item 18) ---------------------------------------------


def test_limits_have_one_home_and_generous_defaults() -> None:
    model = OpenAIModel("gpt-test", api_key="sk-test")
    assert (model.timeout_s, model.max_time_s) == (
        DEFAULT_MODEL_TIMEOUT_S,
        DEFAULT_MODEL_MAX_TIME_S,
    )
    # Reasoning can take minutes: the total limit must leave room for it.
    assert (
        DEFAULT_MODEL_MAX_TIME_S >= 10 * 60 and DEFAULT_MODEL_TIMEOUT_S < DEFAULT_MODEL_MAX_TIME_S
    )


async def test_a_server_that_never_answers_hits_the_silence_limit() -> None:
    with ScriptedResponsesServer(turns=[[message("never")]], faults=["hang"]) as server:
        text = await _error(_model(server, timeout_s=0.3, max_time_s=60, max_retries=0))
    assert "0.3 s" in text and "timeout_s" in text and "--model-timeout" in text
    assert server.url in text


async def test_a_server_that_only_sends_keepalives_hits_the_total_limit() -> None:
    # Keep-alive comments every 20 ms: never silent, never done.
    with ScriptedResponsesServer(turns=[[message("never")]], faults=["keepalive"]) as server:
        text = await _error(_model(server, timeout_s=30, max_time_s=0.5, max_retries=3))
    assert "0.5 s" in text and "max_time_s" in text and "--model-max-time" in text
    assert server.url in text
    assert len(server.response_requests()) == 1  # the total limit is not retried


async def test_a_json_request_that_never_ends_hits_the_total_limit() -> None:
    # Without streaming a healthy server is silent until it is done, so only the
    # total limit applies once connected.
    with ScriptedResponsesServer(turns=[[message("never")]], faults=["hang"]) as server:
        text = await _error(
            _model(server, stream=False, timeout_s=0.2, max_time_s=0.6, max_retries=0)
        )
    assert "0.6 s" in text and "max_time_s" in text


async def test_a_stream_gone_silent_midway_is_retried() -> None:
    with ScriptedResponsesServer(turns=[[message("hello")]], faults=["stall"]) as server:
        model = _model(server, timeout_s=2, max_retries=1)
        response = await model.respond(GO)
        await model.aclose()
    assert response.output == [message("hello")]
    first, second = server.response_requests()
    assert first == second


async def test_a_stream_silent_on_every_attempt_names_the_silence_limit() -> None:
    with ScriptedResponsesServer(turns=[[message("x")]], faults=["stall", "stall"]) as server:
        text = await _error(_model(server, timeout_s=0.3, max_retries=1))
    assert "timeout_s" in text and "gave up after 2 attempts" in text
    assert len(server.response_requests()) == 2


async def test_a_compaction_request_that_never_ends_hits_the_total_limit() -> None:
    with ScriptedResponsesServer(compact=lambda body: [], faults=["hang"]) as server:
        model = _model(server, timeout_s=30, max_time_s=0.5, max_retries=0)
        with pytest.raises(ModelError) as caught:
            await model.compact(GO)
        await model.aclose()
    assert "max_time_s" in str(caught.value) and server.url in str(caught.value)


# -- cut streams (item 19) ------------------------------------------------------


async def test_a_stream_cut_in_the_middle_of_an_event_is_retried() -> None:
    turn = [fcall("c1", "add", {"a": 1, "b": 2}), message("calling")]
    with ScriptedResponsesServer(turns=[turn], faults=["cut-event"]) as server:
        model = _model(server, max_retries=1)
        response = await model.respond(GO)
        await model.aclose()
    assert response.output == turn
    first, second = server.response_requests()
    assert first == second


async def test_a_stream_cut_mid_event_every_time_is_reported_as_cut() -> None:
    with ScriptedResponsesServer(turns=[[message("x")]], faults=["cut-event"] * 2) as server:
        text = await _error(_model(server, max_retries=1))
    assert "cut" in text and "malformed" not in text and "gave up after 2 attempts" in text


# -- an unreachable server (item 20) -------------------------------------------


async def test_an_unreachable_server_is_named() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    model = OpenAIModel("gpt-test", base_url=url, api_key="sk-test", max_retries=0)
    text = await _error(model)
    assert "cannot reach the model server" in text and url in text


# -- store and previous_response_id (item 14) ----------------------------------


async def test_a_request_that_continues_a_response_is_stored() -> None:
    with ScriptedResponsesServer(turns=[[message("a")], [message("b")], [message("c")]]) as server:
        model = _model(server)  # store=False by default: stateless
        await model.respond(GO)
        await model.respond(ModelRequest(input=GO.input, previous_response_id="resp_0000"))
        await model.respond(ModelRequest(input=GO.input, store=True))
        await model.aclose()
    plain, chained, asked = server.response_requests()
    assert plain["store"] is False and plain["include"] == ["reasoning.encrypted_content"]
    assert chained["previous_response_id"] == "resp_0000" and chained["store"] is True
    assert asked["store"] is True
    # Stored responses keep their reasoning server-side: nothing to include.
    assert "include" not in chained and "include" not in asked


async def test_store_false_with_previous_response_id_is_refused_before_sending() -> None:
    with ScriptedResponsesServer(turns=[[message("a")]]) as server:
        request = ModelRequest(input=GO.input, previous_response_id="resp_0", store=False)
        text = await _error(_model(server), request)
    assert "previous_response_id" in text and "store" in text
    assert server.response_requests() == []


async def test_runtime_in_previous_response_id_mode_never_sends_store_false() -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    turns = [[fcall("c1", "add", {"a": 1, "b": 2})], [message("three")]]
    with ScriptedResponsesServer(turns=turns) as server:
        async with Runtime(_model(server), toolset_of(add), previous_response_id=True) as rt:
            result = await rt.run_until_done("go")
    assert result.reason == "completed", result.error
    chained = [r for r in server.response_requests() if "previous_response_id" in r]
    assert chained and all(r["store"] is True for r in chained)
