"""Fixtures for the domain services: a real database (SecantusDB) with the indexes, a frozen clock and
the demo program."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from loyalty.clock import FrozenClock
from loyalty.program import Program, load_program
from storage.clients import Document, MongoClient
from storage.indexes import ensure_indexes

# 10:00 in Hồ Chí Minh City
START: datetime = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
async def db(mongo_client: MongoClient, db_name: str) -> AsyncDatabase[Document]:
    database = mongo_client[db_name]
    await ensure_indexes(database)
    return database


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def program() -> Program:
    return load_program()
