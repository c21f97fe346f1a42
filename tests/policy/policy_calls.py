"""Call items of every executed kind, as the model sends them, for the policy tests."""

from __future__ import annotations

import json
from typing import Any

from itemloop.tools.items import Item


def shell(*commands: str) -> Item:
    return {"type": "shell_call", "call_id": "call_sh", "action": {"commands": list(commands)}}


def local_shell(*argv: str, env: dict[str, str] | None = None, cwd: str | None = None) -> Item:
    action: dict[str, Any] = {"type": "exec", "command": list(argv), "env": env or {}}
    if cwd is not None:
        action["working_directory"] = cwd
    return {"type": "local_shell_call", "id": "ls_1", "call_id": "call_ls", "action": action}


def patch(op: str, path: str) -> Item:
    operation: dict[str, Any] = {"type": op, "path": path}
    if op != "delete_file":
        operation["diff"] = "+x\n"
    return {"type": "apply_patch_call", "call_id": "call_ap", "operation": operation}


def computer(*types: str) -> Item:
    actions = [{"type": t, "x": 1, "y": 2} if t == "click" else {"type": t} for t in types]
    if len(actions) == 1:
        return {"type": "computer_call", "call_id": "call_cu", "action": actions[0]}
    return {"type": "computer_call", "call_id": "call_cu", "actions": actions}


def function(name: str, **arguments: Any) -> Item:
    return {
        "type": "function_call",
        "call_id": "call_fn",
        "name": name,
        "arguments": json.dumps(arguments),
    }


def custom(name: str, text: str = "") -> Item:
    return {"type": "custom_tool_call", "call_id": "call_ct", "name": name, "input": text}


def mcp_approval(server: str, tool: str) -> Item:
    return {
        "type": "mcp_approval_request",
        "id": "mcpr_1",
        "server_label": server,
        "name": tool,
        "arguments": "{}",
    }
