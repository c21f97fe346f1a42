"""The shell executors on real sandboxes: output items exactly as the API expects."""

from __future__ import annotations

import json
from typing import Any

import openai.types.responses as oai
import pydantic
import pytest

from itemloop.sandbox.channel_sandbox import ChannelSandbox
from itemloop.tools.base import Executor
from itemloop.tools.local_shell import LocalShellExecutor
from itemloop.tools.shell import MAX_OUTPUT_LENGTH, ShellExecutor, byte_limit_for

pytestmark = pytest.mark.anyio

INPUT_ITEM = pydantic.TypeAdapter(oai.ResponseInputItemParam)


def valid(item: dict[str, Any]) -> dict[str, Any]:
    """`item` validates as an input item and survives a JSON round trip."""
    INPUT_ITEM.validate_python(item)
    assert json.loads(json.dumps(item)) == item
    return item


def shell_call(commands: Any, **action: Any) -> dict[str, Any]:
    return {
        "type": "shell_call",
        "call_id": "call_sh_1",
        "status": "completed",
        "action": {"commands": commands, **action},
    }


def local_call(command: Any, **action: Any) -> dict[str, Any]:
    return {
        "type": "local_shell_call",
        "id": "lsh_1",
        "call_id": "call_lsh_1",
        "status": "completed",
        "action": {"type": "exec", "command": command, "env": {}, **action},
    }


async def test_protocol_and_definitions(any_sandbox: ChannelSandbox) -> None:
    sh = ShellExecutor(any_sandbox, default_timeout_s=30, default_output_limit=10_000)
    lsh = LocalShellExecutor(any_sandbox, default_timeout_s=30, default_output_limit=10_000)
    assert isinstance(sh, Executor) and isinstance(lsh, Executor)
    assert sh.item_types == ("shell_call",) and sh.sequential
    assert lsh.item_types == ("local_shell_call",) and lsh.sequential
    assert sh.definitions() == [{"type": "shell"}]
    assert lsh.definitions() == [{"type": "local_shell"}]


async def test_per_command_outcomes(any_sandbox: ChannelSandbox) -> None:
    sh = ShellExecutor(any_sandbox)
    res = await sh.execute(
        shell_call(["echo one", "echo two >&2; exit 3", "sleep 30", "echo never"], timeout_ms=1500)
    )
    out = valid(res.output)
    assert out["call_id"] == "call_sh_1" and out["type"] == "shell_call_output"
    chunks = out["output"]
    assert len(chunks) == 4
    assert chunks[0] == {
        "stdout": "one\n",
        "stderr": "",
        "outcome": {"type": "exit", "exit_code": 0},
    }
    assert chunks[1]["stderr"] == "two\n"
    assert chunks[1]["outcome"] == {"type": "exit", "exit_code": 3}
    assert chunks[2]["outcome"] == {"type": "timeout"}
    assert "timed out" in chunks[2]["stderr"]
    assert chunks[3]["outcome"] == {"type": "timeout"}
    assert "not run" in chunks[3]["stderr"]
    assert not res.ok
    assert res.summary == "4 commands: exit 0, exit 3, timeout, not run"
    res = await sh.execute(shell_call(["true"]))
    assert res.ok and res.summary == "exit 0"


async def test_50mb_output_with_1000_char_cap(any_sandbox: ChannelSandbox) -> None:
    sh = ShellExecutor(any_sandbox)
    res = await sh.execute(
        shell_call(
            ["echo START; head -c 50000000 /dev/zero | tr '\\0' x; echo; echo END; echo oops >&2"],
            max_output_length=1000,
        )
    )
    out = valid(res.output)
    assert out["max_output_length"] == 1000
    (chunk,) = out["output"]
    assert chunk["outcome"] == {"type": "exit", "exit_code": 0}
    assert len(chunk["stdout"]) + len(chunk["stderr"]) <= 1000
    assert chunk["stdout"].startswith("START\nxxx")
    assert chunk["stdout"].endswith("xxx\nEND\n")
    assert "characters cut]" in chunk["stdout"]
    cut = int(chunk["stdout"].split("…[")[1].split(" characters cut")[0])
    kept = len(chunk["stdout"]) - len(chunk["stdout"].split("\n…[")[1]) - 2
    assert cut > 49_990_000 and kept > 0
    assert chunk["stderr"] == "oops\n"


async def test_invalid_utf8_round_trips_as_json(any_sandbox: ChannelSandbox) -> None:
    sh = ShellExecutor(any_sandbox)
    res = await sh.execute(shell_call(["printf 'bad \\377\\300 bytes'; printf '\\351' >&2"]))
    out = valid(res.output)
    chunk = out["output"][0]
    assert chunk["stdout"] == "bad \ufffd\ufffd bytes"
    assert chunk["stderr"] == "\ufffd"
    lsh = LocalShellExecutor(any_sandbox)
    res = await lsh.execute(local_call(["printf", "\\377 x"]))
    item = valid(res.output)
    assert json.loads(item["output"])["stdout"] == "\ufffd x"


@pytest.mark.parametrize(
    "action, expect",
    [
        ({"commands": []}, "non-empty list"),
        ({"commands": "ls"}, "non-empty list"),
        ({"commands": ["ls", 3]}, "commands[1]"),
        ({}, "non-empty list"),
        ({"commands": ["ls"], "timeout_ms": -5}, "timeout_ms"),
        ({"commands": ["ls"], "max_output_length": "big"}, "max_output_length"),
    ],
)
async def test_malformed_shell_calls_answer_with_an_error(
    any_sandbox: ChannelSandbox, action: dict[str, Any], expect: str
) -> None:
    sh = ShellExecutor(any_sandbox)
    call = {"type": "shell_call", "call_id": "c1", "action": action}
    res = await sh.execute(call)
    out = valid(res.output)
    assert out["call_id"] == "c1"
    (chunk,) = out["output"]
    assert expect in chunk["stderr"]
    assert chunk["outcome"]["type"] == "exit" and chunk["outcome"]["exit_code"] != 0
    assert not res.ok
    res = await sh.execute({"type": "shell_call", "call_id": "c2"})
    valid(res.output)


async def test_local_shell_call(any_sandbox: ChannelSandbox) -> None:
    await any_sandbox.write_file("sub/a.txt", b"content")
    lsh = LocalShellExecutor(any_sandbox)
    res = await lsh.execute(
        local_call(
            ["sh", "-c", 'cat a.txt; echo " $FOO"'], env={"FOO": "bar"}, working_directory="sub"
        )
    )
    item = valid(res.output)
    assert item["type"] == "local_shell_call_output"
    assert item["id"] == "call_lsh_1"  # the call_id, as the schema says
    payload = json.loads(item["output"])
    assert payload["stdout"] == "content bar\n"
    assert payload["exit_code"] == 0 and payload["timed_out"] is False
    assert res.ok and res.summary == "exit 0"
    # The workspace's path inside the sandbox is accepted as a working directory too.
    res = await lsh.execute(
        local_call(["cat", "a.txt"], working_directory=f"{any_sandbox.workspace_mount}/sub")
    )
    assert json.loads(res.output["output"])["stdout"] == "content"


async def test_local_shell_timeout_and_errors(any_sandbox: ChannelSandbox) -> None:
    lsh = LocalShellExecutor(any_sandbox)
    res = await lsh.execute(local_call(["sleep", "30"], timeout_ms=500))
    payload = json.loads(valid(res.output)["output"])
    assert payload["timed_out"] is True and payload["exit_code"] is None
    assert res.summary == "timeout"
    for call, expect in [
        (local_call(["ls"], working_directory="../outside"), "leaves the workspace"),
        (local_call([]), "non-empty list"),
        (local_call("ls -l"), "non-empty list"),
        (local_call(["ls"], env={"A": 1}), "env"),
        ({"type": "local_shell_call", "call_id": "x"}, "action"),
    ]:
        res = await lsh.execute(call)
        item = valid(res.output)
        payload = json.loads(item["output"])
        assert expect in payload["stderr"], payload
        assert payload["exit_code"] != 0 and not res.ok


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("local", marks=pytest.mark.bwrap),
        pytest.param("docker-python", marks=pytest.mark.docker),
    ],
)
async def test_local_shell_user_that_cannot_be_honoured(
    kind: str, workspace: Any, make: Any
) -> None:
    async with make(kind, workspace) as sb:
        res = await LocalShellExecutor(sb).execute(local_call(["id"], user="nobody"))
        payload = json.loads(valid(res.output)["output"])
        assert "cannot run as user 'nobody'" in payload["stderr"]
        assert not res.ok


@pytest.mark.docker
async def test_local_shell_user_in_docker_exec_path(workspace: Any, make: Any) -> None:
    async with make("docker-exec", workspace) as sb:
        res = await LocalShellExecutor(sb).execute(local_call(["id", "-u"], user="nobody"))
        payload = json.loads(valid(res.output)["output"])
        assert payload["stdout"] == "65534\n", payload


class RecordingSandbox:
    """A real sandbox that records the bounds each command was run with."""

    def __init__(self, inner: ChannelSandbox) -> None:
        self.inner = inner
        self.workspace_mount = inner.workspace_mount
        self.runs: list[dict[str, Any]] = []

    async def run(self, argv: Any = None, **kw: Any) -> Any:
        self.runs.append(kw)
        return await self.inner.run(argv, **kw)


async def test_model_supplied_bounds_are_clamped_or_refused(workspace: Any, make: Any) -> None:
    async with make("host", workspace) as host:
        sb = RecordingSandbox(host)
        sh = ShellExecutor(sb)  # type: ignore[arg-type]
        lsh = LocalShellExecutor(sb)  # type: ignore[arg-type]
        # Huge but finite: clamped, and the clamp is what is echoed and used.
        res = await sh.execute(shell_call(["echo hi"], max_output_length=1e12, timeout_ms=1e300))
        out = valid(res.output)
        assert res.ok, out
        assert out["max_output_length"] == MAX_OUTPUT_LENGTH == 10_000_000
        assert out["output"][0]["stdout"] == "hi\n"
        assert sb.runs[-1]["output_limit"] <= byte_limit_for(MAX_OUTPUT_LENGTH)
        assert sb.runs[-1]["timeout_s"] <= 24 * 3600
        res = await sh.execute(shell_call(["echo hi"], max_output_length=10**30))
        assert valid(res.output)["max_output_length"] == MAX_OUTPUT_LENGTH
        res = await lsh.execute(local_call(["echo", "hi"], timeout_ms=10**30))
        assert json.loads(valid(res.output)["output"])["stdout"] == "hi\n"
        assert sb.runs[-1]["timeout_s"] <= 24 * 3600
        # Not finite (JSON's 1e400 is infinity): a clear invalid-argument error, nothing run.
        runs = len(sb.runs)
        for field, value in [
            ("max_output_length", "1e400"),
            ("timeout_ms", "1e400"),
            ("timeout_ms", "-1e400"),
            ("max_output_length", "NaN"),
        ]:
            action = json.loads(f'{{"commands": ["echo hi"], "{field}": {value}}}')
            res = await sh.execute({"type": "shell_call", "call_id": "c1", "action": action})
            (chunk,) = valid(res.output)["output"]
            assert "invalid shell_call" in chunk["stderr"] and field in chunk["stderr"]
            assert not res.ok
        res = await lsh.execute(local_call(["echo", "hi"], timeout_ms=json.loads("1e400")))
        payload = json.loads(valid(res.output)["output"])
        assert "invalid local_shell_call: timeout_ms must be a finite" in payload["stderr"]
        assert not res.ok
        assert len(sb.runs) == runs
