"""Client-executed tool search: deferred tools found by a query (issue 14).

`index` ranks tool definitions (`ToolIndex`), `tokens` makes their terms.
"""
