"""Approvals (issue 11, the pause machinery): a gate that asks pauses the run, the
request waits in the journal, a decision recorded from another process is read back
on resume — the approved command runs exactly once, the denied one is answered, a
sibling that already ran does not run again. Through a real sandbox and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import fcall, message

from itemloop.runtime.approvals import Approval, ApprovalRequest, GateResult
from itemloop.runtime.events import ApprovalDecided, ApprovalRequested, RunFinished
from itemloop.runtime.loop import Runtime
from itemloop.runtime.scripted import ScriptedModel
from itemloop.tools.config import SandboxConfig, ToolsetConfig
from itemloop.tools.items import Item
from itemloop.tools.toolset import Toolset

pytestmark = pytest.mark.anyio

RAN: list[str] = []


def record(note: str) -> str:
    RAN.append(note)
    return f"recorded {note}"


class ShellAsks:
    """Shell calls ask; a function named `forbidden` is denied; the rest is allowed."""

    def check(self, call: Item) -> GateResult:
        if call.get("type") == "shell_call":
            return GateResult("ask", "the test rule for shell")
        if call.get("name") == "forbidden":
            return GateResult("deny", "the test rule for forbidden", "never")
        return GateResult("allow", "the test default")


def shell(cid: str, command: str) -> Item:
    return {"type": "shell_call", "call_id": cid, "action": {"commands": [command]}}


def script() -> list[list[Item]]:
    return [
        [
            shell("s1", "echo one >> log"),
            shell("s2", "echo two >> log"),
            fcall("f1", "record", {"note": "sibling"}),
        ],
        [message("done")],
    ]


def runtime(workspace: Path, journal: Path, **kw: object) -> Runtime:
    config = ToolsetConfig(builtins=("shell",), sandbox=SandboxConfig(workspace=workspace))
    return Runtime(
        ScriptedModel(script()),
        Toolset(config, functions=[record]),
        session=journal,
        gate=ShellAsks(),
        **kw,  # type: ignore[arg-type]
    )


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "itemloop.runtime.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_paused_run_is_decided_from_another_process_and_resumed(tmp_path: Path) -> None:
    RAN.clear()
    journal = tmp_path / "s.jsonl"
    async with runtime(tmp_path, journal) as rt:
        events = [e async for e in rt.run("go")]
    final = events[-1]
    assert isinstance(final, RunFinished) and final.reason == "needs_approval"
    assert [r.call_id for r in final.pending] == ["s1", "s2"]
    assert final.pending[0].show == "$ echo one >> log"
    assert RAN == ["sibling"]  # the sibling that needs no approval ran
    assert not (tmp_path / "log").exists()  # neither command ran

    listed = cli("approvals", "--session", str(journal), "--json")
    assert [json.loads(line)["call_id"] for line in listed.stdout.splitlines()] == ["s1", "s2"]
    assert cli("approve", "--session", str(journal), "s1").returncode == 0
    denied = cli("deny", "--session", str(journal), "s2", "--reason", "not now")
    assert denied.returncode == 0, denied.stderr
    wrong = cli("approve", "--session", str(journal), "nope")
    assert wrong.returncode == 2 and "not waiting for a decision" in wrong.stderr

    async with runtime(tmp_path, journal) as rt:  # a new process would do the same
        final = await rt.run_until_done(None)
    assert final.reason == "completed", final
    assert (tmp_path / "log").read_text() == "one\n"  # approved: ran exactly once
    outs = {i["call_id"]: i["output"] for i in rt.history if i["type"].endswith("_output")}
    assert "denied by the user" in outs["s2"][0]["stderr"] and "not now" in outs["s2"][0]["stderr"]
    assert outs["f1"] == "recorded sibling" and RAN == ["sibling"]  # not run again


async def test_an_approver_decides_at_once_and_a_deny_rule_answers(tmp_path: Path) -> None:
    RAN.clear()
    asked: list[ApprovalRequest] = []

    async def approver(request: ApprovalRequest) -> Approval:
        asked.append(request)
        return Approval(request.call_id == "s1", by="the test approver", reason="only s1")

    model_turns = [
        [
            shell("s1", "echo one >> log"),
            shell("s2", "echo two >> log"),
            fcall("f", "forbidden", {}),
        ],
        [message("done")],
    ]
    config = ToolsetConfig(builtins=("shell",), sandbox=SandboxConfig(workspace=tmp_path))

    def forbidden() -> str:
        RAN.append("forbidden")
        return "ran"

    rt = Runtime(
        ScriptedModel(model_turns),
        Toolset(config, functions=[forbidden]),
        gate=ShellAsks(),
        approver=approver,
    )
    async with rt:
        events = [e async for e in rt.run("go")]
    assert isinstance(events[-1], RunFinished) and events[-1].reason == "completed"
    assert [r.call_id for r in asked] == ["s1", "s2"]
    seen = [
        e.request.call_id if isinstance(e, ApprovalRequested) else e.call_id
        for e in events
        if isinstance(e, ApprovalRequested | ApprovalDecided)
    ]
    assert seen == ["s1", "s1", "s2", "s2"]
    assert (tmp_path / "log").read_text() == "one\n"
    outs = {i["call_id"]: i["output"] for i in rt.history if i["type"].endswith("_output")}
    assert "denied by the test approver" in outs["s2"][0]["stderr"]
    assert "denied by the test rule for forbidden" in outs["f"] and "never" in outs["f"]
    assert RAN == []
