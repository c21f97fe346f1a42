"""The V4A dialect: `@@ anchor` sections of ' ', '-' and '+' lines, no line numbers.

The grammar follows `openai-agents`' `apply_diff` (the reference for V4A), with
a few forgiving extensions: a `*** Begin Patch` / `*** Update File:` envelope
around the hunks, `--- a` / `+++ b` headers, `@@anchor` without a space, and
`\\ No newline at end of file` markers. How `@@` anchors place a hunk (a lone
one is a hint, stacked ones are binding) is `match`'s rule.
"""

from __future__ import annotations

from .model import Hunk, Op, PatchError, final_newline

END_PATCH = "*** End Patch"
END_OF_FILE = "*** End of File"
FILE_SECTIONS = ("*** Update File:", "*** Add File:", "*** Delete File:")
ENVELOPE = ("*** Begin Patch", *FILE_SECTIONS[:2])
OPS: dict[str, Op] = {" ": " ", "-": "-", "+": "+"}


def is_anchor_line(line: str) -> bool:
    return line.startswith("@@")


def anchor_text(line: str) -> str:
    text = line[2:]
    if text.startswith(" "):
        text = text[1:]
    # Some models close the header the unified way: `@@ def f(): @@`.
    if text.endswith(" @@"):
        text = text[:-3]
    return text


def skip_header(lines: list[str]) -> int:
    """Index of the first line after the envelope and `---`/`+++` headers."""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(ENVELOPE):
            i += 1
        elif line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            i += 2
        else:
            break
    return i


def parse_v4a(lines: list[str]) -> list[Hunk]:
    """Hunks of a V4A diff given as lines without line breaks."""
    hunks: list[Hunk] = []
    i = skip_header(lines)
    n = len(lines)
    while i < n:
        line = lines[i]
        if line.startswith(END_PATCH):
            break
        if line.startswith(FILE_SECTIONS):
            raise PatchError(
                f"diff line {i + 1}: {line!r} starts a second file; "
                "one apply_patch operation edits one file"
            )
        start = i
        anchors: list[str] = []
        while i < n and is_anchor_line(lines[i]):
            text = anchor_text(lines[i])
            if text.strip():
                anchors.append(text)
            i += 1
        header_lines = i - start
        ops: list[tuple[Op, str]] = []
        markers: list[Op] = []
        eof = False
        while i < n:
            raw = lines[i]
            # Dispatch on the first character: this loop runs once per diff line.
            op = OPS.get(raw[:1])
            if op is not None:
                ops.append((op, raw[1:]))
                i += 1
                continue
            if raw.startswith("@@"):
                break
            if raw.startswith("***"):
                if raw.startswith(END_OF_FILE):
                    eof = True
                    i += 1
                    break
                if raw.startswith((END_PATCH, *FILE_SECTIONS)) or raw == "***":
                    break
                raise PatchError(f"diff line {i + 1}: unexpected line {raw!r}")
            if raw == "":
                # A blank line is an empty context line whose leading space was lost.
                ops.append((" ", ""))
            elif raw[0] == "\\":
                if ops:
                    markers.append(ops[-1][0])
            else:
                raise PatchError(
                    f"diff line {i + 1}: {raw!r} starts with none of ' ' (context), "
                    "'-' (remove) or '+' (add); every line of a hunk needs one of them"
                )
            i += 1
        if not ops:
            if i < n and lines[i].startswith(END_PATCH):
                break
            raise PatchError(f"diff line {start + 1}: the @@ section has no lines")
        hunks.append(
            Hunk(
                ops=tuple(ops),
                anchors=tuple(anchors),
                stacked=header_lines > 1,
                eof=eof,
                final_newline=final_newline(markers),
                diff_line=start + 1,
            )
        )
    return hunks
