"""Failure messages that let the model fix its diff in one step.

A miss says which hunk, where it was looked for, and shows the lines of the
file most like the hunk's expected lines, with the first line that differs.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence

from .index import LineIndex
from .match import Miss
from .model import Hunk
from .normalize import EXACT, PASSES, PUNCT, STRIP

MAX_SHOWN = 12


def _numbered(lines: Sequence[str], start: int) -> list[str]:
    shown = [f"  {start + i + 1:>5}| {line}" for i, line in enumerate(lines[:MAX_SHOWN])]
    if len(lines) > MAX_SHOWN:
        shown.append(f"        ... ({len(lines) - MAX_SHOWN} more)")
    return shown


def _expected(old: Sequence[str]) -> list[str]:
    shown = [f"       | {line}" for line in old[:MAX_SHOWN]]
    if len(old) > MAX_SHOWN:
        shown.append(f"        ... ({len(old) - MAX_SHOWN} more)")
    return shown


def _line_list(starts: Sequence[int], real_end: int) -> str:
    """`line 5` or `lines 5, 9`, or `the end of the file` for an insertion there."""
    prefix = "line " if len(starts) == 1 else "lines "
    if starts[0] >= real_end:
        prefix = ""
    return prefix + _numbers(starts, real_end)


def _numbers(starts: Sequence[int], real_end: int) -> str:
    numbers = [str(s + 1) if s < real_end else "the end of the file" for s in starts[:8]]
    more = f" and {len(starts) - 8} more" if len(starts) > 8 else ""
    return ", ".join(numbers) + more


def nearest(old: Sequence[str], index: LineIndex, prefer: int) -> int | None:
    """Start of the window of the file most like `old`, or `None` if nothing resembles it.

    Each line of `old` found (ignoring whitespace and punctuation) votes for
    the start it implies; lines found nowhere fall back to fuzzy similarity.
    """
    norm = index.norm(PUNCT)
    votes: Counter[int] = Counter()
    keys = [LineIndex.key(PUNCT, line) for line in old]
    for off, key in enumerate(keys):
        if not key:
            continue  # blank lines are everywhere and say nothing
        for pos in index.positions(PUNCT, key)[:50]:
            votes[pos - off] += 1
    if not votes:
        candidates = sorted(set(norm))
        tried = 0
        for off, key in enumerate(keys):
            if not key or tried >= 6:
                continue  # a few lines are enough to find the place; bound the cost
            tried += 1
            for close in difflib.get_close_matches(key, candidates, n=3, cutoff=0.6):
                for pos in index.positions(PUNCT, close)[:50]:
                    votes[pos - off] += 1
    if not votes:
        return None
    return max(votes, key=lambda s: (votes[s], -abs(s - prefer)))


STACKED_ADVICE = (
    "Several @@ lines are a path to the change, outermost first: each must be a line of "
    "the file below the one before it. Correct the @@ line, or drop it and let the hunk's "
    "own lines place it."
)


def _missing_anchor(miss: Miss, index: LineIndex) -> str:
    """Why a stacked anchor was not found, and the lines of the file most like it."""
    anchor = miss.missing_anchors[0]
    lines = index.lines
    copies = index.positions(PUNCT, LineIndex.key(PUNCT, anchor))
    if miss.anchor is not None:
        before = miss.anchor
        text = (
            f": its @@ line {anchor!r} is not in the file after line {before + 1} "
            f"({lines[before].strip()!r}, the @@ line before it)."
        )
        if copies:
            # Found nowhere after the previous anchor, so every copy is above it.
            text += f" It occurs only above that line, at {_line_list(copies, len(lines))}."
            return text
    elif copies:
        # Only copies above the previous hunk, and more than one: none is chosen.
        return (
            f": its @@ line {anchor!r} is not in the file after line {miss.cursor} (where "
            f"the previous hunk ended), and occurs above it at "
            f"{_line_list(copies, len(lines))}, which does not tell which one is meant."
        )
    else:
        text = f": its @@ line {anchor!r} is not in the file."
    return text + "\n" + "\n".join(_close_lines(anchor, index))


def _close_lines(wanted: str, index: LineIndex) -> list[str]:
    """The file's lines most like `wanted` (ignoring surrounding whitespace), numbered."""
    norm = index.norm(STRIP)
    key = LineIndex.key(STRIP, wanted)
    close = difflib.get_close_matches(key, {line for line in norm if line}, n=3, cutoff=0.5)
    if not close:
        return ["No line of the file resembles it."]
    out = ["The lines of the file most like it:"]
    for line in close:
        for pos in index.positions(STRIP, line)[:2]:
            out += _numbered(index.lines[pos : pos + 1], pos)
    return out


def _where(hunk: Hunk, miss: Miss, lines: Sequence[str]) -> str:
    if miss.anchor is not None:
        return f" after line {miss.anchor + 1} ({lines[miss.anchor].strip()!r}, from its @@ line)"
    if hunk.final_newline is not None:
        return " at the end of the file"
    if hunk.old_start is not None:
        return f" near line {hunk.old_start + 1} (from its @@ header)"
    if miss.cursor > 0:
        return f" after line {miss.cursor} (where the previous hunk ended)"
    return ""


def describe(miss: Miss, hunks: Sequence[Hunk], index: LineIndex) -> str:
    hunk = hunks[miss.hunk_no]
    lines = index.lines
    real_end = len(lines) - 1 if lines[-1] == "" else len(lines)
    label = f"hunk {miss.hunk_no + 1} of {len(hunks)} (diff line {hunk.diff_line})"
    old = hunk.old
    out: list[str] = []
    if miss.kind == "ambiguous":
        how = "" if miss.pass_no == EXACT else f", {PASSES[miss.pass_no][0]}"
        out.append(
            f"{label} matches the file in {len(miss.candidates)} places "
            f"(at lines {_numbers(miss.candidates, real_end)}{how}) and nothing tells them apart."
        )
        if hunk.old_start is not None:
            out.append("Fix the line numbers in its @@ header, or add context lines.")
        else:
            out.append(
                "Add unchanged context lines around the change until it matches one place, "
                "or an '@@ <line>' header naming a unique line before it "
                "(the enclosing def or class, say)."
            )
        return "\n".join(out)
    if miss.kind == "anchor":
        return "\n".join([label + _missing_anchor(miss, index), STACKED_ADVICE])
    if miss.kind == "above_anchor":
        assert miss.anchor is not None
        out.append(
            f"{label} matches the file at {_line_list(miss.candidates, real_end)}, above its "
            f"@@ line {hunk.anchors[-1]!r} (line {miss.anchor + 1}); a hunk goes below its "
            "@@ lines."
        )
        out.append(
            "An @@ line names a line above the change (the enclosing def or class, say): "
            "correct it, or drop it and let the hunk's own lines place it."
        )
        return "\n".join(out)
    if miss.kind == "overlap":
        other = "another hunk" if miss.other_hunk is None else f"hunk {miss.other_hunk + 1}"
        out.append(
            f"{label} matches at line {miss.candidates[0] + 1}, but {other} of the same diff "
            "already changes those lines; merge the two into one hunk."
        )
        return "\n".join(out)
    out.append(f"{label} did not match the file.")
    for anchor in miss.missing_anchors:
        out.append(f"Its @@ line {anchor!r} is not in the file.")
    count = "this line" if len(old) == 1 else f"these {len(old)} lines"
    out.append(f"It expects {count}{_where(hunk, miss, lines)}:")
    out += _expected(old)
    prefer = miss.anchor if miss.anchor is not None else (hunk.old_start or miss.cursor)
    start = nearest(old, index, prefer)
    if start is None:
        out.append("No lines of the file resemble them. Re-read the file before patching it.")
        return "\n".join(out)
    lo = max(start, 0)
    hi = min(start + len(old), len(lines))
    span = f"line {lo + 1}" if hi - lo <= 1 else f"lines {lo + 1}-{hi}"
    out.append(f"The most similar {span} of the file:")
    out += _numbered(lines[lo:hi], lo)
    differs = False
    for off, expected in enumerate(old):
        pos = start + off
        if pos < 0:
            continue
        if pos >= len(lines):
            out.append(f"The file ends before the diff's line {expected!r}.")
            differs = True
            break
        if LineIndex.key(PUNCT, lines[pos]) != LineIndex.key(PUNCT, expected):
            out.append(
                f"First difference: line {pos + 1} is {lines[pos]!r}, "
                f"the diff expects {expected!r}."
            )
            differs = True
            break
    if not differs and hunk.final_newline is not None:
        out.append(
            "Its '\\ No newline at end of file' marker requires these to be the last lines "
            "of the file, and they are not; drop the marker."
        )
    out.append("Send a corrected diff whose context and '-' lines match the file.")
    return "\n".join(out)
