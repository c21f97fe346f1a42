"""Reading a policy file: TOML in, `Policy` out, errors that say where and what.

`parse_policy(text)` checks the document (format: the package docstring);
every error names the file, the line when it can be found, the rule, and
what is wrong ("policy.toml, line 12: rule 3: unknown key 'comand' (did
you mean 'command'?)"). TOML syntax errors keep tomllib's line and column.

`load_policy(path, writable_roots=...)` reads the file only if nothing on
its way can be written by the sandbox: the path is resolved one component
at a time, and every place it passes through — each directory, each
symlink, the file itself — must be outside every writable root (the roots
resolved too). A policy in the workspace, a symlink into the workspace, and
a symlink in the workspace pointing elsewhere are all refused: the agent
could rewrite its own rules for the next run. The file is then opened by
its resolved path with `O_NOFOLLOW` (nothing on that path is the sandbox's
to change) and read once, at most `MAX_POLICY_BYTES`. A policy whose own
rules grant write access to the file is refused too.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .presets import APPROVALS, KINDS
from .rules import Policy, PolicyError, Rule

MAX_POLICY_BYTES = 1024 * 1024
MAX_SYMLINKS = 40

TOP_KEYS = ("approval", "defaults", "rule")
RULE_KEYS = (
    "action",
    *KINDS,
    "exact",
    "operations",
    "domain",
    "tool",
    "network",
    "writable",
    "reason",
)


def parse_policy(text: str, *, source: str = "policy", approval: str | None = None) -> Policy:
    """The policy a policy file's text describes; PolicyError saying where it is wrong.
    `approval`, when given, replaces the file's preset."""
    where = _Lines(text, source)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{source}: {e}") from None
    for key in doc:
        if key not in TOP_KEYS:
            where.fail(
                f"unknown key {key!r}{_suggest(key, TOP_KEYS)}; a policy file has "
                f"{', '.join(TOP_KEYS)}",
                where.top_key(key),
            )
    preset = doc.get("approval", "on-request")
    if not isinstance(preset, str) or preset not in APPROVALS:
        where.fail(
            f"approval must be one of {', '.join(APPROVALS)}, not {preset!r}",
            where.top_key("approval"),
        )
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        where.fail("defaults must be a table ([defaults])", where.top_key("defaults"))
    for kind, value in defaults.items():
        line = where.table_key("defaults", kind)
        if kind not in KINDS:
            where.fail(
                f"defaults: unknown kind {kind!r}{_suggest(kind, KINDS)}; expected: "
                f"{', '.join(KINDS)}",
                line,
            )
        if value not in ("allow", "ask", "deny"):
            where.fail(f"defaults: {kind} must be allow, ask or deny, not {value!r}", line)
    tables = doc.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        where.fail("rule must be an array of tables: one [[rule]] per rule", where.top_key("rule"))
    rules = [_rule(t, i, where) for i, t in enumerate(tables, 1)]
    return Policy(rules, approval=approval or preset, defaults=defaults, source=source)


def _rule(table: dict[str, Any], number: int, where: _Lines) -> Rule:
    for key in table:
        if key not in RULE_KEYS:
            where.fail(
                f"rule {number}: unknown key {key!r}{_suggest(key, RULE_KEYS)}",
                where.rule_key(number, key),
            )
    if "action" not in table:
        where.fail(
            f"rule {number} has no action (allow, ask or deny)", where.rule_key(number, None)
        )
    try:
        return Rule(**table)
    except PolicyError as e:
        where.fail(f"rule {number}: {e}", where.rule_key(number, e.key))
        raise AssertionError("fail() returned") from None


def _suggest(key: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Lines:
    """Finds the line of a key, a table or a rule in the text, for error messages."""

    _HEADER = re.compile(r"^\s*\[\[?\s*\"?([A-Za-z0-9_.-]+)\"?\s*\]\]?")

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = text.splitlines()
        # (line index, name, is an array of tables) of every header
        self.headers: list[tuple[int, str, bool]] = []
        for i, line in enumerate(self.lines):
            m = self._HEADER.match(line)
            if m:
                self.headers.append((i, m.group(1), line.lstrip().startswith("[[")))

    def fail(self, message: str, line: int | None) -> None:
        at = f", line {line}" if line is not None else ""
        raise PolicyError(f"{self.source}{at}: {message}")

    def _span(self, start: int) -> int:
        return next((i for i, _, _ in self.headers if i > start), len(self.lines))

    def _find(self, key: str | None, start: int, end: int) -> int | None:
        if key is None:
            return start + 1
        pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        for i in range(start, end):
            if pattern.match(self.lines[i]):
                return i + 1
        return start + 1 if start < len(self.lines) and start >= 0 else None

    def top_key(self, key: str) -> int | None:
        for i, name, _ in self.headers:
            if name == key:
                return i + 1
        end = self.headers[0][0] if self.headers else len(self.lines)
        found = self._find(key, 0, end)
        return found if found is not None and end > 0 else None

    def table_key(self, table: str, key: str) -> int | None:
        for i, name, array in self.headers:
            if name == table and not array:
                return self._find(key, i + 1, self._span(i)) or i + 1
        return self.top_key(table)

    def rule_key(self, number: int, key: str | None) -> int | None:
        starts = [i for i, name, array in self.headers if name == "rule" and array]
        if number > len(starts):
            return self.top_key("rule")  # written as an inline array: no header per rule
        start = starts[number - 1]
        if key is None:
            return start + 1
        return self._find(key, start + 1, self._span(start)) or start + 1


# -- reading the file ----------------------------------------------------------------


def load_policy(
    path: str | Path,
    *,
    writable_roots: Sequence[str | Path] = (),
    approval: str | None = None,
) -> Policy:
    """Read and parse the policy at `path`, refusing one the sandbox can write."""
    given = Path(os.path.expanduser(path))
    chain = _resolution(given)
    roots: list[Path] = []
    for r in writable_roots:
        for p in (Path(os.path.abspath(r)), Path(os.path.realpath(r))):
            if p not in roots:
                roots.append(p)
    inside = [(p, root) for p in chain for root in roots if p == root or root in p.parents]
    if inside:
        p, root = inside[-1]  # the deepest: the file, or the symlink that leads through
        via = "" if p == chain[-1] else f" (through {p})"
        raise PolicyError(
            f"refusing to read the policy {given}{via}: it is inside {root}, which the "
            "sandbox can write, so the agent could rewrite its own rules; keep the policy "
            "file outside the workspace and the sandbox's writable paths"
        )
    real = chain[-1]
    text = _read(real, given)
    policy = parse_policy(text, source=given.name, approval=approval)
    for rule in policy.rules:
        for w in rule.writable:
            granted = Path(os.path.realpath(os.path.expanduser(w)))
            if real == granted or granted in real.parents:
                raise PolicyError(
                    f"{given.name}: {rule.origin} grants write access to {w}, which holds the "
                    "policy file itself: the agent could rewrite its own rules"
                )
    return policy


def _resolution(path: Path) -> list[Path]:
    """Every path met while resolving `path` as the kernel would, one component at a
    time — each directory, each symlink — and last the file it resolves to."""
    todo = list(reversed(Path(os.path.join(os.getcwd(), path)).parts[1:]))
    current = Path("/")
    met: list[Path] = []
    links = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            current = current.parent
            continue
        nxt = current / part
        met.append(nxt)
        try:
            st = os.lstat(nxt)
        except OSError as e:
            raise PolicyError(f"cannot read the policy {path}: {e.strerror}: {nxt}") from None
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise PolicyError(f"cannot read the policy {path}: too many symlinks")
            target = Path(os.readlink(nxt))
            if target.is_absolute():
                current = Path("/")
            todo.extend(reversed([p for p in target.parts if p != "/"]))
        else:
            current = nxt
    met.append(current)
    return met


def _read(real: Path, given: Path) -> str:
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise PolicyError(f"cannot read the policy {given}: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PolicyError(f"cannot read the policy {given}: not a regular file")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_POLICY_BYTES + 1)
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(f"the policy {given} is larger than {MAX_POLICY_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PolicyError(f"the policy {given} is not UTF-8 text: {e}") from None
