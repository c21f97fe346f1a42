"""Words and index terms of tool definitions and search queries.

    words("getFileInfo")           -> ["get", "file", "info", "getfileinfo"]
    words("github__create_issue")  -> ["github", "create", "issue"]
    terms("Creating GitHub issues") -> ["creat", "github", "issu"]

`words` splits identifiers the way tools are named — snake_case, kebab-case,
camelCase, PascalCase with acronyms (`HTTPServer` -> http, server), digits,
`SERVER__tool` — and prose on anything that is not a letter or digit, and
lowercases. A run split on case changes or digits also counts whole, so that
the "GitHub" of a description meets the "github" of a query (and "git" too). `terms` drops English stop words (the Lucene list that `bm25s`
ships) and reduces each word to its Snowball stem (PyStemmer), so that a query
and a tool meet on "issues"/"issue" and "staged"/"stage". Both are pure
functions of their input; a text of n characters costs O(n).

Not covered: synonyms ("folder" is not "directory"), spelling mistakes, and
words glued without a case change (`sequentialthinking` stays one word).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

import Stemmer
from bm25s.stopwords import STOPWORDS_EN

# Runs of letters and digits, any script; `_` separates (snake_case).
_RUN: Final = re.compile(r"[^\W_]+")
# Inside an ASCII run: acronyms before a capitalised word, words, acronyms, numbers.
_PART: Final = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

STOP_WORDS: Final = frozenset(STOPWORDS_EN)
_stemmer: Final = Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """The lowercase words of `text`, identifiers split into their parts."""
    out: list[str] = []
    for run in _RUN.findall(text):
        parts = _PART.findall(run) if run.isascii() else [run]
        out += (p.lower() for p in parts)
        if len(parts) > 1:
            out.append(run.lower())
    return out


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return str(_stemmer.stemWord(word))


def terms(text: str) -> list[str]:
    """The index terms of `text`: its words without stop words, stemmed, in order."""
    return [_stem(w) for w in words(text) if w not in STOP_WORDS]
