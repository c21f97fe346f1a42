"""`itemloop batch --ray`: the same tasks as Ray tasks, on a cluster the test starts
and on one the run starts; a worker killed mid-task is retried and resumes."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
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

pytestmark = [pytest.mark.slow, pytest.mark.bwrap]

# A cluster of the test's own talks over loopback only, reports nothing anywhere and
# admits who holds its token (given here, so none is read from or written to ~/.ray).
RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": secrets.token_hex(32),
}
RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def ray_cluster(tmp_path: Path) -> Iterator[str]:
    """A two-CPU Ray cluster on this machine (`ray start --head --block`), stopped after."""
    port = free_port()
    log = (tmp_path / "ray-start.log").open("w")
    proc = subprocess.Popen(
        [RAY, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats", "--block"],
        stdout=log, stderr=subprocess.STDOUT, env=env(**RAY_ENV), start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: listening(port) or proc.poll() is not None, "the Ray head to listen")
        assert proc.poll() is None, (tmp_path / "ray-start.log").read_text()
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_twenty_tasks_on_a_ray_cluster(ray_cluster: str, tmp_path: Path) -> None:
    tasks, expected = twenty_tasks(tmp_path)
    out = tmp_path / "results.jsonl"
    r = itemloop("batch", str(tasks), "--out", str(out), "--ray-address", ray_cluster, **RAY_ENV)
    assert r.returncode == 0, r.stderr
    assert f"running on {ray_cluster}" in r.stderr
    assert_twenty(out, tmp_path / "results.sessions", expected)
    assert "[20/20]" in r.stderr and "14 passed · 3 failed · 3 errors" in r.stderr


def _ray_task_process(driver: int) -> int | None:
    """The pid of the Ray worker running a batch task that `driver`'s cluster started."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"ray::_run_in_worker") and _descends(int(entry), driver):
            return int(entry)
    return None


def _descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rpartition(")")[2].split()[1])
    return False


def test_a_killed_ray_worker_is_retried_and_the_task_resumes(tmp_path: Path) -> None:
    """SIGKILL to the worker in the middle of a call: Ray runs the task again, which
    resumes from its session; every command (setup, calls, check) ran exactly once."""
    script = write_jsonl(
        tmp_path / "s.jsonl",
        [
            turn(shell("c1", "echo call1 >> log.txt")),
            turn(shell("c2", "echo call2 >> log.txt; touch ready; sleep 600")),
            turn(shell("c3", "echo call3 >> log.txt")),
            done(),
        ],
    )
    task = {"id": "killed", "prompt": "go", "script": str(script),
            "tools": {"builtins": ["shell"]}, "setup": [SETUP],
            "check": ["echo check >> log.txt"]}  # fmt: skip
    tasks = write_jsonl(tmp_path / "tasks.jsonl", [task])
    out = tmp_path / "results.jsonl"
    task_dir = tmp_path / "results.sessions" / "killed"
    proc = subprocess.Popen(
        [*CLI, "batch", str(tasks), "--out", str(out), "--ray", "--ray-cpus", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(**RAY_ENV),
    )  # fmt: skip
    try:
        wait_for(lambda: (task_dir / "workspace" / "ready").exists(), "the second call to start")
        worker = _ray_task_process(proc.pid)
        assert worker is not None, "no Ray worker runs the task"
        os.kill(worker, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=180)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, stderr
    r = results(out)["killed"]
    assert r["status"] == "passed", r
    assert r["turns"] == 4
    assert log_lines(task_dir) == ["setup", "call1", "call2", "call3", "check"]
    attempts = [x for x in map(json.loads, (task_dir / "task.jsonl").read_text().splitlines())
                if "attempt" in x]  # fmt: skip
    assert len(attempts) == 2  # Ray ran it again, once
    journal = [json.loads(x) for x in (task_dir / "session.jsonl").read_text().splitlines()]
    c2 = [x["item"] for x in journal if x.get("item", {}).get("call_id") == "c2"]
    assert c2[-1]["type"] == "shell_call_output" and INTERRUPTED in json.dumps(c2[-1])
