"""/readyz follows the servers: 503 soon after one stops, 200 again once it is back, no restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from app.embedded import EmbeddedMongo, EmbeddedRedis, EmbeddedServer
from app.factory import create_app
from app.settings import Settings

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
OUTAGE_DETECTED_WITHIN = 5.0
RECOVERED_WITHIN = 20.0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "own", appendfsync="everysec") as server:
        yield server


@pytest.fixture
def own_mongo(tmp_path: Path) -> Iterator[EmbeddedMongo]:
    with EmbeddedMongo(tmp_path / "own") as server:
        yield server


async def _wait_for_status(
    client: TestClient[web.Request, web.Application], status: int, within: float
) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        response = await client.get("/readyz")
        body: dict[str, object] = await response.json()
        if response.status == status:
            return body
        if loop.time() > deadline:
            pytest.fail(f"/readyz stayed {response.status} (wanted {status}) for {within}s: {body}")
        await asyncio.sleep(0.2)


async def _outage_and_recovery(
    client: TestClient[web.Request, web.Application], server: EmbeddedServer, name: str
) -> None:
    await _wait_for_status(client, 200, within=5)
    port = server.port

    # when the server stops
    await asyncio.to_thread(server.stop)
    # then readiness fails within 5 s, naming it
    body = await _wait_for_status(client, 503, within=OUTAGE_DETECTED_WITHIN)
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert checks[name]["status"] == "error"
    other = "redis" if name == "mongodb" else "mongodb"
    assert checks[other]["status"] == "ok"

    # when it comes back on the same port (from the main thread, as serve does)
    server.start(port=port)
    # then the same app is ready again, without a restart
    await _wait_for_status(client, 200, within=RECOVERED_WITHIN)


async def test_readyz_follows_a_redis_outage(
    aiohttp_client: ClientFactory, settings: Settings, own_redis: EmbeddedRedis
) -> None:
    app = create_app(settings.model_copy(update={"redis_url": settings.redis_url.__class__(own_redis.url)}))
    client = await aiohttp_client(app)

    await _outage_and_recovery(client, own_redis, "redis")


async def test_readyz_follows_a_mongodb_outage(
    aiohttp_client: ClientFactory, settings: Settings, own_mongo: EmbeddedMongo
) -> None:
    app = create_app(
        settings.model_copy(update={"mongodb_uri": settings.mongodb_uri.__class__(own_mongo.url)})
    )
    client = await aiohttp_client(app)

    await _outage_and_recovery(client, own_mongo, "mongodb")
