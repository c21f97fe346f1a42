"""`Rule`, `Decision` and `Policy`: first matching rule wins, else the default for the kind.

    policy = Policy(
        [Rule(Action.DENY, command=("rm",)), Rule(Action.ALLOW, command=("git", "status"))],
        approval="on-request",
    )
    decision = policy.decide(request_for(call))
    decision.action          # Action.ALLOW | ASK | DENY
    str(decision)            # "`rm -rf x` denied by rule 1 of policy: rm"

Deciding a call. Each subject of the request (`request.py`) is split into
parts — every command and file write of a shell command, every patch
operation, computer action, tool — and each part is decided on its own:
the first rule (in order) that matches it, else the preset's built-in
reads (`untrusted`), else the policy's default for its kind. A part the
policy cannot check (an unparsable command, a command name that is not
literal, a write whose target is unknown, a malformed call) gets the
preset's answer for that (`ask`, `allow` under `never`), or its kind's
default when that is more severe (`[defaults] command = "deny"` denies
what cannot be parsed). The call's
decision is the most severe of its parts' (deny > ask > allow), naming the
first part that has it and what decided it; `parts` holds them all.

Matching, by kind (the rule's key):

- `command`: argv prefix, word by word, on literal words only (`git $X`
  matches `["git"]`, not `["git", "status"]`); `exact` asks for the whole
  argv. A command with variable assignments before it (`PATH=. ls`) is never
  matched by an `allow` rule. A rule word without a `/` in a `deny` or `ask`
  rule also matches a program run by path (`["rm"]` catches `/bin/rm`);
  in an `allow` rule it does not (`./ls` may be any program).
- `patch`: path glob (`globs.py`) on the normalised path, and the
  operation when `operations` is given. A shell redirection that writes a
  file is a patch part with operation `redirect`: the rules for `.git/**`
  hold for `echo x > .git/config` too.
- `computer`: action type (name globs), and the page's domain when the rule
  gives `domain` (a rule with a domain never matches where the domain is
  unknown).
- `function`, `custom`: tool name glob. `mcp`: server glob, and `tool`.
  `mcp_approval`: server label glob, and `tool`.

Grants. A rule may grant sandbox permissions (`network`, extra `writable`
paths) to what it matches; the decision carries them. A shell command runs
in one sandbox, so a compound gets only what every part was granted (parts
allowed as known read-only commands, which use no permission, do not take
any away).

Index. Rules are indexed by kind: commands in a trie of their words, globs
by literal prefix or suffix (`globs.AffixIndex`), computer actions by type;
a decision looks at a handful of candidates whatever the number of rules,
then takes the first in rule order that matches (`Rule.matches`, the same
test a linear scan would make).
"""

from __future__ import annotations

import heapq
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from .globs import AffixIndex, name_regex, path_regex
from .presets import (
    KIND_LABELS,
    KINDS,
    READ_ACTIONS,
    Action,
    ApprovalMode,
    Kind,
    preset,
)
from .readonly import is_read_only
from .request import (
    PATCH_OPERATIONS,
    WRITE_OPERATION,
    CommandSubject,
    ComputerSubject,
    MalformedSubject,
    McpApprovalSubject,
    PatchSubject,
    PolicyRequest,
    Subject,
    ToolSubject,
)
from .shell import Command, Write


class PolicyError(ValueError):
    """A policy that cannot be used: malformed, or read from where the sandbox can write."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        """The rule's key the error is about, when there is one (for finding its line)."""


@dataclass(frozen=True, slots=True)
class Grants:
    """Sandbox permissions a rule grants to what it matches."""

    network: bool = False
    writable: tuple[str, ...] = ()
    """Extra writable paths (absolute, or starting with `~/`)."""

    def __bool__(self) -> bool:
        return self.network or bool(self.writable)

    def meet(self, other: Grants) -> Grants:
        """What both grant."""
        if not self or not other:
            return NO_GRANTS
        return Grants(
            self.network and other.network, tuple(p for p in self.writable if p in other.writable)
        )


NO_GRANTS = Grants()


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: what it matches (exactly one kind key), and what it says.

    Built directly, or from a `[[rule]]` table of a policy file (same names).
    """

    action: Action
    command: tuple[str, ...] | None = None
    exact: bool = False
    """command: the whole argv, not a prefix."""
    patch: str | None = None
    operations: tuple[str, ...] = ()
    """patch: the operations it covers (create_file, update_file, delete_file,
    redirect); empty: all."""
    computer: tuple[str, ...] | None = None
    domain: str | None = None
    """computer: the page's domain (a name glob, lower case)."""
    function: str | None = None
    custom: str | None = None
    mcp: str | None = None
    """The MCP server (glob); `tool` narrows it."""
    mcp_approval: str | None = None
    """The hosted MCP server label (glob); `tool` narrows it."""
    tool: str | None = None
    network: bool = False
    writable: tuple[str, ...] = ()
    reason: str = ""
    """Told to the model and the person with the decision."""
    origin: str = ""
    """Where the rule comes from, for messages ("rule 3 of policy.toml"); the policy sets it."""

    def __post_init__(self) -> None:
        _check_rule(self)

    @property
    def kind(self) -> Kind:
        for k in KINDS:
            if getattr(self, k) is not None:
                return k
        raise AssertionError("a rule without a kind passed its checks")

    @property
    def grants(self) -> Grants:
        return Grants(self.network, self.writable) if self.network or self.writable else NO_GRANTS

    @property
    def pattern(self) -> str:
        """What it matches, briefly: `rm`, `.git/**`, `files/read_*`."""
        k = self.kind
        if k == "command":
            assert self.command is not None
            text = " ".join(self.command)
            return f"{text} (exactly)" if self.exact else text
        if k == "patch":
            ops = f" ({', '.join(self.operations)})" if self.operations else ""
            return f"{self.patch}{ops}"
        if k == "computer":
            assert self.computer is not None
            where = f" on {self.domain}" if self.domain else ""
            return ", ".join(self.computer) + where
        if k in ("mcp", "mcp_approval"):
            return f"{getattr(self, k)}/{self.tool or '*'}"
        return str(getattr(self, k))

    def describe(self) -> str:
        """`rule 3 of policy.toml: rm`."""
        return f"{self.origin or 'a rule'}: {self.pattern}"

    def matches(self, part: Part) -> bool:
        """True when this rule applies to `part` (one command, write, operation, action or tool)."""
        if isinstance(part, Command):
            return self.command is not None and _command_matches(self, part)
        if isinstance(part, Write):
            return (
                self.patch is not None
                and part.path is not None
                and _patch_matches(self, WRITE_OPERATION, part.path)
            )
        if isinstance(part, PatchSubject):
            return self.patch is not None and _patch_matches(self, part.operation, part.path)
        if isinstance(part, ComputerSubject):
            if self.computer is None or not any(
                _name(p).fullmatch(part.action) for p in self.computer
            ):
                return False
            return self.domain is None or (
                part.domain is not None and _name(self.domain).fullmatch(part.domain) is not None
            )
        if isinstance(part, ToolSubject):
            if part.kind == "mcp":
                return (
                    self.mcp is not None
                    and _name(self.mcp).fullmatch(part.server) is not None
                    and (self.tool is None or _name(self.tool).fullmatch(part.tool) is not None)
                )
            pattern = self.function if part.kind == "function" else self.custom
            return pattern is not None and _name(pattern).fullmatch(part.name) is not None
        if isinstance(part, McpApprovalSubject):
            return (
                self.mcp_approval is not None
                and _name(self.mcp_approval).fullmatch(part.server) is not None
                and (self.tool is None or _name(self.tool).fullmatch(part.tool) is not None)
            )
        return False  # malformed calls and unparsable commands: no rule can vouch for them


Part = Command | Write | PatchSubject | ComputerSubject | ToolSubject | McpApprovalSubject
"""What one rule is matched against."""


@lru_cache(maxsize=8192)
def _name(pattern: str) -> re.Pattern[str]:
    return name_regex(pattern)


@lru_cache(maxsize=8192)
def _path(pattern: str) -> re.Pattern[str]:
    return path_regex(pattern)


def _command_matches(rule: Rule, cmd: Command) -> bool:
    prefix = rule.command
    assert prefix is not None
    words = cmd.words
    if len(words) < len(prefix) or (rule.exact and len(words) != len(prefix)):
        return False
    if rule.action is Action.ALLOW and cmd.assignments:
        return False
    for i, (w, p) in enumerate(zip(words, prefix, strict=False)):
        if not w.literal:
            return False
        if w.text == p:
            continue
        if i == 0 and rule.action is not Action.ALLOW and "/" not in p and "/" in w.text:
            if posixpath.basename(w.text) == p:
                continue
        return False
    return True


def _patch_matches(rule: Rule, operation: str, path: str) -> bool:
    assert rule.patch is not None
    if rule.operations and operation not in rule.operations:
        return False
    return _path(rule.patch).fullmatch(path) is not None


def _check_rule(r: Rule) -> None:
    """Raise PolicyError saying what is wrong with `r` (the loader adds where it is)."""

    def put(key: str, value: object) -> None:
        object.__setattr__(r, key, value)  # normalising a frozen dataclass being built

    if not isinstance(r.action, Action):
        if r.action not in ("allow", "ask", "deny"):
            raise PolicyError(f"action must be allow, ask or deny, not {r.action!r}", key="action")
        put("action", Action(r.action))
    kinds = [k for k in KINDS if getattr(r, k) is not None]
    if len(kinds) != 1:
        what = ", ".join(kinds) if kinds else "none"
        raise PolicyError(
            f"a rule needs exactly one of {', '.join(KINDS)} (it has {what})",
            key=kinds[1] if len(kinds) > 1 else None,
        )
    kind = kinds[0]
    if kind == "command":
        cmd = r.command
        if isinstance(cmd, str) or not isinstance(cmd, tuple | list) or not cmd:
            raise PolicyError(
                'command must be a non-empty list of words, such as ["git", "status"]',
                key="command",
            )
        if not all(isinstance(w, str) and w for w in cmd):
            raise PolicyError("every word of command must be a non-empty string", key="command")
        put("command", tuple(cmd))
    if not isinstance(r.exact, bool):
        raise PolicyError("exact must be true or false", key="exact")
    if r.exact and kind != "command":
        raise PolicyError("exact applies to command rules only", key="exact")
    if kind == "computer":
        c = (r.computer,) if isinstance(r.computer, str) else r.computer
        if not isinstance(c, tuple | list) or not c or not all(isinstance(x, str) and x for x in c):
            raise PolicyError(
                'computer must be an action type or a list of them, such as "click"',
                key="computer",
            )
        put("computer", tuple(c))
    for key in ("patch", "function", "custom", "mcp", "mcp_approval", "domain", "tool"):
        value = getattr(r, key)
        if value is not None and (not isinstance(value, str) or not value):
            raise PolicyError(f"{key} must be a non-empty string (a glob)", key=key)
    if r.domain is not None:
        if kind != "computer":
            raise PolicyError("domain applies to computer rules only", key="domain")
        put("domain", r.domain.lower())
    if r.tool is not None and kind not in ("mcp", "mcp_approval"):
        raise PolicyError("tool applies to mcp and mcp_approval rules only", key="tool")
    ops = r.operations
    if isinstance(ops, str) or not isinstance(ops, tuple | list):
        raise PolicyError("operations must be a list", key="operations")
    known = (*PATCH_OPERATIONS, WRITE_OPERATION)
    for op in ops:
        if op not in known:
            raise PolicyError(
                f"unknown operation {op!r} in operations; expected: {', '.join(known)}",
                key="operations",
            )
    if ops and kind != "patch":
        raise PolicyError("operations applies to patch rules only", key="operations")
    put("operations", tuple(ops))
    if not isinstance(r.network, bool):
        raise PolicyError("network must be true or false", key="network")
    w = r.writable
    if isinstance(w, str) or not isinstance(w, tuple | list):
        raise PolicyError("writable must be a list of paths", key="writable")
    for p in w:
        if not isinstance(p, str) or not (p.startswith("/") or p.startswith("~/")):
            raise PolicyError(
                f"writable paths must be absolute or start with ~/, not {p!r}", key="writable"
            )
    put("writable", tuple(w))
    if not isinstance(r.reason, str):
        raise PolicyError("reason must be a string", key="reason")


# -- decisions -----------------------------------------------------------------------

Decided = Part | CommandSubject | MalformedSubject
"""What a decision is about: one part, or a whole command that cannot be parsed."""

READ_ONLY = "the untrusted preset: a known read-only command"
SHOWN_SUBJECT_CHARS = 200
"""A decision's message quotes at most this much of what it is about."""


@dataclass(frozen=True, slots=True)
class Decision:
    """allow | ask | deny, and what decided it."""

    action: Action
    by: str
    """What decided: "rule 3 of policy.toml: rm", "the default for shell commands"."""
    subject: Decided | None = None
    """The part that decided (for a call of several parts: the first with `action`)."""
    rule: Rule | None = None
    grants: Grants = NO_GRANTS
    parts: tuple[Decision, ...] = ()
    """Every part's own decision, in order, when the call has more than one."""

    @property
    def reason(self) -> str:
        return self.rule.reason if self.rule is not None else ""

    def __str__(self) -> str:
        """ "`rm -rf x` denied by rule 3 of policy.toml: rm (reason)"."""
        what = ""
        if self.subject is not None:
            text = str(self.subject)
            if len(text) > SHOWN_SUBJECT_CHARS:  # a here-doc, a 256 KiB command
                text = text[:SHOWN_SUBJECT_CHARS] + f"… ({len(text):,} characters)"
            what = f"`{text}` "
        why = f" ({self.reason})" if self.reason else ""
        return f"{what}{self.action.past} by {self.by}{why}"


def _combine(leaves: list[Decision]) -> Decision:
    if len(leaves) == 1:
        return leaves[0]
    worst = leaves[0]
    grants: Grants | None = None
    for d in leaves:
        if d.action.severity > worst.action.severity:
            worst = d
        if d.by is READ_ONLY:
            continue  # reads use no permission: they take none away
        grants = d.grants if grants is None else grants.meet(d.grants)
    return Decision(
        worst.action, worst.by, worst.subject, worst.rule, grants or NO_GRANTS, tuple(leaves)
    )


# -- the policy ----------------------------------------------------------------------


class Policy:
    """Rules in order, a preset, and defaults per kind."""

    def __init__(
        self,
        rules: Iterable[Rule] = (),
        *,
        approval: ApprovalMode | str = "on-request",
        defaults: Mapping[str, Action | str] | None = None,
        source: str = "policy",
    ) -> None:
        """`rules` without an `origin` are named "rule N of `source`"; `defaults`
        (by kind: command, patch, ...) override the preset's."""
        self.preset = preset(approval)
        self.source = source
        self.explicit_defaults: dict[str, Action] = {}
        for k, v in (defaults or {}).items():
            if k not in KINDS:
                raise PolicyError(f"unknown kind {k!r} in defaults; expected: {', '.join(KINDS)}")
            try:
                self.explicit_defaults[k] = Action(v)
            except ValueError:
                raise PolicyError(
                    f"the default for {k} must be allow, ask or deny, not {v!r}"
                ) from None
        self.defaults: dict[str, Action] = dict(self.preset.defaults)
        self.defaults.update(self.explicit_defaults)
        self.rules: tuple[Rule, ...] = tuple(
            r if r.origin else replace(r, origin=f"rule {i} of {source}")
            for i, r in enumerate(rules, 1)
        )
        self._index()

    @property
    def approval(self) -> ApprovalMode:
        return self.preset.name

    @property
    def allows_everything(self) -> bool:
        """True when every call is allowed without looking (the `never` preset, no rules):
        a caller may then skip building requests."""
        return (
            not self.rules
            and all(a is Action.ALLOW for a in self.defaults.values())
            and self.preset.unparsable is Action.ALLOW
        )

    # -- variants ----------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        writable_roots: Sequence[str | Path] = (),
        approval: ApprovalMode | str | None = None,
    ) -> Policy:
        """Read a policy file (see the package docstring), refusing one the sandbox can
        write: under any of `writable_roots`, or reached through a symlink there.
        `approval`, when given, replaces the file's preset."""
        from .load import load_policy

        return load_policy(path, writable_roots=writable_roots, approval=approval)

    @classmethod
    def from_toml(cls, text: str, *, source: str = "policy") -> Policy:
        """A policy from the text of a policy file (no file-system checks)."""
        from .load import parse_policy

        return parse_policy(text, source=source)

    def with_approval(self, approval: ApprovalMode | str) -> Policy:
        """The same rules and explicit defaults on another preset."""
        return Policy(
            self.rules, approval=approval, defaults=self.explicit_defaults, source=self.source
        )

    def with_rules(self, rules: Iterable[Rule], *, origin: str = "this session") -> Policy:
        """A policy whose first rules are `rules`, named "rule N of `origin`" (after the
        rules of `origin` added before, numbered on), then this policy's own."""
        mark = f" of {origin}"
        earlier = [r for r in self.rules if r.origin.endswith(mark)]
        rest = [r for r in self.rules if not r.origin.endswith(mark)]
        added = [
            replace(r, origin=f"rule {i}{mark}") for i, r in enumerate(rules, len(earlier) + 1)
        ]
        return Policy(
            [*earlier, *added, *rest],
            approval=self.approval,
            defaults=self.explicit_defaults,
            source=self.source,
        )

    # -- deciding ----------------------------------------------------------------------

    def decide(self, request: PolicyRequest) -> Decision:
        """The decision for one call."""
        if self.allows_everything:
            return Decision(Action.ALLOW, "the never preset")
        leaves: list[Decision] = []
        for s in request.subjects:
            self._subject(s, leaves, request.call_type)
        if not leaves:
            return Decision(Action.ALLOW, "the policy: the call runs nothing")
        return _combine(leaves)

    def _subject(self, s: Subject, out: list[Decision], call_type: str) -> None:
        if isinstance(s, CommandSubject):
            if s.script.error is not None:
                why = f"the command cannot be parsed: {s.script.error}"
                out.append(self._unchecked(s, why, "command"))
                return
            for p in s.script.parts:
                out.append(self._command(p) if isinstance(p, Command) else self._write(p))
        elif isinstance(s, PatchSubject):
            out.append(self._decide(s, "patch", _first(self._patches.candidates(s.path), s)))
        elif isinstance(s, ComputerSubject):
            found = _first(_merge(self._computer_exact.get(s.action, ()), self._computer_any), s)
            if found is None and self.preset.reads and s.action in READ_ACTIONS:
                out.append(Decision(Action.ALLOW, "the untrusted preset: a computer read", s))
                return
            out.append(self._decide(s, "computer", found))
        elif isinstance(s, ToolSubject):
            if s.kind == "mcp":
                found = _first(self._mcp.candidates(s.server), s)
            else:
                index = self._function if s.kind == "function" else self._custom
                found = _first(index.candidates(s.name), s)
            out.append(self._decide(s, s.kind, found))
        elif isinstance(s, McpApprovalSubject):
            found = _first(self._mcp_approval.candidates(s.server), s)
            out.append(self._decide(s, "mcp_approval", found))
        else:
            out.append(self._unchecked(s, s.error, _CALL_KINDS.get(call_type)))

    def _decide(self, part: Decided, kind: Kind, found: _Entry | None) -> Decision:
        if found is not None:
            rule = found.rule
            return Decision(rule.action, found.label, part, rule, found.grants)
        return Decision(self.defaults[kind], _DEFAULT_LABELS[kind], part)

    def _unchecked(self, part: Decided, why: str, kind: Kind | None) -> Decision:
        """What cannot be checked gets the preset's answer for that, or the kind's
        default if that is more severe: never better than what no rule names."""
        action = self.preset.unparsable
        default = self.defaults[kind] if kind is not None else action
        if default.severity > action.severity:
            return Decision(default, f"{_DEFAULT_LABELS[str(kind)]} ({why})", part)
        return Decision(action, f"the {self.approval} preset ({why})", part)

    def _command(self, cmd: Command) -> Decision:
        if not cmd.words:  # a bare assignment: no rule names it
            return self._decide(cmd, "command", None)
        if not cmd.words[0].literal:
            return self._unchecked(cmd, "the command name is not literal", "command")
        found = self._first_command(cmd)
        if found is None and self.preset.reads and is_read_only(cmd):
            return Decision(Action.ALLOW, READ_ONLY, cmd)
        return self._decide(cmd, "command", found)

    def _write(self, w: Write) -> Decision:
        if w.path is None:
            return self._unchecked(w, "the file it writes is not known", "patch")
        found = _first(self._patches.candidates(w.path), PatchSubject(WRITE_OPERATION, w.path))
        return self._decide(w, "patch", found)

    # -- the index ---------------------------------------------------------------------

    def _index(self) -> None:
        self._commands = _Node()
        self._patches: AffixIndex[_Entry] = AffixIndex()
        self._computer_exact: dict[str, list[_Entry]] = {}
        self._computer_any: list[_Entry] = []
        self._function: AffixIndex[_Entry] = AffixIndex()
        self._custom: AffixIndex[_Entry] = AffixIndex()
        self._mcp: AffixIndex[_Entry] = AffixIndex()
        self._mcp_approval: AffixIndex[_Entry] = AffixIndex()
        for i, r in enumerate(self.rules):
            entry = _Entry(i, r, _matcher(r), r.describe(), r.grants)
            if r.command is not None:
                node = self._commands
                for word in r.command:
                    node = node.children.setdefault(word, _Node())
                node.rules.append(entry)
            elif r.patch is not None:
                self._patches.add(r.patch, entry)
            elif r.computer is not None:
                if any(any(ch in t for ch in "*?[") for t in r.computer):
                    self._computer_any.append(entry)
                else:
                    for t in dict.fromkeys(r.computer):
                        self._computer_exact.setdefault(t, []).append(entry)
            elif r.function is not None:
                self._function.add(r.function, entry)
            elif r.custom is not None:
                self._custom.add(r.custom, entry)
            elif r.mcp is not None:
                self._mcp.add(r.mcp, entry)
            elif r.mcp_approval is not None:
                self._mcp_approval.add(r.mcp_approval, entry)

    def _first_command(self, cmd: Command) -> _Entry | None:
        # The rules met walking down the trie all have a prefix of the argv.
        lists: list[list[_Entry]] = []
        node = self._commands
        for w in cmd.words:
            if not w.literal:
                break
            child = node.children.get(w.text)
            if child is None:
                break
            node = child
            if node.rules:
                lists.append(node.rules)
        name = cmd.words[0].text
        if "/" in name:  # deny and ask rules naming the program also catch it by path
            base = self._commands.children.get(posixpath.basename(name))
            rest = iter(cmd.words[1:])
            while base is not None:
                if base.rules:
                    lists.append(base.rules)
                nxt = next(rest, None)
                if nxt is None or not nxt.literal:
                    break
                base = base.children.get(nxt.text)
        return _first(_merge(*lists), cmd)


@dataclass(frozen=True, slots=True)
class _Entry:
    """A rule in the index: its place, its compiled test, its label."""

    order: int
    rule: Rule
    test: Callable[[Part], bool]
    label: str
    grants: Grants


@dataclass(slots=True)
class _Node:
    rules: list[_Entry] = field(default_factory=list)
    children: dict[str, _Node] = field(default_factory=dict)


_DEFAULT_LABELS: dict[str, str] = {k: f"the default for {v}" for k, v in KIND_LABELS.items()}
_CALL_KINDS: dict[str, Kind] = {
    "shell_call": "command",
    "local_shell_call": "command",
    "apply_patch_call": "patch",
    "computer_call": "computer",
    "function_call": "function",
    "custom_tool_call": "custom",
    "mcp_approval_request": "mcp_approval",
}


def _first(candidates: Iterable[_Entry], part: Part) -> _Entry | None:
    """The first candidate (in rule order) whose rule matches `part`."""
    for entry in candidates:
        if entry.test(part):
            return entry
    return None


def _merge(*lists: Sequence[_Entry]) -> Iterable[_Entry]:
    """Lists each in rule order -> one iterable in rule order (lazily: the first match stops it)."""
    nonempty = [x for x in lists if x]
    if len(nonempty) <= 1:
        return nonempty[0] if nonempty else ()
    return heapq.merge(*nonempty, key=_order)


def _order(e: _Entry) -> int:
    return e.order


def _matcher(r: Rule) -> Callable[[Part], bool]:
    """`r.matches`, specialised to its kind with its globs compiled (the index's test)."""
    if r.patch is not None:
        path_re, ops = _path(r.patch), frozenset(r.operations)

        def patch(part: Part) -> bool:
            assert isinstance(part, PatchSubject)
            return (not ops or part.operation in ops) and path_re.fullmatch(part.path) is not None

        return patch
    if r.computer is not None:
        types = [_name(t) for t in r.computer]
        domain = _name(r.domain) if r.domain is not None else None

        def computer(part: Part) -> bool:
            assert isinstance(part, ComputerSubject)
            if not any(t.fullmatch(part.action) for t in types):
                return False
            return domain is None or (
                part.domain is not None and domain.fullmatch(part.domain) is not None
            )

        return computer
    if r.function is not None or r.custom is not None:
        name_re = _name(r.function if r.function is not None else str(r.custom))

        def tool_name(part: Part) -> bool:
            assert isinstance(part, ToolSubject)
            return name_re.fullmatch(part.name) is not None

        return tool_name
    if r.mcp is not None or r.mcp_approval is not None:
        server_re = _name(r.mcp if r.mcp is not None else str(r.mcp_approval))
        tool_re = _name(r.tool) if r.tool is not None else None

        def server_tool(part: Part) -> bool:
            assert isinstance(part, ToolSubject | McpApprovalSubject)
            return server_re.fullmatch(part.server) is not None and (
                tool_re is None or tool_re.fullmatch(part.tool) is not None
            )

        return server_tool
    return r.matches  # commands: a short word-by-word comparison already


def always_rule(decision: Decision) -> Rule | None:
    """An allow rule for exactly what `decision` is about (a person's "always"):
    the whole argv, the path, the action type, the tool. None when no rule can
    name it (an unparsable command, an unknown write target, a malformed call)."""
    s = decision.subject
    if isinstance(s, Command):
        if not s.words or not s.literal or s.assignments:
            return None
        return Rule(Action.ALLOW, command=s.argv, exact=True)
    if isinstance(s, Write):
        if s.path is None:
            return None
        return Rule(Action.ALLOW, patch=_escape_glob(s.path), operations=(WRITE_OPERATION,))
    if isinstance(s, PatchSubject):
        return Rule(Action.ALLOW, patch=_escape_glob(s.path), operations=(s.operation,))
    if isinstance(s, ComputerSubject):
        return Rule(Action.ALLOW, computer=(_escape_name(s.action),))
    if isinstance(s, ToolSubject):
        if s.kind == "mcp":
            return Rule(Action.ALLOW, mcp=_escape_name(s.server), tool=_escape_name(s.tool))
        if s.kind == "function":
            return Rule(Action.ALLOW, function=_escape_name(s.name))
        return Rule(Action.ALLOW, custom=_escape_name(s.name))
    if isinstance(s, McpApprovalSubject):
        return Rule(Action.ALLOW, mcp_approval=_escape_name(s.server), tool=_escape_name(s.tool))
    return None


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _escape_name(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)
