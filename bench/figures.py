"""How the benchmarks turn measurements into the table's figures, and print the table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

Row = tuple[str, str, str]


def pct(values: list[float], q: float) -> float:
    """The `q` quantile (0–1) of `values`, as one of them."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread(values: list[float], fmt: str = ".1f") -> str:
    """`median (min–max)`, or the one value."""
    ordered = sorted(values)
    mid = format(statistics.median(ordered), fmt)
    if len(ordered) == 1:
        return mid
    return f"{mid} ({format(ordered[0], fmt)}–{format(ordered[-1], fmt)})"


def print_table(rows: Sequence[Row]) -> None:
    width = max(len(r[0]) for r in rows)
    mwidth = max(len(r[1]) for r in rows)
    print(f"{'benchmark':<{width}}  {'measure':<{mwidth}}  result")
    print(f"{'-' * width}  {'-' * mwidth}  {'-' * 24}")
    for name, measure, result in rows:
        print(f"{name:<{width}}  {measure:<{mwidth}}  {result}")
