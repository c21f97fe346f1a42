"""Dispatch: the call items of one turn to their executors, one output per call.

Every call passes through here and nowhere else (DESIGN.md, contract 6):
`_admit` before its executor runs (the gate: the policy allows, denies or
asks, see `approvals.py`; a call that asks with nobody to answer is paused)
then the call is journaled as started; `_settle` after (the output is
journaled the moment it exists, after the caps of `tools/output_cap.py`).

Calls of concurrent executors (function and custom tools) run at once, at
most `max_concurrency` at a time; calls of sequential executors (anything
touching the workspace: shell, apply_patch, ...) run one after another in call
order, as one lane beside them. Outputs come back in call order. Whatever
happens — unknown tool, an executor that raises, cancellation — each call gets
exactly one output (DESIGN.md, contract 2).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from itemloop.tools.base import ExecResult
from itemloop.tools.items import Item, call_id_of, call_name, error_output
from itemloop.tools.output_cap import cap_tool_output
from itemloop.tools.toolset import Toolset

from .approvals import (
    AbortRun,
    Approval,
    ApprovalRequest,
    Approver,
    Gate,
    RememberingGate,
    denial_text,
    request_for,
)

if TYPE_CHECKING:
    from itemloop.tools.policy import Grants

from .events import (
    ApprovalDecided,
    ApprovalRequested,
    CallFinished,
    CallStarted,
    Event,
    Notice,
)

Emit = Callable[[Event], None]

CANCELLED = "error: the run was cancelled before this call finished"


class CallJournal(Protocol):
    """Where calls are recorded as they start and finish (`session.SessionStore`)."""

    def mark_started(self, call_id: str) -> None: ...

    def mark_finished(self, output: Item) -> None: ...

    def record_request(self, request: dict[str, Any]) -> None: ...

    def record_decision(self, decision: dict[str, Any]) -> None: ...


class _Paused:
    """The call waits for a decision: no output now."""


PAUSED = _Paused()


@dataclass(frozen=True, slots=True)
class _Admitted:
    """The call may run, with these sandbox grants (None: none)."""

    grants: Grants | None = None


@dataclass(slots=True)
class _Batch:
    """One turn's calls and where their outputs go."""

    calls: Sequence[Item]
    outputs: list[Item | None]
    emit: Emit
    notes: list[Item]
    paused: set[int] = field(default_factory=set)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    aborted: AbortRun | None = None
    """Set when a person aborted the run at an approval prompt."""


class Dispatcher:
    def __init__(
        self,
        toolset: Toolset,
        *,
        journal: CallJournal | None = None,
        max_concurrency: int | None = None,
        gate: Gate | None = None,
        approver: Approver | None = None,
    ) -> None:
        self.toolset = toolset
        self.journal = journal
        self.gate = gate
        self.approver = approver
        self.decided: dict[str, Approval] = {}
        """Decisions on calls that asked, by call id (the journal's, on resume)."""
        self.waiting: dict[str, ApprovalRequest] = {}
        """Calls paused for a decision, by call id."""
        self.limiter = anyio.CapacityLimiter(max_concurrency or toolset.config.max_concurrency)

    async def run(
        self,
        calls: Sequence[Item],
        emit: Emit,
        outputs: list[Item | None] | None = None,
        notes: list[Item] | None = None,
    ) -> list[Item]:
        """Execute `calls`; return their outputs in call order.

        `outputs`, when given, is filled in place, so a caller that is
        cancelled still holds one output per call. A call paused for a decision
        has no output (its slot stays None) and is in `waiting`. `notes`, when
        given, receives the items executors want after the outputs (`ExecResult.notes`).
        """
        if outputs is None:
            outputs = [None] * len(calls)
        batch = _Batch(calls, outputs, emit, [] if notes is None else notes)
        try:
            with batch.scope:
                if len(calls) == 1:  # the common case: no task group needed
                    await self._one(batch, 0)
                else:
                    lane: list[int] = []
                    async with anyio.create_task_group() as tg:
                        for i, call in enumerate(calls):
                            ex = self.toolset.executor_for(call)
                            if ex is not None and ex.sequential:
                                lane.append(i)
                            else:
                                tg.start_soon(self._one_limited, batch, i)
                        if lane:
                            tg.start_soon(self._lane, batch, lane)
        finally:
            # Cancelled, or an executor escaped: whatever is unanswered still gets its one output.
            for i, call in enumerate(calls):
                if outputs[i] is None and i not in batch.paused:
                    outputs[i] = error_output(call, CANCELLED)
        if batch.aborted is not None:
            raise batch.aborted
        return [o for o in outputs if o is not None]

    async def _lane(self, batch: _Batch, indexes: list[int]) -> None:
        for i in indexes:
            await self._one(batch, i)

    async def _one_limited(self, batch: _Batch, i: int) -> None:
        async with self.limiter:
            await self._one(batch, i)

    async def _one(self, batch: _Batch, i: int) -> None:
        call = batch.calls[i]
        ctype = str(call.get("type"))
        cid = call_id_of(call)
        name = call_name(call)
        try:
            admitted = await self._admit(call, batch.emit)
        except AbortRun as e:
            batch.aborted = e
            batch.scope.cancel()  # the calls still running are answered "cancelled"
            return
        if isinstance(admitted, _Paused):
            batch.paused.add(i)
            return
        batch.emit(CallStarted(call_id=cid, item_type=ctype, name=name))
        t0 = time.perf_counter()
        if isinstance(admitted, str):  # denied: answered without running
            result = ExecResult(error_output(call, admitted), ok=False, summary="denied")
        else:
            if self.journal is not None:
                # On disk as started before it runs, so a crash never re-runs it silently.
                self.journal.mark_started(cid)
            result = await self._execute(call, admitted.grants)
        result = self._settle(result)
        batch.outputs[i] = result.output
        batch.notes.extend(result.notes)
        batch.emit(
            CallFinished(
                call_id=cid,
                item_type=ctype,
                name=name,
                ok=result.ok,
                summary=result.summary,
                duration_s=time.perf_counter() - t0,
                output=result.output,
            )
        )

    async def _admit(self, call: Item, emit: Emit) -> str | _Paused | _Admitted:
        """Before a call runs, the gate: admitted (with its grants), the denial text, or
        `PAUSED`."""
        cid = call_id_of(call)
        decision = self.decided.get(cid)
        grants = None
        if decision is None and self.gate is not None:
            checked = self.gate.check(call)
            grants = checked.grants
            if checked.verdict == "deny":
                return denial_text(call, checked.by, checked.reason)
            if checked.verdict == "ask":
                request = request_for(call, checked)
                emit(ApprovalRequested(request))
                if self.journal is not None:
                    self.journal.record_request(request.to_json())
                decision = await self.approver(request) if self.approver is not None else None
                if decision is None:
                    self.waiting[cid] = request
                    return PAUSED
                self.decide(cid, decision, emit)
        if decision is not None and decision.approve and decision.always:
            self._remember(call, emit)
        if decision is not None and not decision.approve:
            return denial_text(call, decision.by, decision.reason)
        if decision is not None and grants is None and self.gate is not None:
            grants = self.gate.check(call).grants  # approved later: the rule's grants still hold
        return _Admitted(grants)

    def _remember(self, call: Item, emit: Emit) -> None:
        """An "always" (at the prompt, or `itemloop approve --always` before a resume):
        the gate allows what asked for the rest of the run."""
        if isinstance(self.gate, RememberingGate):
            for rule in self.gate.remember(call):
                emit(Notice(f"rule added for this session: allow {rule}"))

    def decide(self, call_id: str, decision: Approval, emit: Emit | None = None) -> None:
        """Record a decision on a call that asked (journaled; the first one stands)."""
        if call_id in self.decided:
            return
        self.decided[call_id] = decision
        self.waiting.pop(call_id, None)
        if self.journal is not None:
            self.journal.record_decision(decision.to_json(call_id))
        if emit is not None:
            emit(ApprovalDecided(call_id, decision.approve, decision.by, decision.reason))

    def _settle(self, result: ExecResult) -> ExecResult:
        """After a call ran: its output within the caps, and on disk the moment it exists."""
        capped = cap_tool_output(result.output, self.toolset.config.output_limit)
        if capped is not result.output:
            result = dataclasses.replace(result, output=capped)
        if self.journal is not None:
            self.journal.mark_finished(result.output)
        return result

    async def _execute(self, call: Item, grants: Grants | None = None) -> ExecResult:
        ex = await self.toolset.granted(call, grants) if grants else self.toolset.executor_for(call)
        if ex is None:
            msg = self.toolset.unknown_tool_message(call)
            return ExecResult(output=error_output(call, msg), ok=False, summary=msg)
        try:
            return await ex.execute(call)
        except Exception as e:
            # The executor's own bug: the model still gets an answer, and the person a clue.
            msg = (
                f"error: internal error in the {call.get('type')} executor: {type(e).__name__}: {e}"
            )
            return ExecResult(output=error_output(call, msg), ok=False, summary=msg)
