"""Benchmarks. Run them all with `make bench`, or one with `python -m bench.<name>`."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final


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


CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the name (field 2) may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the embedded servers run below a watchdog)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:  # a thread that ended between the listing and the read
            continue
        for child in (int(c) for c in children):
            found += [child, *descendants(child)]
    return found


class ServerCpu:
    """The CPU time a server process spends on each side of a comparison: a steadier measure than
    operations per second on a shared machine (it does not count the time spent waiting for the disk
    or for the other processes)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.seconds: dict[str, float] = {}

    async def measure(self, side: str, run: Callable[[], Awaitable[float]]) -> float:
        before = cpu_seconds(self.pid)
        rate = await run()
        self.seconds[side] = self.seconds.get(side, 0.0) + cpu_seconds(self.pid) - before
        return rate
