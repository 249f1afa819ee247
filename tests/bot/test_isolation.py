"""Per-user isolation: one user's updates one at a time (in order in one process), users in parallel."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from bot import Dispatcher, MemoryIsolation, Message, NoIsolation, StorageKey
from bot.fsm.redis import LockTimeoutError, RedisIsolation
from bot.fsm.storage import EventIsolation
from tests.bot.helpers import make_update

KEY = StorageKey("emulator", "oa", "u1")
LOCK = "fsm:emulator:oa:u1:lock"


@dataclass
class Concurrency:
    """Counts handlers running at once, overall and per user."""

    running: int = 0
    peak: int = 0
    peak_per_user: int = 0

    def __post_init__(self) -> None:
        self.per_user: dict[str, int] = {}

    def enter(self, user: str) -> None:
        self.running += 1
        self.per_user[user] = self.per_user.get(user, 0) + 1
        self.peak = max(self.peak, self.running)
        self.peak_per_user = max(self.peak_per_user, self.per_user[user])

    def leave(self, user: str) -> None:
        self.running -= 1
        self.per_user[user] -= 1


@pytest.fixture(params=["memory", "redis"])
def isolation(request: pytest.FixtureRequest) -> EventIsolation:
    if request.param == "memory":
        return MemoryIsolation()
    redis: Redis = request.getfixturevalue("redis")
    return RedisIsolation(redis)


def counting_dispatcher(isolation: EventIsolation, seen: list[int], concurrency: Concurrency) -> Dispatcher:
    dp = Dispatcher(isolation=isolation)
    rng = random.Random(1234)

    @dp.message()
    async def handler(message: Message) -> None:
        concurrency.enter(message.user_id)
        try:
            await asyncio.sleep(rng.random() / 500)  # 0 to 2 ms: enough to reorder unprotected handlers
            seen.append(int(message.text or "0"))
        finally:
            concurrency.leave(message.user_id)

    return dp


async def test_one_users_updates_are_handled_in_the_order_they_were_fed() -> None:
    seen: list[int] = []
    concurrency = Concurrency()
    dp = counting_dispatcher(MemoryIsolation(), seen, concurrency)

    results = await asyncio.gather(*(dp.feed_update(make_update(text=str(n))) for n in range(50)))

    assert seen == list(range(50))
    assert concurrency.peak == 1
    assert all(r.handled for r in results)


def test_memory_isolation_is_the_default() -> None:
    assert isinstance(Dispatcher().isolation, MemoryIsolation)


async def test_one_users_updates_never_overlap_with_redis_isolation(redis: Redis) -> None:
    # Waiters poll Redis, so arrival order is not kept across a gather: mutual exclusion is.
    seen: list[int] = []
    concurrency = Concurrency()
    dp = counting_dispatcher(RedisIsolation(redis), seen, concurrency)

    results = await asyncio.gather(*(dp.feed_update(make_update(text=str(n))) for n in range(50)))

    assert concurrency.peak == 1
    assert sorted(seen) == list(range(50))
    assert all(r.handled for r in results)
    assert await redis.exists(LOCK) == 0


async def test_without_isolation_one_users_updates_overlap() -> None:
    # the control experiment: the handler above does reorder and overlap when nothing isolates it
    seen: list[int] = []
    concurrency = Concurrency()
    dp = counting_dispatcher(NoIsolation(), seen, concurrency)

    await asyncio.gather(*(dp.feed_update(make_update(text=str(n))) for n in range(50)))

    assert concurrency.peak > 1
    assert sorted(seen) == list(range(50))


async def test_different_users_are_handled_in_parallel(isolation: EventIsolation) -> None:
    seen: list[int] = []
    concurrency = Concurrency()
    dp = counting_dispatcher(isolation, seen, concurrency)

    await asyncio.gather(*(dp.feed_update(make_update(text=str(n), user=f"u{n}")) for n in range(50)))

    assert concurrency.peak > 1
    assert concurrency.peak_per_user == 1
    assert sorted(seen) == list(range(50))


async def test_the_same_user_id_on_two_accounts_is_not_serialised(isolation: EventIsolation) -> None:
    both_in = asyncio.Event()
    inside = 0
    dp = Dispatcher(isolation=isolation)

    @dp.message()
    async def handler() -> None:
        nonlocal inside
        inside += 1
        if inside == 2:
            both_in.set()
        await asyncio.wait_for(both_in.wait(), timeout=5)  # would time out if the two were serialised

    results = await asyncio.gather(
        dp.feed_update(make_update(text="x", account="oa1")),
        dp.feed_update(make_update(text="x", account="oa2")),
    )

    assert all(r.error is None for r in results)


async def test_memory_isolation_forgets_idle_users() -> None:
    isolation = MemoryIsolation()
    dp = Dispatcher(isolation=isolation)

    @dp.message()
    async def handler() -> None:
        await asyncio.sleep(0)

    await asyncio.gather(*(dp.feed_update(make_update(text="x", user=f"u{n % 5}")) for n in range(20)))

    assert isolation._locks == {}


async def test_a_failing_handler_releases_the_memory_lock() -> None:
    isolation = MemoryIsolation()
    dp = Dispatcher(isolation=isolation)

    @dp.message()
    async def boom() -> None:
        raise ValueError

    await dp.feed_update(make_update(text="x"))
    result = await asyncio.wait_for(dp.feed_update(make_update(text="x")), timeout=2)

    assert isinstance(result.error, ValueError)
    assert isolation._locks == {}


# --------------------------------------------------------------------------- the Redis lock


async def test_the_redis_lock_is_held_during_the_handler_and_released_after(redis: Redis) -> None:
    seen: dict[str, Any] = {}
    dp = Dispatcher(isolation=RedisIsolation(redis, ttl=30))

    @dp.message()
    async def handler() -> None:
        seen["exists"] = await redis.exists(LOCK)
        seen["pttl"] = await redis.pttl(LOCK)

    await dp.feed_update(make_update(text="x"))

    assert seen["exists"] == 1
    assert 0 < seen["pttl"] <= 30_000
    assert await redis.exists(LOCK) == 0


async def test_the_redis_lock_is_released_when_the_handler_raises(redis: Redis) -> None:
    dp = Dispatcher(isolation=RedisIsolation(redis, wait=1))

    @dp.message()
    async def boom() -> None:
        raise ValueError

    result = await dp.feed_update(make_update(text="x"))

    assert isinstance(result.error, ValueError)
    assert await redis.exists(LOCK) == 0
    # and the user is not blocked
    assert isinstance((await dp.feed_update(make_update(text="x"))).error, ValueError)


async def test_the_redis_lock_is_released_when_the_body_raises(redis: Redis) -> None:
    isolation = RedisIsolation(redis)

    with pytest.raises(RuntimeError):
        async with isolation.lock(KEY):
            raise RuntimeError

    assert await redis.exists(LOCK) == 0


async def test_waiting_for_a_lock_another_holds_times_out(redis: Redis) -> None:
    await redis.set(LOCK, "another-worker", px=10_000)
    isolation = RedisIsolation(redis, wait=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(LockTimeoutError, match=LOCK):
        async with isolation.lock(KEY):
            pytest.fail("entered a lock another worker holds")

    assert loop.time() - started >= 0.05
    assert await redis.get(LOCK) == "another-worker"  # not stolen, not released


async def test_a_lock_timeout_escapes_feed_update_so_the_event_is_retried(redis: Redis) -> None:
    await redis.set(LOCK, "another-worker", px=10_000)
    dp = Dispatcher(isolation=RedisIsolation(redis, wait=0.05))

    @dp.message()
    async def handler() -> None:
        pytest.fail("ran without the lock")

    with pytest.raises(LockTimeoutError):
        await dp.feed_update(make_update(text="x"))


async def test_the_lock_of_a_vanished_owner_expires(redis: Redis) -> None:
    # given a worker that took the lock for 200 ms and died without releasing it
    await redis.set(LOCK, "dead-worker", px=200)
    isolation = RedisIsolation(redis, wait=5)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async with isolation.lock(KEY):
        waited = loop.time() - started
        assert await redis.get(LOCK) != "dead-worker"

    assert waited >= 0.1
    assert await redis.exists(LOCK) == 0


async def test_an_abandoned_lock_expires_after_its_ttl(redis: Redis) -> None:
    # given a lock taken with a short ttl whose owner never releases it (nor renews it)
    isolation = RedisIsolation(redis, ttl=0.2)
    holder = isolation.lock(KEY)
    await holder.__aenter__()
    token = await redis.get(LOCK)
    renewals = [
        t for t in asyncio.all_tasks() if getattr(t.get_coro(), "__qualname__", "") == "RedisIsolation._renew"
    ]
    assert len(renewals) == 1
    for task in renewals:
        task.cancel()
    await asyncio.gather(*renewals, return_exceptions=True)

    await asyncio.sleep(0.35)

    assert token is not None
    assert await redis.exists(LOCK) == 0
    # its late release does not delete a lock someone else took meanwhile
    await redis.set(LOCK, "new-owner", px=5_000)
    await holder.__aexit__(None, None, None)
    assert await redis.get(LOCK) == "new-owner"


async def test_a_slow_handler_keeps_its_lock_by_renewing_it(redis: Redis) -> None:
    isolation = RedisIsolation(redis, ttl=0.3)
    rival = RedisIsolation(redis, wait=0.05)

    async with isolation.lock(KEY):
        await asyncio.sleep(0.7)  # more than twice the ttl
        assert await redis.exists(LOCK) == 1
        with pytest.raises(LockTimeoutError):
            async with rival.lock(KEY):
                pytest.fail("took a lock that was being renewed")

    assert await redis.exists(LOCK) == 0


async def test_redis_locks_are_per_user_and_account(redis: Redis) -> None:
    isolation = RedisIsolation(redis, wait=0.05)

    async with (
        isolation.lock(KEY),
        isolation.lock(StorageKey("emulator", "oa2", "u1")),
        isolation.lock(StorageKey("emulator", "oa", "u2")),
    ):
        assert await redis.exists(LOCK, "fsm:emulator:oa2:u1:lock", "fsm:emulator:oa:u2:lock") == 3

    assert await redis.exists(LOCK, "fsm:emulator:oa2:u1:lock", "fsm:emulator:oa:u2:lock") == 0
