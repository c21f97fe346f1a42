"""`ToolIndex`: deferred tool definitions, ranked against a search query with BM25.

    index = ToolIndex([github_namespace, slack_namespace, weather_function, sql_custom_tool])
    found = index.search("create a github issue", limit=5, max_chars=30_000)
    found.tools     # definitions for `tool_search_output.tools`
    found.hits      # (namespace, name) of each tool returned, best first

What is indexed: `function` and `custom` tools, alone or inside a `namespace`.
Each tool is one document made of its name, its description, its parameter
names, and the descriptions and string `enum` values of its parameters (nested
ones too), plus its namespace's name and description; each field counts
`FIELD_WEIGHTS` times. Words are split and stemmed by `tokens.terms`. The
ranking is BM25 (Lucene's variant) from `bm25s`: the index is a sparse matrix
of precomputed term scores, so a query costs a few vector sums over the tools
that share a term with it, whatever the number of tools.

What comes back (`search`): the best `limit` tools that the query matches on
their own fields (name, description, parameters) or whose namespace it names
— a namespace's words lift its tools' scores but do not make every one of
them a match; only when no tool matches that way do the others count — with
each namespace once, at the place of its best tool, narrowed to its tools
that matched (best first) — or whole, when the query names the namespace
(every word of its name is in the query) and all of its tools fit in what is
left of `limit`. Definitions are returned as they were given. The JSON of the
answer stays within `max_chars`: a tool that does not fit is left out (and
counted in `left_out`) and smaller ones after it may still come; only the best
match is returned whatever its size, since otherwise it could never be loaded.

Adding tools (`add`) costs about 0.15 ms a tool (their terms); the BM25 matrix
is rebuilt on the next search after an add (about 40 ms for 1,000 tools). `bm25s` (and numpy) are imported
then, not when this module is. Not thread-safe: one index belongs to one run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ..items import Item
from .tokens import terms

if TYPE_CHECKING:
    import bm25s

ToolKey = tuple[str | None, str]
"""(namespace or None for a top-level tool, tool name): how a search result names a tool."""

INDEXED_TYPES: Final = frozenset({"function", "custom"})
"""Tool types that can be deferred and found, alone or inside a namespace."""

FIELD_WEIGHTS: Final[Mapping[str, int]] = {
    "name": 1,
    "description": 1,
    "parameter_names": 1,
    "parameter_text": 1,
    "namespace_name": 1,
    "namespace_description": 1,
}
"""How many times each field's terms count in a tool's document."""

# Schema walks stop here: real MCP schemas are a few levels deep, a hostile one
# could be thousands, and the text of huge schemas says little more past a point.
_MAX_SCHEMA_DEPTH: Final = 8
_MAX_SCHEMA_TEXT: Final = 8_000
_SCHEMA_CHILDREN: Final = ("items", "anyOf", "oneOf", "allOf", "additionalProperties")


@dataclass(frozen=True, slots=True)
class Hit:
    """One tool a search returned."""

    namespace: str | None
    name: str
    score: float
    """BM25 score; 0.0 for a tool that came only because its whole namespace did."""

    @property
    def key(self) -> ToolKey:
        return (self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class SearchResult:
    tools: list[Item]
    """The definitions to return: functions, custom tools and (narrowed) namespaces."""
    hits: list[Hit]
    """Every tool in `tools`, in the order they appear there."""
    left_out: int = 0
    """Matching tools dropped because the answer would have exceeded `max_chars`."""


@dataclass(slots=True)
class _Entry:
    namespace: str | None
    definition: Item
    size: int
    """Length of the definition's JSON (`json.dumps`, default separators)."""
    terms: list[str]
    """The document: every field's terms, weighted."""
    own: frozenset[str]
    """Terms of the tool's own fields (not its namespace's)."""


@dataclass(slots=True)
class _Namespace:
    head: Item
    """The namespace definition without its tools."""
    overhead: int
    """JSON length of the namespace with an empty `tools` list."""
    name_terms: frozenset[str]
    members: list[int] = field(default_factory=list)
    """Entry numbers of its tools, in definition order."""


class ToolIndex:
    def __init__(self, tools: Iterable[Item] = ()) -> None:
        self._entries: list[_Entry] = []
        self._by_key: dict[ToolKey, int] = {}
        self._namespaces: dict[str, _Namespace] = {}
        self._bm25: bm25s.BM25 | None = None
        self.add(tools)

    def __len__(self) -> int:
        """The number of tools (namespaces count by their tools)."""
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    # -- building ------------------------------------------------------------------

    def add(self, tools: Iterable[Item]) -> None:
        """Index `tools`: function and custom tool definitions, and namespaces of them.

        A namespace already indexed gains the tools of the one added (their
        descriptions must agree). Raises ValueError for another tool type, a
        definition without a name, or a tool already indexed under the same
        (namespace, name); nothing of the call is indexed then.
        """
        pending: list[tuple[str | None, Item]] = []
        heads: dict[str, Item] = {}
        for d in tools:
            t = d.get("type") if isinstance(d, dict) else None
            if t == "namespace":
                space = _name_of(d, "namespace")
                head = {k: v for k, v in d.items() if k != "tools"}
                known = self._namespaces.get(space)
                old = known.head if known is not None else heads.get(space)
                if old is not None and old.get("description") != head.get("description"):
                    raise ValueError(f"namespace {space!r} is given twice with other descriptions")
                heads.setdefault(space, head)
                inner = d.get("tools")
                if not isinstance(inner, list):
                    raise ValueError(f"namespace {space!r} has no list of tools")
                for tool in inner:
                    _check_indexable(tool, f"in namespace {space!r}")
                    pending.append((space, tool))
            else:
                _check_indexable(d, "")
                pending.append((None, d))
        keys = [(ns, _name_of(tool, "tool")) for ns, tool in pending]
        seen: set[ToolKey] = set()
        for key in keys:
            if key in self._by_key or key in seen:
                where = f" in namespace {key[0]!r}" if key[0] is not None else ""
                raise ValueError(f"tool {key[1]!r}{where} is indexed twice")
            seen.add(key)
        sizes = [
            _json_size(tool, f"tool {name!r}")
            for (_, tool), (_, name) in zip(pending, keys, strict=True)
        ]
        overheads = {
            ns: _json_size({**h, "tools": []}, f"namespace {ns!r}") for ns, h in heads.items()
        }
        for name, head in heads.items():
            if name not in self._namespaces:
                self._namespaces[name] = _Namespace(
                    head=head, overhead=overheads[name], name_terms=frozenset(terms(name))
                )
        for (ns, tool), key, size in zip(pending, keys, sizes, strict=True):
            number = len(self._entries)
            nsd = self._namespaces[ns].head if ns is not None else None
            document, own = _document(tool, nsd)
            self._entries.append(_Entry(ns, tool, size, document, own))
            self._by_key[key] = number
            if ns is not None:
                self._namespaces[ns].members.append(number)
        if pending:
            self._bm25 = None

    def prepare(self) -> None:
        """Build the BM25 matrix now (importing `bm25s`), not on the next search: for a
        caller that would rather pay it at start, e.g. in a worker thread."""
        if self._entries:
            self._model()

    def _model(self) -> bm25s.BM25:
        if self._bm25 is None:
            import bm25s  # with numpy: ~200 ms to import, paid by runs that defer tools

            model = bm25s.BM25()
            # An empty document list would make bm25s fail; `_rank` never gets here then.
            model.index([e.terms for e in self._entries], show_progress=False)
            self._bm25 = model
        return self._bm25

    # -- querying ------------------------------------------------------------------

    def rank(self, query: str, k: int) -> list[Hit]:
        """The `k` best-scoring tools for `query`, best first.

        A tool counts when the query matches its own name, description or
        parameters, or names its namespace: words of a namespace's name and
        description only add to the score of its tools, or every tool of a
        namespace described as "issues and pull requests" would match "issue".
        When no tool counts that way, any tool with a score does. Ties keep the
        order in which the tools were added.
        """
        if k <= 0 or not self._entries:
            return []
        model = self._model()
        query_terms = terms(query)
        ids = model.get_tokens_ids(query_terms)
        if not ids:
            return []
        import numpy as np

        scores = model.get_scores(ids)
        positive = np.flatnonzero(scores > 0)
        order = positive[np.lexsort((positive, -scores[positive]))].tolist()
        asked = set(query_terms)
        named = self._named(asked)
        chosen = [
            i
            for i in order
            if not asked.isdisjoint(self._entries[i].own) or self._entries[i].namespace in named
        ][:k] or order[:k]
        return [
            Hit(self._entries[i].namespace, _tool_name(self._entries[i]), float(scores[i]))
            for i in chosen
        ]

    def _named(self, query_terms: set[str]) -> set[str]:
        """Namespaces every word of whose name is in the query."""
        return {
            n
            for n, ns in self._namespaces.items()
            if ns.name_terms and ns.name_terms <= query_terms
        }

    def search(self, query: str, *, limit: int, max_chars: int) -> SearchResult:
        """The answer to a tool search: at most `limit` tools in at most `max_chars`."""
        # Candidates beyond `limit`, for the places of tools too large for `max_chars`.
        ranked = self.rank(query, max(limit * 4, limit + 16)) if limit > 0 else []
        score = {self._by_key[h.key]: h.score for h in ranked}
        named = self._named(set(terms(query)))
        groups: dict[str | None, list[tuple[int, float]]] = {}
        taken: set[int] = set()
        used = 2  # the list's brackets
        left_out = 0
        for hit in ranked:
            if len(taken) >= limit:
                break
            first = self._by_key[hit.key]
            if first in taken:
                continue
            batch = [first]
            ns = hit.namespace
            if ns is not None and ns in named and ns not in groups:
                rest = [m for m in self._namespaces[ns].members if m != first]
                if len(taken) + 1 + len(rest) <= limit:
                    batch += rest
            for number in batch:
                entry = self._entries[number]
                cost = entry.size + 2  # ", " before it
                if entry.namespace is not None and entry.namespace not in groups:
                    cost += self._namespaces[entry.namespace].overhead + 2
                if used + cost > max_chars and taken:
                    left_out += 1
                    continue
                used += cost
                groups.setdefault(entry.namespace, []).append((number, score.get(number, 0.0)))
                taken.add(number)
        return self._answer(groups, left_out)

    def _answer(
        self, groups: dict[str | None, list[tuple[int, float]]], left_out: int
    ) -> SearchResult:
        tools: list[Item] = []
        hits: list[Hit] = []
        for ns, members in groups.items():
            entries = [(self._entries[n], s) for n, s in members]
            if ns is None:
                tools += (e.definition for e, _ in entries)
            else:
                head = self._namespaces[ns].head
                tools.append({**head, "tools": [e.definition for e, _ in entries]})
            hits += (Hit(e.namespace, _tool_name(e), s) for e, s in entries)
        return SearchResult(tools, hits, left_out)

    def definitions(self, keys: Iterable[ToolKey]) -> list[Item]:
        """The definitions of the tools named by `keys`, grouped as a search returns them
        (each namespace once, with just those tools), in the order first named.

        For sending tools found earlier in the run again (after compaction
        dropped the `tool_search_output` that brought them, or on resume).
        Keys not indexed are skipped.
        """
        groups: dict[str | None, list[tuple[int, float]]] = {}
        for key in dict.fromkeys(keys):
            number = self._by_key.get(key)
            if number is not None:
                groups.setdefault(key[0], []).append((number, 0.0))
        return self._answer(groups, 0).tools

    def namespaces(self) -> Iterator[tuple[str, str, int]]:
        """(name, description, number of tools) of each namespace, in the order added."""
        for name, ns in self._namespaces.items():
            yield name, str(ns.head.get("description") or ""), len(ns.members)

    def top_level(self) -> list[str]:
        """Names of the tools outside any namespace, in the order added."""
        return [_tool_name(e) for e in self._entries if e.namespace is None]


def _name_of(d: Item, what: str) -> str:
    name = d.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"a {what} definition has no name: {json.dumps(d)[:200]}")
    return name


def _tool_name(e: _Entry) -> str:
    return str(e.definition["name"])


def _check_indexable(d: Any, where: str) -> None:
    if not isinstance(d, dict) or d.get("type") not in INDEXED_TYPES:
        t = d.get("type") if isinstance(d, dict) else type(d).__name__
        place = f" {where}" if where else ""
        raise ValueError(
            f"a {t!r} tool{place} cannot be searched: tool search finds function and custom "
            "tools, alone or in a namespace"
        )


def _document(tool: Item, namespace: Item | None) -> tuple[list[str], frozenset[str]]:
    """The terms of `tool`'s document, each field repeated `FIELD_WEIGHTS` times, and the
    terms of its own fields."""
    names: list[str] = []
    texts: list[str] = []
    _schema_text(tool.get("parameters"), names, texts, 0, [0])
    fields = {
        "name": str(tool.get("name", "")),
        "description": str(tool.get("description") or ""),
        "parameter_names": " ".join(names),
        "parameter_text": " ".join(texts),
        "namespace_name": str(namespace.get("name", "")) if namespace else "",
        "namespace_description": str(namespace.get("description") or "") if namespace else "",
    }
    document: list[str] = []
    own: set[str] = set()
    for f, text in fields.items():
        field_terms = terms(text)
        document += field_terms * FIELD_WEIGHTS[f]
        if not f.startswith("namespace_"):
            own.update(field_terms)
    return document, frozenset(own)


def _json_size(value: Item, what: str) -> int:
    try:
        return len(json.dumps(value))
    except RecursionError:
        raise ValueError(
            f"{what} cannot be searched: its definition is nested too deeply"
        ) from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} cannot be searched: its definition is not JSON ({e})") from None


def _schema_text(
    node: Any, names: list[str], texts: list[str], depth: int, used: list[int]
) -> None:
    """Collect property names and the descriptions and string enums of a JSON schema."""
    if not isinstance(node, dict) or depth > _MAX_SCHEMA_DEPTH or used[0] > _MAX_SCHEMA_TEXT:
        return
    props = node.get("properties")
    if isinstance(props, dict):
        for pname, pschema in props.items():
            names.append(str(pname))
            used[0] += len(str(pname))
            if isinstance(pschema, dict):
                desc = pschema.get("description")
                if isinstance(desc, str):
                    texts.append(desc)
                    used[0] += len(desc)
                enum = pschema.get("enum")
                if isinstance(enum, list):
                    values = " ".join(v for v in enum if isinstance(v, str))
                    texts.append(values)
                    used[0] += len(values)
            _schema_text(pschema, names, texts, depth + 1, used)
    for key in _SCHEMA_CHILDREN:
        child = node.get(key)
        for c in child if isinstance(child, list) else [child]:
            _schema_text(c, names, texts, depth + 1, used)
