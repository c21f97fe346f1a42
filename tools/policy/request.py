"""`PolicyRequest`: what a policy decision is about, built from a call item.

    request = request_for(call)                          # any executed call kind
    request = request_for(call, mcp_tools={"files__read": ("files", "read")},
                          domain="example.com", workspace="/workspace")

A call becomes one or more *subjects*, each decided on its own (the call is
allowed only if every subject is):

| call | subjects |
| --- | --- |
| `shell_call` | a `CommandSubject` per command string, parsed (`shell.parse_script`) |
| `local_shell_call` | one `CommandSubject`: the argv as given (`bash -c SCRIPT` parsed), `env` as assignments |
| `apply_patch_call` | a `PatchSubject` per operation: its type and normalised path |
| `computer_call` | a `ComputerSubject` per action (`action` or batched `actions`): its type, and the page's domain when the caller knows it (browser) |
| `function_call` | a `ToolSubject` of kind `function`, or of kind `mcp` (server, tool) when `mcp_tools` names it |
| `custom_tool_call` | a `ToolSubject` of kind `custom` |
| `mcp_approval_request` | an `McpApprovalSubject`: server label and tool |

A call whose fields are malformed (no `action`, a non-string command, an
unknown operation) becomes a `MalformedSubject`, which the policy asks about
like an unparsable command: the executor will refuse the call anyway, and
the policy must not guess what it would do.

Paths. Patch paths and shell write targets are normalised (`./a/../b` ->
`b`); an absolute path under `workspace` (the workspace as commands see it)
is made relative, so `/workspace/.git/config` meets the rules for
`.git/**`. Symlinks are not resolved here: the policy sees the path as
written (a caller that can resolve it inside the workspace may pass the
result as the path).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from itemloop.tools.items import Item, call_id_of, kind_of

from .shell import Script, Write, normalize_path, parse_argv, parse_script

MAX_SHOWN_ARGUMENTS = 2_000
"""Characters of a tool's arguments kept for display."""


@dataclass(frozen=True, slots=True)
class CommandSubject:
    """One command string of a `shell_call`, or the argv of a `local_shell_call`."""

    script: Script
    kind: Literal["command"] = "command"

    def __str__(self) -> str:
        return self.script.source


@dataclass(frozen=True, slots=True)
class PatchSubject:
    """One apply_patch operation, or a shell redirection that writes a file."""

    operation: str
    """create_file, update_file, delete_file (apply_patch), or redirect (a shell `>`)."""
    path: str
    """Normalised, relative to the workspace (absolute when outside it)."""
    kind: Literal["patch"] = "patch"

    def __str__(self) -> str:
        return f"{self.operation} {self.path}"


@dataclass(frozen=True, slots=True)
class ComputerSubject:
    """One computer action."""

    action: str
    domain: str | None = None
    """The browser page's domain (lower case), when known."""
    detail: str = ""
    """The action as JSON, for display."""
    kind: Literal["computer"] = "computer"

    def __str__(self) -> str:
        return f"{self.action} on {self.domain}" if self.domain else self.action


@dataclass(frozen=True, slots=True)
class ToolSubject:
    """A call of a function, custom or MCP tool."""

    kind: Literal["function", "custom", "mcp"]
    name: str
    """The name the model called (for MCP, the toolset's `SERVER__TOOL`)."""
    server: str = ""
    """The MCP server (kind mcp)."""
    tool: str = ""
    """The tool's name on its MCP server (kind mcp)."""
    arguments: str = ""
    """The arguments as sent, cut to `MAX_SHOWN_ARGUMENTS`, for display."""

    def __str__(self) -> str:
        return f"{self.server}/{self.tool}" if self.kind == "mcp" else self.name


@dataclass(frozen=True, slots=True)
class McpApprovalSubject:
    """A hosted MCP server asking to run one of its tools."""

    server: str
    tool: str
    arguments: str = ""
    kind: Literal["mcp_approval"] = "mcp_approval"

    def __str__(self) -> str:
        return f"{self.server}/{self.tool}"


@dataclass(frozen=True, slots=True)
class MalformedSubject:
    """A call the policy cannot read; asked about, never allowed by a rule."""

    error: str
    kind: Literal["malformed"] = "malformed"

    def __str__(self) -> str:
        return f"malformed call: {self.error}"


Subject = (
    CommandSubject
    | PatchSubject
    | ComputerSubject
    | ToolSubject
    | McpApprovalSubject
    | MalformedSubject
)


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """One call, as the policy (and a person asked about it) sees it."""

    call_id: str
    call_type: str
    subjects: tuple[Subject, ...]
    call: Item
    """The call item itself, as sent (for showing a diff, arguments, ...)."""

    def __str__(self) -> str:
        return "; ".join(str(s) for s in self.subjects)


# -- builders, one per call kind ------------------------------------------------------


def request_for(
    call: Item,
    *,
    mcp_tools: Mapping[str, tuple[str, str]] | None = None,
    domain: str | None = None,
    workspace: str | None = None,
) -> PolicyRequest:
    """The request for any executed call (`items.KINDS`) but a client tool search,
    which runs nothing and is never gated.

    `mcp_tools` maps the model-facing names of MCP tools to (server, tool);
    `domain` is the browser page's domain for computer calls; `workspace` is
    the workspace root as commands see it. ValueError for an item that is
    not an executed call.
    """
    kind = kind_of(call)
    if kind is None:
        raise ValueError(f"not a call the runtime executes: {call.get('type')!r}")
    t = kind.call_type
    if t == "shell_call":
        return shell_request(call, workspace=workspace)
    if t == "local_shell_call":
        return local_shell_request(call, workspace=workspace)
    if t == "apply_patch_call":
        return apply_patch_request(call, workspace=workspace)
    if t == "computer_call":
        return computer_request(call, domain=domain)
    if t == "function_call":
        return function_request(call, mcp_tools=mcp_tools)
    if t == "custom_tool_call":
        return custom_request(call)
    if t == "mcp_approval_request":
        return mcp_approval_request(call)
    raise ValueError(f"no approval request for call type {t!r}")  # a new kind in items.KINDS


def _request(call: Item, subjects: list[Subject]) -> PolicyRequest:
    return PolicyRequest(call_id_of(call), str(call.get("type")), tuple(subjects), call)


def shell_request(call: Item, *, workspace: str | None = None) -> PolicyRequest:
    action = call.get("action")
    commands = action.get("commands") if isinstance(action, dict) else None
    if not isinstance(commands, list) or not commands:
        return _request(call, [MalformedSubject("shell_call without a list of commands")])
    subjects: list[Subject] = []
    for i, c in enumerate(commands):
        if not isinstance(c, str):
            subjects.append(MalformedSubject(f"command {i} is not a string"))
        else:
            subjects.append(CommandSubject(_relative_writes(parse_script(c), workspace)))
    return _request(call, subjects)


def local_shell_request(call: Item, *, workspace: str | None = None) -> PolicyRequest:
    action = call.get("action")
    if not isinstance(action, dict):
        return _request(call, [MalformedSubject("local_shell_call without an action")])
    argv = action.get("command")
    env = action.get("env") or {}
    cwd = action.get("working_directory")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        return _request(call, [MalformedSubject("the command is not a list of strings")])
    if not isinstance(env, dict) or not isinstance(cwd, str | None):
        return _request(call, [MalformedSubject("env or working_directory malformed")])
    script = parse_argv(argv, env=[str(k) for k in env], cwd=cwd)
    return _request(call, [CommandSubject(_relative_writes(script, workspace))])


def apply_patch_request(call: Item, *, workspace: str | None = None) -> PolicyRequest:
    operation = call.get("operation")
    ops = operation if isinstance(operation, list) else [operation]
    subjects: list[Subject] = []
    for op in ops:
        if not isinstance(op, dict):
            subjects.append(MalformedSubject("apply_patch_call without an operation"))
            continue
        op_type, path = op.get("type"), op.get("path")
        if op_type not in PATCH_OPERATIONS or not isinstance(path, str) or not path.strip():
            subjects.append(MalformedSubject(f"apply_patch operation {op_type!r} without a path"))
            continue
        subjects.append(PatchSubject(str(op_type), workspace_path(path, workspace)))
    return _request(call, subjects)


PATCH_OPERATIONS = ("create_file", "update_file", "delete_file")
WRITE_OPERATION = "redirect"
"""The operation of a shell redirection that writes a file, as patch rules see it."""


def computer_request(call: Item, *, domain: str | None = None) -> PolicyRequest:
    actions = call.get("actions")
    if actions is None:
        actions = [call.get("action")]
    if not isinstance(actions, list) or not actions:
        return _request(call, [MalformedSubject("computer_call without actions")])
    subjects: list[Subject] = []
    host = normalize_domain(domain) if domain else None
    for a in actions:
        if not isinstance(a, dict) or not isinstance(a.get("type"), str):
            subjects.append(MalformedSubject("a computer action without a type"))
        else:
            subjects.append(ComputerSubject(a["type"], host, _shown(a)))
    return _request(call, subjects)


def function_request(
    call: Item, *, mcp_tools: Mapping[str, tuple[str, str]] | None = None
) -> PolicyRequest:
    name = call.get("name")
    if not isinstance(name, str):
        return _request(call, [MalformedSubject("function_call without a name")])
    args = _shown(call.get("arguments", ""))
    if mcp_tools is not None and name in mcp_tools:
        server, tool = mcp_tools[name]
        return _request(call, [ToolSubject("mcp", name, server, tool, args)])
    return _request(call, [ToolSubject("function", name, arguments=args)])


def custom_request(call: Item) -> PolicyRequest:
    name = call.get("name")
    if not isinstance(name, str):
        return _request(call, [MalformedSubject("custom_tool_call without a name")])
    return _request(call, [ToolSubject("custom", name, arguments=_shown(call.get("input", "")))])


def mcp_approval_request(call: Item) -> PolicyRequest:
    server, tool = call.get("server_label"), call.get("name")
    if not isinstance(server, str) or not isinstance(tool, str):
        return _request(call, [MalformedSubject("mcp_approval_request without server_label/name")])
    return _request(call, [McpApprovalSubject(server, tool, _shown(call.get("arguments", "")))])


# -- helpers ------------------------------------------------------------------------


def workspace_path(path: str, workspace: str | None) -> str:
    """`path` normalised, relative to `workspace` when it is under it."""
    p = normalize_path(path)
    if workspace is not None and p.startswith("/"):
        root = normalize_path(workspace)
        if p == root:
            return "."
        if p.startswith(root.rstrip("/") + "/"):
            return p[len(root.rstrip("/")) + 1 :]
    return p


def normalize_domain(domain: str) -> str:
    return domain.strip().lower().rstrip(".")


def _relative_writes(script: Script, workspace: str | None) -> Script:
    if workspace is None or not script.parts:
        return script
    parts = tuple(
        replace(p, path=workspace_path(p.path, workspace))
        if isinstance(p, Write) and p.path is not None
        else p
        for p in script.parts
    )
    return replace(script, parts=parts)


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) > MAX_SHOWN_ARGUMENTS:
        return (
            text[:MAX_SHOWN_ARGUMENTS] + f"… ({len(text) - MAX_SHOWN_ARGUMENTS:,} more characters)"
        )
    return text
