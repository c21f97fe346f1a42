"""The rule index finds exactly the rule a linear scan in order would (first match wins)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from itemloop.tools.policy import Action, Policy, Rule
from itemloop.tools.policy.request import ComputerSubject, PatchSubject, ToolSubject
from itemloop.tools.policy.rules import Part
from itemloop.tools.policy.shell import Command, Word, Write

actions = st.sampled_from(list(Action))
words = st.sampled_from(["git", "rm", "ls", "status", "push", "-f", "x", "/bin/rm", "./ls"])
segments = st.sampled_from(["a", "b", ".git", "src", "x.lock", "c.py", "ab"])
glob_segments = st.sampled_from(
    ["a", "b", ".git", "src", "*", "**", "*.lock", "?", "[ab]", "x.*", "*.py", "a*", "*b"]
)
names = st.sampled_from(["get_x", "get_y", "set", "files", "read_file", "click", "type"])
name_globs = st.sampled_from(["get_*", "*", "set", "files", "read_*", "*_x", "?et", "click", "t*"])
ops = st.sampled_from(["create_file", "update_file", "delete_file", "redirect"])


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    action = draw(actions)
    kind = draw(st.sampled_from(["command", "patch", "computer", "function", "mcp"]))
    if kind == "command":
        prefix = tuple(draw(st.lists(words, min_size=1, max_size=3)))
        return Rule(action, command=prefix, exact=draw(st.booleans()))
    if kind == "patch":
        pattern = "/".join(draw(st.lists(glob_segments, min_size=1, max_size=3)))
        operations = tuple(draw(st.lists(ops, max_size=2, unique=True)))
        return Rule(action, patch=pattern, operations=operations)
    if kind == "computer":
        return Rule(action, computer=tuple(draw(st.lists(name_globs, min_size=1, max_size=2))))
    if kind == "function":
        return Rule(action, function=draw(name_globs))
    return Rule(action, mcp=draw(name_globs), tool=draw(st.one_of(st.none(), name_globs)))


@st.composite
def parts(draw: st.DrawFn) -> Part:
    kind = draw(st.sampled_from(["command", "write", "patch", "computer", "function", "mcp"]))
    if kind == "write":
        path = "/".join(draw(st.lists(segments, min_size=1, max_size=4)))
        return Write(Word(path), ">", path)
    if kind == "command":
        argv = draw(st.lists(words, min_size=1, max_size=4))
        dynamic = draw(st.sets(st.integers(0, 3)))
        ws = tuple(Word(w, literal=i not in dynamic) for i, w in enumerate(argv))
        return Command(ws, ("PATH",) if draw(st.booleans()) else ())
    if kind == "patch":
        path = "/".join(draw(st.lists(segments, min_size=1, max_size=4)))
        return PatchSubject(draw(ops), path)
    if kind == "computer":
        return ComputerSubject(draw(names))
    if kind == "function":
        return ToolSubject("function", draw(names))
    return ToolSubject("mcp", "s__t", draw(names), draw(names))


def linear(policy: Policy, part: Part) -> Rule | None:
    return next((r for r in policy.rules if r.matches(part)), None)


def indexed(policy: Policy, part: Part) -> Rule | None:
    from itemloop.tools.policy.request import CommandSubject, PolicyRequest
    from itemloop.tools.policy.shell import Script

    if isinstance(part, Command | Write):
        subject: object = CommandSubject(Script("", (part,)))
    else:
        subject = part
    d = policy.decide(PolicyRequest("c", "x", (subject,), {}))  # type: ignore[arg-type]
    return d.rule


@settings(max_examples=400, deadline=None)
@given(st.lists(rules(), max_size=25), st.lists(parts(), min_size=1, max_size=10))
def test_the_index_agrees_with_a_linear_scan(rs: list[Rule], ps: list[Part]) -> None:
    policy = Policy(rs, approval="on-request")
    for p in ps:
        assert indexed(policy, p) == linear(policy, p), p
