"""The policy in real runs (issue 11): asked at a real pseudo-terminal, granted network
for one command only, refused when it lies where the agent can write, and, for
`itemloop exec` with nobody to ask, an `ask` answered as a denial naming the fix."""

from __future__ import annotations

import json
import os
import pty
import selectors
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import message, write_script

CLI = [sys.executable, "-m", "itemloop.runtime.cli"]
HANG_GUARD_S = 60


def shell(cid: str, *commands: str) -> dict[str, object]:
    return {"type": "shell_call", "call_id": cid, "action": {"commands": list(commands)}}


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}


class Terminal:
    """`itemloop` on a real pseudo-terminal: read what it prints, type answers."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [*CLI, *args], stdin=slave, stdout=slave, stderr=slave, env=env(), close_fds=True
        )
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, times: int = 1) -> str:
        """What the terminal has shown, once `text` is among it `times` times."""
        sel = selectors.DefaultSelector()
        sel.register(self.master, selectors.EVENT_READ)
        while self.seen.count(text) < times:
            if not sel.select(timeout=HANG_GUARD_S):
                raise AssertionError(f"{text!r} never came; the terminal shows:\n{self.seen}")
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            self.seen += chunk.decode(errors="replace")
        assert text in self.seen, self.seen
        return self.seen

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def finish(self) -> int:
        self.expect("")  # drain
        try:
            while os.read(self.master, 4096):
                pass
        except OSError:
            pass
        return self.proc.wait(timeout=HANG_GUARD_S)


def test_asked_at_a_terminal_yes_runs_and_no_is_answered_with_the_reason(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "t.jsonl",
        [shell("c1", "echo one > one.txt")],
        [shell("c2", "echo two > two.txt")],
        [message("done")],
    )
    workspace = tmp_path / "ws"
    workspace.mkdir()
    session = tmp_path / "s.jsonl"
    term = Terminal(
        "run", "go", "--script", str(script), "--tools", "shell", "--workspace", str(workspace),
        "--approval", "on-request", "--session", str(session),
    )  # fmt: skip
    shown = term.expect("[y]es")
    assert "$ echo one > one.txt" in shown  # exactly what will run
    term.type("y")
    term.expect("$ echo two > two.txt")
    term.expect("[y]es")
    term.type("n")
    term.expect("reason for the model")
    term.type("not that file")
    assert term.finish() == 0
    assert (workspace / "one.txt").read_text() == "one\n"
    assert not (workspace / "two.txt").exists()
    items = [json.loads(line) for line in session.read_text().splitlines()]
    out = next(
        r["item"]
        for r in items
        if r.get("item", {}).get("call_id") == "c2" and "output" in r["item"]
    )
    assert "denied by the user" in out["output"][0]["stderr"]
    assert "not that file" in out["output"][0]["stderr"]


def test_always_at_a_terminal_allows_the_same_command_inside_other_scripts(
    tmp_path: Path,
) -> None:
    # "always" adds a rule for exactly what asked (this argv), not a memory of the
    # identical request: the command runs unasked inside another script, and another
    # command still asks.
    script = write_script(
        tmp_path / "t.jsonl",
        [shell("c1", "touch made.txt")],
        [shell("c2", "touch made.txt && touch made.txt")],
        [shell("c3", "touch other.txt")],
        [message("done")],
    )
    workspace = tmp_path / "ws"
    workspace.mkdir()
    term = Terminal(
        "run", "go", "--script", str(script), "--tools", "shell", "--workspace", str(workspace),
        "--approval", "untrusted",
    )  # fmt: skip
    term.expect("$ touch made.txt")
    term.expect("[y]es")
    term.type("a")
    term.expect("rule added for this session: allow touch made.txt")
    shown = term.expect("[a]lways", times=2)  # the second prompt
    assert "$ touch other.txt" in shown[shown.index("[a]lways") :], shown  # c2 ran unasked
    term.type("n")
    term.expect("reason for the model")
    term.type("")
    assert term.finish() == 0
    assert (workspace / "made.txt").exists()
    assert not (workspace / "other.txt").exists()


@contextmanager
def local_server() -> Iterator[int]:
    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"reached")

        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.bwrap
def test_a_rule_grants_network_to_the_command_it_matches_only(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with local_server() as port:
        fetch = (
            "import urllib.request, sys\n"
            "try:\n"
            f"    print(urllib.request.urlopen('http://127.0.0.1:{port}', timeout=5).read().decode())\n"
            "except OSError as e:\n"
            "    print('unreachable:', type(e).__name__)\n"
        )
        (workspace / "fetch.py").write_text(fetch)
        (workspace / "again.py").write_text(fetch)
        policy = tmp_path / "policy.toml"
        policy.write_text(
            'approval = "never"\n'
            '[[rule]]\ncommand = ["python3", "fetch.py"]\naction = "allow"\nnetwork = true\n'
        )
        script = write_script(
            tmp_path / "t.jsonl",
            [shell("c1", "python3 fetch.py")],
            [shell("c2", "python3 again.py")],
            [message("done")],
        )
        r = subprocess.run(
            [*CLI, "run", "go", "--script", str(script), "--tools", "shell", "--json",
             "--workspace", str(workspace), "--policy", str(policy)],
            capture_output=True, text=True, env=env(), timeout=120,
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    outs = {
        e["call_id"]: e["output"]["output"][0]["stdout"]
        for e in events
        if e["kind"] == "call_finished"
    }
    assert outs["c1"].strip() == "reached"  # granted: a second sandbox with the network
    assert outs["c2"].startswith("unreachable")  # the session's sandbox stays offline


def test_a_policy_file_the_agent_could_write_is_refused(tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text('approval = "never"\n')
    script = write_script(tmp_path / "t.jsonl", [message("x")])
    r = subprocess.run(
        [*CLI, "run", "go", "--script", str(script), "--tools", "shell", "--workspace",
         str(tmp_path), "--policy", str(tmp_path / "policy.toml")],
        capture_output=True, text=True, env=env(), timeout=60,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "policy" in r.stderr and "Traceback" not in r.stderr


def test_exec_without_a_terminal_denies_what_asks_and_says_how_to_allow_it(tmp_path: Path) -> None:
    calls = [shell("c1", "ls"), shell("c2", "ls && rm -rf x"), shell("c3", "echo $(rm x)")]
    r = subprocess.run(
        [*CLI, "exec", "--tools", "shell", "--workspace", str(tmp_path), "--approval", "untrusted"],
        input="\n".join(json.dumps(c) for c in calls),
        capture_output=True, text=True, env=env(), timeout=60, stdin=None,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    outs = {o["call_id"]: o["output"][0] for o in map(json.loads, r.stdout.splitlines())}
    assert outs["c1"]["outcome"] == {"type": "exit", "exit_code": 0}  # read-only: runs
    for cid in ("c2", "c3"):  # a compound with rm is not read-only, nor is $(rm x)
        assert "nobody to ask" in outs[cid]["stderr"] and "--policy" in outs[cid]["stderr"]


def test_exec_with_a_session_pauses_and_answers_once_decided(tmp_path: Path) -> None:
    session = tmp_path / "s.jsonl"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    calls = [shell("c1", "ls"), shell("c2", "echo made > made.txt"), shell("c3", "rm -rf .")]
    common = ["exec", "--tools", "shell", "--workspace", str(workspace), "--session", str(session)]
    run = [*CLI, *common, "--approval", "untrusted"]
    first = subprocess.run(
        run, input="\n".join(json.dumps(c) for c in calls), capture_output=True, text=True,
        env=env(), timeout=60,
    )  # fmt: skip
    assert first.returncode == 4, first.stderr  # paused: c2 and c3 wait
    assert [json.loads(line)["call_id"] for line in first.stdout.splitlines()] == ["c1"]
    assert "itemloop approve --session" in first.stderr
    decide = [*CLI, "approve", "--session", str(session), "c2"]
    assert subprocess.run(decide, env=env(), timeout=60).returncode == 0
    deny = [*CLI, "deny", "--session", str(session), "c3", "--reason", "no"]
    assert subprocess.run(deny, env=env(), timeout=60).returncode == 0
    second = subprocess.run(run, input="", capture_output=True, text=True, env=env(), timeout=60)
    assert second.returncode == 0, second.stderr
    outs = {o["call_id"]: o["output"][0] for o in map(json.loads, second.stdout.splitlines())}
    assert set(outs) == {"c2", "c3"}  # c1 is not run or printed again
    assert (workspace / "made.txt").read_text() == "made\n"
    assert "denied by the user" in outs["c3"]["stderr"]


def test_approve_always_allows_what_asked_for_the_resumed_run(tmp_path: Path) -> None:
    session = tmp_path / "s.jsonl"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    common = ["exec", "--tools", "shell", "--workspace", str(workspace), "--session", str(session)]
    run = [*CLI, *common, "--approval", "untrusted"]
    first = subprocess.run(
        run, input=json.dumps(shell("c1", "touch made.txt")), capture_output=True, text=True,
        env=env(), timeout=60,
    )  # fmt: skip
    assert first.returncode == 4, first.stderr  # paused: c1 waits
    decide = [*CLI, "approve", "--always", "--session", str(session), "c1"]
    assert subprocess.run(decide, env=env(), timeout=60).returncode == 0
    # The same command inside another script runs without asking (else: paused again, 4).
    again = json.dumps(shell("c2", "touch made.txt && touch made.txt"))
    second = subprocess.run(run, input=again, capture_output=True, text=True, env=env(), timeout=60)
    assert second.returncode == 0, second.stderr
    outs = [json.loads(line)["call_id"] for line in second.stdout.splitlines()]
    assert outs == ["c1", "c2"]


MCP_SERVER = Path(__file__).parent / "mcp" / "servers" / "demo_server.py"
TOOLS_FILE = Path(__file__).parent / "data" / "cli_tools.py"


def test_every_kind_of_call_is_asked_at_the_terminal(tmp_path: Path) -> None:
    """apply_patch, local_shell, a Python function and an MCP tool each ask under
    on-request, show what will run, and do what the person answered."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    patch = {
        "type": "apply_patch_call",
        "call_id": "p1",
        "status": "completed",
        "operation": {"type": "create_file", "path": "hello.txt", "diff": "+hello\n"},
    }
    local = {
        "type": "local_shell_call",
        "call_id": "l1",
        "status": "completed",
        "action": {"type": "exec", "command": ["touch", "touched"], "env": {}},
    }
    function = {
        "type": "function_call",
        "call_id": "f1",
        "name": "multiply",
        "arguments": json.dumps({"a": 6, "b": 7}),
    }
    mcp = {
        "type": "function_call",
        "call_id": "m1",
        "name": "demo__add",
        "arguments": json.dumps({"a": 1, "b": 2}),
    }
    script = write_script(
        tmp_path / "t.jsonl", [patch], [local], [function], [mcp], [message("done")]
    )
    session = tmp_path / "s.jsonl"
    term = Terminal(
        "run", "go", "--script", str(script), "--tools", "apply_patch,local_shell",
        "--functions", str(TOOLS_FILE), "--mcp-stdio", f"demo={sys.executable} {MCP_SERVER} stdio",
        "--workspace", str(workspace), "--approval", "on-request", "--session", str(session),
    )  # fmt: skip
    term.expect("+hello")  # the patch, as a diff
    term.expect("[y]es")
    term.type("y")
    term.expect("$ touch touched")
    term.expect("[y]es")
    term.type("n")
    term.expect("reason for the model")
    term.type("")
    term.expect('multiply({"a": 6, "b": 7})')
    term.expect("[y]es")
    term.type("y")
    term.expect('demo__add({"a": 1, "b": 2})')
    term.expect("[y]es")
    term.type("n")
    term.expect("reason for the model")
    term.type("not now")
    assert term.finish() == 0
    assert (workspace / "hello.txt").read_text() == "hello\n"
    assert not (workspace / "touched").exists()
    records = [json.loads(line) for line in session.read_text().splitlines()]
    outputs = {
        r["item"].get("call_id") or r["item"].get("id"): r["item"]
        for r in records
        if r.get("item", {}).get("type", "").endswith("_output")
    }
    assert outputs["p1"]["status"] == "completed"
    assert "denied by the user" in json.loads(outputs["l1"]["output"])["stderr"]
    assert outputs["f1"]["output"] == "42"
    assert "denied by the user" in outputs["m1"]["output"] and "not now" in outputs["m1"]["output"]
