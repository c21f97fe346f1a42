"""Function tools the CLI tests load with --functions."""


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b
