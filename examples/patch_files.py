"""apply_patch: the model edits files with diffs, V4A or unified, applied
atomically inside the workspace; a diff that does not match comes back with
the nearest lines of the file so the model can fix it.

    python examples/patch_files.py
    OPENAI_API_KEY=... python examples/patch_files.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio

from itemloop.runtime import Runtime, SandboxConfig, Toolset, ToolsetConfig, choose_model
from itemloop.runtime.events import CallFinished, RunFinished

SCRIPT = [
    [
        {
            "type": "apply_patch_call",
            "call_id": "c1",
            "status": "completed",
            "operation": {
                "type": "create_file",
                "path": "app/greet.py",
                "diff": "+def greet(name):\n+    return 'Hello, ' + name\n",
            },
        }
    ],
    [
        {
            "type": "apply_patch_call",
            "call_id": "c2",
            "status": "completed",
            "operation": {
                "type": "update_file",
                "path": "app/greet.py",
                "diff": "@@ def greet(name):\n-    return 'Hello, ' + name\n+    return f'Hello, {name}!'\n",
            },
        },
        {
            "type": "apply_patch_call",
            "call_id": "c3",
            "status": "completed",
            "operation": {
                "type": "update_file",
                "path": "app/greet.py",
                "diff": "--- a/app/greet.py\n+++ b/app/greet.py\n@@ -1,2 +1,2 @@\n-def greet(person):\n"
                "+def greet(person: str) -> str:\n     return f'Hello, {name}!'\n",
            },
        },
    ],
    [
        {
            "type": "apply_patch_call",
            "call_id": "c4",
            "status": "completed",
            "operation": {
                "type": "update_file",
                "path": "app/greet.py",
                "diff": "--- a/app/greet.py\n+++ b/app/greet.py\n@@ -1,2 +1,2 @@\n-def greet(name):\n"
                "+def greet(name: str) -> str:\n     return f'Hello, {name}!'\n",
            },
        }
    ],
    [
        {
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "app/greet.py now has a typed, f-string greeting."}
            ],
        }
    ],
]


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = ToolsetConfig(
            builtins=("apply_patch",), sandbox=SandboxConfig(workspace=Path(tmp))
        )
        async with Runtime(choose_model(SCRIPT), Toolset(config)) as rt:
            async for event in rt.run("Write app/greet.py with a typed greet(name) function."):
                if isinstance(event, CallFinished):
                    print(f"[{event.output['status']}] {event.output.get('output', '')}")
                elif isinstance(event, RunFinished):
                    print(f"answer: {event.final_text}")
        print("--- app/greet.py ---")
        print((Path(tmp) / "app" / "greet.py").read_text(), end="")


if __name__ == "__main__":
    anyio.run(main)
