"""Asking at the terminal: the `Approver` of `itemloop run` when a person is there.

Each request is shown exactly as it will run — the commands, the patch as a
coloured diff, the computer actions, the tool and its arguments — and the
person answers:

    y  yes, run it
    n  no (then an optional reason, which the model reads)
    a  always: yes, and for the rest of this session what asked is allowed:
       the policy gets a rule for exactly it (each command's argv, the path,
       the action, the tool; the rule is shown), so the same command runs
       unasked inside another script too; a request no rule can name (an
       unparsable command) is remembered as it is
    q  abort the run (the call and those after it are answered "cancelled")

Anything else asks again. The prompt goes to stderr and the answer is read
from stdin in a worker thread, so the event loop (and the calls already
running) go on meanwhile. Used only when stdin and stderr are terminals;
otherwise the run pauses and says how to decide (`approvals.py`).
"""

from __future__ import annotations

import sys
from typing import TextIO

import anyio.to_thread

from .approvals import AbortRun, Approval, ApprovalRequest

_RED, _GREEN, _CYAN, _BOLD, _RESET = "\x1b[31m", "\x1b[32m", "\x1b[36m", "\x1b[1m", "\x1b[0m"


class TerminalApprover:
    def __init__(self, stdin: TextIO = sys.stdin, stderr: TextIO = sys.stderr) -> None:
        self.stdin = stdin
        self.stderr = stderr
        self.always: set[tuple[str, str]] = set()
        """(call type, what runs) of requests the person said "always" to."""

    async def __call__(self, request: ApprovalRequest) -> Approval | None:
        key = (request.call_type, request.show)
        if key in self.always:
            return Approval(True, by="the user (always, this session)")
        self._say(
            f"\n{_BOLD}? {request.name} asks for approval{_RESET} ({request.asked_by})\n"
            f"{_colour(request)}\n"
        )
        while True:
            answer = (await self._ask("[y]es  [n]o  [a]lways  [q]uit the run > ")).strip().lower()
            if answer in ("y", "yes"):
                return Approval(True, by="the user")
            if answer in ("n", "no"):
                reason = (await self._ask("reason for the model (optional) > ")).strip()
                return Approval(False, by="the user", reason=reason or None)
            if answer in ("a", "always"):
                self.always.add(key)
                return Approval(True, by="the user (always, this session)", always=True)
            if answer in ("q", "quit", "abort"):
                raise AbortRun("the run was aborted at an approval prompt")

    async def _ask(self, prompt: str) -> str:
        self._say(prompt)
        line = await anyio.to_thread.run_sync(self.stdin.readline, abandon_on_cancel=True)
        if not line:  # end of input: nobody can answer
            raise AbortRun("the terminal closed at an approval prompt")
        return line

    def _say(self, text: str) -> None:
        self.stderr.write(text)
        self.stderr.flush()


def _colour(request: ApprovalRequest) -> str:
    if request.call_type != "apply_patch_call":
        return f"{_CYAN}{request.show}{_RESET}"
    lines = []
    for line in request.show.splitlines():
        if line.startswith("+"):
            lines.append(f"{_GREEN}{line}{_RESET}")
        elif line.startswith("-"):
            lines.append(f"{_RED}{line}{_RESET}")
        else:
            lines.append(line)
    return "\n".join(lines)
