"""Shell commands in the bubblewrap sandbox: the workspace is writable, the
rest of the host read-only, no network, no inherited secrets.

    python examples/shell_agent.py [--sandbox local|docker|host] [--image NAME]
    OPENAI_API_KEY=... python examples/shell_agent.py      # the real API
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import anyio

from itemloop.runtime import Runtime, SandboxConfig, Toolset, ToolsetConfig, choose_model
from itemloop.runtime.events import CallFinished, RunFinished

SCRIPT = [
    [
        {
            "type": "shell_call",
            "call_id": "c1",
            "action": {
                "commands": [
                    "printf 'alpha\\nbeta\\ngamma\\n' > words.txt",
                    "wc -l words.txt",
                    "echo key: ${OPENAI_API_KEY:-none}",
                    "touch /etc/itemloop-was-here",
                ],
                "timeout_ms": 10_000,
                "max_output_length": 2_000,
            },
        }
    ],
    [
        {
            "type": "shell_call",
            "call_id": "c2",
            "action": {"commands": ["sleep 60"], "timeout_ms": 300},
        }
    ],
    [
        {
            "type": "message",
            "role": "assistant",
            "content": [
                {
                    "type": "output_text",
                    "text": "words.txt has 3 lines; /etc is read-only and the slow command timed out.",
                }
            ],
        }
    ],
]


async def main(kind: str, image: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = ToolsetConfig(
            builtins=("shell",), sandbox=SandboxConfig(kind=kind, image=image, workspace=Path(tmp))
        )
        async with Runtime(choose_model(SCRIPT), Toolset(config)) as rt:
            async for event in rt.run("Count the lines of a small file, then try something slow."):
                if isinstance(event, CallFinished):
                    for chunk in event.output["output"]:
                        outcome = chunk["outcome"]
                        status = outcome.get("exit_code", outcome["type"])
                        print(
                            f"[{status}] {chunk['stdout'].strip()} {chunk['stderr'].strip()}".rstrip()
                        )
                elif isinstance(event, RunFinished):
                    print(f"answer: {event.final_text}")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--sandbox", default="local")
    p.add_argument("--image", default=None)
    a = p.parse_args()
    anyio.run(main, a.sandbox, a.image)
