"""Builders shared by the batch tests: scripted task sets, the CLI, what a task left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import message

CLI = [sys.executable, "-m", "itemloop.runtime.cli"]

USAGE = {"input_tokens": 120, "output_tokens": 15, "input_tokens_details": {"cached_tokens": 100}}


def shell(call_id: str, command: str) -> dict[str, Any]:
    return {"type": "shell_call", "call_id": call_id, "action": {"commands": [command]}}


def done(text: str = "done") -> dict[str, Any]:
    return {"output": [message(text)], "usage": USAGE}


def turn(*items: dict[str, Any]) -> dict[str, Any]:
    return {"output": list(items), "usage": USAGE}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return {**base, **extra}


def itemloop(*args: str, timeout: float = 240, **kw: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env(**kw), timeout=timeout
    )


def results(path: Path, text: str | None = None) -> dict[str, dict[str, Any]]:
    """The result lines of `path` (or of `text`), by id; each id once."""
    text = path.read_text() if text is None else text
    rows = [json.loads(line) for line in text.splitlines()]
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == len(rows), "a task has two result lines"
    return by_id


def log_lines(task_dir: Path) -> list[str]:
    """What the task's commands appended to its log, one line per command run."""
    return (task_dir / "workspace" / "log.txt").read_text().splitlines()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Wait until `condition()` holds (a file appears, a process starts)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- the twenty-task set ------------------------------------------------------------
#
# Every command a task runs appends a line to the task's log.txt, so the log
# says which commands ran and how often: setup, each call, check.

SETUP = "echo setup >> log.txt"


def twenty_tasks(root: Path) -> tuple[Path, dict[str, tuple[str, str | None]]]:
    """A tasks file of 20 scripted tasks (shell in the local sandbox by default) and, per
    id, the (status, cause) each must end with: 14 pass, 3 fail their check, one fails
    its setup, one meets a model error, one names a script that does not exist."""
    scripts = root / "scripts"
    source = root / "source"
    source.mkdir(parents=True, exist_ok=True)
    (source / "question.txt").write_text("what is 6 x 7?\n")
    tasks: list[dict[str, Any]] = []
    expected: dict[str, tuple[str, str | None]] = {}

    def add(
        task_id: str, script: list[Any] | None, status: str, cause: str | None, **more: Any
    ) -> None:
        line: dict[str, Any] = {
            "id": task_id,
            "prompt": f"answer the question ({task_id})",
            "script": f"scripts/{task_id}.jsonl",
            "tools": {"builtins": ["shell"]},
            "setup": [SETUP],
            **more,
        }
        if script is not None:
            write_jsonl(scripts / f"{task_id}.jsonl", script)
        tasks.append(line)
        expected[task_id] = (status, cause)

    check = [
        "echo check >> log.txt; a=$(cat answer.txt); "
        '[ "$a" = 42 ] || { echo "expected 42, got $a"; exit 1; }'
    ]
    for n in range(14):
        more: dict[str, Any] = {"check": check}
        script = [turn(shell("c1", "echo call1 >> log.txt; echo 42 > answer.txt")), done()]
        if n % 2:  # these start from a copy of source/, which the agent reads
            more["tools"] = {"builtins": ["shell"], "sandbox": {"workspace": "source"}}
            read = "grep -q '6 x 7' question.txt && echo 42 > answer.txt"
            script[0] = turn(shell("c1", f"echo call1 >> log.txt; {read}"))
        add(f"pass-{n:02d}", script, "passed", None, **more)
    for n in range(3):
        script = [turn(shell("c1", f"echo call1 >> log.txt; echo {30 + n} > answer.txt")), done()]
        add(f"fail-{n}", script, "failed", "check_failed", check=check)
    add(
        "setup-fails",
        [done()],
        "error",
        "setup_failed",
        setup=[SETUP, "echo 'no such package' >&2; exit 7", "echo never >> log.txt"],
        check=check,
    )
    add(
        "model-error",
        [turn(shell("c1", "echo call1 >> log.txt"))],  # no turn after the call: ModelError
        "error",
        "agent_error",
        check=check,
    )
    add("no-script", None, "error", "config_error", check=check)
    return write_jsonl(root / "tasks.jsonl", tasks), expected


def assert_twenty(out: Path, sessions: Path, expected: dict[str, tuple[str, str | None]]) -> None:
    """The results and the logs the twenty tasks must leave."""
    got = results(out)
    assert set(got) == set(expected)
    assert {i: (r["status"], r["cause"]) for i, r in got.items()} == expected
    for task_id, r in got.items():
        status = r["status"]
        lines = log_lines(sessions / task_id) if task_id != "no-script" else []
        if status == "passed":
            assert r["grade"] == {"passed": True, "exit_code": 0, "timed_out": False, "output": ""}
            assert r["turns"] == 2 and r["stop"] == "completed"
            assert r["tokens"] == {"input": 240, "output": 30, "cached": 200, "reasoning": 0}
            assert r["final_message"] == "done"
            assert lines == ["setup", "call1", "check"]
        elif status == "failed":
            n = int(task_id[-1])
            assert r["grade"]["passed"] is False and r["grade"]["exit_code"] == 1
            assert r["grade"]["output"] == f"expected 42, got {30 + n}\n"
            assert lines == ["setup", "call1", "check"]
        elif task_id == "setup-fails":
            assert r["grade"] is None and r["stop"] is None and r["turns"] == 0
            assert r["error"] == "setup command 2 exited 7: no such package"
            assert lines == ["setup"]  # stopped at the failing command; no agent, no check
        elif task_id == "model-error":
            assert r["stop"] == "error" and "no turn 2" in r["error"]
            assert lines == ["setup", "call1"]  # no check after an agent error
        else:
            assert "no-script.jsonl" in r["error"]
        assert r["duration_s"] >= 0
    # The copied workspace: the source stayed as it was.
    assert sorted(p.name for p in (out.parent / "source").iterdir()) == ["question.txt"]
    assert (sessions / "pass-01" / "workspace" / "question.txt").exists()
    assert not (sessions / "pass-00" / "workspace" / "question.txt").exists()
