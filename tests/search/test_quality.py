"""Search quality on real tool definitions: the intended tool in the top 5 for >= 90% of queries.

The corpus (tests/data/tool_corpus/) is what 16 published MCP servers list
through tools/list, plus tools written for it; the 50 queries were committed
before the ranker existed. bench/tool_search.py reports recall@1 and @5.
"""

from __future__ import annotations

import json

from openai.types.responses import ResponseToolSearchOutputItemParam
from tool_corpus import CORPUS, Query, corpus_tools, found_within, queries, servers, tool_ids

from itemloop.tools.search.call import answer_call
from itemloop.tools.search.index import ToolIndex


def held_out() -> list[Query]:
    data = json.loads((CORPUS / "queries_holdout.json").read_text())
    return [Query(q["query"], tuple(q["expect"])) for q in data["queries"]]


def test_the_corpus_is_real_tools_of_published_servers_plus_our_own() -> None:
    listed = servers()
    assert sum(len(s["tools"]) for s in listed) >= 150
    for s in listed:
        assert s["registry"] in ("npm", "pypi") and s["version"] and s["package"]
        for t in s["tools"]:
            assert t["name"] and "inputSchema" in t
    assert len(tool_ids(corpus_tools())) == len(set(tool_ids(corpus_tools())))


def test_the_queries_name_tools_that_exist() -> None:
    qs = queries()
    assert len(qs) == 50 and len({q.query for q in qs}) == 50
    ids = set(tool_ids(corpus_tools()))
    for q in [*qs, *held_out()]:
        assert q.expect and set(q.expect) <= ids, q


def test_the_intended_tool_is_in_the_top_5_for_at_least_90_percent() -> None:
    index = ToolIndex(corpus_tools())
    qs = queries()
    missed = [q.query for q in qs if not found_within(index, q, 5)]
    assert len(missed) <= len(qs) * 0.10, missed


def test_the_held_out_queries_do_as_well() -> None:
    index = ToolIndex(corpus_tools())
    qs = held_out()
    missed = [q.query for q in qs if not found_within(index, q, 5)]
    assert len(missed) <= len(qs) * 0.10, missed


def test_every_answer_on_the_corpus_is_a_valid_output_within_its_bounds() -> None:
    index = ToolIndex(corpus_tools())
    for i, q in enumerate([*queries(), *held_out()]):
        call = {"type": "tool_search_call", "call_id": f"c{i}", "arguments": {"query": q.query}}
        answer = answer_call(index, call, max_chars=12_000)
        ResponseToolSearchOutputItemParam.model_validate(answer.output)
        assert answer.output["call_id"] == f"c{i}"
        assert 1 <= len(answer.loaded) <= 5
        assert len(json.dumps(answer.output["tools"])) <= 12_000 or len(answer.loaded) == 1
