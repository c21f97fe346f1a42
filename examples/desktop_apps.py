"""A contained desktop: an app started with the session, and one a shell command starts.

The X display (Xvfb, with a cookie) runs inside the session's bubblewrap
sandbox, with a window manager (openbox) and one application (xclock) started
on it when the session starts. The model sees them in its first screenshot;
its shell commands run in the same sandbox, see DISPLAY and XAUTHORITY, and
start a second application (xmessage), which the next screenshot shows.
Offline, a scripted model makes the calls.

    python examples/desktop_apps.py [--save-screenshot FILE]
    OPENAI_API_KEY=... python examples/desktop_apps.py      # the real API

The same session from the command line:

    itemloop exec --tools shell,computer --computer xvfb --computer-wm \\
        --computer-app 'xclock -bg lightyellow -geometry 200x200+40+40'

Needs `bash .ci/setup-computer.sh` (xvfb, xdotool, x11-apps, x11-utils, openbox)
and bubblewrap.
"""

from __future__ import annotations

import argparse
import base64
import tempfile
from pathlib import Path
from typing import Any

import anyio

from itemloop.runtime import ComputerConfig, Runtime, Toolset, ToolsetConfig, choose_model
from itemloop.runtime.events import CallFinished, RunFinished
from itemloop.sandbox.desktop_display import DEFAULT_WINDOW_MANAGER
from itemloop.tools.config import SandboxConfig

CLOCK = "xclock -bg lightyellow -geometry 200x200+40+40"
# Started in the background; xdotool waits (--sync) until its window is on the screen,
# then the names of the visible application windows are listed.
START_MESSAGE = (
    "xmessage -bg lightblue -geometry +380+260 'Started by a shell command' & "
    "xdotool search --sync --onlyvisible --class Xmessage >/dev/null && "
    "for w in $(xdotool search --onlyvisible --class 'XClock|Xmessage'); do "
    "xdotool getwindowname $w; done | sort"
)


def computer_call(n: int) -> dict[str, Any]:
    return {
        "type": "computer_call",
        "id": f"cu_{n}",
        "call_id": f"call_{n}",
        "status": "completed",
        "pending_safety_checks": [],
        "actions": [{"type": "screenshot"}],
    }


SCRIPT = [
    [computer_call(1)],
    [{"type": "shell_call", "call_id": "call_2", "action": {"commands": [START_MESSAGE]}}],
    [computer_call(3)],
    [
        {
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "The clock is open; xmessage is open next to it."}
            ],
        }
    ],
]

PROMPT = (
    "Look at the screen. Then, from a shell command, open a message window that says "
    "'Started by a shell command' next to what is there, and check that it shows."
)


def describe(event: CallFinished) -> str:
    """One line for a finished call: its summary, and a shell command's output."""
    if event.item_type != "shell_call" or not event.ok:
        return f"[{'ok' if event.ok else 'error'}] {event.summary}"
    chunks = event.output["output"]
    out = " | ".join(c["stdout"].strip().replace("\n", ", ") for c in chunks)
    return f"[ok] shell: {out}"


async def main(save: Path | None) -> None:
    model = choose_model(SCRIPT)
    preview = model.name.startswith(("computer-use", "scripted"))
    last_png = b""
    with tempfile.TemporaryDirectory() as workspace:
        config = ToolsetConfig(
            builtins=("shell", "computer"),
            sandbox=SandboxConfig(workspace=Path(workspace)),
            computer=ComputerConfig(
                backend="xvfb",
                apps=(CLOCK,),
                window_manager=DEFAULT_WINDOW_MANAGER,
                tool="computer_use_preview" if preview else "computer",
            ),
        )
        # The toolset starts the sandbox, the display, openbox and xclock (in that order)
        # and stops them when the Runtime closes.
        async with Runtime(model, Toolset(config), max_turns=20) as rt:
            computer = rt.toolset.computer
            for notice in getattr(computer, "notices", ()):
                print(notice)  # an app that did not start, a display the shell cannot see
            async for event in rt.run(PROMPT):
                if isinstance(event, CallFinished):
                    print(describe(event))
                    if event.item_type == "computer_call" and event.ok:
                        image = event.output["output"]["image_url"]
                        last_png = base64.b64decode(image.split(",", 1)[1])
                elif isinstance(event, RunFinished):
                    if event.error:
                        print(f"run error: {event.error}")
                    print(f"answer: {event.final_text}")
    if save is not None and last_png:
        await anyio.Path(save).write_bytes(last_png)
        print(f"last screenshot: {save}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--save-screenshot", type=Path, default=None, metavar="FILE")
    a = p.parse_args()
    anyio.run(main, a.save_screenshot)
