"""Test fixtures: real servers, never mocks.

The suite starts SecantusDB and the bundled Redis itself, once per session, on free ports with
temporary data directories, using the same :mod:`app.embedded` code as ``loyalty serve``. Set
``TEST_MONGODB_URI`` / ``TEST_REDIS_URL`` to use servers of your own instead (each test gets its own
database; the Redis database of ``TEST_REDIS_URL`` is flushed between tests).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.embedded import EmbeddedMongo, EmbeddedRedis
from app.settings import Settings, load_settings
from storage.clients import MongoClient, create_mongo_client, create_redis_client

TEST_SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnop"


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("TEST_MONGODB_URI"):
        yield url
        return
    with EmbeddedMongo(tmp_path_factory.mktemp("embedded")) as server:
        yield server.url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("TEST_REDIS_URL"):
        yield url
        return
    # "everysec" in tests: durability is tested on purpose elsewhere, speed matters here.
    with EmbeddedRedis(tmp_path_factory.mktemp("embedded"), appendfsync="everysec") as server:
        yield server.url


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the developer's shell (zsh sets HOST, for one)."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def db_name() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(
    tmp_path: Path, mongo_url: str, redis_url: str, db_name: str, mongo_client: MongoClient
) -> Settings:
    """Settings for one test: its own database (dropped afterwards) and data directory."""
    return load_settings(
        env_file=None,
        data_dir=tmp_path / "data",
        secret_key=TEST_SECRET_KEY,
        mongodb_uri=mongo_url,
        mongodb_db=db_name,
        redis_url=redis_url,
    )


@pytest.fixture
async def mongo_client(mongo_url: str, db_name: str) -> AsyncIterator[MongoClient]:
    client = create_mongo_client(mongo_url)
    yield client
    await client.drop_database(db_name)
    await client.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis_client(redis_url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()
