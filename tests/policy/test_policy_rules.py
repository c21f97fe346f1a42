"""Policy decisions: every kind of call allowed, denied and asked; compounds; first match wins."""

from __future__ import annotations

import pytest
from policy_calls import computer, custom, function, local_shell, mcp_approval, patch, shell

from itemloop.tools.items import Item
from itemloop.tools.policy import (
    Action,
    Decision,
    Grants,
    Policy,
    PolicyError,
    Rule,
    always_rule,
    request_for,
)

ALLOW, ASK, DENY = Action.ALLOW, Action.ASK, Action.DENY

MCP_TOOLS = {
    "files__read_file": ("files", "read_file"),
    "files__write_file": ("files", "write_file"),
    "files__stat": ("files", "stat"),
}

POLICY = Policy(
    [
        Rule(DENY, command=("rm",), reason="deleting is for people"),  # 1
        Rule(ALLOW, command=("ls",)),  # 2
        Rule(ALLOW, command=("git", "status")),  # 3
        Rule(ASK, command=("git",)),  # 4
        Rule(DENY, patch=".git/**"),  # 5
        Rule(ASK, patch="**/*.lock"),  # 6
        Rule(ALLOW, patch="src/**"),  # 7
        Rule(ALLOW, computer=("screenshot", "scroll")),  # 8
        Rule(ALLOW, computer=("click",), domain="*.example.com"),  # 9
        Rule(DENY, computer=("type",)),  # 10
        Rule(ALLOW, function="get_*"),  # 11
        Rule(DENY, function="delete_*"),  # 12
        Rule(ALLOW, custom="grep_tool"),  # 13
        Rule(DENY, custom="sql"),  # 14
        Rule(ALLOW, mcp="files", tool="read_*"),  # 15
        Rule(DENY, mcp="files", tool="write_*"),  # 16
        Rule(ALLOW, mcp_approval="deepwiki"),  # 17
        Rule(DENY, mcp_approval="evil*"),  # 18
        Rule(ALLOW, command=("pip", "install"), network=True, writable=("/cache",)),  # 19
        Rule(ALLOW, command=("pip", "download"), network=True),  # 20
    ],
    approval="on-request",
    source="policy.toml",
)


def decide(call: Item, policy: Policy = POLICY, **kw: str) -> Decision:
    return policy.decide(request_for(call, mcp_tools=MCP_TOOLS, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "action", "by"),
    [
        # shell_call
        (shell("ls -la"), ALLOW, "rule 2 of policy.toml: ls"),
        (shell("rm -rf x"), DENY, "rule 1 of policy.toml: rm"),
        (shell("make"), ASK, "the default for shell commands"),
        # local_shell_call
        (local_shell("git", "status", "--short"), ALLOW, "rule 3 of policy.toml: git status"),
        (local_shell("rm", "x"), DENY, "rule 1 of policy.toml: rm"),
        (local_shell("git", "push"), ASK, "rule 4 of policy.toml: git"),
        # apply_patch_call
        (patch("update_file", "src/a.py"), ALLOW, "rule 7 of policy.toml: src/**"),
        (patch("create_file", ".git/hooks/pre-commit"), DENY, "rule 5 of policy.toml: .git/**"),
        (patch("update_file", "Cargo.lock"), ASK, "rule 6 of policy.toml: **/*.lock"),
        (patch("delete_file", "README.md"), ASK, "the default for file edits"),
        # computer_call
        (computer("screenshot"), ALLOW, "rule 8 of policy.toml: screenshot, scroll"),
        (computer("type"), DENY, "rule 10 of policy.toml: type"),
        (computer("drag"), ASK, "the default for computer actions"),
        # function_call
        (function("get_weather", city="Paris"), ALLOW, "rule 11 of policy.toml: get_*"),
        (function("delete_account"), DENY, "rule 12 of policy.toml: delete_*"),
        (function("send_mail"), ASK, "the default for function tools"),
        # custom_tool_call
        (custom("grep_tool", "x"), ALLOW, "rule 13 of policy.toml: grep_tool"),
        (custom("sql", "DROP TABLE x"), DENY, "rule 14 of policy.toml: sql"),
        (custom("other"), ASK, "the default for custom tools"),
        # MCP tools (function calls the toolset names SERVER__TOOL)
        (function("files__read_file"), ALLOW, "rule 15 of policy.toml: files/read_*"),
        (function("files__write_file"), DENY, "rule 16 of policy.toml: files/write_*"),
        # mcp_approval_request
        (mcp_approval("deepwiki", "ask_question"), ALLOW, "rule 17 of policy.toml: deepwiki/*"),
        (mcp_approval("evil-server", "x"), DENY, "rule 18 of policy.toml: evil*/*"),
        (mcp_approval("other", "x"), ASK, "the default for hosted MCP approval requests"),
    ],
)
def test_each_kind_is_allowed_denied_or_asked(call: Item, action: Action, by: str) -> None:
    d = decide(call)
    assert (d.action, d.by) == (action, by)


def test_a_denial_names_what_was_denied_by_what_and_why() -> None:
    d = decide(shell("ls && rm -rf build"))
    assert str(d) == "`rm -rf build` denied by rule 1 of policy.toml: rm (deleting is for people)"
    assert d.reason == "deleting is for people"
    assert d.rule is POLICY.rules[0]


def test_mcp_tools_are_function_tools_without_the_split() -> None:
    d = POLICY.decide(request_for(function("files__read_file")))
    assert (d.action, d.by) == (ASK, "the default for function tools")


def test_the_browser_domain_narrows_a_computer_rule() -> None:
    assert decide(computer("click"), domain="shop.example.com").action is ALLOW
    assert decide(computer("click"), domain="Shop.Example.COM.").action is ALLOW
    assert decide(computer("click"), domain="example.org").action is ASK
    assert decide(computer("click")).action is ASK  # domain unknown: the rule cannot apply


def test_batched_computer_actions_are_each_decided() -> None:
    assert decide(computer("screenshot", "scroll")).action is ALLOW
    d = decide(computer("screenshot", "type", "scroll"))
    assert d.action is DENY and str(d.subject) == "type"
    assert [p.action for p in d.parts] == [ALLOW, DENY, ALLOW]


# -- compound commands ----------------------------------------------------------------

ONLY_LS = Policy([Rule(ALLOW, command=("ls",)), Rule(ALLOW, command=("git", "status"))])


@pytest.mark.parametrize(
    "command",
    [
        "ls && rm -rf x",
        "ls || rm -rf x",
        "ls; rm -rf x",
        "ls | rm -rf x",
        "ls & rm -rf x",
        "(ls; rm x)",
        "{ ls; rm x; }",
        "ls $(rm x)",
        'ls "$(rm x)"',
        "ls `rm x`",
        'ls "`rm x`"',
        "git status $(rm x)",
        "ls <(rm x)",
        "ls ${X:-$(rm x)}",
        "ls; X=$(rm x)",
        "ls > out.txt",
        "ls 2> err.txt",
        "ls && bash -c 'rm x'",
        "if ls; then rm x; fi",
        "for f in $(rm x); do ls; done",
        "cat <<EOF\n$(rm x)\nEOF",
    ],
)
def test_a_compound_is_allowed_only_if_every_part_is(command: str) -> None:
    d = ONLY_LS.decide(request_for(shell(command)))
    assert d.action is ASK, d
    assert ONLY_LS.decide(request_for(shell("ls -l"))).action is ALLOW  # the allowed part alone


def test_every_command_string_of_a_shell_call_counts() -> None:
    assert ONLY_LS.decide(request_for(shell("ls", "git status"))).action is ALLOW
    d = ONLY_LS.decide(request_for(shell("ls", "rm x")))
    assert d.action is ASK and str(d.subject) == "rm x"


def test_the_most_severe_part_decides_and_every_part_is_kept() -> None:
    d = decide(shell("ls && make && rm x && git status"))
    assert d.action is DENY and str(d.subject) == "rm x"
    assert [(str(p.subject), p.action) for p in d.parts] == [
        ("ls", ALLOW),
        ("make", ASK),
        ("rm x", DENY),
        ("git status", ALLOW),
    ]


def test_unparsable_commands_are_asked() -> None:
    for command in ["ls 'unterminated", "ls &&", "echo $("]:
        d = ONLY_LS.decide(request_for(shell(command)))
        assert d.action is ASK
        assert "cannot be parsed" in d.by


def test_a_command_name_that_is_not_literal_is_asked_even_where_commands_are_allowed() -> None:
    policy = Policy([Rule(DENY, command=("rm",))], defaults={"command": "allow"})
    assert policy.decide(request_for(shell("echo hi"))).action is ALLOW
    for command in ["$(echo rm) x", "$CMD x", "r* x"]:
        d = policy.decide(request_for(shell(command)))
        assert d.action is ASK and "not literal" in d.by, command


def test_rules_match_literal_words_only() -> None:
    policy = Policy([Rule(ALLOW, command=("git", "status"))])
    assert policy.decide(request_for(shell("git 'status'"))).action is ALLOW
    assert policy.decide(request_for(shell("git $SUB"))).action is ASK
    assert policy.decide(request_for(shell("git stat*"))).action is ASK
    assert policy.decide(request_for(shell("git statusx"))).action is ASK


def test_exact_rules_match_the_whole_argv() -> None:
    policy = Policy([Rule(ALLOW, command=("git", "push"), exact=True)])
    assert policy.decide(request_for(shell("git push"))).action is ALLOW
    assert policy.decide(request_for(shell("git push --force"))).action is ASK


def test_deny_rules_catch_a_program_run_by_path_allow_rules_do_not() -> None:
    policy = Policy(
        [Rule(DENY, command=("rm",)), Rule(ALLOW, command=("ls",)), Rule(ASK, command=("curl",))],
        defaults={"command": "allow"},
    )
    assert policy.decide(request_for(shell("/bin/rm -rf x"))).action is DENY
    assert policy.decide(request_for(local_shell("/usr/bin/rm", "x"))).action is DENY
    assert policy.decide(request_for(shell("./curl x"))).action is ASK
    strict = Policy([Rule(ALLOW, command=("ls",))])
    assert strict.decide(request_for(shell("./ls"))).action is ASK
    assert strict.decide(request_for(shell("/tmp/x/ls"))).action is ASK


def test_allow_rules_do_not_cover_commands_with_assignments() -> None:
    assert ONLY_LS.decide(request_for(shell("PATH=. ls"))).action is ASK
    assert ONLY_LS.decide(request_for(shell("PATH=.; ls"))).action is ASK
    assert ONLY_LS.decide(request_for(local_shell("ls", env={"PATH": "."}))).action is ASK
    deny = Policy([Rule(DENY, command=("rm",))], defaults={"command": "allow"})
    assert deny.decide(request_for(shell("X=1 rm y"))).action is DENY


def test_first_matching_rule_wins() -> None:
    first_allow = Policy([Rule(ALLOW, command=("git", "push")), Rule(DENY, command=("git",))])
    assert first_allow.decide(request_for(shell("git push"))).action is ALLOW
    assert first_allow.decide(request_for(shell("git pull"))).action is DENY
    first_deny = Policy([Rule(DENY, command=("git",)), Rule(ALLOW, command=("git", "push"))])
    d = first_deny.decide(request_for(shell("git push")))
    assert (d.action, d.by) == (DENY, "rule 1 of policy: git")
    globs = Policy([Rule(ASK, patch="**/*.py"), Rule(DENY, patch="src/**")])
    assert globs.decide(request_for(patch("update_file", "src/a.py"))).action is ASK
    assert globs.decide(request_for(patch("update_file", "src/a.txt"))).action is DENY


# -- writes ---------------------------------------------------------------------------


def test_shell_writes_meet_the_patch_rules() -> None:
    policy = Policy(
        [Rule(ALLOW, command=("echo",)), Rule(DENY, patch=".git/**"), Rule(ALLOW, patch="out/**")]
    )
    assert policy.decide(request_for(shell("echo x > out/log"))).action is ALLOW
    d = policy.decide(request_for(shell("echo x > .git/config")))
    assert (d.action, str(d.subject)) == (DENY, "> .git/config")
    assert policy.decide(request_for(shell("echo x >> notes.txt"))).action is ASK
    assert policy.decide(request_for(shell("echo x > /dev/null"))).action is ALLOW
    # the workspace's own absolute path is the same file
    d = policy.decide(request_for(shell("echo x > /ws/.git/config"), workspace="/ws"))
    assert d.action is DENY
    # a target that is not known cannot be allowed by a rule
    d = policy.decide(request_for(shell('echo x > "$F"')))
    assert d.action is ASK and "not known" in d.by
    d = policy.decide(request_for(shell("cd .git && echo x > out/log")))
    assert d.action is ASK


def test_patch_rules_can_name_operations() -> None:
    policy = Policy(
        [Rule(DENY, patch="**", operations=("delete_file",)), Rule(ALLOW, patch="**")],
        source="p",
    )
    assert policy.decide(request_for(patch("update_file", "a"))).action is ALLOW
    assert policy.decide(request_for(patch("delete_file", "a"))).action is DENY
    redirect_only = Policy([Rule(DENY, patch="*.txt", operations=("redirect",))])
    assert redirect_only.decide(request_for(shell("ls > a.txt"))).action is DENY
    assert redirect_only.decide(request_for(patch("update_file", "a.txt"))).action is ASK


def test_patch_paths_are_normalised() -> None:
    policy = Policy([Rule(DENY, patch=".git/**")], defaults={"patch": "allow"})
    for path in ["./.git/config", "src/../.git/config", ".git//config", "/ws/.git/config", ".git"]:
        d = policy.decide(request_for(patch("update_file", path), workspace="/ws"))
        assert d.action is DENY, path
    assert policy.decide(request_for(patch("update_file", ".gitignore"))).action is ALLOW


# -- grants ---------------------------------------------------------------------------


def test_a_rule_grants_permissions_to_what_it_matches() -> None:
    d = decide(shell("pip install requests"))
    assert d.action is ALLOW and d.grants == Grants(network=True, writable=("/cache",))
    assert decide(shell("pip list")).grants == Grants()
    assert decide(shell("ls")).grants == Grants()


def test_a_compound_gets_only_what_every_part_was_granted() -> None:
    assert decide(shell("pip install a && ls")).grants == Grants()
    assert decide(shell("pip install a && pip download b")).grants == Grants(network=True)
    assert decide(shell("pip install a", "ls")).grants == Grants()


def test_known_reads_take_no_grant_away() -> None:
    policy = POLICY.with_approval("untrusted")
    d = policy.decide(request_for(shell("pip install a | tail -1")))
    assert d.action is ALLOW and d.grants == Grants(network=True, writable=("/cache",))
    # a write is not a read
    d = policy.decide(request_for(shell("pip install a | tail -1 > log")))
    assert d.grants == Grants()


def test_an_asked_rule_carries_its_grants() -> None:
    policy = Policy([Rule(ASK, command=("pip", "install"), network=True)])
    d = policy.decide(request_for(shell("pip install x")))
    assert d.action is ASK and d.grants.network


# -- malformed calls ------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        {"type": "shell_call", "call_id": "c"},
        {"type": "shell_call", "call_id": "c", "action": {"commands": [["rm", "x"]]}},
        {"type": "local_shell_call", "call_id": "c", "action": {"command": "rm x"}},
        {"type": "apply_patch_call", "call_id": "c", "operation": {"type": "rename", "path": "a"}},
        {"type": "apply_patch_call", "call_id": "c", "operation": {"type": "update_file"}},
        {"type": "computer_call", "call_id": "c", "action": {"x": 1}},
        {"type": "function_call", "call_id": "c", "name": 3},
        {"type": "mcp_approval_request", "id": "c"},
    ],
)
def test_a_malformed_call_is_asked_never_allowed(call: Item) -> None:
    everything = Policy(
        [
            Rule(ALLOW, command=("rm",)),
            Rule(ALLOW, patch="**"),
            Rule(ALLOW, computer=("*",)),
            Rule(ALLOW, function="*"),
            Rule(ALLOW, mcp_approval="*"),
        ]
    )
    d = everything.decide(request_for(call))
    assert d.action is ASK and "malformed" in str(d.subject)


def test_the_never_preset_allows_everything_without_looking() -> None:
    never = Policy(approval="never")
    assert never.allows_everything
    for call in [shell("rm -rf / 'x"), patch("delete_file", ".git/HEAD"), computer("type")]:
        assert never.decide(request_for(call)).action is ALLOW
    with_rule = Policy([Rule(DENY, command=("rm",))], approval="never")
    assert not with_rule.allows_everything
    assert with_rule.decide(request_for(shell("rm x"))).action is DENY
    assert with_rule.decide(request_for(shell("ls 'x"))).action is ALLOW  # unparsable: never asks


# -- "always" -------------------------------------------------------------------------


def test_always_adds_an_exact_rule_first() -> None:
    policy = Policy([Rule(ASK, command=("git", "push"))], source="policy.toml")
    d = policy.decide(request_for(shell("ls && git push origin main")))
    asked = [p for p in d.parts if p.action is ASK]
    rules = [r for r in (always_rule(p) for p in asked) if r is not None]
    assert len(rules) == 2  # ls asks too (the on-request default)
    session = policy.with_rules(rules)
    d2 = session.decide(request_for(shell("ls && git push origin main")))
    assert d2.action is ALLOW
    assert [p.by for p in d2.parts] == [
        "rule 1 of this session: ls (exactly)",
        "rule 2 of this session: git push origin main (exactly)",
    ]
    # only what was approved: not a longer command, not another one
    assert session.decide(request_for(shell("git push origin main --force"))).action is ASK
    assert session.decide(request_for(shell("ls -l"))).action is ASK
    # the file's rules keep their names; a later "always" is numbered on
    assert session.rules[-1].origin == "rule 1 of policy.toml"
    later = session.with_rules([Rule(ALLOW, command=("make",), exact=True)])
    assert [r.origin for r in later.rules] == [
        "rule 1 of this session",
        "rule 2 of this session",
        "rule 3 of this session",
        "rule 1 of policy.toml",
    ]


def test_always_for_each_kind() -> None:
    for call in [
        patch("update_file", "a[1]*.txt"),
        computer("drag"),
        function("send_mail"),
        function("files__stat"),
        custom("other"),
        mcp_approval("srv", "tool*"),
        shell("ls > 'o[u]t*'"),
    ]:
        d = decide(call)
        assert d.action is ASK, call
        rule = always_rule(d.parts[-1] if d.parts else d)
        assert rule is not None
        after = POLICY.with_rules([rule])
        assert after.decide(request_for(call, mcp_tools=MCP_TOOLS)).action is ALLOW, call
    assert always_rule(ONLY_LS.decide(request_for(shell("ls 'x")))) is None


# -- library use ----------------------------------------------------------------------


def test_rules_are_checked_when_built() -> None:
    with pytest.raises(PolicyError, match="exactly one of"):
        Rule(ALLOW)
    with pytest.raises(PolicyError, match="exactly one of"):
        Rule(ALLOW, command=("ls",), patch="*")
    with pytest.raises(PolicyError, match="list of words"):
        Rule(ALLOW, command="git status")  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match="allow, ask or deny"):
        Rule("yes", command=("ls",))  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match="absolute"):
        Rule(ALLOW, command=("ls",), writable=("cache",))
    with pytest.raises(PolicyError, match="operation"):
        Rule(ALLOW, patch="*", operations=("rename",))
    with pytest.raises(PolicyError, match="unknown kind"):
        Policy(defaults={"shell": "allow"})
    with pytest.raises(ValueError, match="never, untrusted, on-request"):
        Policy(approval="sometimes")
    assert Rule("deny", command=["rm"]).action is DENY  # type: ignore[arg-type]


def test_a_message_quotes_a_long_command_briefly() -> None:
    d = ONLY_LS.decide(request_for(shell("ls '" + "x" * 100_000)))  # unparsable: all of it
    assert d.action is ASK
    assert len(str(d)) < 400 and "characters)" in str(d)


def test_what_cannot_be_checked_is_never_treated_better_than_the_default() -> None:
    strict = Policy([Rule(ALLOW, command=("ls",))], approval="never", defaults={"command": "deny"})
    assert strict.decide(request_for(shell("ls"))).action is ALLOW
    for command in ["ls 'x", "$CMD"]:
        assert strict.decide(request_for(shell(command))).action is DENY, command
    malformed = {"type": "shell_call", "call_id": "c", "action": {}}
    assert strict.decide(request_for(malformed)).action is DENY
    assert Policy(approval="on-request").decide(request_for(shell("ls 'x"))).action is ASK
