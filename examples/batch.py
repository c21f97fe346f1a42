"""Many sessions at once, each graded: `run_batch` over a tasks file.

    python examples/batch.py                      # offline: scripted models
    OPENAI_API_KEY=... python examples/batch.py   # the real API

Each line of batch_tasks.jsonl is a task: an id, a prompt, the settings of its
run (here: the shell tool, in the local sandbox), and `setup`/`check`
commands run in the task's sandbox before and after the agent. Offline, the
"capital" task's script gets it wrong on purpose, and its check says so.

The command line does the same, with a results file, a progress display and
resuming: itemloop batch examples/batch_tasks.jsonl --out results.jsonl
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import anyio

from itemloop.runtime import choose_model
from itemloop.runtime.batch import BatchTask, read_tasks, run_batch
from itemloop.runtime.batch_summary import render, summarize


def shell(command: str) -> dict[str, Any]:
    return {"type": "shell_call", "call_id": "c1", "action": {"commands": [command]}}


def say(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


# What each task's scripted model does when there is no API key.
SCRIPTS: dict[str, list[Any]] = {
    "greet": [[shell("echo 'hello, world' > hello.txt")], [say("Wrote hello.txt.")]],
    "sum": [
        [shell("printf 'print(sum(range(1, 101)))\\n' > sum.py")],
        [say("sum.py prints 5050.")],
    ],
    "capital": [[shell("echo Bergen > capital.txt")], [say("The capital is Bergen.")]],
}


async def main() -> None:
    tasks = read_tasks(Path(__file__).with_name("batch_tasks.jsonl"))

    def model_for(task: BatchTask) -> Any:
        return choose_model(SCRIPTS[task.id])

    with tempfile.TemporaryDirectory(prefix="itemloop-batch-") as sessions:
        results = []
        batch = run_batch(tasks, sessions=Path(sessions), concurrency=3, model_for=model_for)
        async with contextlib.aclosing(batch):
            async for result in batch:  # in the order the tasks end
                grade = result.grade
                note = f" — {grade.output.strip()}" if grade and not grade.passed else ""
                print(f"{result.id}: {result.status}, {result.turns} turns{note}")
                results.append(result.model_dump(mode="json"))
    print()
    print(render(summarize(results)), end="")


if __name__ == "__main__":
    anyio.run(main)
