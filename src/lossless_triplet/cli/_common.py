"""Small argument helpers shared by the sub-commands."""

from __future__ import annotations


def csv_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (argparse ``type=`` for comma-separated options)."""
    return [item.strip() for item in text.split(",") if item.strip()]
