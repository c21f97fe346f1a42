"""Bad input is normal input: the runtime reports it and carries on."""

from __future__ import annotations

import json
import sys

import pytest
from helpers import assert_valid_input_item, fcall, message, toolset_of
from openai.types.responses import ResponseFunctionToolCall

from itemloop.runtime.events import ItemReceived, Notice
from itemloop.runtime.loop import Runtime
from itemloop.runtime.model import ModelRequest, ModelResponse
from itemloop.runtime.scripted import ScriptedModel

pytestmark = pytest.mark.anyio


def add(a: int, b: int) -> int:
    return a + b


async def test_model_items_are_parsed_into_openai_classes_and_kept_raw() -> None:
    future = {"type": "teleport_call", "id": "t1", "x": [1]}
    model = ScriptedModel([[fcall("c1", "add", {"a": 1, "b": 2}), future], [message("3")]])
    async with Runtime(model, toolset_of(add)) as rt:
        events = [e async for e in rt.run("go")]
    received = [e for e in events if isinstance(e, ItemReceived)]
    assert isinstance(received[0].parsed, ResponseFunctionToolCall)
    assert received[0].parsed.call_id == "c1"
    assert received[1].parsed is None and received[1].item == future
    assert future in rt.history


@pytest.mark.parametrize("bad_id", [None, "", 5], ids=["missing", "empty", "int"])
async def test_call_without_usable_call_id_gets_one_shared_by_call_and_output(
    bad_id: object,
) -> None:
    call = fcall("x", "add", {"a": 1, "b": 1})
    if bad_id is None:
        del call["call_id"]
    else:
        call["call_id"] = bad_id
    model = ScriptedModel([[call, dict(call, id="fc_2")], [message("2")]])
    async with Runtime(model, toolset_of(add)) as rt:
        events = [e async for e in rt.run("go")]
    calls = [i for i in rt.history if i.get("type") == "function_call"]
    outs = [i for i in rt.history if i.get("type") == "function_call_output"]
    ids = [c["call_id"] for c in calls]
    assert len(set(ids)) == 2 and all(isinstance(i, str) and i for i in ids)
    assert [o["call_id"] for o in outs] == ids
    for o in outs:
        assert_valid_input_item(o)
    assert any(isinstance(e, Notice) and "no usable call_id" in e.message for e in events)


async def test_tool_calling_sys_exit_is_the_tools_error() -> None:
    def quit_now() -> None:
        sys.exit(3)

    model = ScriptedModel([[fcall("c1", "quit_now", {})], [message("ok")]])
    async with Runtime(model, toolset_of(quit_now)) as rt:
        result = await rt.run_until_done("go")
    assert result.reason == "completed"
    out = next(i for i in rt.history if i.get("type") == "function_call_output")
    assert "raised SystemExit: 3" in out["output"]


async def test_an_unexpected_failure_ends_the_run_with_its_reason() -> None:
    class Crashing:
        name = "crashing"

        async def respond(self, request: ModelRequest, *, on_text: object = None) -> ModelResponse:
            raise RuntimeError("socket on fire")

        async def compact(self, request: ModelRequest) -> list[dict[str, object]]:
            return []

        async def aclose(self) -> None:
            pass

    async with Runtime(Crashing()) as rt:  # type: ignore[arg-type]
        result = await rt.run_until_done("go")
    assert result.reason == "error"
    assert result.error == "internal error: RuntimeError: socket on fire"


async def test_scripted_turn_with_non_item_is_a_clear_error() -> None:
    model = ScriptedModel([[1, message("x")]])  # type: ignore[list-item]
    async with Runtime(model) as rt:
        result = await rt.run_until_done("go")
    assert result.reason == "error"
    assert "scripted turn 1 is not a list of output items" in (result.error or "")


def test_script_file_with_non_item_names_the_line(tmp_path: object) -> None:
    from pathlib import Path

    from itemloop.runtime.scripted import ScriptError, load_script

    p = Path(str(tmp_path)) / "s.jsonl"
    p.write_text(json.dumps([message("a")]) + "\n" + json.dumps({"output": [1]}) + "\n")
    with pytest.raises(ScriptError, match=r"s\.jsonl:2"):
        load_script(p)
