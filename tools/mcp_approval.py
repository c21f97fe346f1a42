"""Answers `mcp_approval_request` items (a hosted MCP server asks before a tool runs).

Denied unless the user's policy approves: a runtime that silently approved
remote tool calls would be a surprise.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import ExecResult
from .items import Item

ApprovalPolicy = Callable[[Item], bool]


def approve_servers(labels: set[str] | None) -> ApprovalPolicy:
    """Approve every request from the named servers (`None`: from any server)."""
    return lambda req: labels is None or str(req.get("server_label")) in labels


class McpApprovalExecutor:
    item_types = ("mcp_approval_request",)
    sequential = False

    def __init__(self, policy: ApprovalPolicy | None = None) -> None:
        self.policy = policy

    def definitions(self) -> list[Item]:
        return []  # hosted `mcp` tool definitions are the user's, passed through as-is

    async def execute(self, call: Item) -> ExecResult:
        server = call.get("server_label", "?")
        tool = call.get("name", "?")
        approved = self.policy is not None and self.policy(call)
        out: Item = {
            "type": "mcp_approval_response",
            "approval_request_id": str(call.get("id", "")),
            "approve": approved,
        }
        if not approved:
            out["reason"] = (
                f"the user has not approved calls to MCP server {server!r}; "
                "itemloop approves them only with --approve-mcp"
            )
        return ExecResult(
            output=out,
            ok=approved,
            summary=f"{server}.{tool}: {'approved' if approved else 'denied'}",
        )
