"""A file's text as lines, keeping everything needed to write it back byte for byte.

Lines are split on "\\n" only (never on the other characters `str.splitlines`
treats as breaks). Like `text.split("\\n")`, a text ending with a newline has a
last, empty element: the "phantom" line. Keeping it, as `openai-agents`' V4A
applier does, is what lets a diff keep, add or drop the final newline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class FileText:
    lines: list[str]
    """Lines without their line break; the last one is "" when the text ends with one."""
    endings: list[str] | None
    """Per-line break ("\\n" or "\\r\\n", "" for the last line) when the file mixes them;
    `None` when every break is `newline`."""
    newline: str | None
    """The file's usual line break; `None` for a file without any."""
    bom: bool

    @property
    def has_final_newline(self) -> bool:
        # An empty file counts as "zero complete lines", so lines added to it end with one.
        return self.lines[-1] == ""

    @property
    def real_end(self) -> int:
        """Index just past the last real line (the phantom line excluded)."""
        return len(self.lines) - 1 if self.has_final_newline else len(self.lines)


def split_text(text: str) -> FileText:
    bom = text.startswith(BOM)
    if bom:
        text = text[1:]
    if "\r" not in text:
        return FileText(text.split("\n"), None, "\n" if "\n" in text else None, bom)
    n_lf = text.count("\n")
    n_crlf = text.count("\r\n")
    if n_crlf == n_lf:
        return FileText(text.split("\r\n"), None, "\r\n", bom)
    parts = text.split("\n")
    if n_crlf == 0:
        return FileText(parts, None, "\n", bom)
    # Mixed line breaks: remember each one so untouched lines keep theirs.
    lines: list[str] = []
    endings: list[str] = []
    for part in parts[:-1]:
        if part.endswith("\r"):
            lines.append(part[:-1])
            endings.append("\r\n")
        else:
            lines.append(part)
            endings.append("\n")
    lines.append(parts[-1])
    endings.append("")
    newline = "\r\n" if n_crlf * 2 > n_lf else "\n"
    return FileText(lines, endings, newline, bom)


def join_text(lines: Sequence[str], endings: Sequence[str] | None, newline: str, bom: bool) -> str:
    """Inverse of `split_text`; an empty entry in `endings` means `newline`."""
    if endings is None:
        body = newline.join(lines)
    else:
        last = len(lines) - 1
        body = "".join(
            [line if i == last else line + (endings[i] or newline) for i, line in enumerate(lines)]
        )
    return BOM + body if bom else body


def decode(data: bytes) -> str | None:
    """UTF-8 text, or `None` for content that is not text (NUL bytes, invalid UTF-8)."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
