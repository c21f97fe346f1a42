"""Item builders shared by the compaction tests."""

from __future__ import annotations

import json
from typing import Any

Item = dict[str, Any]


def user(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant(text: str, id: str = "msg_a") -> Item:
    return {
        "type": "message",
        "id": id,
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def reasoning(n: int) -> Item:
    return {
        "type": "reasoning",
        "id": f"rs_{n}",
        "summary": [{"type": "summary_text", "text": f"plan step {n}"}],
        "encrypted_content": "gAAAA" + "x" * 40,
    }


def fcall(call_id: str, name: str = "add", args: Any = None) -> Item:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": json.dumps(args if args is not None else {"a": 1, "b": 2}),
        "status": "completed",
    }


def fout(call_id: str, output: str = "3") -> Item:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def shell_pair(call_id: str, stdout: str) -> list[Item]:
    return [
        {
            "type": "shell_call",
            "id": f"sh_{call_id}",
            "call_id": call_id,
            "action": {"commands": ["ls -la"], "timeout_ms": 1000, "max_output_length": 4096},
            "status": "completed",
        },
        {
            "type": "shell_call_output",
            "call_id": call_id,
            "output": [
                {"stdout": stdout, "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}
            ],
        },
    ]


def local_shell_pair(call_id: str) -> list[Item]:
    return [
        {
            "type": "local_shell_call",
            "id": f"lsh_{call_id}",
            "call_id": call_id,
            "action": {"type": "exec", "command": ["echo", "hi"], "env": {}},
            "status": "completed",
        },
        {"type": "local_shell_call_output", "id": call_id, "output": '{"stdout": "hi\\n"}'},
    ]


def mcp_pair(n: int) -> list[Item]:
    return [
        {
            "type": "mcp_approval_request",
            "id": f"mcpr_{n}",
            "server_label": "docs",
            "name": "search",
            "arguments": "{}",
        },
        {"type": "mcp_approval_response", "approval_request_id": f"mcpr_{n}", "approve": True},
    ]


def compaction_item(n: int = 1) -> Item:
    return {"type": "compaction", "id": f"cmp_{n}", "encrypted_content": f"gAAAA-compacted-{n}=="}


def long_history(n_items: int) -> list[Item]:
    """A long agent run: a user message, then turns of reasoning, parallel calls of
    several types and their outputs, now and then a new user message."""
    items: list[Item] = [user("Build the parser and make the tests pass.")]
    turn = 0
    while len(items) < n_items:
        turn += 1
        if turn % 25 == 0:
            items.append(user(f"Status check {turn}: keep going, mind the edge cases."))
        kind = turn % 4
        if kind == 0:
            a, b = f"c{turn}a", f"c{turn}b"
            items += [reasoning(turn), fcall(a), fcall(b), fout(a, "ok " * 20), fout(b, "fine")]
        elif kind == 1:
            items += [reasoning(turn), *shell_pair(f"s{turn}", f"file_{turn}.py\n" * 15)]
        elif kind == 2:
            items += [*local_shell_pair(f"l{turn}"), assistant(f"Step {turn} done.", f"msg_{turn}")]
        else:
            items += [*mcp_pair(turn), fcall(f"c{turn}"), fout(f"c{turn}", "x" * 80)]
    return items
