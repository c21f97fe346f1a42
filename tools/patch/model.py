"""What a parsed diff is made of, whatever dialect it came in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Op = Literal[" ", "-", "+"]
"""Context (kept), removed, added."""

Dialect = Literal["v4a", "unified"]


class PatchError(ValueError):
    """A diff that cannot be parsed or applied; the message is written for the model."""


@dataclass(slots=True)
class Hunk:
    """One contiguous edit: the old block (context and removed lines) and how it changes.

    Not frozen only because frozen dataclasses are several times slower to build,
    and a diff of many hunks builds many; treat it as immutable.
    """

    ops: tuple[tuple[Op, str], ...]
    anchors: tuple[str, ...] = ()
    """V4A `@@ line` headers, outermost first: the hunk lies after these lines."""
    stacked: bool = False
    """Two or more `@@` lines head the hunk (bare ones count, as in the reference):
    then every anchor must be found, in order (see `match`)."""
    old_start: int | None = None
    """Unified diffs: 0-based index of the first old line according to the `@@` header."""
    eof: bool = False
    """V4A `*** End of File`: prefer a match that ends at the end of the file."""
    final_newline: bool | None = None
    """From `\\ No newline at end of file`: whether the file ends with a newline after
    this hunk. When set, the hunk must end at the end of the file."""
    diff_line: int = 0
    """1-based line of the diff where the hunk starts, for error messages."""
    old: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.old = tuple([t for op, t in self.ops if op != "+"])

    @property
    def added(self) -> int:
        return sum(1 for op, _ in self.ops if op == "+")

    @property
    def removed(self) -> int:
        return sum(1 for op, _ in self.ops if op == "-")


def final_newline(ops_before_markers: list[Op]) -> bool | None:
    """What `\\ No newline at end of file` markers say about the final newline.

    `ops_before_markers` holds the op of the line each marker follows: after a
    context line both sides lack the newline, after `-` the old side, after `+`
    the new side. `None` when there were no markers.
    """
    if not ops_before_markers:
        return None
    return not any(op in (" ", "+") for op in ops_before_markers)


@dataclass(frozen=True, slots=True)
class ParsedDiff:
    dialect: Dialect
    hunks: tuple[Hunk, ...]
    crlf: bool
    """The diff text itself used CRLF line breaks (a hint for files with no line break yet)."""
