"""Find where each hunk goes: pass by pass, in order, and never by guessing.

For each hunk the strictest pass that finds its old block wins. Candidates are
told apart by, in this order: a V4A `*** End of File` marker, `@@` anchor lines
(the first match after the anchor), the order of hunks (a match after the
previous hunk), and unified line numbers (the nearest). A block that still
matches in several places is reported as ambiguous instead of applied.

V4A `@@` anchors (checked against `openai-agents`' `apply_diff`, the reference):

- Each anchor is looked for pass by pass like any line (exact first, then
  ignoring whitespace). The outermost one is looked for after the previous
  hunk; when it is not there, a single copy above it is accepted (hunks out of
  order; the reference would fail those). Each further anchor is looked for
  after the one before it.
- A *lone* anchor (one `@@` line) is a hint: when the file does not have it,
  the hunk is placed by its own lines, as in the reference.
- *Stacked* anchors (two or more `@@` lines, bare `@@` included, so `@@ name`
  followed by `@@` counts, as in the reference): every anchor must be found,
  each after the one before it, or the call fails naming the anchor (`Miss`
  kind "anchor"). An inner anchor that occurs only above the outer one is not
  found, as in the reference.
- A found anchor is binding (unless `*** End of File` pins the hunk to the
  end): the hunk goes at or after it. A hunk whose lines occur only above its
  anchor fails (kind "above_anchor"; the reference's "Invalid Context"). For
  a lone anchor any copy of it counts, the earliest too, so hunks out of order
  still find their place.

Not covered: where a block ends. `@@ class A` then `@@ def run` finds the
`def run` of a later class when A has none (as the reference does); telling
that apart would need a parser per language.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from .index import LineIndex
from .model import Hunk
from .normalize import EXACT, PASSES, PUNCT, STRIP


@dataclass(frozen=True, slots=True)
class Placement:
    start: int
    """Index of the first old line in the file (where to insert, for a pure insertion)."""
    pass_no: int


@dataclass(frozen=True, slots=True)
class Miss:
    """Why a hunk could not be placed, with what the error message needs."""

    hunk_no: int
    kind: Literal["not_found", "ambiguous", "overlap", "anchor", "above_anchor"]
    cursor: int
    anchor: int | None = None
    """Line of the innermost anchor found; for "anchor", of the one before the missing
    anchor (`None`: the missing one is the outermost); for "above_anchor", the line
    the hunk had to follow."""
    missing_anchors: tuple[str, ...] = ()
    """For "anchor", the one stacked anchor not found (the search stops there)."""
    candidates: tuple[int, ...] = ()
    pass_no: int = EXACT
    other_hunk: int | None = None
    """For an overlap: the (0-based) hunk whose lines this one would reuse."""


@dataclass(slots=True)
class _Search:
    """One hunk's candidate starts per pass, computed at most once each."""

    hunk: Hunk
    index: LineIndex
    taken: Taken
    real_end: int
    _cache: dict[int, list[int]] = field(default_factory=dict)
    overlapped: list[int] = field(default_factory=list)
    """Starts dropped because another hunk of the diff already uses those lines."""

    def candidates(self, pass_no: int) -> list[int]:
        got = self._cache.get(pass_no)
        if got is not None:
            return got
        old = self.hunk.old
        m = len(old)
        key = LineIndex.key
        block = list(old) if pass_no == EXACT else [key(pass_no, line) for line in old]
        starts = self.index.find_block(pass_no, block)
        if self.hunk.final_newline is not None:
            # A "No newline at end of file" marker pins the block to the end.
            starts = [s for s in starts if s + m == self.real_end]
        if self.taken.ranges:
            free = [s for s in starts if self.taken.overlapping(s, s + m) is None]
            if len(free) < len(starts):
                self.overlapped += [s for s in starts if s not in free]
            starts = free
        self._cache[pass_no] = starts
        return starts


class Taken:
    """Line ranges already claimed by earlier hunks of the same diff."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.max_end = 0

    def add(self, start: int, end: int) -> None:
        self.ranges.append((start, end))
        self.max_end = max(self.max_end, end)

    def overlapping(self, start: int, end: int) -> int | None:
        """Index (= hunk number) of a claimed range that [start, end) overlaps, if any."""
        if start >= self.max_end:
            return None  # the common case, hunks in order: checked in O(1)
        for k, (t_start, t_end) in enumerate(self.ranges):
            if start < t_end and t_start < end:
                return k
            if start == end and t_start < start < t_end:
                return k  # an insertion inside another hunk's block
        return None


def _pick(starts: list[int], hint: int | None) -> int | None:
    """The one start, or the one nearest the line-number hint; `None` when tied."""
    if len(starts) == 1:
        return starts[0]
    if hint is None:
        return None
    ranked = sorted(starts, key=lambda s: abs(s - hint))
    if abs(ranked[0] - hint) == abs(ranked[1] - hint):
        return None
    return ranked[0]


def _same_result(hunk: Hunk, starts: list[int], lines: list[str]) -> bool:
    """Whether applying the hunk at any of `starts` gives the same text (deleting one of
    several identical blank lines, say): then there is nothing to guess."""
    m = len(hunk.old)
    lo, hi = starts[0], starts[-1] + m
    if hi - lo > 4096:
        return False
    region = lines[lo:hi]

    def applied_at(start: int) -> list[str]:
        i = start - lo
        out = region[:i]
        for op, text in hunk.ops:
            if op == " ":
                out.append(region[i])
                i += 1
            elif op == "-":
                i += 1
            else:
                out.append(text)
        return out + region[i:]

    first = applied_at(starts[0])
    return all(applied_at(s) == first for s in starts[1:])


def _find_anchors(
    anchors: Sequence[str], index: LineIndex, cursor: int, *, stop_at_missing: bool
) -> tuple[int | None, tuple[str, ...]]:
    """Position of the innermost anchor found (each searched after the previous one),
    and the anchors not found (with `stop_at_missing`, only the first of them)."""
    pos: int | None = None
    lo = cursor
    missing: list[str] = []
    for anchor in anchors:
        found: int | None = None
        for pass_no in range(len(PASSES)):
            found = index.first_at_or_after(pass_no, LineIndex.key(pass_no, anchor), lo)
            if found is not None:
                break
        if found is None and pos is None:
            # Hunks out of order: accept an anchor before the cursor only if unique.
            for pass_no in range(len(PASSES)):
                found = index.unique(pass_no, LineIndex.key(pass_no, anchor))
                if found is not None:
                    break
        if found is None:
            missing.append(anchor)
            if stop_at_missing:
                break
            continue
        pos = found
        lo = found + 1
    return pos, tuple(missing)


def _floor(hunk: Hunk, index: LineIndex, anchor: int | None) -> int:
    """The first line the hunk may start at, as its anchors allow."""
    if anchor is None:
        return 0
    if hunk.stacked:
        return anchor
    # A lone anchor: its earliest copy (by the loosest pass, which finds every copy
    # the stricter ones do) counts too.
    copies = index.positions(PUNCT, LineIndex.key(PUNCT, hunk.anchors[0]))
    return min(copies[0], anchor) if copies else anchor


def place(
    hunk: Hunk,
    hunk_no: int,
    index: LineIndex,
    cursor: int,
    taken: Taken,
    real_end: int,
) -> Placement | Miss:
    n = len(index.lines)
    anchor, missing = _find_anchors(hunk.anchors, index, cursor, stop_at_missing=hunk.stacked)
    if hunk.stacked and missing:
        return Miss(hunk_no, "anchor", cursor, anchor, missing)
    m = len(hunk.old)
    if m == 0:
        if hunk.final_newline is not None or hunk.eof:
            pos = real_end
        elif anchor is not None:
            pos = anchor + 1
        elif hunk.old_start is not None:
            pos = min(hunk.old_start, real_end)
        else:
            pos = min(cursor, real_end)
        other = taken.overlapping(pos, pos)
        if other is not None:
            return Miss(hunk_no, "overlap", cursor, anchor, missing, (pos,), other_hunk=other)
        return Placement(pos, EXACT)

    search = _Search(hunk, index, taken, real_end)
    passes = range(len(PASSES))
    if hunk.eof:
        for p in passes:
            ends = [s for s in search.candidates(p) if s + m in (real_end, n)]
            if ends:
                return Placement(min(ends, key=lambda s: s + m != real_end), p)
    if anchor is not None:
        for p in passes:
            after = [s for s in search.candidates(p) if s >= anchor]
            if after:
                return Placement(min(after), p)
    floor = _floor(hunk, index, anchor)  # only now: it may need another pass over the file
    for scope in ("forward", "anywhere"):
        lowest = max(cursor, floor) if scope == "forward" else floor
        for p in passes:
            starts = [s for s in search.candidates(p) if s >= lowest]
            if not starts:
                continue
            chosen = _pick(starts, hunk.old_start)
            if chosen is None and p < STRIP and _same_result(hunk, starts, index.lines):
                chosen = starts[0]
            if chosen is None:
                return Miss(hunk_no, "ambiguous", cursor, anchor, missing, tuple(starts), p)
            return Placement(chosen, p)
    if floor:
        for p in passes:
            above = search.candidates(p)  # all below the floor, or they would have won
            if above:
                return Miss(hunk_no, "above_anchor", cursor, floor, missing, tuple(above), p)
    if search.overlapped:
        start = search.overlapped[0]
        other = taken.overlapping(start, start + m)
        return Miss(hunk_no, "overlap", cursor, anchor, missing, (start,), other_hunk=other)
    return Miss(hunk_no, "not_found", cursor, anchor, missing)


def locate(hunks: Sequence[Hunk], index: LineIndex, real_end: int) -> list[Placement] | Miss:
    """A placement for every hunk, in hunk order, or the first hunk that failed."""
    placements: list[Placement] = []
    taken = Taken()
    cursor = 0
    for hunk_no, hunk in enumerate(hunks):
        got = place(hunk, hunk_no, index, cursor, taken, real_end)
        if isinstance(got, Miss):
            return got
        placements.append(got)
        end = got.start + len(hunk.old)
        taken.add(got.start, end)
        cursor = end
    return placements
