"""The command line, tested from outside as other programs use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import fcall, message, write_script
from responses_server import ScriptedResponsesServer

TOOLS_FILE = Path(__file__).parent / "data" / "cli_tools.py"


def itemloop(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "itemloop.runtime.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=120,
        cwd=cwd,
    )


def test_help_lists_commands_and_sandboxes() -> None:
    r = itemloop("--help")
    assert r.returncode == 0
    for word in ("run", "exec", "demo", "tools", "bubblewrap", "--image"):
        assert word in r.stdout


def test_run_without_key_or_script_says_what_to_set() -> None:
    r = itemloop("run", "hello")
    assert r.returncode == 2
    assert "OPENAI_API_KEY" in r.stderr
    assert "--script" in r.stderr
    assert "itemloop demo" in r.stderr


def test_tools_prints_definitions() -> None:
    r = itemloop("tools", "--tools", "shell,local_shell", "--functions", str(TOOLS_FILE))
    assert r.returncode == 0, r.stderr
    defs = json.loads(r.stdout)
    assert {"type": "shell"} in defs and {"type": "local_shell"} in defs
    fn = next(d for d in defs if d.get("name") == "multiply")
    assert fn["type"] == "function" and fn["strict"] is True
    assert fn["description"] == "Multiply two integers."


def test_tools_rejects_unknown_builtin() -> None:
    r = itemloop("tools", "--tools", "shell,teleport")
    assert r.returncode == 2
    assert "teleport" in r.stderr and "apply_patch" in r.stderr


def test_exec_reports_bad_lines_and_still_runs_the_rest() -> None:
    lines = [
        json.dumps(fcall("c1", "multiply", {"a": 6, "b": 7})),
        "{not json",
        json.dumps([1, 2]),
        json.dumps(message("ignored: not a call")),
        json.dumps(fcall("c2", "multiply", {"a": 2, "b": 2})),
    ]
    r = itemloop(
        "exec", "--tools", "", "--functions", str(TOOLS_FILE), input="\n".join(lines) + "\n"
    )
    assert r.returncode == 2
    assert "line 2: not valid JSON" in r.stderr
    assert "line 3, entry 1: not an item" in r.stderr
    outs = [json.loads(line) for line in r.stdout.splitlines()]
    assert outs == [
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
        {"type": "function_call_output", "call_id": "c2", "output": "4"},
    ]


def test_exec_accepts_a_response_json(tmp_path: Path) -> None:
    response = {
        "id": "resp_1",
        "object": "response",
        "output": [message("x"), fcall("c9", "multiply", {"a": 3, "b": 3})],
    }
    f = tmp_path / "resp.json"
    f.write_text(json.dumps(response, indent=2))
    r = itemloop("exec", "--tools", "", "--functions", str(TOOLS_FILE), "--input", str(f))
    assert r.returncode == 0, r.stderr
    assert [json.loads(x) for x in r.stdout.splitlines()] == [
        {"type": "function_call_output", "call_id": "c9", "output": "9"}
    ]


def test_run_with_script_prints_final_answer_and_progress(tmp_path: Path) -> None:
    script = tmp_path / "turns.jsonl"
    write_script(
        script,
        [fcall("c1", "multiply", {"a": 4, "b": 5})],
        {"output": [message("twenty")], "usage": {"input_tokens": 10, "output_tokens": 2}},
    )
    r = itemloop(
        "run", "what is 4*5", "--script", str(script), "--tools", "", "--functions", str(TOOLS_FILE)
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "twenty"
    assert "multiply" in r.stderr and "ok" in r.stderr


def test_run_json_events(tmp_path: Path) -> None:
    script = tmp_path / "turns.jsonl"
    write_script(script, [fcall("c1", "multiply", {"a": 1, "b": "x"})], [message("done")])
    r = itemloop(
        "run",
        "go",
        "--script",
        str(script),
        "--tools",
        "",
        "--functions",
        str(TOOLS_FILE),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "turn_started" and kinds[-1] == "run_finished"
    fin = next(e for e in events if e["kind"] == "call_finished")
    assert fin["ok"] is False and "invalid arguments" in fin["summary"]


def test_run_against_a_responses_server(tmp_path: Path) -> None:
    turns = [[fcall("c1", "multiply", {"a": 3, "b": 4})], [message("twelve")]]
    with ScriptedResponsesServer(turns=turns) as server:
        r = itemloop(
            "run",
            "3*4?",
            "--base-url",
            server.url,
            "--model",
            "gpt-x",
            "--tools",
            "",
            "--functions",
            str(TOOLS_FILE),
            "--instructions",
            "be brief",
            env={"OPENAI_API_KEY": "sk-test"},
        )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "twelve"
    second = server.response_requests()[1]
    assert second["model"] == "gpt-x" and second["instructions"] == "be brief"
    assert second["input"][-1] == {"type": "function_call_output", "call_id": "c1", "output": "12"}


def test_bad_script_names_the_line(tmp_path: Path) -> None:
    script = tmp_path / "bad.jsonl"
    script.write_text('[{"type": "message"}]\n{"oops": 1}\n')
    r = itemloop("run", "go", "--script", str(script), "--tools", "")
    assert r.returncode == 2
    assert "bad.jsonl:2" in r.stderr


def test_session_resume_flags(tmp_path: Path) -> None:
    script = tmp_path / "t.jsonl"
    write_script(script, [message("hi")], [message("hi again")])  # one turn a run
    journal = tmp_path / "s.jsonl"
    r = itemloop("run", "a", "--script", str(script), "--tools", "", "--session", str(journal))
    assert r.returncode == 0, r.stderr
    r = itemloop("run", "b", "--script", str(script), "--tools", "", "--session", str(journal))
    assert r.returncode == 2 and "--resume" in r.stderr
    r = itemloop(
        "run", "b", "--script", str(script), "--tools", "", "--session", str(journal), "--resume"
    )
    assert r.returncode == 0, r.stderr
    users = [json.loads(x)["item"] for x in journal.read_text().splitlines() if '"item"' in x]
    assert [u["content"][0]["text"] for u in users if u.get("role") == "user"] == ["a", "b"]


def test_exec_accepts_one_pretty_printed_item_and_reports_non_items() -> None:
    call = json.dumps(fcall("c1", "multiply", {"a": 2, "b": 5}), indent=2)
    r = itemloop("exec", "--tools", "", "--functions", str(TOOLS_FILE), input=call)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["output"] == "10"
    response = json.dumps({"output": [fcall("c2", "multiply", {"a": 1, "b": 1}), 7]}, indent=1)
    r = itemloop("exec", "--tools", "", "--functions", str(TOOLS_FILE), input=response)
    assert r.returncode == 2
    assert "entry 2: not an item" in r.stderr
    assert json.loads(r.stdout)["call_id"] == "c2"


def test_resume_of_an_empty_session_without_prompt_is_refused(tmp_path: Path) -> None:
    r = itemloop(
        "run",
        "--session",
        str(tmp_path / "new.jsonl"),
        "--resume",
        "--script",
        str(tmp_path / "none.jsonl"),
        "--tools",
        "",
    )
    assert r.returncode == 2
    assert "holds no session to continue" in r.stderr


def test_a_hung_sync_tool_does_not_keep_the_cli_alive(tmp_path: Path) -> None:
    tools = tmp_path / "hang.py"
    tools.write_text(
        "import threading\n\ndef hang() -> str:\n    threading.Event().wait()\n    return ''\n"
    )
    script = tmp_path / "t.jsonl"
    write_script(script, [fcall("c1", "hang", {})], [message("gave up")])
    # Without the fix the process waits forever for the abandoned thread: the
    # subprocess timeout (120 s) would fail this test.
    r = itemloop(
        "run",
        "go",
        "--script",
        str(script),
        "--tools",
        "",
        "--functions",
        str(tools),
        "--tool-timeout",
        "0.2",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "gave up"
    assert "did not finish within 0.2 s" in r.stderr


MCP_SERVER = Path(__file__).parent / "mcp" / "servers" / "demo_server.py"


def test_run_offers_and_calls_an_mcp_stdio_server(tmp_path: Path) -> None:
    script = tmp_path / "t.jsonl"
    write_script(script, [fcall("c1", "demo__add", {"a": 2, "b": 40})], [message("forty-two")])
    spec = f"demo={sys.executable} {MCP_SERVER} stdio"
    r = itemloop(
        "run", "add", "--script", str(script), "--tools", "", "--mcp-stdio", spec, "--json"
    )
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    out = next(e for e in events if e["kind"] == "call_finished")["output"]
    assert out == {"type": "function_call_output", "call_id": "c1", "output": "42"}
    r = itemloop("tools", "--tools", "", "--mcp-stdio", spec)
    assert r.returncode == 0, r.stderr
    assert "demo__add" in {d["name"] for d in json.loads(r.stdout)}


def test_mcp_server_that_cannot_start_is_a_clear_error(tmp_path: Path) -> None:
    r = itemloop("tools", "--tools", "", "--mcp-stdio", "gone=/nonexistent/server --flag")
    assert r.returncode == 1
    assert "gone" in r.stderr and "Traceback" not in r.stderr


def test_two_functions_with_one_name_are_a_usage_error(tmp_path: Path) -> None:
    other = tmp_path / "other.py"
    other.write_text("def multiply(x: int) -> int:\n    return x\n")
    r = itemloop("tools", "--tools", "", "--functions", str(TOOLS_FILE), "--functions", str(other))
    assert r.returncode == 2
    assert "two tools are named 'multiply'" in r.stderr and "Traceback" not in r.stderr


def test_a_python_function_named_like_an_mcp_tool_is_refused(tmp_path: Path) -> None:
    clash = tmp_path / "clash.py"
    clash.write_text("def demo__add(a: int, b: int) -> int:\n    return 0\n")
    script = tmp_path / "t.jsonl"
    write_script(script, [message("x")])
    spec = f"demo={sys.executable} {MCP_SERVER} stdio"
    r = itemloop(
        "run",
        "go",
        "--script",
        str(script),
        "--tools",
        "",
        "--functions",
        str(clash),
        "--mcp-stdio",
        spec,
    )
    assert r.returncode == 2
    assert "two tools are named 'demo__add'" in r.stderr and "Traceback" not in r.stderr


def test_python_functions_and_mcp_tools_together(tmp_path: Path) -> None:
    script = tmp_path / "t.jsonl"
    write_script(
        script,
        [fcall("c1", "multiply", {"a": 6, "b": 7}), fcall("c2", "demo__add", {"a": 1, "b": 2})],
        [message("done")],
    )
    spec = f"demo={sys.executable} {MCP_SERVER} stdio"
    r = itemloop(
        "run",
        "go",
        "--script",
        str(script),
        "--tools",
        "",
        "--functions",
        str(TOOLS_FILE),
        "--mcp-stdio",
        spec,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    outs = [
        e["output"] for e in map(json.loads, r.stdout.splitlines()) if e["kind"] == "call_finished"
    ]
    assert sorted((o["call_id"], o["output"]) for o in outs) == [("c1", "42"), ("c2", "3")]


def test_corrupt_session_is_a_clear_error(tmp_path: Path) -> None:
    journal = tmp_path / "s.jsonl"
    journal.write_text("GARBAGE\n")
    script = tmp_path / "t.jsonl"
    write_script(script, [message("x")])
    r = itemloop(
        "run", "go", "--script", str(script), "--tools", "", "--session", str(journal), "--resume"
    )
    assert r.returncode == 1
    assert "not an itemloop session record" in r.stderr and "Traceback" not in r.stderr


def test_computer_call_without_the_tool_gets_its_error_drawn() -> None:
    call = {"type": "computer_call", "call_id": "k1", "action": {"type": "click", "x": 1, "y": 1}}
    r = itemloop("exec", "--tools", "", input=json.dumps(call) + "\n")
    assert r.returncode == 0, r.stderr
    import base64
    import io

    from PIL import Image

    url = json.loads(r.stdout)["output"]["image_url"]
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    assert image.size == (1024, 160)
    assert image.getpixel((1000, 5)) == (170, 0, 0)  # the red error banner


def test_exec_names_call_types_it_does_not_execute_and_exits_2() -> None:
    lines = [
        json.dumps({"type": "frobnicate_call", "call_id": "x1", "arguments": "{}"}),
        json.dumps(fcall("c1", "multiply", {"a": 6, "b": 7})),
        json.dumps({"type": "web_search_call", "id": "ws_1", "status": "completed"}),
    ]
    r = itemloop(
        "exec", "--tools", "", "--functions", str(TOOLS_FILE), input="\n".join(lines) + "\n"
    )
    assert r.returncode == 2
    assert "frobnicate_call is not a call type itemloop executes" in r.stderr
    assert "web_search_call" not in r.stderr  # hosted: the server ran it, nothing to answer
    outs = [json.loads(line) for line in r.stdout.splitlines()]
    assert outs == [{"type": "function_call_output", "call_id": "c1", "output": "42"}]


def test_exec_treats_deeply_nested_json_as_a_bad_line() -> None:
    deep = "[" * 2000 + "]" * 2000
    lines = [json.dumps(fcall("c1", "multiply", {"a": 6, "b": 7})), deep]
    r = itemloop(
        "exec", "--tools", "", "--functions", str(TOOLS_FILE), input="\n".join(lines) + "\n"
    )
    assert r.returncode == 2, r.stderr
    assert "line 2: JSON nested too deeply" in r.stderr and "Traceback" not in r.stderr
    outs = [json.loads(line) for line in r.stdout.splitlines()]
    assert outs == [{"type": "function_call_output", "call_id": "c1", "output": "42"}]


def test_tools_help_shows_real_defaults() -> None:
    r = itemloop("run", "--help")
    assert "default: shell,apply_patch" in " ".join(r.stdout.split())
    r = itemloop("demo", "--help")
    assert "default: a new temporary directory" in " ".join(r.stdout.split())


def test_tools_takes_model_to_pick_the_computer_tool() -> None:
    r = itemloop("tools", "--tools", "computer", "--model", "computer-use-preview")
    assert r.returncode == 0, r.stderr
    assert [d["type"] for d in json.loads(r.stdout)] == ["computer_use_preview"]
    r = itemloop("tools", "--tools", "computer", "--model", "gpt-5.5")
    assert [d["type"] for d in json.loads(r.stdout)] == ["computer"]


def test_the_readme_script_example_runs(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("```json\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "turns.jsonl"
    script.write_text(block)
    r = itemloop("run", "list", "--script", str(script), "--sandbox", "local", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Listed."
    assert "✓ shell" in r.stderr
