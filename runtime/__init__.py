"""itemloop.runtime."""
