"""Platform tokens in MongoDB (compare-and-set by version) and the Redis refresh lock, on real servers."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from storage.clients import Document, MongoClient
from storage.indexes import ensure_indexes
from storage.platform_tokens import INDEXES, MongoTokenStore, TokenLockTimeoutError

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def tokens(version: int, suffix: str = "") -> dict[str, Any]:
    return {
        "access_token": f"at-{version}{suffix}",
        "refresh_token": f"rt-{version}{suffix}",
        "access_expires_at": NOW + timedelta(hours=25),
        "refresh_expires_at": NOW + timedelta(days=90),
        "version": version,
        "seeds": ["f" * 64],
    }


@pytest.fixture
def db(mongo_client: MongoClient, db_name: str) -> AsyncDatabase[Document]:
    return mongo_client[db_name]


@pytest.fixture
def store(db: AsyncDatabase[Document], redis: Redis) -> MongoTokenStore:
    return MongoTokenStore(db, redis)


async def test_nothing_is_stored_at_first(store: MongoTokenStore) -> None:
    assert await store.load("oa1") is None


async def test_saved_tokens_load_back_as_given(store: MongoTokenStore, db: AsyncDatabase[Document]) -> None:
    assert await store.save("oa1", tokens(1))

    loaded = await store.load("oa1")

    assert loaded == tokens(1)
    assert loaded is not None and loaded["access_expires_at"].tzinfo is not None
    raw = await db["platform_tokens"].find_one({"_id": "zalo:oa1"})
    assert raw is not None
    assert (raw["platform"], raw["account_id"], raw["version"]) == ("zalo", "oa1", 1)
    assert isinstance(raw["updated_at"], datetime)


async def test_accounts_and_platforms_are_kept_apart(db: AsyncDatabase[Document], redis: Redis) -> None:
    zalo, other = MongoTokenStore(db, redis), MongoTokenStore(db, redis, platform="messenger")

    assert await zalo.save("oa1", tokens(1, "-a"))
    assert await zalo.save("oa2", tokens(1, "-b"))
    assert await other.save("oa1", tokens(1, "-c"))

    assert [(await zalo.load(a) or {}).get("access_token") for a in ("oa1", "oa2")] == ["at-1-a", "at-1-b"]
    assert (await other.load("oa1") or {}).get("access_token") == "at-1-c"


async def test_save_is_a_compare_and_set_on_the_version(store: MongoTokenStore) -> None:
    assert await store.save("oa1", tokens(1))
    assert not await store.save("oa1", tokens(1, "-late"))  # a second first-seed loses
    assert await store.save("oa1", tokens(2))
    assert not await store.save("oa1", tokens(2, "-late"))  # another refresher stored version 2 first
    assert not await store.save("oa1", tokens(4))  # a version cannot be skipped
    assert not await store.save("oa1", tokens(1, "-old"))  # nor go back

    assert await store.load("oa1") == tokens(2)


async def test_of_concurrent_writers_of_one_version_exactly_one_wins(
    db: AsyncDatabase[Document], redis: Redis
) -> None:
    stores = [MongoTokenStore(db, redis) for _ in range(5)]
    assert await stores[0].save("oa1", tokens(1))

    results = await asyncio.gather(*(s.save("oa1", tokens(2, f"-{n}")) for n, s in enumerate(stores)))

    assert sorted(results) == [False, False, False, False, True]
    winner = results.index(True)
    assert (await stores[0].load("oa1") or {})["access_token"] == f"at-2-{winner}"


async def test_save_refuses_tokens_without_a_version_or_with_bookkeeping_fields(
    store: MongoTokenStore,
) -> None:
    with pytest.raises(ValueError, match="version"):
        await store.save("oa1", {"access_token": "a"})
    with pytest.raises(ValueError, match="version"):
        await store.save("oa1", {**tokens(1), "version": "1"})
    with pytest.raises(ValueError, match="_id"):
        await store.save("oa1", {**tokens(1), "_id": "elsewhere"})
    assert await store.load("oa1") is None


async def test_the_refresh_lock_is_held_by_one_process_at_a_time(
    db: AsyncDatabase[Document], redis: Redis
) -> None:
    stores = [MongoTokenStore(db, redis) for _ in range(3)]
    inside = 0
    most = 0
    order: list[int] = []

    async def refresh(n: int, store: MongoTokenStore) -> None:
        nonlocal inside, most
        async with store.refresh_lock("oa1"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.03)
            order.append(n)
            inside -= 1

    await asyncio.gather(*(refresh(n, s) for n, s in enumerate(stores) for _ in range(2)))

    assert most == 1
    assert sorted(order) == [0, 0, 1, 1, 2, 2]
    assert await redis.exists(stores[0].lock_key("oa1")) == 0


async def test_locks_of_different_accounts_do_not_wait_for_each_other(store: MongoTokenStore) -> None:
    async with store.refresh_lock("oa1"), asyncio.timeout(0.5), store.refresh_lock("oa2"):
        pass


async def test_a_dead_holder_blocks_only_until_its_lock_expires(
    db: AsyncDatabase[Document], redis: Redis
) -> None:
    store = MongoTokenStore(db, redis, lock_wait=5.0)
    await redis.set(store.lock_key("oa1"), "a-crashed-worker", px=200)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async with store.refresh_lock("oa1"):
        waited = loop.time() - started
        assert await redis.get(store.lock_key("oa1")) != "a-crashed-worker"

    assert 0.1 < waited < 2.0


async def test_the_lock_has_a_ttl(store: MongoTokenStore, redis: Redis) -> None:
    async with store.refresh_lock("oa1"):
        ttl = await redis.pttl(store.lock_key("oa1"))
    assert 0 < ttl <= 30_000


async def test_waiting_too_long_for_the_lock_is_a_timeout(db: AsyncDatabase[Document], redis: Redis) -> None:
    store = MongoTokenStore(db, redis, lock_wait=0.1)
    await redis.set(store.lock_key("oa1"), "a-slow-worker", px=10_000)

    with pytest.raises(TokenLockTimeoutError):
        async with store.refresh_lock("oa1"):
            pytest.fail("the lock was taken while another worker held it")

    assert isinstance(TokenLockTimeoutError("x"), TimeoutError)


async def test_an_expired_lock_taken_by_another_is_not_released_by_its_first_holder(
    db: AsyncDatabase[Document], redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    slow = MongoTokenStore(db, redis, lock_ttl=0.1)
    other = MongoTokenStore(db, redis)
    taken = asyncio.Event()
    release_other = asyncio.Event()

    async def other_worker() -> None:
        async with other.refresh_lock("oa1"):
            taken.set()
            await release_other.wait()

    with caplog.at_level(logging.WARNING, logger="loyalty.storage.platform_tokens"):
        async with slow.refresh_lock("oa1"):
            task = asyncio.create_task(other_worker())
            await asyncio.wait_for(taken.wait(), 2.0)  # our lock expired; the other worker took it
        still_held = await redis.get(slow.lock_key("oa1"))
        release_other.set()
        await task

    assert still_held is not None  # our release did not delete the other worker's lock
    assert await redis.exists(slow.lock_key("oa1")) == 0
    assert "expired before its release" in caplog.text


async def test_the_collection_needs_no_index_beyond_its_id(db: AsyncDatabase[Document]) -> None:
    assert INDEXES == ()
    assert await ensure_indexes(db, INDEXES) == 0
