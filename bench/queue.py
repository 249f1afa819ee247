"""The event queue: publish throughput against raw pipelined XADD, and worker drain rate.

Both sides talk to the same embedded Redis (fsynced append-only file, as `loyalty serve` runs it), in
batches of the same size, so the ratio shows the cost of the dedupe + atomic-append script alone.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from app.embedded import EmbeddedRedis
from app.worker import Worker
from storage.clients import create_redis_client
from storage.queue import Delivery, Event, EventQueue


async def _raw_xadd(url: str, total: int, batch: int) -> float:
    client = create_redis_client(url)
    try:
        started = time.perf_counter()
        for offset in range(0, total, batch):
            async with client.pipeline(transaction=False) as pipe:
                for n in range(offset, min(offset + batch, total)):
                    pipe.xadd("bench:raw", {"kind": "k", "key": f"u{n % 200}", "data": '{"n":1}', "at": "0"})
                await pipe.execute()
        return total / (time.perf_counter() - started)
    finally:
        await client.delete("bench:raw")
        await client.aclose()


async def _publish(url: str, total: int, batch: int) -> float:
    client = create_redis_client(url)
    queue = EventQueue(client, stream="bench:queue")
    try:
        started = time.perf_counter()
        for offset in range(0, total, batch):
            await queue.publish(
                [
                    Event(kind="k", key=f"u{n % 200}", data={"n": 1}, dedupe_id=f"m{n}")
                    for n in range(offset, min(offset + batch, total))
                ]
            )
        return total / (time.perf_counter() - started)
    finally:
        await client.aclose()


async def _drain(url: str, total: int) -> float:
    client = create_redis_client(url)
    queue = EventQueue(client, stream="bench:queue")
    done = asyncio.Event()
    handled = 0

    async def handle(_delivery: Delivery) -> None:
        nonlocal handled
        handled += 1
        if handled == total:
            done.set()

    worker = Worker(queue, {"k": handle}, batch_size=256, block_ms=50)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(worker.run(stop))
    await done.wait()
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    await client.aclose()
    return total / elapsed


async def _run(url: str, total: int, batch: int) -> None:
    raw = await _raw_xadd(url, total, batch)
    ours = await _publish(url, total, batch)
    drain = await _drain(url, total)
    print(f"raw pipelined XADD        {raw:10,.0f} events/s  (batches of {batch})")
    print(f"EventQueue.publish        {ours:10,.0f} events/s  (dedupe + append, one Lua call a batch)")
    print(f"Worker drain (no-op)      {drain:10,.0f} events/s  (read, handle per key in order, ack + delete)")
    print(f"ratio_vs_raw={ours / raw:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args(argv or [])
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp)) as redis:
        asyncio.run(_run(redis.url, args.events, args.batch))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
