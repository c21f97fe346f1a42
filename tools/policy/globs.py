"""Globs of the policy, and an index that finds the few that may match a string.

Two dialects:

- **path globs** (apply_patch rules and shell writes) match a whole
  workspace-relative path: `*` and `?` match within one path segment
  (`/` excluded, a leading dot included), `[abc]`/`[!abc]` one character,
  `**` as a whole segment any number of segments (`**/*.lock` matches
  `Cargo.lock` and `a/b/c.lock`; `.git/**` matches `.git` and everything
  under it), `\\` escapes the next character. A glob is anchored: `.git/**` does not match
  `sub/.git/config` (write `**/.git/**` for that).
- **name globs** (tool names, MCP servers, computer actions, domains) are
  `fnmatch` patterns matched case-sensitively: `*` matches anything.

`AffixIndex` keys each glob by the longer of its literal prefix and literal
suffix (`.git/**` by the prefix `.git/`, `**/*.lock` by the suffix `.lock`);
a lookup probes only the prefix and suffix lengths that occur, so it costs a
few dict lookups whatever the number of globs. Globs with neither (`*`,
`**`) are always candidates. Candidates are then matched in the caller's
order.
"""

from __future__ import annotations

import fnmatch
import heapq
import re
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_SPECIAL = "*?[]\\"


def literal_ends(pattern: str) -> tuple[str, str]:
    """The literal text before the first glob character and after the last one."""
    if pattern.endswith("/**"):  # `dir/**` also matches `dir`
        pattern = pattern[:-3] + "*"
    first = min((i for i, ch in enumerate(pattern) if ch in _SPECIAL), default=len(pattern))
    last = max((i for i, ch in enumerate(pattern) if ch in _SPECIAL), default=-1)
    return pattern[:first], pattern[last + 1 :] if first < len(pattern) else ""


def path_regex(pattern: str) -> re.Pattern[str]:
    """The regex of a path glob (see the module docstring)."""
    segments = pattern.split("/")
    tail = ""
    if len(segments) > 1 and segments[-1] == "**":
        segments.pop()
        tail = "(?:/.*)?"  # `dir/**` is dir and everything under it
    out: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            out.append(".*" if last else "(?:.+/)?")
            continue
        out.append(_segment(seg))
        if not last:
            out.append("/")
    return re.compile("".join(out) + tail, re.DOTALL)


def _segment(seg: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(seg):
        ch = seg[i]
        if ch == "\\" and i + 1 < len(seg):
            out.append(re.escape(seg[i + 1]))
            i += 2
            continue
        if ch == "*":
            while i + 1 < len(seg) and seg[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = _class_end(seg, i)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = seg[i + 1 : end]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                body = "".join(c if c == "-" else re.escape(c) for c in body)
                out.append(f"[^/{body}]" if negate else f"(?!/)[{body}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _class_end(seg: str, start: int) -> int:
    """Index of the `]` closing the class opened at `start`; -1 when unclosed."""
    j = start + 1
    if j < len(seg) and seg[j] in "!^":
        j += 1
    if j < len(seg) and seg[j] == "]":  # a leading ] is a member
        j += 1
    end = seg.find("]", j)
    return end


def name_regex(pattern: str) -> re.Pattern[str]:
    """The regex of a name glob (fnmatch, case-sensitive)."""
    return re.compile(fnmatch.translate(pattern), re.DOTALL)


class AffixIndex(Generic[T]):
    """Items keyed by a literal prefix or suffix of their glob.

    `candidates(text)` yields every item whose glob may match `text` (a
    superset: the caller still matches each), in insertion order, lazily.
    """

    def __init__(self) -> None:
        self._prefix: dict[str, list[tuple[int, T]]] = {}
        self._suffix: dict[str, list[tuple[int, T]]] = {}
        self._prefix_lengths: list[int] = []
        self._suffix_lengths: list[int] = []
        self._always: list[tuple[int, T]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, pattern: str, item: T) -> None:
        entry = (self._count, item)
        self._count += 1
        prefix, suffix = literal_ends(pattern)
        if not prefix and not suffix:
            self._always.append(entry)
        elif len(prefix) >= len(suffix):
            self._prefix.setdefault(prefix, []).append(entry)
            if len(prefix) not in self._prefix_lengths:
                self._prefix_lengths.append(len(prefix))
        else:
            self._suffix.setdefault(suffix, []).append(entry)
            if len(suffix) not in self._suffix_lengths:
                self._suffix_lengths.append(len(suffix))

    def candidates(self, text: str) -> Iterator[T]:
        lists: list[list[tuple[int, T]]] = [self._always] if self._always else []
        n = len(text)
        for k in self._prefix_lengths:
            if k <= n and (found := self._prefix.get(text[:k])) is not None:
                lists.append(found)
        for k in self._suffix_lengths:
            if k <= n and (found := self._suffix.get(text[n - k :])) is not None:
                lists.append(found)
        if len(lists) == 1:
            return (item for _, item in lists[0])
        # Each list is in insertion order; merged lazily, a caller's first match stops it.
        return (item for _, item in heapq.merge(*lists, key=_first))


def _first(entry: tuple[int, object]) -> int:
    return entry[0]
