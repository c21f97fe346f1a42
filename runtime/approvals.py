"""Approvals: what the dispatcher's gate asks a person before a call runs.

A `Gate` (the policy, `--policy` / `--approval`) says of every call whether it
may run (`allow`), must not (`deny`), or needs someone to say so (`ask`). An
`ask` becomes an `ApprovalRequest`, which goes to the `Approver` the run was
given (a terminal prompt, a service's callback); with no approver, or one
that has no answer now, the call is *paused*: it gets no output, the run ends
with `RunFinished(reason="needs_approval")`, and the request waits in the
session journal. A decision recorded later — by `itemloop approve|deny`, by a
library call, in another process, after a restart — is read back on resume:
an approved call runs once, a denied one is answered with who denied it and
why, and nothing else runs twice.

A decision made once for a call (`Approval`) is final for that call id: the
dispatcher never asks about it again. An approval marked `always` also asks
the gate to `remember` it (`RememberingGate`): the policy gate adds, for the
rest of the session, an allow rule for exactly what asked (each command's
argv, the path, the action, the tool), so the same command inside another
script, or the same path in another patch, runs without asking again.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from itemloop.tools.items import Item, call_id_of, call_name

if TYPE_CHECKING:
    from itemloop.tools.policy import Grants

Verdict = Literal["allow", "ask", "deny"]


@dataclass(frozen=True, slots=True)
class GateResult:
    """What the gate says of one call, and who said it (for messages and the journal)."""

    verdict: Verdict
    by: str
    """E.g. `rule 3 of policy.toml (rm)`, or `the default for shell commands`."""
    reason: str | None = None
    grants: Grants | None = None
    """Sandbox permissions the deciding rule grants to this call (network, writable paths)."""


class Gate(Protocol):
    def check(self, call: Item) -> GateResult: ...


@runtime_checkable
class RememberingGate(Gate, Protocol):
    def remember(self, call: Item) -> list[str]:
        """Allow, for the rest of the session, what made `call` ask; the rules added
        (described for a person), or [] when no rule can name it all."""
        ...


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A call waiting for a person's decision."""

    call_id: str
    call_type: str
    name: str
    show: str
    """Exactly what will run: the command, the patch, the action, the tool and its arguments."""
    asked_by: str
    """The rule (or default) that said `ask`."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApprovalRequest:
        return cls(**{k: str(data.get(k, "")) for k in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class Approval:
    """A decision on one call: by a person, a service, or `itemloop approve|deny`."""

    approve: bool
    by: str = "the user"
    reason: str | None = None
    always: bool = False
    """Approved, and what asked is allowed for the rest of the session (the gate's
    `remember`)."""

    def to_json(self, call_id: str) -> dict[str, Any]:
        return {"call_id": call_id, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Approval:
        reason = data.get("reason")
        return cls(
            approve=data.get("approve") is True,
            by=str(data.get("by") or "the user"),
            reason=str(reason) if reason is not None else None,
            always=data.get("always") is True,
        )


Approver = Callable[[ApprovalRequest], Awaitable[Approval | None]]
"""Asked for each `ask`; returns a decision, or None to pause the run instead. It may
raise `AbortRun` to stop the run (its calls are answered "cancelled")."""


class AbortRun(Exception):
    """The person (or the approver) chose to abort the run at an approval prompt."""


def request_for(call: Item, result: GateResult) -> ApprovalRequest:
    return ApprovalRequest(
        call_id=call_id_of(call),
        call_type=str(call.get("type", "")),
        name=call_name(call),
        show=show_call(call),
        asked_by=result.by,
    )


def show_call(call: Item) -> str:
    """What a call will do, as a person should see it before saying yes."""
    t = call.get("type")
    action = call.get("action")
    if t == "shell_call" and isinstance(action, dict):
        commands = action.get("commands")
        if isinstance(commands, list):
            return "\n".join(f"$ {c}" for c in commands)
    if t == "local_shell_call" and isinstance(action, dict):
        command = action.get("command")
        if isinstance(command, list):
            import shlex

            return "$ " + shlex.join(str(a) for a in command)
    if t == "apply_patch_call":
        op = call.get("operation")
        if isinstance(op, dict):
            head = f"{op.get('type')} {op.get('path')}"
            diff = op.get("diff")
            return f"{head}\n{diff}" if isinstance(diff, str) and diff else head
    if t == "computer_call":
        actions = call.get("actions") or [call.get("action")]
        return "\n".join(json.dumps(a, ensure_ascii=False) for a in actions if a is not None)
    if t in ("function_call", "mcp_approval_request"):
        return f"{call.get('name')}({call.get('arguments', '')})"
    if t == "custom_tool_call":
        return f"{call.get('name')}: {call.get('input', '')}"
    return json.dumps(call, ensure_ascii=False)


def denial_text(call: Item, by: str, reason: str | None) -> str:
    """The output a denied call gets: what was denied, by whom, and why."""
    text = f"error: this {call_name(call)} call was denied by {by} and did not run"
    if reason:
        text += f": {reason}"
    return text + ". Do not retry it as it is; ask the user or do something else."


def decide_in_session(path: Path, call_ids: Sequence[str] | None, decision: Approval) -> list[str]:
    """Record `decision` in the journal at `path` for the waiting calls `call_ids`
    (None: every waiting call) — from any process, while the run is paused.
    Returns the call ids decided; raises `ValueError` naming ids that do not wait."""
    from .session import SessionStore

    store = SessionStore(path)
    waiting = {str(r.get("call_id", "")): r for r in store.load().waiting()}
    ids = list(waiting) if call_ids is None else list(call_ids)
    unknown = [i for i in ids if i not in waiting]
    if unknown:
        listing = ", ".join(str(w) for w in waiting) or "none"
        raise ValueError(
            f"not waiting for a decision in {path}: {', '.join(unknown)} (waiting: {listing})"
        )
    try:
        for cid in ids:
            store.record_decision(decision.to_json(cid))
    finally:
        store.close()
    return ids
