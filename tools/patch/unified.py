"""Standard unified diffs (`@@ -a,b +c,d @@`), parsed with `unidiff`.

Models write unified diffs loosely: no `---`/`+++` headers, hunk counts that do
not add up, blank context lines without their leading space. The text is
normalised first (headers added, counts recomputed from the hunk bodies), then
handed to `unidiff`, whose hunks become `Hunk`s.
"""

from __future__ import annotations

import re

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from .model import Hunk, Op, PatchError, final_newline

HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
_OPS: dict[str, Op] = {" ": " ", "-": "-", "+": "+"}


def is_unified(diff: str, lines: list[str]) -> bool:
    if not (diff.startswith("@@ -") or "\n@@ -" in diff):
        return False  # a C-level scan rules most V4A diffs out at once
    return any(line.startswith("@@ -") and HUNK_HEADER.match(line) for line in lines)


def _is_file_header(lines: list[str], i: int) -> bool:
    return lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")


def _normalise(lines: list[str]) -> tuple[list[str], list[int]]:
    """Text `unidiff` accepts, and the 1-based diff line of each hunk header."""
    out: list[str] = []
    hunk_lines: list[int] = []
    files = 0
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        header = HUNK_HEADER.match(line)
        if header is None:
            if _is_file_header(lines, i):
                files += 1
                if files > 1:
                    raise PatchError(
                        f"diff line {i + 1}: a second file header ({lines[i + 1]!r}); "
                        "one apply_patch operation edits one file"
                    )
                out += [lines[i], lines[i + 1]]
                i += 2
                continue
            if line.startswith("*** End Patch"):
                break
            if hunk_lines and line.strip():
                raise PatchError(
                    f"diff line {i + 1}: {line!r} is neither a hunk line (' ', '-', '+') "
                    "nor a hunk header"
                )
            out.append(line)
            i += 1
            continue
        if files == 0:
            out += ["--- a", "+++ b"]
            files = 1
        body: list[str] = []
        j = i + 1
        while j < n and not HUNK_HEADER.match(lines[j]) and not _is_file_header(lines, j):
            b = lines[j]
            if b.startswith("*** End Patch"):
                break
            if b == "":
                b = " "  # blank context line whose leading space an editor stripped
            elif b[0] not in " -+\\":
                break
            body.append(b)
            j += 1
        body = _drop_trailing_blanks(body, header)
        old = sum(1 for b in body if b[0] in " -")
        new = sum(1 for b in body if b[0] in " +")
        out.append(f"@@ -{header[1]},{old} +{header[3]},{new} @@{header[5]}")
        out.extend(body)
        hunk_lines.append(i + 1)
        i = j
    return out, hunk_lines


def _drop_trailing_blanks(body: list[str], header: re.Match[str]) -> list[str]:
    """Blank lines after the last hunk are usually padding, not context: drop those
    the header's own counts do not account for."""
    declared_old = int(header[2]) if header[2] is not None else 1
    while body and body[-1] == " " and sum(1 for b in body if b[0] in " -") > declared_old:
        body = body[:-1]
    return body


def parse_unified(lines: list[str]) -> list[Hunk]:
    text, hunk_lines = _normalise(lines)
    try:
        patch = PatchSet("\n".join(text) + "\n")
    except UnidiffParseError as e:
        raise PatchError(f"the unified diff could not be parsed: {e}") from None
    if len(patch) != 1:
        raise PatchError(f"the unified diff touches {len(patch)} files; expected exactly one")
    hunks: list[Hunk] = []
    for number, uhunk in enumerate(patch[0]):
        ops: list[tuple[Op, str]] = []
        markers: list[Op] = []
        for uline in uhunk:
            op = _OPS.get(uline.line_type)
            value = uline.value[:-1] if uline.value.endswith("\n") else uline.value
            if op is not None:
                ops.append((op, value))
            elif uline.line_type == "\\" and ops:
                markers.append(ops[-1][0])
        if not ops:
            raise PatchError(f"diff line {hunk_lines[number]}: the hunk has no lines")
        start = uhunk.source_start - 1 if uhunk.source_length > 0 else uhunk.source_start
        hunks.append(
            Hunk(
                ops=tuple(ops),
                old_start=max(start, 0),
                final_newline=final_newline(markers),
                diff_line=hunk_lines[number] if number < len(hunk_lines) else 0,
            )
        )
    return hunks
