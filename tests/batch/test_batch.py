"""`itemloop batch` in one process: twenty graded tasks, re-runs, Ctrl-C, Docker images."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from backends import BUSYBOX_IMAGE, PYTHON_IMAGE
from batchkit import (
    CLI,
    SETUP,
    assert_twenty,
    done,
    env,
    itemloop,
    log_lines,
    results,
    shell,
    turn,
    twenty_tasks,
    wait_for,
    write_jsonl,
)

from itemloop.runtime.loop import INTERRUPTED


@pytest.mark.bwrap
def test_twenty_tasks_run_at_once_graded_and_failing_ones_stop_nothing(tmp_path: Path) -> None:
    tasks, expected = twenty_tasks(tmp_path)
    out = tmp_path / "results.jsonl"
    r = itemloop("batch", str(tasks), "--out", str(out), "--concurrency", "4")
    assert r.returncode == 0, r.stderr
    assert_twenty(out, tmp_path / "results.sessions", expected)
    # One progress display: a line per task, the counts so far on each.
    assert r.stderr.count("[") >= 20 and "[20/20]" in r.stderr
    assert "14 passed · 3 failed · 3 errors" in r.stderr
    summary = itemloop("batch", "--summary", str(out), "--json")
    assert summary.returncode == 0, summary.stderr
    s = json.loads(summary.stdout)
    assert s["tasks"] == 20 and s["pass_rate"] == 14 / 20
    assert s["graded_pass_rate"] == 14 / 17
    assert s["tokens"] == {"input": 14 * 240 + 3 * 240 + 120, "output": 17 * 30 + 15,
                           "cached": 17 * 200 + 100, "reasoning": 0}  # fmt: skip
    assert {c: f["count"] for c, f in s["failures"].items()} == {
        "check_failed": 3,
        "agent_error": 1,
        "config_error": 1,
        "setup_failed": 1,
    }
    text = itemloop("batch", "--summary", str(out)).stdout
    assert "20 tasks: 14 passed, 3 failed, 3 error" in text
    assert "pass rate 70.0% (82.4% of the 17 graded)" in text
    assert "check_failed     3  fail-0, fail-1, fail-2" in text


@pytest.mark.bwrap
def test_a_rerun_skips_tasks_with_a_result_and_runs_nothing_twice(tmp_path: Path) -> None:
    check = ["echo check >> log.txt; grep -q yes answer.txt"]
    script = write_jsonl(
        tmp_path / "s.jsonl",
        [turn(shell("c1", "echo call1 >> log.txt; echo yes > answer.txt")), done()],
    )
    line = {"prompt": "go", "script": str(script), "tools": {"builtins": ["shell"]},
            "setup": [SETUP], "check": check}  # fmt: skip
    tasks = write_jsonl(tmp_path / "tasks.jsonl", [{"id": "a", **line}, {"id": "b", **line}])
    out = tmp_path / "results.jsonl"
    sessions = tmp_path / "results.sessions"
    first = itemloop("batch", str(tasks), "--out", str(out))
    assert first.returncode == 0, first.stderr
    journals = {t: (sessions / t / "task.jsonl").read_text() for t in ("a", "b")}

    # The same command again: both have a result, nothing runs, nothing is written.
    again = itemloop("batch", str(tasks), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "2 of 2 tasks already have a result" in again.stderr
    assert len(out.read_text().splitlines()) == 2
    assert {t: (sessions / t / "task.jsonl").read_text() for t in ("a", "b")} == journals

    # A new task is started; a task whose result line a crash tore in the middle of
    # writing it gets it back from its directory, without running anything again.
    write_jsonl(tasks, [{"id": "a", **line}, {"id": "b", **line}, {"id": "c", **line}])
    first_line, second_line = out.read_text().splitlines(keepends=True)
    out.write_text(first_line + second_line[: len(second_line) // 2])
    kept = results(out, first_line)
    third = itemloop("batch", str(tasks), "--out", str(out))
    assert third.returncode == 0, third.stderr
    got = results(out)
    assert set(got) == {"a", "b", "c"} and all(r["status"] == "passed" for r in got.values())
    assert set(kept) < set(got) and got[next(iter(kept))] == kept[next(iter(kept))]
    for t in ("a", "b", "c"):
        assert log_lines(sessions / t) == ["setup", "call1", "check"]


@pytest.mark.bwrap
def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(tmp_path: Path) -> None:
    """SIGINT while a call runs: the batch stops (130), the call is not run again, the
    task resumes after it, and every command ran once."""
    script = write_jsonl(
        tmp_path / "s.jsonl",
        [
            turn(shell("c1", "echo call1 >> log.txt")),
            turn(shell("c2", "echo call2 >> log.txt; touch ready; sleep 600")),
            turn(shell("c3", "echo call3 >> log.txt")),
            done(),
        ],
    )
    task = {"id": "slow", "prompt": "go", "script": str(script), "tools": {"builtins": ["shell"]},
            "setup": [SETUP], "check": ["echo check >> log.txt"]}  # fmt: skip
    tasks = write_jsonl(tmp_path / "tasks.jsonl", [task])
    out = tmp_path / "results.jsonl"
    workspace = tmp_path / "results.sessions" / "slow" / "workspace"
    proc = subprocess.Popen(
        [*CLI, "batch", str(tasks), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    try:
        wait_for(lambda: (workspace / "ready").exists(), "the second call to start")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "run the same command again to resume" in stderr
    assert out.read_text() == ""  # no result: the task did not end

    again = itemloop("batch", str(tasks), "--out", str(out))
    assert again.returncode == 0, again.stderr
    r = results(out)["slow"]
    assert r["status"] == "passed" and r["turns"] == 4
    assert log_lines(workspace.parent) == ["setup", "call1", "call2", "call3", "check"]
    journal = [json.loads(x) for x in (workspace.parent / "session.jsonl").read_text().splitlines()]
    c2 = [x["item"] for x in journal if x.get("item", {}).get("call_id") == "c2"]
    assert c2[-1]["type"] == "shell_call_output"  # the stop answered it, once
    assert INTERRUPTED not in json.dumps(c2[-1])  # cancelled cleanly, not cut off


@pytest.mark.docker
def test_two_tasks_in_two_docker_images(tmp_path: Path) -> None:
    """Each task's setup, calls and check run in its own container, of its own image."""
    script = write_jsonl(
        tmp_path / "s.jsonl",
        [turn(shell("c1", "echo call1 >> log.txt; (python3 -V || echo no python) > py.txt 2>&1")),
         done()],
    )  # fmt: skip

    def task(task_id: str, image: str) -> dict[str, object]:
        return {
            "id": task_id,
            "prompt": "which python?",
            "script": str(script),
            "tools": {"builtins": ["shell"], "sandbox": {"kind": "docker", "image": image}},
            "setup": [SETUP + "; cat /etc/hostname > host.txt"],
            "check": ["echo check >> log.txt; grep -q 'Python 3' py.txt"],
        }

    tasks = write_jsonl(
        tmp_path / "tasks.jsonl", [task("busybox", BUSYBOX_IMAGE), task("python", PYTHON_IMAGE)]
    )
    out = tmp_path / "results.jsonl"
    r = itemloop("batch", str(tasks), "--out", str(out))
    assert r.returncode == 0, r.stderr
    got = results(out)
    assert got["python"]["status"] == "passed"
    assert got["busybox"]["status"] == "failed"  # no python3 in that image
    sessions = tmp_path / "results.sessions"
    assert (sessions / "busybox" / "workspace" / "py.txt").read_text().endswith("no python\n")
    hosts = {(sessions / t / "workspace" / "host.txt").read_text() for t in ("busybox", "python")}
    assert len(hosts) == 2  # two containers
    for t in ("busybox", "python"):
        assert log_lines(sessions / t) == ["setup", "call1", "check"]


def test_a_bad_tasks_file_is_refused_before_anything_runs(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        '{"id": "a", "prompt": "x"}\n'
        "not json\n"
        '{"id": "a", "prompt": "again"}\n'
        '{"id": "c", "prompt": "x", "max_turns": -1, "colour": "red"}\n'
        '["a list"]\n'
    )
    out = tmp_path / "results.jsonl"
    r = itemloop("batch", str(tasks), "--out", str(out))
    assert r.returncode == 2
    assert f"{tasks}:2: not valid JSON" in r.stderr
    assert "task id 'a' is given more than once" in r.stderr
    assert f"{tasks}:4: max_turns: Input should be greater than or equal to 0" in r.stderr
    assert "colour: Extra inputs are not permitted" in r.stderr
    assert f"{tasks}:5: a task is a JSON object" in r.stderr
    assert not out.exists() and not (tmp_path / "results.sessions").exists()


def test_a_second_batch_on_the_same_sessions_is_refused(tmp_path: Path) -> None:
    import fcntl
    import os

    tasks = write_jsonl(tmp_path / "tasks.jsonl", [{"id": "a", "prompt": "x"}])
    sessions = tmp_path / "runs"
    sessions.mkdir()
    fd = os.open(sessions / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a batch running on these sessions holds it
        r = itemloop("batch", str(tasks), "--out", str(tmp_path / "r.jsonl"),
                     "--sessions", str(sessions))  # fmt: skip
    finally:
        os.close(fd)
    assert r.returncode == 1
    assert f"{sessions} is in use by another batch" in r.stderr
    assert not (sessions / "a").exists()


@pytest.mark.anyio
async def test_a_run_that_ended_before_its_end_was_recorded_is_not_run_again(
    tmp_path: Path,
) -> None:
    """A stop between the model's last answer and the task journal's record of it:
    the next attempt takes the end from the session instead of asking the model again."""
    from itemloop.runtime.batch import parse_task
    from itemloop.runtime.batch_task import run_task

    script = write_jsonl(tmp_path / "s.jsonl", [done("all done")])
    task = parse_task({"id": "t", "prompt": "go", "script": "s.jsonl", "tools": {"builtins": []}},
                      tmp_path)  # fmt: skip
    first = await run_task(task, tmp_path / "t")
    assert (first.status, first.final_message) == ("completed", "all done")
    journal = tmp_path / "t" / "task.jsonl"
    journal.write_text("".join(x for x in journal.open() if '"agent"' not in x))
    script.write_text("")  # a model asked again would have no turn to give
    again = await run_task(task, tmp_path / "t")
    assert (again.status, again.stop, again.final_message) == ("completed", "completed", "all done")
    assert again.turns == 1 and again.tokens.input == 120
