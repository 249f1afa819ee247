"""The storage contract, run against MemoryStorage and RedisStorage (the real Redis server)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from bot import MemoryStorage, StorageKey
from bot.fsm.redis import DEFAULT_DATA_TTL, DEFAULT_STATE_TTL, RedisStorage
from bot.fsm.storage import BaseStorage
from storage.clients import create_redis_client

KEY = StorageKey("emulator", "oa", "u1")
NESTED = {
    "name": "Nguyễn Thị Lan",
    "note": "Cà phê sữa đá, ít đường 😊",
    "cart": {"items": [{"sku": "cf-01", "qty": 2}], "total": 58000, "paid": False},
    "tags": ["khách quen", "VIP"],
    "nothing": None,
}


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> BaseStorage:
    if request.param == "memory":
        return MemoryStorage()
    redis: Redis = request.getfixturevalue("redis")
    return RedisStorage(redis)


# --------------------------------------------------------------------------- state


async def test_no_state_at_first(storage: BaseStorage) -> None:
    assert await storage.get_state(KEY) is None


async def test_set_and_get_state(storage: BaseStorage) -> None:
    await storage.set_state(KEY, "Signup:phone")

    assert await storage.get_state(KEY) == "Signup:phone"


async def test_set_state_replaces_the_state(storage: BaseStorage) -> None:
    await storage.set_state(KEY, "Signup:phone")
    await storage.set_state(KEY, "Signup:name")

    assert await storage.get_state(KEY) == "Signup:name"


async def test_set_state_none_removes_it(storage: BaseStorage) -> None:
    await storage.set_state(KEY, "Signup:phone")
    await storage.set_state(KEY, None)

    assert await storage.get_state(KEY) is None


async def test_a_state_with_vietnamese_text(storage: BaseStorage) -> None:
    await storage.set_state(KEY, "Đăng ký:số điện thoại")

    assert await storage.get_state(KEY) == "Đăng ký:số điện thoại"


# --------------------------------------------------------------------------- data


async def test_no_data_at_first(storage: BaseStorage) -> None:
    assert await storage.get_data(KEY) == {}


async def test_data_round_trip_with_vietnamese_text_and_nesting(storage: BaseStorage) -> None:
    await storage.set_data(KEY, NESTED)

    assert await storage.get_data(KEY) == NESTED


async def test_set_data_replaces_the_data(storage: BaseStorage) -> None:
    await storage.set_data(KEY, {"a": 1})
    await storage.set_data(KEY, {"b": 2})

    assert await storage.get_data(KEY) == {"b": 2}


async def test_set_empty_data_removes_it(storage: BaseStorage) -> None:
    await storage.set_data(KEY, {"a": 1})
    await storage.set_data(KEY, {})

    assert await storage.get_data(KEY) == {}


async def test_update_data_merges_and_returns_the_result(storage: BaseStorage) -> None:
    await storage.set_data(KEY, {"name": "Lan", "step": 1})

    merged = await storage.update_data(KEY, {"step": 2, "phone": "0901234567"})

    assert merged == {"name": "Lan", "step": 2, "phone": "0901234567"}
    assert await storage.get_data(KEY) == merged


async def test_update_data_on_nothing_creates_it(storage: BaseStorage) -> None:
    merged = await storage.update_data(KEY, {"ghi chú": "điểm"})

    assert merged == {"ghi chú": "điểm"}
    assert await storage.get_data(KEY) == {"ghi chú": "điểm"}


async def test_state_and_data_are_independent(storage: BaseStorage) -> None:
    await storage.set_state(KEY, "s")
    await storage.set_data(KEY, {"a": 1})

    await storage.set_state(KEY, None)

    assert await storage.get_data(KEY) == {"a": 1}


async def test_clear_removes_state_and_data(storage: BaseStorage) -> None:
    await storage.set_state(KEY, "s")
    await storage.set_data(KEY, {"a": 1})

    await storage.clear(KEY)

    assert await storage.get_state(KEY) is None
    assert await storage.get_data(KEY) == {}


# --------------------------------------------------------------------------- isolation of keys


@pytest.mark.parametrize(
    ("_case", "other"),
    [
        ("another user", StorageKey("emulator", "oa", "u2")),
        ("the same user id on another account", StorageKey("emulator", "oa2", "u1")),
        ("the same ids on another channel", StorageKey("zalo", "oa", "u1")),
    ],
)
async def test_keys_do_not_share_state_or_data(storage: BaseStorage, _case: str, other: StorageKey) -> None:
    await storage.set_state(KEY, "mine")
    await storage.set_data(KEY, {"mine": True})

    assert await storage.get_state(other) is None
    assert await storage.get_data(other) == {}

    await storage.set_state(other, "theirs")
    await storage.update_data(other, {"theirs": True})
    await storage.clear(other)

    assert await storage.get_state(KEY) == "mine"
    assert await storage.get_data(KEY) == {"mine": True}


async def test_ids_containing_the_key_separator_do_not_collide(storage: BaseStorage) -> None:
    first, second = StorageKey("emulator", "a:b", "c"), StorageKey("emulator", "a", "b:c")

    await storage.set_state(first, "first")

    assert await storage.get_state(second) is None


# --------------------------------------------------------------------------- copies (memory)


async def test_memory_storage_returns_copies() -> None:
    storage = MemoryStorage()
    await storage.set_data(KEY, {"cart": {"items": ["a"]}})

    got = await storage.get_data(KEY)
    got["cart"]["items"].append("b")
    got["new"] = 1

    assert await storage.get_data(KEY) == {"cart": {"items": ["a"]}}


async def test_memory_storage_keeps_a_copy_of_what_it_was_given() -> None:
    storage = MemoryStorage()
    given = {"cart": {"items": ["a"]}}
    await storage.set_data(KEY, given)

    given["cart"]["items"].append("b")

    assert await storage.get_data(KEY) == {"cart": {"items": ["a"]}}


async def test_memory_storage_update_data_returns_a_copy() -> None:
    storage = MemoryStorage()

    merged = await storage.update_data(KEY, {"cart": {"items": ["a"]}})
    merged["cart"]["items"].append("b")

    assert await storage.get_data(KEY) == {"cart": {"items": ["a"]}}


# --------------------------------------------------------------------------- Redis keys and TTLs


async def test_redis_storage_keys_and_default_ttls(redis: Redis) -> None:
    storage = RedisStorage(redis)

    await storage.set_state(KEY, "s")
    await storage.set_data(KEY, {"a": 1})

    state_ttl = await redis.ttl("fsm:emulator:oa:u1:state")
    data_ttl = await redis.ttl("fsm:emulator:oa:u1:data")
    assert DEFAULT_STATE_TTL - 5 <= state_ttl <= DEFAULT_STATE_TTL
    assert DEFAULT_DATA_TTL - 5 <= data_ttl <= DEFAULT_DATA_TTL
    assert DEFAULT_STATE_TTL == DEFAULT_DATA_TTL == 7 * 24 * 3600


async def test_redis_storage_renews_the_ttl_on_change(redis: Redis) -> None:
    storage = RedisStorage(redis, state_ttl=100, data_ttl=200)
    await storage.set_state(KEY, "s")
    await redis.expire("fsm:emulator:oa:u1:state", 10)

    await storage.set_state(KEY, "t")
    await storage.update_data(KEY, {"a": 1})

    assert 95 <= await redis.ttl("fsm:emulator:oa:u1:state") <= 100
    assert 195 <= await redis.ttl("fsm:emulator:oa:u1:data") <= 200


async def test_redis_storage_without_ttls_keeps_keys(redis: Redis) -> None:
    storage = RedisStorage(redis, state_ttl=None, data_ttl=None)

    await storage.set_state(KEY, "s")
    await storage.set_data(KEY, {"a": 1})

    assert await redis.ttl("fsm:emulator:oa:u1:state") == -1
    assert await redis.ttl("fsm:emulator:oa:u1:data") == -1


async def test_redis_storage_removes_keys_it_empties(redis: Redis) -> None:
    storage = RedisStorage(redis)
    await storage.set_state(KEY, "s")
    await storage.set_data(KEY, {"a": 1})

    await storage.clear(KEY)

    assert await redis.exists("fsm:emulator:oa:u1:state", "fsm:emulator:oa:u1:data") == 0


async def test_redis_storage_with_another_prefix(redis: Redis) -> None:
    storage = RedisStorage(redis, prefix="bot2")

    await storage.set_state(KEY, "s")

    assert await redis.get("bot2:emulator:oa:u1:state") == "s"
    assert await RedisStorage(redis).get_state(KEY) is None


async def test_redis_storage_keeps_vietnamese_text_readable(redis: Redis) -> None:
    await RedisStorage(redis).set_data(KEY, {"ghi chú": "điểm"})

    assert "điểm" in await redis.get("fsm:emulator:oa:u1:data")


async def test_redis_storage_shares_state_between_instances(redis: Redis, redis_url: str) -> None:
    other_client = create_redis_client(redis_url)
    try:
        await RedisStorage(redis).set_state(KEY, "shared")

        assert await RedisStorage(other_client).get_state(KEY) == "shared"
    finally:
        await other_client.aclose()
