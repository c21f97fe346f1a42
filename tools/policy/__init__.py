"""The approval policy (issue 11): for each call, allow, ask or deny — and which rule said so.

    from itemloop.tools.policy import Action, Policy, request_for

    policy = Policy.load("~/.config/itemloop/policy.toml", writable_roots=[workspace])
    decision = policy.decide(request_for(call))
    if decision.action is Action.DENY:
        answer(call, f"not run: {decision}")     # "`rm -rf x` denied by rule 3 of policy.toml: rm"

Pure: no I/O but reading the policy file, no knowledge of the dispatcher or
the journal. Modules: `shell.py` (command strings -> commands and writes),
`request.py` (a call item -> `PolicyRequest`), `rules.py` (`Rule`,
`Decision`, `Policy`, the index), `readonly.py` (the known read-only
commands), `presets.py` (`never`, `untrusted`, `on-request`), `globs.py`,
`load.py` (the file, its errors, the writable-root refusal).

The policy file (TOML; examples/policy.toml is a commented one):

    approval = "on-request"       # the preset the rules refine: never | untrusted | on-request

    [defaults]                    # where no rule matches, by kind (overrides the preset)
    command = "ask"               # kinds: command patch computer function custom mcp mcp_approval
    patch = "allow"

    [[rule]]                      # rules are tried in file order: the first that matches decides
    command = ["git", "push"]     # argv prefix, after shell parsing
    action = "deny"               # allow | ask | deny
    reason = "pushing is for people"

    [[rule]]
    command = ["pip", "install"]
    action = "ask"
    network = true                # granted to what the rule matches, once allowed
    writable = ["~/.cache/pip"]   # extra writable paths (absolute or ~/)

    [[rule]]
    command = ["git", "status"]
    exact = true                  # the whole argv, not a prefix
    action = "allow"

    [[rule]]
    patch = ".git/**"             # path glob; ** spans directories, dir/** includes dir
    action = "deny"

    [[rule]]
    patch = "**/*.lock"
    operations = ["update_file", "redirect"]   # create_file update_file delete_file redirect
    action = "ask"

    [[rule]]
    computer = ["click", "type"]  # action types (name globs)
    domain = "*.example.com"      # the browser page's domain (glob); omit for any
    action = "allow"

    [[rule]]
    function = "get_*"            # function tools by name glob; custom = "..." for custom tools
    action = "allow"

    [[rule]]
    mcp = "files"                 # MCP server (glob) ...
    tool = "read_*"               # ... and tool (glob, optional)
    action = "allow"

    [[rule]]
    mcp_approval = "deepwiki"     # hosted MCP approval requests, by server label (tool optional)
    action = "allow"

Every rule has exactly one kind key and an `action`. Command rules match
literal words only; a compound command (`&&`, `||`, `;`, pipes, subshells,
`$(…)`, backticks, here-docs, …) is allowed only if every command in it is,
and what cannot be parsed is asked (allowed under `never`). A redirection
that writes a file (`> out.txt`) is decided by the patch rules with the
operation `redirect`, so one rule guards a path against both apply_patch and
the shell. Details of matching: `rules.py`; of parsing: `shell.py`.
"""

from .load import load_policy, parse_policy
from .presets import APPROVALS, KINDS, Action, ApprovalMode, Kind
from .readonly import is_read_only
from .request import (
    CommandSubject,
    ComputerSubject,
    MalformedSubject,
    McpApprovalSubject,
    PatchSubject,
    PolicyRequest,
    Subject,
    ToolSubject,
    request_for,
)
from .rules import Decision, Grants, Policy, PolicyError, Rule, always_rule
from .shell import Command, Script, Word, Write, parse_argv, parse_script

__all__ = [
    "APPROVALS",
    "KINDS",
    "Action",
    "ApprovalMode",
    "Command",
    "CommandSubject",
    "ComputerSubject",
    "Decision",
    "Grants",
    "Kind",
    "MalformedSubject",
    "McpApprovalSubject",
    "PatchSubject",
    "Policy",
    "PolicyError",
    "PolicyRequest",
    "Rule",
    "Script",
    "Subject",
    "ToolSubject",
    "Word",
    "Write",
    "always_rule",
    "is_read_only",
    "load_policy",
    "parse_argv",
    "parse_policy",
    "parse_script",
    "request_for",
]
