"""The approval presets: what a policy does where none of its rules match.

| preset | defaults (every kind) | built in | what cannot be parsed |
| --- | --- | --- | --- |
| `never` | allow | — | allow |
| `untrusted` | ask | known read-only commands (`readonly.py`) and the computer's reads (`screenshot`, `wait`) are allowed | ask |
| `on-request` | ask | — | ask |

`never` is today's behaviour: everything runs, bounded by the sandbox; the
policy's own rules still apply (a `deny` rule denies). `untrusted` runs only
what reads; `on-request` runs what the policy's allow rules name and asks
about the rest. A policy's `[defaults]` override its preset's, kind by kind
(and a default more severe than the last column applies there too).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal, get_args


class Action(StrEnum):
    """What a rule, a default or a decision says about a call."""

    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def past(self) -> str:
        """allowed, asked, denied: for messages ("denied by rule 3 of policy.toml")."""
        return _PAST[self]


_SEVERITY: Final = {Action.ALLOW: 0, Action.ASK: 1, Action.DENY: 2}
_PAST: Final = {Action.ALLOW: "allowed", Action.ASK: "asked", Action.DENY: "denied"}

Kind = Literal["command", "patch", "computer", "function", "custom", "mcp", "mcp_approval"]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)
"""What a rule can be about; one default each. Also the rule's key in TOML."""
KIND_LABELS: Final[dict[Kind, str]] = {
    "command": "shell commands",
    "patch": "file edits",
    "computer": "computer actions",
    "function": "function tools",
    "custom": "custom tools",
    "mcp": "MCP tools",
    "mcp_approval": "hosted MCP approval requests",
}
"""How messages name a kind: "by the default for shell commands"."""

ApprovalMode = Literal["never", "untrusted", "on-request"]
APPROVALS: Final[tuple[ApprovalMode, ...]] = get_args(ApprovalMode)

READ_ACTIONS: Final = frozenset({"screenshot", "wait"})
"""Computer actions that only look: allowed by `untrusted`."""


@dataclass(frozen=True, slots=True)
class Preset:
    name: ApprovalMode
    defaults: dict[str, Action]
    """By kind (`KINDS`)."""
    unparsable: Action
    """The answer for a command that cannot be parsed, or a malformed call."""
    reads: bool
    """Allow known read-only commands and the computer's reads."""


def preset(name: str) -> Preset:
    """The preset named `name`; ValueError naming the choices otherwise."""
    if name == "never":
        return Preset("never", _every_kind(Action.ALLOW), Action.ALLOW, reads=False)
    if name == "untrusted":
        return Preset("untrusted", _every_kind(Action.ASK), Action.ASK, reads=True)
    if name == "on-request":
        return Preset("on-request", _every_kind(Action.ASK), Action.ASK, reads=False)
    raise ValueError(f"unknown approval preset {name!r}; expected one of: {', '.join(APPROVALS)}")


def _every_kind(action: Action) -> dict[str, Action]:
    return {k: action for k in KINDS}
