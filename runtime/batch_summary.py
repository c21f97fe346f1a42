"""`itemloop batch --summary RESULTS.jsonl`: what a batch came to.

Pass rate, token totals, duration percentiles and the tasks that did not pass,
grouped by cause. Reads the results as data (`batch_results.read_results`),
so a file from an older itemloop, or with fields missing, still sums up: a
missing number counts 0. A task with several lines counts once, by its last.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The summary as JSON-able data."""
    last = {r["id"]: r for r in results}
    rows = list(last.values())
    status = Counter(str(r.get("status")) for r in rows)
    graded = status["passed"] + status["failed"]
    tokens: Counter[str] = Counter()
    for r in rows:
        t = tk if isinstance(tk := r.get("tokens"), dict) else {}
        for key in ("input", "output", "cached", "reasoning"):
            tokens[key] += int(_num(t.get(key)))
    durations = sorted(_num(r.get("duration_s")) for r in rows)
    causes: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r.get("status") in ("failed", "error"):
            causes[str(r.get("cause") or r.get("status"))].append(r["id"])
    return {
        "tasks": len(rows),
        "status": dict(status),
        "pass_rate": status["passed"] / len(rows) if rows else None,
        "graded_pass_rate": status["passed"] / graded if graded else None,
        "tokens": dict(tokens),
        "duration_s": {
            "p50": _percentile(durations, 50),
            "p90": _percentile(durations, 90),
            "p99": _percentile(durations, 99),
            "max": durations[-1] if durations else None,
            "total": sum(durations),
        },
        "failures": {
            cause: {"count": len(ids), "ids": sorted(ids)}
            for cause, ids in sorted(causes.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        },
    }


def render(summary: dict[str, Any]) -> str:
    """The summary as text for a person."""
    n = summary["tasks"]
    if not n:
        return "no results yet\n"
    status = summary["status"]
    parts = [
        f"{status[s]} {s}" for s in ("passed", "failed", "completed", "error") if status.get(s)
    ]
    lines = [f"{n} task{'s' if n != 1 else ''}: {', '.join(parts)}"]
    rate = f"pass rate {_pct(summary['pass_rate'])}"
    graded = status.get("passed", 0) + status.get("failed", 0)
    if graded and graded != n:
        rate += f" ({_pct(summary['graded_pass_rate'])} of the {graded} graded)"
    lines.append(rate)
    t = summary["tokens"]
    lines.append(
        f"tokens: {t.get('input', 0):,} in ({t.get('cached', 0):,} cached), "
        f"{t.get('output', 0):,} out ({t.get('reasoning', 0):,} reasoning)"
    )
    d = summary["duration_s"]
    lines.append(
        f"duration: p50 {_secs(d['p50'])}, p90 {_secs(d['p90'])}, p99 {_secs(d['p99'])}, "
        f"max {_secs(d['max'])} (all tasks: {_secs(d['total'])})"
    )
    if summary["failures"]:
        lines.append("not passed, by cause:")
        width = max(len(c) for c in summary["failures"])
        for cause, f in summary["failures"].items():
            ids = f["ids"]
            shown = ", ".join(ids[:5]) + (f", … ({len(ids) - 5} more)" if len(ids) > 5 else "")
            lines.append(f"  {cause:<{width}}  {f['count']:>4}  {shown}")
    return "\n".join(lines) + "\n"


def _num(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return value if ok else 0


def _percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return None
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[rank - 1]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _secs(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value < 60:
        return f"{value:.1f} s"
    m, s = divmod(round(value), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
