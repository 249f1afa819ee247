"""The process-wide resources, opened and closed in one place for `serve` and `worker` alike."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from app.settings import Settings
from loyalty.clock import Clock
from storage.clients import Document, MongoClient, create_mongo_client, create_redis_client
from storage.indexes import ensure_indexes
from storage.instance import record_start
from storage.queue import EventQueue

log = logging.getLogger("loyalty.app")


@dataclass(frozen=True, slots=True)
class Resources:
    settings: Settings
    clock: Clock
    mongo: MongoClient
    db: AsyncDatabase[Document]
    redis: Redis
    queue: EventQueue
    http: httpx.AsyncClient  # outbound platform calls (Zalo, Messenger)


@contextlib.asynccontextmanager
async def open_resources(settings: Settings, clock: Clock, *, role: str) -> AsyncIterator[Resources]:
    """Connect to MongoDB and Redis, create the indexes, and close both on exit.

    :param role: ``web`` or ``worker``, for the start-up log line.
    """
    if settings.mongodb_uri is None or settings.redis_url is None:
        raise ValueError("MONGODB_URI and REDIS_URL must be set (start the embedded servers first)")
    mongo = create_mongo_client(settings.mongodb_uri.get_secret_value())
    redis = create_redis_client(
        settings.redis_url.get_secret_value(), max_connections=settings.redis_max_connections
    )
    try:
        db = mongo[settings.mongodb_db]
        built = await ensure_indexes(db)
        instance = await record_start(db, clock.now())
        await redis.ping()
        log.info(
            "%s ready: database %s, instance %s (created %s), start #%d, %d index(es) built",
            role,
            settings.mongodb_db,
            instance.instance_id,
            instance.created_at.date().isoformat(),
            instance.starts,
            built,
        )
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=5.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            headers={"User-Agent": "social-loyalty"},
        ) as http:
            yield Resources(settings, clock, mongo, db, redis, EventQueue(redis), http)
    finally:
        await redis.aclose()
        await mongo.close()
