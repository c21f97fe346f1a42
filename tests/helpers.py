"""Small builders shared by the tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
from openai.types.responses import ResponseInputItemParam

from itemloop.tools.config import ToolsetConfig
from itemloop.tools.custom import CustomTool
from itemloop.tools.toolset import Toolset

Item = dict[str, Any]

INPUT_ITEM = pydantic.TypeAdapter(ResponseInputItemParam)


def assert_valid_input_item(item: dict[str, Any]) -> None:
    """Every item the runtime builds must be one the API accepts as input."""
    INPUT_ITEM.validate_python(item)


def fcall(call_id: str, name: str, args: Any) -> Item:
    arguments = args if isinstance(args, str) else json.dumps(args)
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def message(text: str, id: str = "msg_1") -> Item:
    return {
        "type": "message",
        "id": id,
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def write_script(path: Path, *turns: Any) -> Path:
    """A `--script` file: one model turn a line."""
    path.write_text("".join(json.dumps(t) + "\n" for t in turns))
    return path


def toolset_of(*tools: Any, **config: Any) -> Toolset:
    """A toolset of Python functions and custom tools, plus any `ToolsetConfig` fields
    (no built-ins unless `builtins=` says)."""
    return Toolset(
        ToolsetConfig(**{"builtins": (), **config}),
        functions=[t for t in tools if not isinstance(t, CustomTool)],
        custom=[t for t in tools if isinstance(t, CustomTool)],
    )


def dead_pid() -> int:
    """The pid of a process that has exited (what a killed itemloop's leftovers name)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def cmdline(pid: int) -> bytes:
    """`pid`'s command line, or b"" if it exited since it was listed."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


FORK_PROBE = r"""
import os, signal
pids = []
try:
    for i in range(300):
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        pids.append(pid)
except OSError as e:
    print("refused:", e.strerror)
for p in pids:
    os.kill(p, signal.SIGKILL)
    os.waitpid(p, 0)
print(len(pids))
"""
"""A Python program that forks up to 300 sleeping children, says whether a fork was
refused, kills them, and prints how many it had."""
