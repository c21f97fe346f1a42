"""`PolicyGate`: the dispatcher's gate when a run has a policy (`--policy`, `--approval`).

Each call becomes a `tools.policy.PolicyRequest` (commands after shell
parsing, patch paths, computer actions, tools by name) and the `Policy`
decides: allow, ask or deny, and which rule said so. Grants a rule attaches
(`network = true`, extra writable paths) travel with the allow, and the
toolset runs that call in a second sandbox that has them (`Toolset.granted`).

The policy file is read once, at start, and refused when it lies where the
sandbox can write (the workspace, `--writable` paths): the agent cannot
loosen its own rules. A client `tool_search_call` runs nothing and is never
gated. A person's "always" (`remember`) puts allow rules for exactly what
asked before the policy's own, for the rest of the session. `--approval never` with no rules allows everything without building
requests, so a run without a policy pays nothing for the gate.

Which preset applies: `--approval`, else the policy file's, else `never`
inside `local`/`docker` and `untrusted` on `--sandbox host`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from itemloop.tools.config import ToolsetConfig
from itemloop.tools.items import Item, kind_of
from itemloop.tools.toolset import Toolset

from .approvals import GateResult

if TYPE_CHECKING:
    from itemloop.tools.policy import Decision, Policy


def default_approval(config: ToolsetConfig) -> str:
    return "untrusted" if config.sandbox.kind == "host" else "never"


def load_policy(config: ToolsetConfig) -> Policy:
    """The policy `config` names (`policy`, `approval`), refusing a file the sandbox can write."""
    from itemloop.tools.policy import Policy

    writable = [
        config.sandbox.workspace.resolve(),
        *map(Path, config.sandbox.options.writable_paths),
    ]
    if config.policy is not None:
        return Policy.load(config.policy, writable_roots=writable, approval=config.approval)
    return Policy(approval=config.approval or default_approval(config), source="--approval")  # type: ignore[arg-type]


class PolicyGate:
    def __init__(self, policy: Policy, toolset: Toolset) -> None:
        self.policy = policy
        self.toolset = toolset
        self._mcp: dict[str, dict[str, tuple[str, str]]] | None = None

    def check(self, call: Item) -> GateResult:
        kind = kind_of(call)
        if kind is None or kind.call_type == "tool_search_call" or self.policy.allows_everything:
            return GateResult("allow", f"the {self.policy.approval!r} preset")
        decision = self._decide(call)
        return GateResult(
            decision.action.value,  # type: ignore[arg-type]
            decision.by,
            decision.reason or None,
            grants=decision.grants or None,
        )

    def remember(self, call: Item) -> list[str]:
        """A person said "always": allow each part of `call` that asks, for the rest of
        the session (`always_rule`: the exact argv, path, action or tool). Nothing is
        added unless every asking part can be named (an unparsable command cannot)."""
        from itemloop.tools.policy import Action, always_rule

        decision = self._decide(call)
        asking = [d for d in (decision.parts or (decision,)) if d.action is Action.ASK]
        rules = [always_rule(d) for d in asking]
        named = [r for r in rules if r is not None]
        if not named or len(named) < len(rules):
            return []
        self.policy = self.policy.with_rules(named)
        return [r.pattern for r in named]

    def _decide(self, call: Item) -> Decision:
        from itemloop.tools.policy import request_for

        namespace = str(call.get("namespace") or "")
        sandbox = self.toolset.sandbox
        request = request_for(
            call,
            mcp_tools=self._mcp_tools().get(namespace),
            workspace=sandbox.workspace_mount if sandbox is not None else None,
        )
        return self.policy.decide(request)

    def _mcp_tools(self) -> dict[str, dict[str, tuple[str, str]]]:
        """Per namespace ('' for SERVER__TOOL names): model-facing name -> (server, tool)."""
        if self._mcp is None:
            self._mcp = {}
            mcp = self.toolset.mcp
            if mcp is not None:
                for (namespace, name), (conn, tool) in mcp.routes.items():
                    self._mcp.setdefault(namespace, {})[name] = (conn.server.name, tool)
        return self._mcp
