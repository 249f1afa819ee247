"""A worker killed with SIGKILL in the middle of 1,000 queued events loses none and doubles none."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.chat import QueuedUpdates
from bot import Message
from bot.channels.emulator import EmulatorOutbox
from storage.queue import EventQueue

pytestmark = pytest.mark.slow

EVENTS = 1000
USERS = 50


async def answered(redis: Redis) -> dict[str, int]:
    """Replies in each emulator user's outbox."""
    outbox = EmulatorOutbox(redis)
    return {f"u{n}": int(await redis.xlen(outbox.stream("emulator-zalo", f"u{n}"))) for n in range(USERS)}


async def start_worker(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "worker",
        env=env, cwd=cwd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def test_a_killed_workers_events_are_all_handled_once_by_the_next(
    redis: Redis, mongo_url: str, redis_url: str, db_name: str, tmp_path: Path
) -> None:
    # given 1,000 chat messages from 50 users in the queue
    sink = QueuedUpdates(EventQueue(redis))
    now = datetime.now(UTC)
    updates = [
        Message(
            channel="emulator",
            account_id="emulator-zalo",
            user_id=f"u{n % USERS}",
            event_id=f"crash-{n}",
            timestamp=now,
            text=f"tin nhắn {n}",
        )
        for n in range(EVENTS)
    ]
    assert all(await sink.publish(updates))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_")}
    env.update(
        MONGODB_URI=mongo_url,
        REDIS_URL=redis_url,
        MONGODB_DB=db_name,
        DATA_DIR=str(tmp_path),
        WORKER_CLAIM_IDLE_SECONDS="1",
        USER_LOCK_TTL_SECONDS="2",
        LOG_LEVEL="WARNING",
    )

    # when a worker is killed with SIGKILL part-way through
    first = await start_worker(env, tmp_path)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while sum((await answered(redis)).values()) < 150:
        assert loop.time() < deadline, "the first worker handled nothing"
        await asyncio.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    await first.wait()
    at_kill = sum((await answered(redis)).values())
    assert at_kill < EVENTS, "the first worker finished before it could be killed: raise EVENTS"

    # and another worker starts
    second = await start_worker(env, tmp_path)
    try:
        queue = EventQueue(redis)
        deadline = loop.time() + 90
        while await queue.backlog() > 0:
            assert loop.time() < deadline, f"backlog stuck at {await queue.backlog()}"
            await asyncio.sleep(0.1)
    finally:
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 30) == 0

    # then every message got exactly one answer: none lost, none doubled
    per_user = await answered(redis)
    assert per_user == {f"u{n}": EVENTS // USERS for n in range(USERS)}
    assert await queue.dead_letters() == []
