"""Benchmark: itemloop's apply_diff against openai-agents' apply_diff (V4A).

A 5,000-line file, one V4A diff of 50 hunks (3 lines of context each side),
in two variants:

- exact: the diff's context is byte-for-byte the file's;
- whitespace: the file's lines carry trailing whitespace the diff does not
  have, so every hunk needs the whitespace-tolerant pass.

Both appliers run in the same process on the same inputs; their outputs are
checked to be identical before timing. Run: `.venv/bin/python bench/apply_patch.py`.
Targets (issue 4): exact <= 0.5x the reference's time, whitespace <= 0.1x.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass

from agents.apply_diff import apply_diff as reference_apply_diff

from itemloop.tools.patch import apply_diff

LINES = 5_000
HUNKS = 50
CONTEXT = 3


def make_file(trailing_ws: bool) -> list[str]:
    """Python-looking lines; some repeat (blank lines, `return result`), as in real code."""
    lines: list[str] = []
    for i in range(LINES):
        kind = i % 10
        if kind == 0:
            line = f"def function_{i}(arg, other=None):"
        elif kind == 9:
            line = ""
        elif kind == 8:
            line = "    return result"
        else:
            line = f"    result = step_{i}(arg, {i * 7 % 13}, other)"
        if trailing_ws and line:
            line += " " if i % 2 else "\t"
        lines.append(line)
    return lines


def make_diff(lines: list[str]) -> tuple[str, list[str]]:
    """A V4A diff changing one line in each of 50 evenly spaced places; the expected lines."""
    clean = [line.rstrip() for line in lines]
    expected = list(lines)
    out: list[str] = []
    step = LINES // HUNKS
    for h in range(HUNKS):
        target = h * step + 5  # a `result = step_...` line, never repeated
        out.append("@@")
        out += [" " + clean[i] for i in range(target - CONTEXT, target)]
        out.append("-" + clean[target])
        new = clean[target].replace("result =", "result2 =")
        out.append("+" + new)
        expected[target] = new
        out += [" " + clean[i] for i in range(target + 1, target + 1 + CONTEXT)]
    return "\n".join(out) + "\n", expected


def measure(ours: Callable[[], object], theirs: Callable[[], object], rounds: int) -> Row:
    """Per-call times, alternating the two appliers round by round.

    The machine may be busy with other work; alternating short batches exposes
    both appliers to the same conditions, and the median over rounds of each
    round's ratio is what is compared with the target.
    """
    n_ours, _ = timeit.Timer(ours).autorange()
    n_theirs, _ = timeit.Timer(theirs).autorange()
    t_ours: list[float] = []
    t_theirs: list[float] = []
    for _ in range(rounds):
        t_ours.append(min(timeit.repeat(ours, number=n_ours, repeat=3)) / n_ours)
        t_theirs.append(min(timeit.repeat(theirs, number=n_theirs, repeat=3)) / n_theirs)
    ratio = statistics.median(o / t for o, t in zip(t_ours, t_theirs, strict=True))
    return Row(statistics.median(t_ours), statistics.median(t_theirs), ratio)


@dataclass(frozen=True)
class Row:
    ours_s: float
    theirs_s: float
    ratio: float


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    rows: list[tuple[str, float, float, float, float]] = []
    ok = True
    for variant, trailing_ws, target in (("exact", False, 0.5), ("whitespace", True, 0.1)):
        lines = make_file(trailing_ws)
        text = "\n".join(lines) + "\n"
        diff, expected_lines = make_diff(lines)
        expected = "\n".join(expected_lines) + "\n"
        ours = apply_diff(text, diff)
        theirs = reference_apply_diff(text, diff)
        assert ours.text == expected, f"{variant}: itemloop output differs from the expected text"
        assert theirs == expected, f"{variant}: reference output differs from the expected text"
        row = measure(
            lambda: apply_diff(text, diff),  # noqa: B023
            lambda: reference_apply_diff(text, diff),  # noqa: B023
            args.rounds,
        )
        ok = ok and row.ratio <= target
        rows.append((variant, row.ours_s * 1e3, row.theirs_s * 1e3, row.ratio, target))
    print(
        f"python {platform.python_version()} on {platform.machine()}, {LINES} lines, "
        f"{HUNKS} hunks, medians over {args.rounds} alternating rounds"
    )
    print()
    print("| context | itemloop (ms) | openai-agents (ms) | ratio | target |")
    print("|---|---:|---:|---:|---:|")
    for variant, ours_ms, theirs_ms, ratio, target in rows:
        verdict = "met" if ratio <= target else "MISSED"
        print(
            f"| {variant} | {ours_ms:.3f} | {theirs_ms:.3f} | {ratio:.3f}x | "
            f"<= {target}x ({verdict}) |"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
