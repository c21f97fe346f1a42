"""ToolIndex: what a search returns, in what shape, within which bounds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from itemloop.tools.search.index import ToolIndex

Item = dict[str, Any]


def fn(name: str, description: str = "", **params: str) -> Item:
    return {
        "type": "function",
        "name": name,
        "description": description,
        "parameters": {
            "type": "object",
            "properties": {p: {"type": "string", "description": d} for p, d in params.items()},
        },
        "defer_loading": True,
    }


def ns(name: str, description: str, *tools: Item) -> Item:
    return {"type": "namespace", "name": name, "description": description, "tools": list(tools)}


GITHUB = ns(
    "github",
    "GitHub repositories, issues and pull requests.",
    fn("create_issue", "Create a new issue in a repository", title="Issue title"),
    fn("list_issues", "List issues of a repository"),
    fn("merge_pull_request", "Merge a pull request", merge_method="merge, squash or rebase"),
    fn("fork_repository", "Fork a repository to your account"),
)
TIME = ns(
    "time",
    "Clock and time zones.",
    fn("get_current_time", "Current time in a timezone", timezone="IANA name"),
    fn("convert_time", "Convert a time between timezones"),
)
WEATHER = fn("get_weather", "Weather forecast for a city", city="City name")
SQL: Item = {
    "type": "custom",
    "name": "sql_query",
    "description": "Run a SQL SELECT against the warehouse",
    "format": {"type": "text"},
}


def index() -> ToolIndex:
    return ToolIndex([GITHUB, TIME, WEATHER, SQL])


def keys(result: Any) -> list[tuple[str | None, str]]:
    return [h.key for h in result.hits]


def test_a_namespace_comes_back_narrowed_to_its_matching_tools() -> None:
    found = index().search("create an issue", limit=5, max_chars=100_000)
    assert keys(found)[0] == ("github", "create_issue")
    assert found.tools[0]["type"] == "namespace"
    assert found.tools[0]["name"] == "github"
    assert found.tools[0]["description"] == GITHUB["description"]
    names = [t["name"] for t in found.tools[0]["tools"]]
    assert names[0] == "create_issue"
    assert "fork_repository" not in names and "merge_pull_request" not in names


def test_each_namespace_appears_once_with_its_tools_best_first() -> None:
    found = index().search("issues", limit=5, max_chars=100_000)
    namespaces = [t["name"] for t in found.tools if t["type"] == "namespace"]
    assert namespaces == ["github"]
    assert {k for k in keys(found)} >= {("github", "list_issues"), ("github", "create_issue")}
    scores = [h.score for h in found.hits]
    assert scores == sorted(scores, reverse=True)


def test_a_namespace_the_query_names_comes_whole_when_it_fits() -> None:
    found = index().search("what time is it", limit=5, max_chars=100_000)
    assert found.tools[0]["name"] == "time"
    assert {t["name"] for t in found.tools[0]["tools"]} == {"get_current_time", "convert_time"}
    # Not when it does not fit in the limit: then narrowed to the best.
    one = index().search("what time is it", limit=1, max_chars=100_000)
    assert len(one.hits) == 1 and one.tools[0]["name"] == "time"
    assert len(one.tools[0]["tools"]) == 1


def test_top_level_functions_and_custom_tools_are_found_as_given() -> None:
    found = index().search("weather forecast", limit=3, max_chars=100_000)
    assert found.tools[0] == WEATHER
    found = index().search("run a SQL select", limit=3, max_chars=100_000)
    assert found.tools[0] == SQL
    assert keys(found)[0] == (None, "sql_query")


def test_parameter_names_and_descriptions_are_searched() -> None:
    assert keys(index().search("squash", limit=1, max_chars=100_000)) == [
        ("github", "merge_pull_request")
    ]
    assert keys(index().search("IANA", limit=1, max_chars=100_000)) == [
        ("time", "get_current_time")
    ]


def test_limit_bounds_the_number_of_tools() -> None:
    for limit in (1, 2, 3):
        found = index().search("repository issue pull request fork", limit=limit, max_chars=100_000)
        assert len(found.hits) == limit
        inner = sum(len(t["tools"]) if t["type"] == "namespace" else 1 for t in found.tools)
        assert inner == limit


def test_max_chars_bounds_the_answer_and_counts_what_it_left_out() -> None:
    big = fn("create_report", "Create a report " + "x" * 3000)
    idx = ToolIndex([GITHUB, big])
    unbounded = idx.search("create an issue", limit=5, max_chars=100_000)
    assert (None, "create_report") in keys(unbounded)
    assert len(json.dumps(unbounded.tools)) > 2000
    # The best match is the small one; the big one does not fit in 2,000 characters.
    found = idx.search("create an issue", limit=5, max_chars=2000)
    assert keys(found)[0] == ("github", "create_issue")
    assert len(json.dumps(found.tools)) <= 2000
    assert found.left_out >= 1
    assert (None, "create_report") not in keys(found)
    assert found.hits  # smaller matches still came


def test_the_best_match_comes_even_when_alone_it_exceeds_max_chars() -> None:
    big = fn("giant_tool", "giant " + "y" * 5000)
    found = ToolIndex([big, WEATHER]).search("giant", limit=5, max_chars=100)
    assert keys(found) == [(None, "giant_tool")]


def test_nothing_matches_a_query_of_unknown_or_stop_words() -> None:
    idx = index()
    assert idx.search("zebra quantum", limit=5, max_chars=100_000).tools == []
    assert idx.search("the of and", limit=5, max_chars=100_000).tools == []
    assert idx.search("", limit=5, max_chars=100_000).tools == []
    assert ToolIndex().search("issue", limit=5, max_chars=100_000).tools == []


def test_tools_added_later_are_found() -> None:
    idx = index()
    assert idx.search("translate text", limit=3, max_chars=100_000).hits == []
    idx.add([ns("lang", "Languages.", fn("translate", "Translate text to another language"))])
    assert keys(idx.search("translate text", limit=3, max_chars=100_000))[0] == (
        "lang",
        "translate",
    )
    # Adding to a namespace already indexed extends it.
    idx.add([ns("github", GITHUB["description"], fn("star_repository", "Star a repository"))])
    assert keys(idx.search("star", limit=1, max_chars=100_000)) == [("github", "star_repository")]
    assert len(idx) == 10


def test_definitions_regroups_tools_found_earlier() -> None:
    idx = index()
    defs = idx.definitions(
        [("github", "merge_pull_request"), (None, "get_weather"), ("github", "create_issue")]
    )
    assert [d["name"] for d in defs] == ["github", "get_weather"]
    assert [t["name"] for t in defs[0]["tools"]] == ["merge_pull_request", "create_issue"]
    assert idx.definitions([("nope", "x"), (None, "missing")]) == []


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ([{"type": "shell"}], "cannot be searched"),
        ([ns("a", "A", {"type": "web_search"})], "in namespace 'a'"),
        ([ns("a", "A", ns("b", "B"))], "cannot be searched"),
        ([{"type": "function", "description": "no name"}], "has no name"),
        ([{"type": "namespace", "name": "a", "description": "A"}], "no list of tools"),
        ([fn("x"), fn("x")], "indexed twice"),
        ([ns("a", "A", fn("x")), ns("a", "A", fn("x"))], "indexed twice"),
        ([ns("a", "A"), ns("a", "other")], "other descriptions"),
    ],
)
def test_what_cannot_be_indexed_is_refused_whole(tools: list[Item], message: str) -> None:
    idx = index()
    with pytest.raises(ValueError, match=message):
        idx.add(tools)
    assert len(idx) == 8  # nothing of the refused call was indexed


def test_a_hostile_deeply_nested_schema_is_refused_not_crashing() -> None:
    schema: Item = {"type": "string"}
    for _ in range(5000):
        schema = {"type": "object", "properties": {"x": schema}}
    deep = {"type": "function", "name": "deep", "description": "deep", "parameters": schema}
    idx = index()
    with pytest.raises(ValueError, match="nested too deeply"):
        idx.add([deep])
    assert len(idx) == 8


def test_prepare_builds_ahead_and_changes_no_answer() -> None:
    ToolIndex().prepare()  # nothing to build: no error from an empty BM25 index
    idx = index()
    before = index().search("create an issue", limit=3, max_chars=100_000)
    idx.prepare()
    idx.prepare()
    assert idx.search("create an issue", limit=3, max_chars=100_000) == before


def test_membership_is_by_namespace_and_name() -> None:
    idx = index()
    assert ("github", "create_issue") in idx
    assert (None, "get_weather") in idx
    assert (None, "create_issue") not in idx
    assert ("time", "get_weather") not in idx


def test_same_score_keeps_the_order_tools_were_added() -> None:
    twins = [fn(f"tool_{i}", "identical twin") for i in range(5)]
    found = ToolIndex(twins).search("twin", limit=5, max_chars=100_000)
    assert [h.name for h in found.hits] == [f"tool_{i}" for i in range(5)]
