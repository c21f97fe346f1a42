"""`--session` records the run's settings and prompt before anything starts, and
`--resume` rebuilds the same run from them (issue 9, items 8 and 9)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from helpers import fcall, message, write_script

TOOLS_FILE = Path(__file__).parent / "data" / "cli_tools.py"
DEMO_SERVER = Path(__file__).parent / "mcp" / "servers" / "demo_server.py"
CLI = [sys.executable, "-m", "itemloop.runtime.cli"]


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "SECRET_TOKEN")}
    return {**base, **extra}


def itemloop(*args: str, **kw: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env(**kw), timeout=120)


def records(journal: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in journal.read_text().splitlines()]


def test_resume_reuses_the_recorded_settings_and_flags_given_again_override(
    tmp_path: Path,
) -> None:
    script = write_script(
        tmp_path / "t.jsonl",
        [fcall("c1", "multiply", {"a": 6, "b": 7})],
        [fcall("c2", "multiply", {"a": 2, "b": 3})],
        [message("done")],
    )
    journal = tmp_path / "s.jsonl"
    first = itemloop(
        "run", "multiply", "--session", str(journal), "--script", str(script),
        "--tools", "", "--functions", str(TOOLS_FILE), "--max-turns", "1",
        "--instructions", "be brief", "--json",
    )  # fmt: skip
    assert first.returncode == 3, first.stderr  # stopped by --max-turns
    # Only --session and --resume: the functions, the script, the instructions come back.
    second = itemloop("run", "--session", str(journal), "--resume", "--json")
    assert second.returncode == 3, second.stderr
    outputs = [r["item"] for r in records(journal) if "item" in r]
    outs = {o["call_id"]: o["output"] for o in outputs if o["type"] == "function_call_output"}
    assert outs == {"c1": "42", "c2": "6"}  # multiply still there, the script went on
    # A flag given again overrides that setting, with a notice.
    third = itemloop("run", "--session", str(journal), "--resume", "--max-turns", "5")
    assert third.returncode == 0, third.stderr
    assert "max_turns is 5 (the session had 1)" in third.stderr
    assert third.stdout.strip() == "done"
    configs = [r["config"] for r in records(journal) if "config" in r]
    assert configs[0]["instructions"] == configs[-1]["instructions"] == "be brief"
    assert configs[-1]["max_turns"] == 5


def test_secret_values_are_not_written_and_come_back_from_the_environment(
    tmp_path: Path,
) -> None:
    script = write_script(
        tmp_path / "t.jsonl",
        [{"type": "shell_call", "call_id": "s1", "action": {"commands": ["echo $SECRET_TOKEN"]}}],
        [message("done")],
    )
    journal = tmp_path / "s.jsonl"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    first = itemloop(
        "run", "go", "--session", str(journal), "--script", str(script), "--tools", "shell",
        "--workspace", str(workspace), "--env", "SECRET_TOKEN=hunter2-abc", "--max-turns", "0",
    )  # fmt: skip
    assert first.returncode == 3, first.stderr
    assert "hunter2-abc" not in journal.read_text()
    again = ("run", "--session", str(journal), "--resume", "--max-turns", "5")
    refused = itemloop(*again)
    assert refused.returncode == 2
    assert "--env SECRET_TOKEN" in refused.stderr
    resumed = itemloop(*again, SECRET_TOKEN="from-env")
    assert resumed.returncode == 0, resumed.stderr
    shell = next(
        r["item"] for r in records(journal) if r.get("item", {}).get("type") == "shell_call_output"
    )
    assert shell["output"][0]["stdout"] == "from-env\n"


STARTER = """
import os, sys
marker, fifo, server = sys.argv[1:4]
if not os.path.exists(marker):
    open(marker, "w").close()
    with open(fifo, "w") as f:
        f.write(f"{os.getpid()}\\n")
    os.kill(os.getpid(), __import__("signal").SIGSTOP)  # never answers: start-up hangs
os.execv(sys.executable, [sys.executable, server, "stdio"])
"""


def test_a_run_killed_during_start_up_is_resumed_with_its_prompt(tmp_path: Path) -> None:
    starter = tmp_path / "starter.py"
    starter.write_text(STARTER)
    fifo = tmp_path / "starting.fifo"
    os.mkfifo(fifo)
    script = write_script(
        tmp_path / "t.jsonl", [fcall("c1", "demo__add", {"a": 2, "b": 40})], [message("42")]
    )
    journal = tmp_path / "s.jsonl"
    spec = f"demo={sys.executable} {starter} {tmp_path / 'marker'} {fifo} {DEMO_SERVER}"
    args = ["run", "add these", "--session", str(journal), "--script", str(script)]
    proc = subprocess.Popen(
        [*CLI, *args, "--tools", "", "--mcp-stdio", spec],
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with open(fifo) as f:  # the MCP server is starting: itemloop is in start-up
            server_pid = int(f.readline())
        proc.kill()
        proc.wait(timeout=60)
    finally:
        proc.kill()
        os.kill(server_pid, signal.SIGKILL)
    kinds = [next(iter(r)) for r in records(journal)]
    assert kinds == ["config", "item"], kinds
    assert records(journal)[1]["item"]["content"][0]["text"] == "add these"
    resumed = itemloop("run", "--session", str(journal), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "42"
    outs = [
        r["item"] for r in records(journal) if r.get("item", {}).get("type", "").endswith("_output")
    ]
    assert [o["output"] for o in outs] == ["42"]


def test_every_setting_flag_of_run_is_mapped_to_its_part_of_the_config() -> None:
    from itemloop.runtime.cli import build_parser
    from itemloop.runtime.commands import FLAG_PATHS
    from itemloop.runtime.config import RunConfig

    parser = build_parser()
    run = next(a for a in parser._actions if hasattr(a, "choices") and a.choices)
    options = {a.dest for a in run.choices["run"]._actions if a.option_strings}
    not_settings = {"help", "session", "resume", "json"}
    assert options - not_settings == set(FLAG_PATHS)
    fields = RunConfig().model_dump(mode="json")
    for paths in FLAG_PATHS.values():
        for path in paths:
            node = fields
            for key in path:
                assert key in node, path
                node = node[key]
