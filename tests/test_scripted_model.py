"""`ScriptedModel` and `--script` files: a resumed run continues the script after
the last turn in its history, summary requests do not consume a turn, and a
hostile script file is a clear error naming its line (issue 9, items 10, 15)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import fcall, message, toolset_of, write_script
from test_cli import itemloop

from itemloop.runtime.compaction import SUMMARY_PREFIX, ThresholdCompactor
from itemloop.runtime.events import Compacted
from itemloop.runtime.loop import Runtime
from itemloop.runtime.model import ModelRequest
from itemloop.runtime.scripted import ScriptedModel, ScriptError, load_script
from itemloop.runtime.session import SessionStore
from itemloop.runtime.tokens import EstimateTokenizer

pytestmark = pytest.mark.anyio

RUNS: list[str] = []
BIG = "word " * 300


def record(tag: str) -> str:
    """Record a tag; answers with a long text."""
    RUNS.append(tag)
    return f"recorded {tag}: {BIG}"


def script_of(*tags: str) -> list[Any]:
    """One turn a call to `record`, then a final message."""
    return [
        *([fcall(f"c{i}", "record", {"tag": t})] for i, t in enumerate(tags)),
        [message("done")],
    ]


def call_ids(items: list[dict[str, Any]]) -> list[str]:
    return [i["call_id"] for i in items if i.get("type") == "function_call"]


# -- resuming (item 10) -----------------------------------------------------------


@pytest.mark.parametrize("chained", [False, True], ids=["stateless", "previous_response_id"])
async def test_a_resumed_run_continues_after_the_last_turn_in_its_history(
    tmp_path: Path, chained: bool
) -> None:
    RUNS.clear()
    journal = tmp_path / "s.jsonl"
    script = script_of("a", "b", "c")
    kw: dict[str, Any] = dict(
        toolset=toolset_of(record), session=journal, previous_response_id=chained
    )
    async with Runtime(ScriptedModel(script), max_turns=2, **kw) as rt:
        first = await rt.run_until_done("go")
    assert first.reason == "max_turns" and RUNS == ["a", "b"]

    # A new process: a new model from the same script.
    resumed = ScriptedModel(script)
    async with Runtime(resumed, **kw) as rt:
        result = await rt.run_until_done(None)
    assert result.reason == "completed" and result.final_text == "done"
    assert RUNS == ["a", "b", "c"]  # nothing that had finished ran again
    assert call_ids(rt.history) == ["c0", "c1", "c2"]
    assert len(resumed.requests) == 2


async def test_a_script_resumed_from_the_command_line_runs_no_call_twice(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "t.jsonl",
        [fcall("c1", "multiply", {"a": 2, "b": 3})],
        [fcall("c2", "multiply", {"a": 4, "b": 5})],
        [message("done")],
    )
    journal = tmp_path / "s.jsonl"
    tools = str(Path(__file__).parent / "data" / "cli_tools.py")
    common = [
        "--script",
        str(script),
        "--tools",
        "",
        "--functions",
        tools,
        "--session",
        str(journal),
    ]
    r = itemloop("run", "go", *common, "--max-turns", "1")
    assert "--max-turns" in r.stderr, r.stderr
    r = itemloop("run", *common, "--resume", "--max-turns", "5")  # the session recorded 1
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "done"
    items = SessionStore(journal).load().items
    assert call_ids(items) == ["c1", "c2"]
    outputs = [i["output"] for i in items if i.get("type") == "function_call_output"]
    assert outputs == ["6", "20"]


async def test_turns_are_found_by_content_not_by_position() -> None:
    # Identical turns: each visible turn is one more step through the script.
    model = ScriptedModel([[message("again")], [message("again")], [message("last")]])
    user = {"type": "message", "role": "user", "content": "go"}
    history = [user, message("again"), user, message("again"), user]
    response = await model.respond(ModelRequest(input=history))
    assert response.output == [message("last")]


async def test_the_script_is_never_changed_by_what_the_runtime_does_with_a_turn() -> None:
    turn = [{"type": "function_call", "name": "record", "arguments": '{"tag": "x"}'}]
    script = [turn, [message("done")]]
    before = json.dumps(script)
    async with Runtime(ScriptedModel(script), toolset_of(record)) as rt:
        result = await rt.run_until_done("go")  # the runtime gives the call a call_id
    assert result.reason == "completed"
    assert json.dumps(script) == before


# -- summary requests (item 10) ---------------------------------------------------


def _compactor(model: ScriptedModel) -> ThresholdCompactor:
    return ThresholdCompactor(model, threshold=700, strategy="local", tokenizer=EstimateTokenizer())


async def test_a_summary_request_is_answered_without_using_a_turn() -> None:
    RUNS.clear()
    model = ScriptedModel(script_of("a", "b", "c", "d"))
    events: list[object] = []
    async with Runtime(model, toolset_of(record), compactor=_compactor(model)) as rt:
        async for ev in rt.run("go"):
            events.append(ev)
    compactions = [e for e in events if isinstance(e, Compacted)]
    assert compactions and all(e.strategy == "local" and e.warning is None for e in compactions)
    assert RUNS == ["a", "b", "c", "d"]
    assert rt.history[-1] == message("done")
    summaries = [r for r in model.requests if r.purpose == "summary"]
    assert len(summaries) == len(compactions)
    notes = [i for i in rt.history if SUMMARY_PREFIX in json.dumps(i)]
    assert len(notes) == 1 and "scripted model" in json.dumps(notes[0])


async def test_a_compacted_session_resumes_after_its_last_turn(tmp_path: Path) -> None:
    RUNS.clear()
    journal = tmp_path / "s.jsonl"
    script = script_of("a", "b", "c", "d", "e")
    first = ScriptedModel(script)
    async with Runtime(
        first, toolset_of(record), session=journal, max_turns=4, compactor=_compactor(first)
    ) as rt:
        assert (await rt.run_until_done("go")).reason == "max_turns"
    assert RUNS == ["a", "b", "c", "d"]
    assert any(r.purpose == "summary" for r in first.requests)
    resumed = ScriptedModel(script)
    async with Runtime(resumed, toolset_of(record), session=journal) as rt:
        result = await rt.run_until_done(None)
    assert result.reason == "completed", result.error
    assert RUNS == ["a", "b", "c", "d", "e"]


# -- hostile script files (item 15) -----------------------------------------------


def test_a_deeply_nested_line_is_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    deep = '{"a": ' * 2000 + "1" + "}" * 2000
    path.write_text(json.dumps([message("ok")]) + "\n" + f'[{{"type": "message", "x": {deep}}}]\n')
    with pytest.raises(ScriptError) as caught:
        load_script(path)
    assert "deep.jsonl:2" in str(caught.value) and "nested" in str(caught.value)


def test_the_command_line_reports_a_deeply_nested_script_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 2000 + "]" * 2000 + "\n")
    r = itemloop("run", "go", "--script", str(path), "--tools", "")
    assert r.returncode == 2
    assert "deep.jsonl:1" in r.stderr and "Traceback" not in r.stderr
