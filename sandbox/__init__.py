"""itemloop.sandbox."""
