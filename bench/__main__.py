"""Run every benchmark in turn (`make bench`). Each prints its figures and a last `ratio...` line."""

from __future__ import annotations

import importlib
import sys
import time

BENCHMARKS = ("bench.queue", "bench.dispatch", "bench.ingest", "bench.ledger", "bench.games")


def main() -> int:
    selected = sys.argv[1:] or list(BENCHMARKS)
    for name in selected:
        module = importlib.import_module(name if name.startswith("bench.") else f"bench.{name}")
        print(f"== {module.__name__}", flush=True)
        started = time.perf_counter()
        module.main()
        print(f"   ({time.perf_counter() - started:.1f}s)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
