"""Where lines occur in a file, per matching pass.

Only lines the diff mentions are looked up, so the index holds just those: one
C-level scan per pass (`map` over a set's `__contains__`, `itertools.compress`)
finds the lines worth recording, and a Python loop runs over those hits only.
Finding a hunk is then a few dict lookups and one slice comparison.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from itertools import compress

from .normalize import EXACT, PASSES, normalise_all


class LineIndex:
    def __init__(self, lines: list[str], wanted: Iterable[str] = ()) -> None:
        """`wanted`: the diff's lines (as written) that lookups will ask about."""
        self.lines = lines
        self._wanted = tuple(wanted)
        self._norm: dict[int, list[str]] = {}
        self._keys: dict[int, set[str]] = {}
        self._first: dict[int, dict[str, int]] = {}
        self._last: dict[int, dict[str, int]] = {}
        self._extra: dict[tuple[int, str], list[int]] = {}

    def norm(self, pass_no: int) -> list[str]:
        got = self._norm.get(pass_no)
        if got is None:
            got = self._norm[pass_no] = normalise_all(pass_no, self.lines)
        return got

    @staticmethod
    def key(pass_no: int, line: str) -> str:
        return PASSES[pass_no][1](line)

    def _bounds(self, pass_no: int) -> tuple[dict[str, int], dict[str, int]]:
        """First and last position of every wanted line the file has."""
        first = self._first.get(pass_no)
        if first is None:
            norm = self.norm(pass_no)
            if pass_no == EXACT:
                keys = set(self._wanted)
            else:
                keys = {self.key(pass_no, line) for line in self._wanted}
            # All C-level: positions of the lines worth indexing, then their keys;
            # zipping forwards keeps each key's last position, backwards its first.
            hits = list(compress(range(len(norm)), map(keys.__contains__, norm)))
            hit_keys = list(map(norm.__getitem__, hits))
            self._last[pass_no] = dict(zip(hit_keys, hits, strict=True))
            hits.reverse()
            hit_keys.reverse()
            first = self._first[pass_no] = dict(zip(hit_keys, hits, strict=True))
            self._keys[pass_no] = keys
        return first, self._last[pass_no]

    def positions(self, pass_no: int, key: str) -> list[int]:
        """Every index whose normalised line is `key`, ascending."""
        first, last = self._bounds(pass_no)
        f = first.get(key)
        if f is not None:
            hi = last[key]
            if f == hi:
                return [f]
            found = self._extra.get((pass_no, key))
            if found is None:
                norm = self.norm(pass_no)
                found = []
                i = f
                while i <= hi:
                    i = norm.index(key, i, hi + 1)
                    found.append(i)
                    i += 1
                self._extra[(pass_no, key)] = found
            return found
        if key in self._keys[pass_no]:
            return []
        # A line the diff does not contain (error reports only): scan for it.
        found = self._extra.get((pass_no, key))
        if found is None:
            found = [i for i, line in enumerate(self.norm(pass_no)) if line == key]
            self._extra[(pass_no, key)] = found
        return found

    def first_at_or_after(self, pass_no: int, key: str, lo: int) -> int | None:
        first, last = self._bounds(pass_no)
        f = first.get(key)
        if f is not None:
            if f >= lo:
                return f
            if last[key] < lo:
                return None
        found = self.positions(pass_no, key)
        k = bisect_left(found, lo)
        return found[k] if k < len(found) else None

    def unique(self, pass_no: int, key: str) -> int | None:
        found = self.positions(pass_no, key)
        return found[0] if len(found) == 1 else None

    def find_block(self, pass_no: int, block: list[str]) -> list[int]:
        """Every start index where `block` (already normalised) occurs."""
        first, last = self._bounds(pass_no)
        norm = self.norm(pass_no)
        m, n = len(block), len(norm)
        best_off = 0
        best_span = n + 1
        for off, key in enumerate(block):
            f = first.get(key)
            if f is not None:
                hi = last[key]
            else:
                found = [] if key in self._keys[pass_no] else self.positions(pass_no, key)
                if not found:
                    return []  # a line the file does not have: no match in this pass
                f, hi = found[0], found[-1]
            if f == hi:
                # A line that occurs once pins the only possible start.
                s = f - off
                if s >= 0 and s + m <= n and norm[s : s + m] == block:
                    return [s]
                return []
            if hi - f < best_span:
                best_off, best_span = off, hi - f
        starts: list[int] = []
        for pos in self.positions(pass_no, block[best_off]):
            s = pos - best_off
            if s >= 0 and s + m <= n and norm[s : s + m] == block:
                starts.append(s)
        return starts
