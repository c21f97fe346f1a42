"""Benchmark: the policy decision per call with 1,000 rules, and shell parsing on its own.

    .venv/bin/python bench/policy.py            # prints Markdown tables; exit 1 if a target is missed

1. Decision: `Policy.decide(request)` with 1,000 rules of every kind, on
   requests built beforehand (shell parsing excluded), for calls of every
   kind; median per call. Target: <= 50 µs. The same requests are also
   decided by a linear scan of the same rules in order (`Rule.matches`, what
   the index must agree with) for comparison, and the index is shown on
   adversarial rule sets: 1,000 rules under one program (`git ...`), 1,000
   globs keyed by suffix only (`**/*.eN`), and 1,000 globs with no literal
   prefix or suffix (`*mN*`), which the index cannot narrow, none matching.
2. Shell parsing: `parse_script` on short, typical and long command strings
   (tree-sitter-bash and the walk); median per command.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from itemloop.tools.items import Item
from itemloop.tools.policy import Action, Policy, PolicyRequest, Rule, parse_script, request_for
from itemloop.tools.policy.rules import Part
from itemloop.tools.policy.shell import Command, Write

TARGET_US = 50.0
N_RULES = 1_000

PROGRAMS = [f"prog{i}" for i in range(150)] + [
    "git", "npm", "pip", "cargo", "make", "docker", "kubectl", "python", "node", "go",
]  # fmt: skip
SUBCOMMANDS = ["run", "build", "test", "install", "push", "status", "list", "show", "rm", "add"]
DIRS = [f"dir{i}" for i in range(60)] + ["src", "tests", "docs", ".git", ".github", "build"]
EXTS = [f"ext{i}" for i in range(40)] + ["py", "lock", "toml", "json", "md", "env"]
ACTIONS = ["click", "double_click", "drag", "keypress", "move", "screenshot", "scroll", "type"]


def realistic_rules(rng: random.Random, n: int = N_RULES) -> list[Rule]:
    """A large policy: mostly commands and path globs, some tools and computer rules."""
    rules: list[Rule] = []
    acts = list(Action)
    while len(rules) < n:
        r = rng.random()
        a = rng.choice(acts)
        if r < 0.55:
            prefix = [rng.choice(PROGRAMS)]
            if rng.random() < 0.6:
                prefix.append(rng.choice(SUBCOMMANDS))
            if rng.random() < 0.2:
                prefix.append(f"--flag{rng.randrange(20)}")
            rules.append(Rule(a, command=tuple(prefix)))
        elif r < 0.80:
            shape = rng.randrange(4)
            d, e = rng.choice(DIRS), rng.choice(EXTS)
            pattern = [f"{d}/**", f"**/*.{e}", f"{d}/*.{e}", f"{d}/**/test_*.{e}"][shape]
            rules.append(Rule(a, patch=pattern))
        elif r < 0.85:
            rules.append(
                Rule(a, computer=(rng.choice(ACTIONS),), domain=f"*.site{rng.randrange(30)}.com")
            )
        elif r < 0.93:
            rules.append(Rule(a, function=f"tool{rng.randrange(200)}_*"))
        elif r < 0.97:
            rules.append(Rule(a, mcp=f"server{rng.randrange(30)}", tool=f"op{rng.randrange(10)}*"))
        else:
            rules.append(Rule(a, mcp_approval=f"hosted{rng.randrange(50)}"))
    return rules


def shell_call(*commands: str) -> Item:
    return {"type": "shell_call", "call_id": "c", "action": {"commands": list(commands)}}


def patch_call(path: str) -> Item:
    op = {"type": "update_file", "path": path, "diff": ""}
    return {"type": "apply_patch_call", "call_id": "c", "operation": op}


MCP_TOOLS = {f"server{s}__op{o}": (f"server{s}", f"op{o}") for s in range(40) for o in range(12)}
"""The model-facing names of MCP tools -> (server, tool), as the toolset would give them."""


def calls(rng: random.Random) -> dict[str, list[Item]]:
    """100 calls of every kind; shell commands include compounds of 3 commands and a write."""

    def cmd() -> str:
        return f"{rng.choice(PROGRAMS)} {rng.choice(SUBCOMMANDS)} arg{rng.randrange(100)}"

    def path() -> str:
        dirs = "/".join(rng.choice(DIRS) for _ in range(rng.randrange(1, 4)))
        return f"{dirs}/file.{rng.choice(EXTS)}"

    def tool(name: str) -> Item:
        return {"type": "function_call", "call_id": "c", "name": name, "arguments": "{}"}

    out: dict[str, list[Item]] = {}

    def add(kind: str, item: Item) -> None:
        out.setdefault(kind, []).append(item)

    for _ in range(100):
        add("shell", shell_call(cmd()))
        add("shell (3 commands + write)", shell_call(f"{cmd()} && {cmd()} | {cmd()} > {path()}"))
        add("apply_patch", patch_call(path()))
        action = {"type": rng.choice(ACTIONS)}
        add("computer", {"type": "computer_call", "call_id": "c", "action": action})
        add("function", tool(f"tool{rng.randrange(250)}_x"))
        add("mcp", tool(rng.choice(list(MCP_TOOLS))))
        label = f"hosted{rng.randrange(60)}"
        approval = {"type": "mcp_approval_request", "id": "a", "server_label": label, "name": "t"}
        add("mcp_approval", approval)
    return out


def build(items: list[Item]) -> list[PolicyRequest]:
    """The requests, built (and shell commands parsed) before any timing."""
    return [request_for(c, mcp_tools=MCP_TOOLS, domain="www.site3.com") for c in items]


def linear_decide(rules: Sequence[Rule], request: PolicyRequest) -> list[Rule | None]:
    """The reference: every part against every rule in order, first match."""
    parts: list[Part] = []
    for s in request.subjects:
        script = getattr(s, "script", None)
        if script is not None:
            parts += [p for p in script.parts if isinstance(p, Command | Write)]
        else:
            parts.append(s)  # type: ignore[arg-type]
    return [next((r for r in rules if r.matches(p)), None) for p in parts]


def per_call_us(
    fn: Callable[[PolicyRequest], object], requests: list[PolicyRequest], n: int = 20
) -> float:
    """Median over requests of the time of one call, each timed over a batch of `n`."""
    times = []
    for req in requests:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn(req)
        times.append((time.perf_counter_ns() - t0) / n / 1000)
    return statistics.median(times)


def decision_table(rng: random.Random) -> tuple[str, float]:
    rules = realistic_rules(rng)
    policy = Policy(rules, approval="untrusted")
    by_kind = {k: build(v) for k, v in calls(rng).items()}
    for reqs in by_kind.values():  # warm the regex caches
        for r in reqs:
            policy.decide(r)
            linear_decide(policy.rules, r)
    lines = [
        f"| call ({N_RULES:,} rules) | `Policy.decide`, median µs | linear scan, median µs |",
        "| --- | ---: | ---: |",
    ]
    everything: list[PolicyRequest] = []
    for kind, reqs in by_kind.items():
        everything += reqs
        idx = per_call_us(policy.decide, reqs)
        lin = per_call_us(lambda r: linear_decide(policy.rules, r), reqs[:30], n=2)
        lines.append(f"| {kind} | {idx:.1f} | {lin:.1f} |")
    overall = per_call_us(policy.decide, everything)
    lin_all = per_call_us(lambda r: linear_decide(policy.rules, r), everything[::5], n=2)
    lines.append(f"| **all kinds** | **{overall:.1f}** | {lin_all:.1f} |")
    return "\n".join(lines), overall


def adversarial_table(rng: random.Random) -> str:
    def some(make: Callable[[int], Item]) -> list[PolicyRequest]:
        return build([make(rng.randrange(1200)) for _ in range(50)])

    cases = [
        (
            "1,000 rules `git subN`",
            [Rule(Action.ASK, command=("git", f"sub{i}")) for i in range(N_RULES)],
            some(lambda k: shell_call(f"git sub{k} x")),
        ),
        (
            "1,000 globs `**/*.eN`",
            [Rule(Action.ASK, patch=f"**/*.e{i}") for i in range(N_RULES)],
            some(lambda k: patch_call(f"a/b/c.e{k}")),
        ),
        (
            "1,000 globs `*mN*`, no literal end, none matching (not indexed)",
            [Rule(Action.ASK, patch=f"*m{i}*") for i in range(N_RULES)],
            some(lambda k: patch_call(f"x{k}x")),
        ),
    ]
    lines = [
        "| rule set | `Policy.decide`, median µs | linear scan, median µs |",
        "| --- | ---: | ---: |",
    ]
    for name, rules, reqs in cases:
        policy = Policy(rules)
        for r in reqs:
            policy.decide(r)
        idx = per_call_us(policy.decide, reqs)
        lin = per_call_us(lambda r, p=policy: linear_decide(p.rules, r), reqs[:20], n=2)  # type: ignore[misc]
        lines.append(f"| {name} | {idx:.1f} | {lin:.1f} |")
    return "\n".join(lines)


def parsing_table() -> str:
    heredoc = (
        "cat > notes.md <<'EOF'\n" + "".join(f"line {i} of the notes\n" for i in range(100)) + "EOF"
    )
    cases = [
        ("short: `git status`", "git status"),
        ("typical: `git log --oneline | head -5 && echo $(date) > /tmp/x`",
         "git log --oneline | head -5 && echo $(date) > /tmp/x"),
        ("loop: `for f in $(find . -name '*.py'); do wc -l \"$f\"; done`",
         "for f in $(find . -name '*.py'); do wc -l \"$f\"; done"),
        (f"here-doc, {len(heredoc):,} chars", heredoc),
        ("2,000-word command", "echo " + " ".join(f"w{i}" for i in range(2000))),
    ]  # fmt: skip
    lines = ["| command | parse, median µs |", "| --- | ---: |"]
    for name, source in cases:
        assert parse_script(source).error is None
        times = []
        for _ in range(200 if len(source) < 1000 else 30):
            t0 = time.perf_counter_ns()
            parse_script(source)
            times.append((time.perf_counter_ns() - t0) / 1000)
        cell = name.replace("|", "\\|")  # a pipe inside a table cell
        lines.append(f"| {cell} | {statistics.median(times):,.1f} |")
    return "\n".join(lines)


def main() -> int:
    rng = random.Random(11)
    table, overall = decision_table(rng)
    print(f"## Decision per call, {N_RULES:,} rules, shell parsing excluded\n")
    print(table)
    print("\n## Adversarial rule sets\n")
    print(adversarial_table(rng))
    print("\n## Shell parsing\n")
    print(parsing_table())
    ok = overall <= TARGET_US
    print(
        f"\ndecision median {overall:.1f} µs: target <= {TARGET_US:.0f} µs {'met' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
