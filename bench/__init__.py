"""Benchmarks. Run them all with `make bench`, or one with `python -m bench.<name>`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable


async def paired_round(
    round_no: int, ours: Callable[[], Awaitable[float]], raw: Callable[[], Awaitable[float]]
) -> tuple[float, float]:
    """One round of a paired comparison, ``(ours, raw)``: both sides run seconds apart and who goes
    first follows ABBA (raw first in rounds 0 and 3 of every four), so neither side always runs on the
    smaller database or the luckier disk, and a steady drift cancels out. A benchmark's result is the
    median of its rounds' ratios."""
    if round_no % 4 in (0, 3):
        raw_rate = await raw()
        return await ours(), raw_rate
    ours_rate = await ours()
    return ours_rate, await raw()
