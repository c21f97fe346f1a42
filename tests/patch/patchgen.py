"""Diff writers for the tests: produce V4A and unified diffs from text a to text b."""

from __future__ import annotations

import difflib
from collections.abc import Callable

NO_NEWLINE = "\\ No newline at end of file"


def _count(block: list[str], lines: list[str]) -> int:
    m = len(block)
    return sum(1 for s in range(len(lines) - m + 1) if lines[s : s + m] == block)


def v4a_diff(
    a: str,
    b: str,
    context: int = 3,
    *,
    norm: Callable[[str], str] = lambda s: s,
    context_line: Callable[[str], str] = lambda s: s,
) -> str:
    """A V4A diff from a to b, in the `text.split("\\n")` line model both appliers use.

    Context grows until every hunk's old block occurs once in a (compared with
    `norm`), so no applier has to guess. `context_line` may rewrite the
    diff's copy of context and removed lines (to perturb whitespace).
    """
    al, bl = a.split("\n"), b.split("\n")
    matcher = difflib.SequenceMatcher(None, al, bl, autojunk=False)
    changes = [op[1:] for op in matcher.get_opcodes() if op[0] != "equal"]
    normed = [norm(x) for x in al]
    n = context
    while True:
        hunks = _group(changes, n, len(al))
        if n > len(al) or all(_count(normed[lo:hi], normed) == 1 for lo, hi, _ in hunks):
            break
        n = n * 2 + 1
    out: list[str] = []
    for lo, hi, group in hunks:
        out.append("@@")
        pos = lo
        for i1, i2, j1, j2 in group:
            out += [" " + context_line(x) for x in al[pos:i1]]
            out += ["-" + context_line(x) for x in al[i1:i2]]
            out += ["+" + x for x in bl[j1:j2]]
            pos = i2
        out += [" " + context_line(x) for x in al[pos:hi]]
    return "\n".join(out) + "\n"


Change = tuple[int, int, int, int]


def _group(changes: list[Change], n: int, size: int) -> list[tuple[int, int, list[Change]]]:
    """Changes with n lines of context around each, merged where they touch."""
    hunks: list[tuple[int, int, list[Change]]] = []
    for change in changes:
        lo, hi = max(0, change[0] - n), min(size, change[1] + n)
        if hunks and lo <= hunks[-1][1]:
            hunks[-1] = (hunks[-1][0], max(hi, hunks[-1][1]), [*hunks[-1][2], change])
        else:
            hunks.append((lo, hi, [change]))
    return hunks


def _file_lines(text: str) -> list[str]:
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _range(start: int, length: int) -> str:
    # Unified convention: an empty range names the line before it.
    beginning = start + 1 if length else start
    return f"{beginning},{length}"


def unified_diff(a: str, b: str, context: int = 3, *, headers: bool = True) -> str:
    """A standard unified diff, with `\\ No newline at end of file` markers."""
    al, bl = _file_lines(a), _file_lines(b)
    matcher = difflib.SequenceMatcher(None, al, bl, autojunk=False)
    out: list[str] = ["--- a/file", "+++ b/file"] if headers else []

    def emit(prefix: str, line: str) -> None:
        out.append(prefix + line.removesuffix("\n"))
        if not line.endswith("\n"):
            out.append(NO_NEWLINE)

    for group in matcher.get_grouped_opcodes(context):
        i1, i2 = group[0][1], group[-1][2]
        j1, j2 = group[0][3], group[-1][4]
        out.append(f"@@ -{_range(i1, i2 - i1)} +{_range(j1, j2 - j1)} @@")
        for tag, x1, x2, y1, y2 in group:
            if tag == "equal":
                for line in al[x1:x2]:
                    emit(" ", line)
                continue
            for line in al[x1:x2]:
                emit("-", line)
            for line in bl[y1:y2]:
                emit("+", line)
    return "\n".join(out) + "\n"


def create_diff(b: str) -> str:
    """A V4A create_file diff (all '+' lines) for text b.

    A last bare '+' stands for the final newline (the reference's convention), so
    a text whose last line is empty needs one more.
    """
    lines = _file_lines(b)
    out: list[str] = []
    for line in lines:
        out.append("+" + line.removesuffix("\n"))
        if not line.endswith("\n"):
            out.append(NO_NEWLINE)
    if lines and lines[-1] == "\n":
        out.append("+")
    return "\n".join(out) + "\n" if out else ""
