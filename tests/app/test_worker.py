"""The worker against the real Redis: ordering, retries, dead letters, crashes, `loyalty worker`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.worker import Worker
from storage.clients import create_redis_client
from storage.queue import Delivery, Event, EventQueue


def _events(key: str, count: int, kind: str = "test.event") -> list[Event]:
    return [Event(kind=kind, key=key, data={"n": n}) for n in range(count)]


async def _run_until(worker: Worker, done: asyncio.Event, timeout: float = 15.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        stop.set()
        await task


async def test_events_of_one_user_are_handled_in_order_and_users_in_parallel(redis: Redis) -> None:
    # given 50 events for each of 5 users, interleaved in the queue
    queue = EventQueue(redis)
    events = [
        event for batch in zip(*(_events(f"u{u}", 50) for u in range(5)), strict=True) for event in batch
    ]
    await queue.publish(events)
    seen: dict[str, list[int]] = {}
    running: set[str] = set()
    overlap = 0
    done = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        nonlocal overlap
        assert delivery.key not in running, "two events of one user at once"
        running.add(delivery.key)
        overlap = max(overlap, len(running))
        await asyncio.sleep(0.001)
        seen.setdefault(delivery.key, []).append(delivery.data["n"])
        running.discard(delivery.key)
        if sum(map(len, seen.values())) == 250:
            done.set()

    worker = Worker(queue, {"test.event": handle}, block_ms=50)
    await _run_until(worker, done)

    # then each user's events ran strictly in order, and users ran side by side
    assert {key: values for key, values in seen.items()} == {f"u{u}": list(range(50)) for u in range(5)}
    assert overlap > 1
    assert await queue.backlog() == 0
    assert worker.stats.handled == 250


async def test_a_failing_event_is_retried_then_succeeds(redis: Redis) -> None:
    queue = EventQueue(redis)
    await queue.publish(_events("u1", 1))
    attempts: list[int] = []
    done = asyncio.Event()

    async def flaky(delivery: Delivery) -> None:
        attempts.append(delivery.deliveries)
        if len(attempts) < 3:
            raise ConnectionError("platform timed out")
        done.set()

    worker = Worker(queue, {"test.event": flaky}, block_ms=20, claim_idle_ms=50)
    await _run_until(worker, done)

    assert attempts == [1, 2, 3]
    assert worker.stats.failed == 2
    assert await queue.backlog() == 0
    assert await queue.dead_letters() == []


async def test_an_event_failing_every_time_goes_to_the_dead_letter_stream(redis: Redis) -> None:
    queue = EventQueue(redis)
    await queue.publish(_events("u1", 1))
    attempts: list[int] = []

    async def broken(delivery: Delivery) -> None:
        attempts.append(delivery.deliveries)
        raise ValueError("cannot parse")

    worker = Worker(queue, {"test.event": broken}, block_ms=20, claim_idle_ms=30, max_deliveries=3)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    for _ in range(200):
        if worker.stats.dead_lettered:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task

    assert attempts == [1, 2, 3]
    (dead,) = await queue.dead_letters()
    assert dead["error"] == "ValueError: cannot parse"
    assert dead["deliveries"] == "3"
    assert await queue.backlog() == 0


async def test_an_event_nobody_handles_is_dead_lettered_at_once(redis: Redis) -> None:
    queue = EventQueue(redis)
    await queue.publish(_events("u1", 1, kind="unknown.kind"))
    worker = Worker(queue, {}, block_ms=20)

    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    for _ in range(100):
        if worker.stats.dead_lettered:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task

    (dead,) = await queue.dead_letters()
    assert dead["error"] == "no handler for event kind 'unknown.kind'"


async def test_events_of_a_dead_worker_are_handled_by_the_next_one(redis: Redis) -> None:
    # given a worker that read 100 events and died before acknowledging any
    queue = EventQueue(redis)
    await queue.publish(_events("u1", 60) + _events("u2", 40))
    lost = await queue.read("dead-worker", count=100, block_ms=10)
    assert len(lost) == 100
    handled: list[tuple[str, int]] = []
    done = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        handled.append((delivery.key, delivery.data["n"]))
        if len(handled) == 100:
            done.set()

    # when another worker runs
    worker = Worker(queue, {"test.event": handle}, block_ms=20, claim_idle_ms=50)
    await _run_until(worker, done)

    # then it handles every one of them, once, each user's in order
    assert [n for key, n in handled if key == "u1"] == list(range(60))
    assert [n for key, n in handled if key == "u2"] == list(range(40))
    assert worker.stats.claimed == 100
    assert await queue.backlog() == 0


async def test_a_worker_survives_redis_being_unreachable() -> None:
    client = create_redis_client("redis://127.0.0.1:1/0", timeout=0.2)
    worker = Worker(EventQueue(client), {}, block_ms=10)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.sleep(0.5)
        assert not task.done()  # still trying, not crashed
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await client.aclose()


@pytest.mark.slow
async def test_loyalty_worker_consumes_and_stops_cleanly_on_sigterm(
    redis: Redis, mongo_url: str, redis_url: str, db_name: str, tmp_path: Path
) -> None:
    # given an event nobody handles yet, and a `loyalty worker` process on the test servers
    queue = EventQueue(redis)
    await queue.publish(_events("u1", 1, kind="nobody.handles.this"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_",))}
    env.update(MONGODB_URI=mongo_url, REDIS_URL=redis_url, MONGODB_DB=db_name, DATA_DIR=str(tmp_path))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "worker",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        # then it dead-letters the event
        for _ in range(150):
            if await queue.dead_letters():
                break
            await asyncio.sleep(0.1)
        assert len(await queue.dead_letters()) == 1
    finally:
        # and stops cleanly on SIGTERM
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, output.decode()
    assert b"worker ready" in output
    assert b"worker stopped" in output
