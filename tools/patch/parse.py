"""Detect the dialect of a diff and parse it; the model never has to say which it used."""

from __future__ import annotations

from .model import ParsedDiff, PatchError
from .unified import is_unified, parse_unified
from .v4a import parse_v4a


def diff_lines(diff: str) -> list[str]:
    """The diff's lines without line breaks, Markdown code fences removed."""
    lines = diff.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if "\r" in diff:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    # Models sometimes wrap the diff in ```diff ... ```; a fence is never a diff line.
    if lines and lines[0].startswith("```"):
        lines = lines[1:]
        if lines and lines[-1].strip() == "```":
            lines.pop()
    return lines


def parse_diff(diff: str) -> ParsedDiff:
    """Hunks of a V4A or unified diff. Raises `PatchError` with a message for the model."""
    if not isinstance(diff, str):
        raise PatchError(f"the diff must be a string, not {type(diff).__name__}")
    lines = diff_lines(diff)
    crlf = "\r\n" in diff
    if is_unified(diff, lines):
        return ParsedDiff("unified", tuple(parse_unified(lines)), crlf)
    return ParsedDiff("v4a", tuple(parse_v4a(lines)), crlf)


def created_text(parsed: ParsedDiff) -> tuple[str, int]:
    """Content of a new file from a `create_file` diff, and its number of lines.

    Every line must be an addition. The file ends with a newline unless a
    `\\ No newline at end of file` marker says otherwise. In a V4A diff a last
    `+` with nothing after it is that final newline, as in the reference
    (`+a` `+b` `+` makes "a\\nb\\n"); in a unified diff it is an empty line.
    """
    added: list[str] = []
    final: bool | None = None
    for hunk in parsed.hunks:
        ops = list(hunk.ops)
        # Trailing blank lines are padding after the diff, not lines of the file.
        while ops and ops[-1] == (" ", ""):
            ops.pop()
        for number, (op, text) in enumerate(ops):
            if op == "+" or (op == " " and text == ""):
                # A blank line between '+' lines is an empty line that lost its '+'.
                added.append(text)
            else:
                raise PatchError(
                    "a create_file diff may only add lines: every line starts with '+' "
                    f"(hunk at diff line {hunk.diff_line}, line {number + 1} "
                    f"is {(op + text)!r})"
                )
        if hunk.final_newline is not None:
            final = hunk.final_newline
    if parsed.dialect == "v4a" and final is None and added and added[-1] == "":
        added.pop()
    if not added:
        return "", 0
    newline = "\r\n" if parsed.crlf else "\n"
    text = newline.join(added)
    if final is not False:
        text += newline
    return text, len(added)
