"""Approvals on, everything allowed: per-turn loop overhead against no policy at all.

The same N-turn run as `loop_overhead.py` (one function call a turn, an
in-process scripted model), three ways in one process: no gate; the policy
gate with `--approval never` (allows everything without building requests);
the policy gate with `--approval on-request` and a policy of 1,000 rules whose
first match allows the call (every call is turned into a request and decided).
Reports the median per-turn time and the ratios; target: within 1.2x.

    python bench/approvals.py [--turns 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from typing import Any

import anyio
from loop_overhead import run_itemloop_with

from itemloop.runtime.policy_gate import PolicyGate
from itemloop.tools.policy import Action, Policy, Rule


def policy_with_rules(n: int) -> Policy:
    rules = [Rule(Action.DENY, command=[f"tool{i}"]) for i in range(n - 1)]
    rules.append(Rule(Action.ALLOW, function="noop"))
    return Policy(rules, approval="on-request", source="bench")


def per_turn(stamps: list[float]) -> float:
    return statistics.median(b - a for a, b in itertools.pairwise(stamps))


async def measure(turns: int, gate: str) -> float:
    def make_gate(toolset: Any) -> Any:
        if gate == "none":
            return None
        policy = Policy(approval="never") if gate == "never" else policy_with_rules(1_000)
        return PolicyGate(policy, toolset)

    return per_turn(await run_itemloop_with(turns, make_gate))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--turns", type=int, default=200)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    results: dict[str, list[float]] = {"none": [], "never": [], "rules": []}
    anyio.run(measure, 20, "rules")  # warm up (imports, validators)
    for _ in range(a.repeat):
        for gate in results:
            results[gate].append(anyio.run(measure, a.turns, gate))
    base = statistics.median(results["none"])
    print(f"per-turn overhead, median of {a.repeat} runs of {a.turns} turns")
    for gate, runs in results.items():
        m = statistics.median(runs)
        print(f"  {gate:<6} {m * 1000:.3f} ms  ({m / base:.2f}x no gate)")
    print(f"measured {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
