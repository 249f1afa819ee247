"""The process-wide resources, opened and closed in one place for `serve` and `worker` alike."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from app.loyalty import build_loyalty
from app.program import load_program_for
from app.settings import Settings
from loyalty.clock import Clock
from loyalty.core import Loyalty
from loyalty.program import Program
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
    program: Program
    loyalty: Loyalty  # the domain services, on this process's database


@contextlib.asynccontextmanager
async def open_resources(
    settings: Settings, clock: Clock, *, role: str, program: Program | None = None
) -> AsyncIterator[Resources]:
    """Connect to MongoDB and Redis, create the indexes, build the loyalty core, and close on exit.

    :param role: ``web`` or ``worker``, for the start-up log line.
    :param program: the loyalty program (default: ``PROGRAM_FILE``, or the demo program).
    """
    if settings.mongodb_uri is None or settings.redis_url is None or settings.secret_key is None:
        raise ValueError(
            "MONGODB_URI, REDIS_URL and SECRET_KEY must be set (start the embedded servers first)"
        )
    program = program or load_program_for(settings)
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
            loyalty = build_loyalty(
                db, program, clock, secret_key=settings.secret_key.get_secret_value(), redis=redis
            )
            await loyalty.rewards.sync_stock()  # the program's stock figures, for rewards new or changed
            yield Resources(settings, clock, mongo, db, redis, EventQueue(redis), http, program, loyalty)
    finally:
        await redis.aclose()
        await mongo.close()
