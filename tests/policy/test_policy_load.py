"""Policy files: the format, errors that say where and what, and the writable-root refusal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from policy_calls import patch, shell

from itemloop.tools.policy import Action, Grants, Policy, PolicyError, request_for

EXAMPLE = Path(__file__).parents[2] / "examples" / "policy.toml"

GOOD = """\
approval = "on-request"

[defaults]
patch = "allow"

[[rule]]
command = ["rm"]
action = "deny"
reason = "no deleting"

[[rule]]
command = ["pip", "install"]
action = "ask"
network = true
writable = ["/var/cache/pip"]

[[rule]]
patch = ".git/**"
action = "deny"
"""


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_a_policy_file_is_read(tmp_path: Path) -> None:
    policy = Policy.load(write(tmp_path, GOOD))
    assert policy.approval == "on-request"
    d = policy.decide(request_for(shell("rm -rf x")))
    assert str(d) == "`rm -rf x` denied by rule 1 of policy.toml: rm (no deleting)"
    d = policy.decide(request_for(shell("pip install x")))
    assert d.action is Action.ASK and d.grants == Grants(True, ("/var/cache/pip",))
    assert policy.decide(request_for(patch("update_file", "a.py"))).action is Action.ALLOW
    assert policy.decide(request_for(patch("update_file", ".git/HEAD"))).action is Action.DENY


def test_the_approval_given_replaces_the_files_preset(tmp_path: Path) -> None:
    policy = Policy.load(write(tmp_path, GOOD), approval="untrusted")
    assert policy.approval == "untrusted"
    assert policy.decide(request_for(shell("ls"))).action is Action.ALLOW
    assert policy.decide(request_for(shell("rm x"))).action is Action.DENY  # the file's rule
    assert policy.decide(request_for(patch("update_file", "a"))).action is Action.ALLOW


def test_the_example_file_loads_and_decides() -> None:
    policy = Policy.load(EXAMPLE)
    assert policy.approval == "untrusted"
    assert policy.decide(request_for(shell("git push origin main"))).action is Action.DENY
    assert policy.decide(request_for(shell("pytest -q"))).action is Action.ALLOW
    d = policy.decide(request_for(shell("pip install requests")))
    assert d.action is Action.ASK and d.grants.network
    assert policy.decide(request_for(patch("update_file", "sub/.git/config"))).action is Action.DENY


def test_the_format_documented_in_the_package_is_a_valid_policy() -> None:
    import itemloop.tools.policy as package

    doc = package.__doc__ or ""
    block = doc[doc.index("    approval = ") : doc.index("Every rule has")]
    text = "\n".join(line[4:] for line in block.splitlines())
    policy = Policy.from_toml(text)
    assert len(policy.rules) == 9
    assert policy.decide(request_for(shell("git push"))).action is Action.DENY


def test_from_toml_is_the_same_without_a_file() -> None:
    policy = Policy.from_toml(GOOD, source="inline")
    assert policy.decide(request_for(shell("rm x"))).by == "rule 1 of inline: rm"


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[rule]]\ncommand = ["ls"]\naction = "allow"\n\n[[rule]]\ncomand = ["rm"]\naction = "deny"\n',
            "policy.toml, line 6: rule 2: unknown key 'comand' (did you mean 'command'?)",
        ),
        (
            '[[rule]]\ncommand = ["ls"]\naction = "yes"\n',
            "policy.toml, line 3: rule 1: action must be allow, ask or deny, not 'yes'",
        ),
        (
            '[[rule]]\ncommand = ["ls"]\n',
            "policy.toml, line 1: rule 1 has no action (allow, ask or deny)",
        ),
        (
            '[[rule]]\naction = "allow"\n',
            "policy.toml, line 1: rule 1: a rule needs exactly one of command, patch, computer, "
            "function, custom, mcp, mcp_approval (it has none)",
        ),
        (
            '[[rule]]\naction = "allow"\ncommand = ["ls"]\npatch = "*"\n',
            "policy.toml, line 4: rule 1: a rule needs exactly one of",
        ),
        (
            '[[rule]]\naction = "allow"\ncommand = "git status"\n',
            'policy.toml, line 3: rule 1: command must be a non-empty list of words, such as ["git", "status"]',
        ),
        (
            '[[rule]]\naction = "allow"\ncommand = ["ls"]\nnetwork = "yes"\n',
            "policy.toml, line 4: rule 1: network must be true or false",
        ),
        (
            '[[rule]]\naction = "allow"\ncommand = ["ls"]\nwritable = ["cache"]\n',
            "policy.toml, line 4: rule 1: writable paths must be absolute or start with ~/, not 'cache'",
        ),
        (
            '[[rule]]\naction = "allow"\npatch = "*"\noperations = ["rename"]\n',
            "policy.toml, line 4: rule 1: unknown operation 'rename' in operations",
        ),
        (
            '[[rule]]\naction = "allow"\ncommand = ["ls"]\ndomain = "x.com"\n',
            "policy.toml, line 4: rule 1: domain applies to computer rules only",
        ),
        (
            'approval = "sometimes"\n',
            "policy.toml, line 1: approval must be one of never, untrusted, on-request, not 'sometimes'",
        ),
        (
            '\n[defaults]\nshell = "allow"\n',
            "policy.toml, line 3: defaults: unknown kind 'shell'",
        ),
        (
            '[defaults]\ncommand = "maybe"\n',
            "policy.toml, line 2: defaults: command must be allow, ask or deny, not 'maybe'",
        ),
        (
            'approvals = "never"\n',
            "policy.toml, line 1: unknown key 'approvals' (did you mean 'approval'?)",
        ),
        (
            '[[rule]]\naction = "allow"\ncommand = ["ls"\n',
            "policy.toml: ",  # tomllib's own message, with its line and column
        ),
        (
            'rule = [{action = "allow"}]\n',
            "policy.toml, line 1: rule 1: a rule needs exactly one of",
        ),
    ],
)
def test_errors_say_where_and_what(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyError) as e:
        Policy.load(write(tmp_path, text))
    assert str(e.value).startswith(message), str(e.value)


def test_toml_syntax_errors_keep_their_line(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"policy.toml: .*\(at line 3, column 9\)"):
        Policy.load(write(tmp_path, '[[rule]]\naction = "allow"\ncommand ["ls"]\n'))


def test_files_that_are_not_policies(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="No such file"):
        Policy.load(tmp_path / "missing.toml")
    with pytest.raises(PolicyError, match="not a regular file"):
        Policy.load(tmp_path)
    (tmp_path / "bin.toml").write_bytes(b"approval = '\xff'\n")
    with pytest.raises(PolicyError, match="not UTF-8"):
        Policy.load(tmp_path / "bin.toml")
    (tmp_path / "big.toml").write_text("# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(PolicyError, match="larger than"):
        Policy.load(tmp_path / "big.toml")


# -- where the policy may be read from -----------------------------------------------


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace the sandbox can write, and a directory outside it."""
    workspace = tmp_path / "workspace"
    outside = tmp_path / "config"
    workspace.mkdir()
    outside.mkdir()
    return workspace, outside


def test_a_policy_outside_the_writable_roots_is_read(layout: tuple[Path, Path]) -> None:
    workspace, outside = layout
    p = write(outside, GOOD)
    assert Policy.load(p, writable_roots=[workspace]).rules


def test_a_policy_inside_the_workspace_is_refused(layout: tuple[Path, Path]) -> None:
    workspace, _ = layout
    p = write(workspace, GOOD)
    with pytest.raises(PolicyError, match="sandbox can write") as e:
        Policy.load(p, writable_roots=[workspace])
    assert str(workspace) in str(e.value)
    (workspace / "sub").mkdir()
    with pytest.raises(PolicyError, match="sandbox can write"):
        Policy.load(write(workspace / "sub", GOOD), writable_roots=[workspace])
    # a relative path, from inside the workspace
    cwd = os.getcwd()
    os.chdir(workspace / "sub")
    try:
        with pytest.raises(PolicyError, match="sandbox can write"):
            Policy.load("policy.toml", writable_roots=[workspace])
    finally:
        os.chdir(cwd)


def test_a_symlink_into_the_workspace_is_refused(layout: tuple[Path, Path]) -> None:
    workspace, outside = layout
    write(workspace, GOOD)
    link = outside / "policy.toml"
    link.symlink_to(workspace / "policy.toml")
    with pytest.raises(PolicyError, match="sandbox can write"):
        Policy.load(link, writable_roots=[workspace])
    # through a linked directory too
    (outside / "dir").symlink_to(workspace)
    with pytest.raises(PolicyError, match="sandbox can write"):
        Policy.load(outside / "dir" / "policy.toml", writable_roots=[workspace])


def test_a_symlink_in_the_workspace_pointing_out_is_refused(layout: tuple[Path, Path]) -> None:
    # the agent could point it elsewhere before the next run
    workspace, outside = layout
    real = write(outside, GOOD)
    (workspace / "policy.toml").symlink_to(real)
    with pytest.raises(PolicyError, match=r"through .*workspace/policy.toml"):
        Policy.load(outside / ".." / "workspace" / "policy.toml", writable_roots=[workspace])
    # a chain that passes through the workspace on its way
    (outside / "hop").symlink_to(workspace / "policy.toml")
    with pytest.raises(PolicyError, match="sandbox can write"):
        Policy.load(outside / "hop", writable_roots=[workspace])


def test_a_writable_root_given_through_a_symlink_still_counts(
    layout: tuple[Path, Path], tmp_path: Path
) -> None:
    workspace, _ = layout
    write(workspace, GOOD)
    alias = tmp_path / "ws-alias"
    alias.symlink_to(workspace)
    with pytest.raises(PolicyError, match="sandbox can write"):
        Policy.load(workspace / "policy.toml", writable_roots=[alias])


def test_a_policy_granting_write_access_to_itself_is_refused(layout: tuple[Path, Path]) -> None:
    _, outside = layout
    text = f'[[rule]]\ncommand = ["pip"]\naction = "allow"\nwritable = ["{outside}"]\n'
    with pytest.raises(PolicyError, match="holds the policy file itself"):
        Policy.load(write(outside, text))


def test_what_the_agent_writes_after_loading_changes_nothing(layout: tuple[Path, Path]) -> None:
    workspace, outside = layout
    p = write(outside, GOOD)
    policy = Policy.load(p, writable_roots=[workspace])
    p.write_text('approval = "never"\n')
    assert policy.decide(request_for(shell("rm x"))).action is Action.DENY
