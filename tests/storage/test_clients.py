"""The clients against the real servers: pool behaviour and the driver options we rely on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from storage.clients import MongoClient, create_redis_client


async def test_mongo_returns_timezone_aware_utc(mongo_client: MongoClient, db_name: str) -> None:
    db = mongo_client[db_name]
    moment = datetime(2026, 11, 23, 4, 5, 6, 789000, tzinfo=UTC)
    await db.probe.insert_one({"_id": 1, "at": moment})

    doc = await db.probe.find_one({"_id": 1})

    assert doc is not None and doc["at"] == moment and doc["at"].tzinfo is not None


async def test_redis_pool_waits_instead_of_failing_when_saturated(redis_url: str) -> None:
    # given a pool of 4 connections and 200 concurrent commands
    client = create_redis_client(redis_url, max_connections=4)
    try:
        results = await asyncio.gather(*(client.set(f"pool:{i}", i) for i in range(200)))
        # then every command ran (a plain ConnectionPool would raise MaxConnectionsError)
        assert all(results)
        assert await client.get("pool:199") == "199"
    finally:
        await client.delete(*(f"pool:{i}" for i in range(200)))
        await client.aclose()
