"""A real X client for the XvfbComputer tests: a Tk window that reports its input.

    python x_probe.py WIDTH HEIGHT [EVENTS]

Covers the screen from (0, 0). An entry sits at ENTRY (x, y, width, height);
the rest is a canvas. Every input event is written to EVENTS (a FIFO the test
reads from outside the sandbox the display runs in; default stdout) as one JSON line:
`ready` once the window is mapped, then `press`/`release` (button, root x/y,
modifier state), `motion` while button 1 is held, `double`, `key` (keysym,
state) and, on Return in the entry, `entry` with its text.
"""

from __future__ import annotations

import json
import sys
import tkinter as tk
from typing import Any

ENTRY = (20, 20, 300, 30)
SHIFT, CONTROL = 0x1, 0x4


OUT = open(sys.argv[3], "w") if len(sys.argv) > 3 else sys.stdout


def emit(**event: Any) -> None:
    print(json.dumps(event), file=OUT, flush=True)


def main() -> None:
    width, height = int(sys.argv[1]), int(sys.argv[2])
    root = tk.Tk()
    root.geometry(f"{width}x{height}+0+0")
    canvas = tk.Canvas(root, width=width, height=height, highlightthickness=0, bg="white")
    canvas.place(x=0, y=0)
    entry = tk.Entry(root, font=("TkFixedFont", 14))
    x, y, w, h = ENTRY
    entry.place(x=x, y=y, width=w, height=h)

    def pointer(kind: str) -> Any:
        return lambda e: emit(event=kind, button=e.num, x=e.x_root, y=e.y_root, state=e.state)

    report_press = pointer("press")

    def press(e: Any) -> None:
        canvas.focus_set()  # a click on the canvas takes the keyboard focus from the entry
        report_press(e)

    canvas.bind("<ButtonPress>", press)
    canvas.bind("<ButtonRelease>", pointer("release"))
    canvas.bind("<B1-Motion>", lambda e: emit(event="motion", x=e.x_root, y=e.y_root))
    canvas.bind("<Double-Button-1>", pointer("double"))
    root.bind_all("<KeyPress>", lambda e: emit(event="key", keysym=e.keysym, state=e.state))
    entry.bind("<Return>", lambda e: emit(event="entry", text=entry.get()))

    def ready() -> None:
        root.update()
        # A request with a reply: the X server has handled every earlier one (the window
        # is mapped, its white background painted) before the test looks at the screen.
        root.winfo_pointerxy()
        emit(event="ready", x=root.winfo_rootx(), y=root.winfo_rooty())

    root.after(50, ready)
    root.mainloop()


if __name__ == "__main__":
    main()
