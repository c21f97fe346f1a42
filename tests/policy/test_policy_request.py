"""`PolicyRequest`: what each kind of call item becomes for the policy."""

from __future__ import annotations

import pytest
from policy_calls import computer, custom, function, local_shell, mcp_approval, patch, shell

from itemloop.tools.items import KINDS
from itemloop.tools.policy import (
    CommandSubject,
    ComputerSubject,
    McpApprovalSubject,
    PatchSubject,
    ToolSubject,
    request_for,
)
from itemloop.tools.policy.request import MAX_SHOWN_ARGUMENTS


def test_every_executed_call_kind_has_a_request() -> None:
    samples = [
        shell("ls"),
        local_shell("ls"),
        patch("update_file", "a"),
        computer("click"),
        function("f"),
        custom("c"),
        mcp_approval("s", "t"),
    ]
    # A client tool search runs nothing (it returns tool definitions): never gated.
    assert {c["type"] for c in samples} == set(KINDS) - {"tool_search_call"}
    for call in samples:
        r = request_for(call)
        assert r.call_type == call["type"] and r.call is call and r.subjects


def test_shell_call_one_subject_per_command() -> None:
    r = request_for(shell("ls && rm x", "cat a | grep b"))
    assert r.call_id == "call_sh"
    assert [type(s) for s in r.subjects] == [CommandSubject, CommandSubject]
    first = r.subjects[0]
    assert isinstance(first, CommandSubject)
    assert [c.argv for c in first.script.commands] == [("ls",), ("rm", "x")]
    assert str(r) == "ls && rm x; cat a | grep b"


def test_local_shell_call_is_its_argv_with_env_and_working_directory() -> None:
    r = request_for(local_shell("bash", "-lc", "echo x > out", env={"A": "1"}, cwd="sub"))
    (s,) = r.subjects
    assert isinstance(s, CommandSubject)
    assert [w.path for w in s.script.writes] == ["sub/out"]
    r = request_for(local_shell("ls", "$(rm x)", env={"A": "1"}))
    (s,) = r.subjects
    assert isinstance(s, CommandSubject)
    (cmd,) = s.script.commands
    assert cmd.argv == ("ls", "$(rm x)") and cmd.assignments == ("A",)
    assert r.call_id == "call_ls"


def test_apply_patch_call_is_its_operation_and_normalised_path() -> None:
    (s,) = request_for(patch("delete_file", "./src/../a.txt")).subjects
    assert s == PatchSubject("delete_file", "a.txt")
    (s,) = request_for(patch("create_file", "/ws/src/x.py"), workspace="/ws/").subjects
    assert s == PatchSubject("create_file", "src/x.py")
    (s,) = request_for(patch("create_file", "/elsewhere/x.py"), workspace="/ws").subjects
    assert s == PatchSubject("create_file", "/elsewhere/x.py")


def test_computer_call_one_subject_per_action() -> None:
    r = request_for(computer("click", "type"), domain="WWW.Example.com.")
    assert [(s.action, s.domain) for s in r.subjects if isinstance(s, ComputerSubject)] == [
        ("click", "www.example.com"),
        ("type", "www.example.com"),
    ]
    (s,) = request_for(computer("screenshot")).subjects
    assert s == ComputerSubject("screenshot", None, '{"type": "screenshot"}')


def test_tools_by_name_and_mcp_by_server_and_tool() -> None:
    (s,) = request_for(function("get", city="Paris")).subjects
    assert s == ToolSubject("function", "get", arguments='{"city": "Paris"}')
    (s,) = request_for(function("a__b__c"), mcp_tools={"a__b__c": ("a__b", "c")}).subjects
    assert s == ToolSubject("mcp", "a__b__c", "a__b", "c", "{}")
    (s,) = request_for(custom("sql", "SELECT 1")).subjects
    assert s == ToolSubject("custom", "sql", arguments="SELECT 1")
    (s,) = request_for(mcp_approval("deepwiki", "ask")).subjects
    assert s == McpApprovalSubject("deepwiki", "ask", "{}")


def test_long_arguments_are_cut_for_display() -> None:
    (s,) = request_for(custom("c", "x" * (MAX_SHOWN_ARGUMENTS + 500))).subjects
    assert isinstance(s, ToolSubject)
    assert s.arguments.endswith("(500 more characters)")
    assert len(s.arguments) < MAX_SHOWN_ARGUMENTS + 50


def test_items_that_are_not_executed_calls_are_refused() -> None:
    for item in [{"type": "message"}, {"type": "web_search_call"}, {}]:
        with pytest.raises(ValueError, match="not a call"):
            request_for(item)
