"""Construction of the process-wide MongoDB and Redis clients.

One :class:`~pymongo.AsyncMongoClient` and one Redis client per process. The application opens them
at start-up and closes them at shutdown (``app.factory``); nothing here connects at import time.
"""

from __future__ import annotations

from typing import Any, Final

from pymongo import AsyncMongoClient
from redis.asyncio import BlockingConnectionPool, Redis

Document = dict[str, Any]
MongoClient = AsyncMongoClient[Document]

APP_NAME: Final = "social-loyalty"


def create_mongo_client(uri: str, *, server_selection_timeout_ms: int = 5_000) -> MongoClient:
    """An ``AsyncMongoClient`` that returns timezone-aware UTC datetimes.

    It connects lazily, on the first operation. A short server-selection timeout makes a request fail
    (and ``/readyz`` answer 503) within seconds when MongoDB is down, instead of after 30 s.
    """
    return AsyncMongoClient(
        uri,
        appname=APP_NAME,
        tz_aware=True,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=server_selection_timeout_ms,
        connectTimeoutMS=server_selection_timeout_ms,
    )


def create_redis_client(url: str, *, max_connections: int = 64, timeout: float = 5.0) -> Redis:
    """A Redis client on a :class:`BlockingConnectionPool`.

    The plain ``ConnectionPool`` raises ``MaxConnectionsError`` when more than ``max_connections``
    commands are in flight; the blocking pool makes them wait (up to ``timeout``) instead.
    Responses are decoded as UTF-8 strings.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_connect_timeout=2.0,
        socket_timeout=timeout,
        health_check_interval=15,
        decode_responses=True,
        client_name=APP_NAME,
    )
    return Redis(connection_pool=pool)
