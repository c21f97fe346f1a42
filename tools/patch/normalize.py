"""The matching passes, strictest first, each a way of normalising a line."""

from __future__ import annotations

from collections.abc import Callable

# Typographic characters a model (or a word processor) swaps for their ASCII forms.
_PUNCT = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
        "\u00a0": " ",
        "\u2002": " ",
        "\u2003": " ",
        "\u2007": " ",
        "\u2009": " ",
        "\u200a": " ",
        "\u202f": " ",
        "\u3000": " ",
        "\u2026": "...",
        "\u200b": "",
        "\ufeff": "",
    }
)


def _exact(line: str) -> str:
    return line


def _rstrip(line: str) -> str:
    return line.rstrip()


def _strip(line: str) -> str:
    return line.strip()


def _punct(line: str) -> str:
    # isascii() is a fast C check; translate only the rare lines that need it.
    if line.isascii():
        return line.strip()
    return line.translate(_PUNCT).strip()


PASSES: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("exact", _exact),
    ("ignoring trailing whitespace", _rstrip),
    ("ignoring leading and trailing whitespace", _strip),
    ("ignoring whitespace and typographic punctuation", _punct),
)
EXACT, RSTRIP, STRIP, PUNCT = range(4)


def normalise_all(pass_no: int, lines: list[str]) -> list[str]:
    if pass_no == EXACT:
        return lines
    if pass_no == RSTRIP:
        return [line.rstrip() for line in lines]
    if pass_no == STRIP:
        return [line.strip() for line in lines]
    return [line.strip() if line.isascii() else line.translate(_PUNCT).strip() for line in lines]
