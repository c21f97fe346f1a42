"""Give added lines the file's indentation after a whitespace-blind match.

When a hunk only matched with leading whitespace ignored, the model's idea of
the indentation differs from the file's (spaces for tabs, 4 for 2, a missing
base level). Its context lines tell how: each pairs the model's indentation
with the file's. Added lines are translated with that map, so they line up
with their neighbours. Indentation is only rewritten when the pairs show a
difference: what agrees with the file is left exactly as the model wrote it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def leading_ws(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


@dataclass(frozen=True, slots=True)
class Style:
    tabs: bool
    width: int
    """Spaces per level (for tab style, the width of the spaces that align after tabs)."""

    def level(self, ws: str) -> float:
        tabs = ws.count("\t")
        return tabs + (len(ws) - tabs) / self.width

    def render(self, level: float) -> str:
        level = max(level, 0.0)
        if self.tabs:
            whole = int(level + 1e-9)
            return "\t" * whole + " " * round((level - whole) * self.width)
        return " " * round(level * self.width)


def style_of(lines: Iterable[str], default_width: int = 4) -> Style:
    """Tabs or spaces, and the usual step between indentation levels."""
    tab_lines = space_lines = 0
    steps: Counter[int] = Counter()
    previous = 0
    for line in lines:
        if not line.strip():
            continue
        ws = leading_ws(line)
        if ws.startswith("\t"):
            tab_lines += 1
            continue
        if ws:
            space_lines += 1
        if len(ws) > previous:
            steps[len(ws) - previous] += 1
        previous = len(ws)
    width = steps.most_common(1)[0][0] if steps else default_width
    return Style(tabs=tab_lines > space_lines, width=width)


def reindent(
    added: Sequence[str], pairs: Sequence[tuple[str, str]], file_lines: Sequence[str]
) -> list[str]:
    """`added` with indentation translated from the model's style to the file's.

    `pairs` holds (line as the diff has it, line as the file has it) for the
    hunk's context and removed lines.
    """
    pairs = [(d, f) for d, f in pairs if d.strip() and f.strip()]
    if all(leading_ws(d) == leading_ws(f) for d, f in pairs):
        return list(added)
    direct: dict[str, Counter[str]] = {}
    for d, f in pairs:
        direct.setdefault(leading_ws(d), Counter())[leading_ws(f)] += 1
    file_style = style_of(file_lines[:5000])  # enough to learn the style; bounded cost
    diff_style = style_of(
        [d for d, _ in pairs] + list(added),
        default_width=4 if file_style.tabs else file_style.width,
    )
    offsets = Counter(
        round(file_style.level(leading_ws(f)) - diff_style.level(leading_ws(d)), 3)
        for d, f in pairs
    )
    offset = offsets.most_common(1)[0][0]
    out: list[str] = []
    for line in added:
        if not line.strip():
            out.append(line)
            continue
        ws = leading_ws(line)
        mapped = direct.get(ws)
        if mapped is not None:
            new_ws = mapped.most_common(1)[0][0]
        else:
            new_ws = file_style.render(diff_style.level(ws) + offset)
        out.append(new_ws + line[len(ws) :])
    return out
