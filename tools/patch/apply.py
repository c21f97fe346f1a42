"""Apply a parsed diff to a text: locate every hunk first, then splice once.

All-or-nothing by construction: the new text is only built after every hunk
has found its place, and a failure raises `PatchError` before anything is
returned.
"""

from __future__ import annotations

from dataclasses import dataclass

from .indent import reindent
from .index import LineIndex
from .match import Miss, Placement, locate
from .model import Dialect, Hunk, PatchError
from .normalize import PASSES, STRIP
from .parse import created_text, parse_diff
from .report import describe
from .text import FileText, join_text, split_text


@dataclass(frozen=True, slots=True)
class PatchResult:
    text: str
    """The patched text."""
    dialect: Dialect
    hunks: int
    added: int
    removed: int
    tolerant: tuple[str, ...] = ()
    """One note per hunk that only matched in a forgiving pass, e.g.
    `hunk 2 matched ignoring trailing whitespace`."""


def apply_diff(text: str, diff: str, *, create: bool = False) -> PatchResult:
    """Apply a V4A or unified `diff` to `text` (`create=True`: make a new file's text).

    Raises `PatchError`, whose message is written for the model, when the diff
    cannot be parsed or any hunk does not match.
    """
    if create:
        parsed = parse_diff(diff)
        content, added = created_text(parsed)
        return PatchResult(content, parsed.dialect, len(parsed.hunks), added, 0)
    parsed = parse_diff(diff)
    if not parsed.hunks:
        raise PatchError("the diff has no hunks: nothing to change")
    file = split_text(text)
    index = LineIndex(file.lines, _mentioned(parsed.hunks))
    got = locate(parsed.hunks, index, file.real_end)
    if isinstance(got, Miss):
        raise PatchError(describe(got, parsed.hunks, index))
    lines, endings = _splice(file, parsed.hunks, got)
    _set_final_newline(file, parsed.hunks, lines, endings)
    newline = file.newline or ("\r\n" if parsed.crlf else "\n")
    tolerant = tuple(
        f"hunk {i + 1} matched {PASSES[p.pass_no][0]}" for i, p in enumerate(got) if p.pass_no
    )
    return PatchResult(
        join_text(lines, endings, newline, file.bom),
        parsed.dialect,
        len(parsed.hunks),
        sum(h.added for h in parsed.hunks),
        sum(h.removed for h in parsed.hunks),
        tolerant,
    )


def _mentioned(hunks: tuple[Hunk, ...]) -> list[str]:
    """Every line the hunks search the file for."""
    out: list[str] = []
    for hunk in hunks:
        out += hunk.old
        out += hunk.anchors
    return out


def _splice(
    file: FileText, hunks: tuple[Hunk, ...], placements: list[Placement]
) -> tuple[list[str], list[str] | None]:
    src = file.lines
    src_end = file.endings
    out: list[str] = []
    # Endings are only tracked for files that mix them; "" means the usual one.
    out_end: list[str] | None = [] if src_end is not None else None
    pos = 0
    order = sorted(range(len(hunks)), key=lambda k: (placements[k].start, k))
    for k in order:
        hunk, placement = hunks[k], placements[k]
        out.extend(src[pos : placement.start])
        if out_end is not None and src_end is not None:
            out_end.extend(src_end[pos : placement.start])
        i = placement.start
        added = [text for op, text in hunk.ops if op == "+"]
        if placement.pass_no >= STRIP and added:
            # Leading whitespace was ignored to match: translate the added lines'
            # indentation into the file's, using the context lines as the key.
            pairs = list(zip(hunk.old, src[i : i + len(hunk.old)], strict=True))
            added = reindent(added, pairs, src)
        next_added = iter(added)
        for op, _ in hunk.ops:
            if op == " ":
                out.append(src[i])  # unchanged lines keep the file's own bytes
                if out_end is not None and src_end is not None:
                    out_end.append(src_end[i])
                i += 1
            elif op == "-":
                i += 1
            else:
                out.append(next(next_added))
                if out_end is not None:
                    out_end.append("")
        pos = i
    out.extend(src[pos:])
    if out_end is not None and src_end is not None:
        out_end.extend(src_end[pos:])
    return out, out_end


def _set_final_newline(
    file: FileText, hunks: tuple[Hunk, ...], lines: list[str], endings: list[str] | None
) -> None:
    """Honour `\\ No newline at end of file`: add or drop the phantom last line."""
    wanted = next((h.final_newline for h in reversed(hunks) if h.final_newline is not None), None)
    if wanted is None:
        return
    if wanted and not file.has_final_newline:
        lines.append("")
        if endings is not None:
            endings.append("")
    elif not wanted and file.has_final_newline and lines and lines[-1] == "":
        lines.pop()
        if endings is not None:
            endings.pop()
