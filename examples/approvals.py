"""The user decides what runs: a gate asks before each shell command, an approver answers.

The gate here is a few lines of Python (a policy file does the same with
`--policy`): `ls` runs, `rm` is denied, anything else asks. The approver stands
for a person or a service: it approves what it is shown unless it deletes.
Without an approver the run would pause (`needs_approval`) and wait in its
journal for `itemloop approve|deny`. Offline on a scripted model by default.

    python examples/approvals.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio

from itemloop.runtime import Runtime, SandboxConfig, Toolset, ToolsetConfig, choose_model
from itemloop.runtime.approvals import Approval, ApprovalRequest, GateResult
from itemloop.runtime.events import ApprovalDecided, CallFinished, RunFinished
from itemloop.tools.items import Item


class ShellGate:
    def check(self, call: Item) -> GateResult:
        commands = (call.get("action") or {}).get("commands") or []
        if commands and all(c.split()[:1] == ["ls"] for c in commands):
            return GateResult("allow", "the example's rule: ls")
        if any(c.split()[:1] == ["rm"] for c in commands):
            return GateResult("deny", "the example's rule: rm", "nothing is deleted here")
        return GateResult("ask", "the example's default")


async def approver(request: ApprovalRequest) -> Approval:
    print(f"asked: {request.show}")
    return Approval(approve="mv " not in request.show, by="the example's approver")


def shell(cid: str, command: str) -> Item:
    return {"type": "shell_call", "call_id": cid, "action": {"commands": [command]}}


SCRIPT = [
    [shell("c1", "ls"), shell("c2", "echo hello > greeting.txt"), shell("c3", "rm -rf .")],
    [shell("c4", "mv greeting.txt hello.txt")],
    [
        {
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "Wrote greeting.txt; rm and mv were refused."}
            ],
        }
    ],
]


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = ToolsetConfig(builtins=("shell",), sandbox=SandboxConfig(workspace=Path(tmp)))
        rt = Runtime(choose_model(SCRIPT), Toolset(config), gate=ShellGate(), approver=approver)
        async with rt:
            async for event in rt.run("Write a greeting, then tidy up."):
                if isinstance(event, ApprovalDecided):
                    print(
                        f"{event.call_id}: {'approved' if event.approve else 'denied'} by {event.by}"
                    )
                elif isinstance(event, CallFinished):
                    print(f"{event.call_id} {event.name}: {event.summary}")
                elif isinstance(event, RunFinished):
                    print(f"answer: {event.final_text}")
        names = sorted([p.name async for p in anyio.Path(tmp).iterdir()])
        print("workspace:", ", ".join(names))


if __name__ == "__main__":
    anyio.run(main)
