"""Client-executed tool search: deferred tools found by a query (issue 14).

`index` ranks tool definitions (`ToolIndex`), `tokens` makes their terms,
`call` is the `tool_search` tool itself: its definition, its arguments and the
`tool_search_output` that answers a `tool_search_call`.
"""
