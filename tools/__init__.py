"""itemloop.tools."""
