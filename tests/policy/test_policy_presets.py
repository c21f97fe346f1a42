"""The presets, and the read-only commands `untrusted` runs without asking."""

from __future__ import annotations

import pytest
from policy_calls import computer, custom, function, local_shell, mcp_approval, patch, shell

from itemloop.tools.items import Item
from itemloop.tools.policy import Action, Policy, Rule, is_read_only, parse_script, request_for

ALLOW, ASK, DENY = Action.ALLOW, Action.ASK, Action.DENY
UNTRUSTED = Policy(approval="untrusted")


def read_only(command: str) -> bool:
    script = parse_script(command)
    assert script.error is None, script.error
    return all(is_read_only(c) for c in script.commands) and not script.writes


@pytest.mark.parametrize(
    "command",
    [
        "ls -la",
        "cat README.md",
        "grep -rn TODO src",
        "rg -n 'fn main' --type rust",
        "find . -name '*.py' -type f",
        "head -n 20 a.txt",
        "tail -f log",
        "wc -l *.py",
        "git status",
        "git status --short",
        "git diff HEAD~1 -- src",
        "git log --oneline -n 5",
        "git show HEAD:README.md",
        "git --no-pager log -p",
        "git -C sub status",
        "git branch",
        "git branch -a -v",
        "git branch --list 'feat*'",
        "git diff --no-textconv --no-ext-diff",
        "sort -n data.txt",
        "sort -t , -k 2 data.txt",
        "sed -n 1,20p a.txt",
        "sed -n '$p' a.txt",
        "sed -e 5q a.txt",
        "uniq -c a.txt",
        "xxd -l 64 a.bin",
        "tree -L 2",
        "fd -e py",
        "file a.bin",
        "date +%s",
        "printf '%s\\n' a b",
        "cat a | grep b | wc -l",
        "ls && git status",
        "cd src && ls",
        "echo $(git rev-parse HEAD)",
        "bash -lc 'ls -la'",
        'cat "$FILE"',
        "find src/* -name x",
    ],
)
def test_known_reads_run_without_asking(command: str) -> None:
    assert read_only(command), command
    d = UNTRUSTED.decide(request_for(shell(command)))
    assert d.action is ALLOW, d
    assert d.by == "the untrusted preset: a known read-only command"


@pytest.mark.parametrize(
    "command",
    [
        # find: flags that execute, delete or write
        "find . -exec rm {} ;",
        "find . -execdir sh -c x ;",
        "find . -ok rm {} ;",
        "find . -okdir rm {} ;",
        "find . -delete",
        "find . -fprint out",
        "find . -fprint0 out",
        "find . -fprintf out %p",
        "find . -fls out",
        "find . -name x -o \\( -exec rm {} + \\)",
        "find . -e'xec' rm {} ;",  # quotes do not hide a flag
        "find . $ARGS",  # may be -delete
        "find *",  # a file named -delete
        # ripgrep: preprocessors and decompressors run programs
        "rg --pre ./x foo",
        "rg --pre=./x foo",
        "rg --hostname-bin=./x foo",
        "rg -z foo",
        "rg -iz foo",
        "rg --search-zip foo",
        "rg foo $OPTS",
        # sort writes with -o
        "sort -o out in",
        "sort -ro out in",
        "sort --output=out in",
        "sort --out=out in",  # getopt abbreviations
        "sort --compress-program=sh in",
        "sort *.txt",  # a file named -o.txt
        # git: writing, executing, other commands
        "git diff --output=patch.txt",
        "git diff --out=patch.txt",
        "git log --ext-diff",
        "git show --textconv HEAD",
        "git -c core.pager=sh log",
        "git -p log",
        "git --exec-path=. status",
        "git grep -O foo",
        "git grep --open-files-in-pager=sh foo",
        "git push",
        "git commit -m x",
        "git checkout .",
        "git branch new-branch",
        "git branch -D main",
        "git branch --list -D main",
        "git $SUB",
        "git status $X",
        # sed: in place, or a script that writes or executes
        "sed -i s/a/b/ f",
        "sed -ni 1p f",
        "sed --in-place s/a/b/ f",
        "sed -n '1w out' f",
        "sed 's/a/b/w out' f",
        "sed 's/x/y/e' f",
        "sed -f script.sed f",
        'sed -n "$S" f',
        "sed -n 1p $F",
        # the rest
        "uniq in out",
        "xxd in out",
        "tree -o out",
        "tree -R -H . -L 1",
        "fd -x rm",
        "fd --exec-batch rm",
        "file -C -m magic",
        "date -s 2020-01-01",
        "printf -v PATH .",
        # not readers at all
        "rm x",
        "make",
        "python -c 'print(1)'",
        "xargs rm",
        "env ls",
        "awk '{system(\"rm x\")}'",
        "tee out",
        "less a.txt",
        "./ls",
        "/bin/ls",
        "PATH=. ls",
        "GIT_PAGER=sh git log",
        "export PATH=.",
    ],
)
def test_flags_that_write_or_execute_make_a_command_ask(command: str) -> None:
    assert not read_only(command), command
    d = UNTRUSTED.decide(request_for(shell(command)))
    assert d.action is ASK, d


@pytest.mark.parametrize(
    "command",
    ["ls > out.txt", "cat a >> b", "ls && rm x", "cat $(rm x)", "ls | sh", "cat a | tee b"],
)
def test_a_read_joined_with_anything_else_asks(command: str) -> None:
    assert UNTRUSTED.decide(request_for(shell(command))).action is ASK


def test_untrusted_asks_about_every_other_kind() -> None:
    for call in [
        patch("update_file", "a.py"),
        computer("click"),
        function("f"),
        custom("c"),
        mcp_approval("s", "t"),
        local_shell("make"),
    ]:
        assert UNTRUSTED.decide(request_for(call)).action is ASK, call
    # the computer's reads run
    assert UNTRUSTED.decide(request_for(computer("screenshot"))).action is ALLOW
    assert UNTRUSTED.decide(request_for(computer("wait"))).action is ALLOW
    assert UNTRUSTED.decide(request_for(local_shell("git", "log"))).action is ALLOW


def test_untrusted_rules_come_before_the_reads() -> None:
    policy = Policy([Rule(DENY, command=("cat",))], approval="untrusted")
    assert policy.decide(request_for(shell("cat x"))).action is DENY
    assert policy.decide(request_for(shell("head x"))).action is ALLOW


@pytest.mark.parametrize(
    "call",
    [
        shell("ls"),
        shell("git status"),
        patch("update_file", "a.py"),
        computer("screenshot"),
        function("f"),
        custom("c"),
        mcp_approval("s", "t"),
    ],
)
def test_on_request_asks_outside_the_allow_rules(call: Item) -> None:
    on_request = Policy(approval="on-request")
    assert on_request.decide(request_for(call)).action is ASK
    allowing = Policy(
        [
            Rule(ALLOW, command=("ls",)),
            Rule(ALLOW, command=("git", "status")),
            Rule(ALLOW, patch="**"),
            Rule(ALLOW, computer=("screenshot",)),
            Rule(ALLOW, function="f"),
            Rule(ALLOW, custom="c"),
            Rule(ALLOW, mcp_approval="s"),
        ],
        approval="on-request",
    )
    assert allowing.decide(request_for(call)).action is ALLOW


def test_never_allows_every_kind() -> None:
    never = Policy(approval="never")
    for call in [
        shell("rm -rf / && curl x | sh"),
        patch("delete_file", ".git/HEAD"),
        computer("type"),
        function("f"),
        custom("c"),
        mcp_approval("s", "t"),
    ]:
        assert never.decide(request_for(call)).action is ALLOW


def test_defaults_refine_a_preset_kind_by_kind() -> None:
    policy = Policy(approval="untrusted", defaults={"patch": "allow", "mcp_approval": "deny"})
    assert policy.decide(request_for(patch("update_file", "a.py"))).action is ALLOW
    assert policy.decide(request_for(mcp_approval("s", "t"))).action is DENY
    assert policy.decide(request_for(function("f"))).action is ASK
    assert policy.with_approval("never").decide(request_for(mcp_approval("s", "t"))).action is DENY
    assert policy.with_approval("never").decide(request_for(function("f"))).action is ALLOW
