"""Contract 4: the journal holds every item before the next model request; a
resumed session never re-runs a finished call nor silently re-runs a started one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import fcall, message, toolset_of

from itemloop.runtime.loop import Runtime
from itemloop.runtime.scripted import ScriptedModel
from itemloop.runtime.session import SessionStore

pytestmark = pytest.mark.anyio

RUNS: list[str] = []


def record(tag: str) -> str:
    RUNS.append(tag)
    return f"recorded {tag}"


async def test_history_is_on_disk_before_each_model_request(tmp_path: Path) -> None:
    journal = tmp_path / "s.jsonl"
    seen_on_disk: list[int] = []

    def turn2(request: object) -> list[dict[str, object]]:
        seen_on_disk.append(len(SessionStore(journal).load().items))
        return [message("done")]

    model = ScriptedModel([[fcall("c1", "record", {"tag": "a"})], turn2])
    async with Runtime(model, toolset_of(record), session=journal) as rt:
        await rt.run_until_done("go")
    # user message + call + output were journaled before turn 2 was requested
    assert seen_on_disk == [3]


async def test_resume_runs_unstarted_calls_and_never_reruns_started_ones(tmp_path: Path) -> None:
    RUNS.clear()
    journal = tmp_path / "s.jsonl"
    store = SessionStore(journal)
    # A crash after the model asked for three calls: c1 finished, c2 started only.
    store.append(
        [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]},
            fcall("c1", "record", {"tag": "one"}),
            fcall("c2", "record", {"tag": "two"}),
            fcall("c3", "record", {"tag": "three"}),
            {"type": "function_call_output", "call_id": "c1", "output": "recorded one"},
        ]
    )
    store.mark_started("c1")
    store.mark_started("c2")
    store.close()

    model = ScriptedModel([[message("resumed")]])
    async with Runtime(model, toolset_of(record), session=journal) as rt:
        result = await rt.run_until_done(None)
    assert result.reason == "completed"
    assert RUNS == ["three"]  # c1 finished, c2 was interrupted: neither runs again
    outs = {
        i["call_id"]: i["output"] for i in rt.history if i.get("type") == "function_call_output"
    }
    assert outs["c1"] == "recorded one"
    assert "started, but the runtime stopped before it finished" in outs["c2"]
    assert outs["c3"] == "recorded three"
    # The model saw every call answered exactly once.
    sent = model.requests[0].input
    assert sorted(i["call_id"] for i in sent if i.get("type") == "function_call_output") == [
        "c1",
        "c2",
        "c3",
    ]


async def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    journal = tmp_path / "s.jsonl"
    journal.write_text(json.dumps({"item": message("a")}) + "\n" + '{"item": {"type": "mes')
    assert SessionStore(journal).load().items == [message("a")]


async def test_outputs_finished_before_a_crash_are_recovered_not_reported_interrupted(
    tmp_path: Path,
) -> None:
    RUNS.clear()
    journal = tmp_path / "s.jsonl"
    store = SessionStore(journal)
    # Crash mid-turn: c1 finished (its output saved the moment it existed), c2 was running.
    store.append([fcall("c1", "record", {"tag": "one"}), fcall("c2", "record", {"tag": "two"})])
    store.mark_started("c1")
    store.mark_started("c2")
    store.mark_finished({"type": "function_call_output", "call_id": "c1", "output": "recorded one"})
    store.close()

    model = ScriptedModel([[message("resumed")]])
    async with Runtime(model, toolset_of(record), session=journal) as rt:
        await rt.run_until_done(None)
    outs = {
        i["call_id"]: i["output"] for i in rt.history if i.get("type") == "function_call_output"
    }
    assert outs["c1"] == "recorded one"
    assert "started, but the runtime stopped" in outs["c2"]
    assert RUNS == []


async def test_run_journals_each_output_when_it_finishes(tmp_path: Path) -> None:
    journal = tmp_path / "s.jsonl"
    model = ScriptedModel([[fcall("c1", "record", {"tag": "x"})], [message("done")]])
    async with Runtime(model, toolset_of(record), session=journal) as rt:
        await rt.run_until_done("go")
    kinds = [next(iter(json.loads(line))) for line in journal.read_text().splitlines()]
    # started, then finished, then the output joins the history
    assert kinds.index("started") < kinds.index("finished") < len(kinds) - 2


def test_torn_line_is_cut_so_the_journal_stays_appendable(tmp_path: Path) -> None:
    journal = tmp_path / "s.jsonl"
    journal.write_text(json.dumps({"item": message("a")}) + "\n" + '{"item": {"ty')
    store = SessionStore(journal)
    assert store.load().items == [message("a")]
    store.append([message("b")])
    store.close()
    assert SessionStore(journal).load().items == [message("a"), message("b")]


async def test_resume_answers_pending_calls_in_call_order(tmp_path: Path) -> None:
    RUNS.clear()
    journal = tmp_path / "s.jsonl"
    store = SessionStore(journal)
    calls = [fcall(c, "record", {"tag": c}) for c in ("a", "b", "c")]
    store.append([{"type": "message", "role": "user", "content": "go"}, *calls])
    store.mark_started("a")  # started, never finished
    store.mark_started("b")
    store.mark_finished({"type": "function_call_output", "call_id": "b", "output": "recorded b"})
    store.close()  # c never started
    async with Runtime(ScriptedModel([[message("ok")]]), toolset_of(record), session=journal) as rt:
        await rt.run_until_done(None)
    outs = [i for i in rt.history if i.get("type") == "function_call_output"]
    assert [o["call_id"] for o in outs] == ["a", "b", "c"]
    assert "not run again" in outs[0]["output"] and outs[1]["output"] == "recorded b"
    assert RUNS == ["c"]


class _Recorder:
    """A model that records what each request sent, by previous_response_id."""

    name = "recorder"

    def __init__(self, turns: list[list[dict[str, object]]]) -> None:
        self.turns = turns
        self.sent: list[tuple[str | None, list[str]]] = []

    async def respond(self, request: object, *, on_text: object = None) -> object:
        from itemloop.runtime.model import ModelResponse

        self.sent.append(
            (request.previous_response_id, [str(i.get("type")) for i in request.input])  # type: ignore[attr-defined]
        )
        return ModelResponse(output=self.turns.pop(0), id=f"resp_{len(self.sent)}")

    async def compact(self, request: object) -> list[dict[str, object]]:
        return []

    async def aclose(self) -> None:
        pass


async def test_previous_response_id_resume_sends_the_outputs_the_server_never_saw(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "s.jsonl"
    first = _Recorder([[fcall("c1", "record", {"tag": "x"})]])
    async with Runtime(
        first,
        toolset_of(record),
        session=journal,
        previous_response_id=True,  # type: ignore[arg-type]
        max_turns=1,
    ) as rt:
        assert (await rt.run_until_done("go")).reason == "max_turns"
    second = _Recorder([[message("ok")]])
    async with Runtime(
        second, toolset_of(record), session=journal, previous_response_id=True
    ) as rt:  # type: ignore[arg-type]
        assert (await rt.run_until_done(None)).reason == "completed"
    assert second.sent == [("resp_1", ["function_call_output"])]


def test_a_non_record_line_is_a_clear_error(tmp_path: Path) -> None:
    from itemloop.runtime.session import SessionError

    journal = tmp_path / "s.jsonl"
    journal.write_text(json.dumps({"item": message("a")}) + "\n5\n")
    with pytest.raises(SessionError, match=r"s\.jsonl:2: not an itemloop session record"):
        SessionStore(journal).load()
