"""Concurrent inserts sent together: each caller gets its own document's outcome."""

from __future__ import annotations

import asyncio

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, WriteError

from storage.batching import InsertBatcher
from storage.clients import Document, MongoClient


@pytest.fixture
def db(mongo_client: MongoClient, db_name: str) -> AsyncDatabase[Document]:
    return mongo_client[db_name]


async def test_concurrent_inserts_go_in_few_commands_and_every_caller_is_answered(
    db: AsyncDatabase[Document],
) -> None:
    batcher = InsertBatcher(db["items"])

    await asyncio.gather(*(batcher.insert({"_id": f"k{n}", "n": n}) for n in range(200)))

    assert await db["items"].count_documents({}) == 200
    assert batcher.batches < 20


async def test_a_duplicate_fails_only_its_own_caller(db: AsyncDatabase[Document]) -> None:
    await db["items"].insert_one({"_id": "taken"})
    batcher = InsertBatcher(db["items"])
    documents: list[Document] = [{"_id": "a"}, {"_id": "taken"}, {"_id": "b"}, {"_id": "a"}, {"_id": "c"}]

    outcomes = await asyncio.gather(*(batcher.insert(d) for d in documents), return_exceptions=True)

    assert [type(o).__name__ for o in outcomes] == [
        "NoneType",
        "DuplicateKeyError",
        "NoneType",
        "DuplicateKeyError",
        "NoneType",
    ]
    assert batcher.batches == 1
    assert sorted([d["_id"] async for d in db["items"].find({})]) == ["a", "b", "c", "taken"]


async def test_a_document_refused_by_the_server_fails_only_its_own_caller(
    db: AsyncDatabase[Document],
) -> None:
    await db.create_collection("items", validator={"n": {"$type": "int"}})
    batcher = InsertBatcher(db["items"])

    outcomes = await asyncio.gather(
        batcher.insert({"_id": 1, "n": 1}),
        batcher.insert({"_id": 2, "n": "two"}),
        batcher.insert({"_id": 3, "n": 3}),
        return_exceptions=True,
    )

    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], WriteError) and not isinstance(outcomes[1], DuplicateKeyError)
    assert sorted([d["_id"] async for d in db["items"].find({})]) == [1, 3]


async def test_a_batch_that_fails_whole_is_inserted_one_by_one(db: AsyncDatabase[Document]) -> None:
    """A document the driver cannot encode fails the command; the others are still inserted."""
    batcher = InsertBatcher(db["items"])

    outcomes = await asyncio.gather(
        batcher.insert({"_id": "ok1"}),
        batcher.insert({"_id": "bad", "value": object()}),
        batcher.insert({"_id": "ok2"}),
        return_exceptions=True,
    )

    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], Exception)
    assert sorted([d["_id"] async for d in db["items"].find({})]) == ["ok1", "ok2"]


async def test_a_cancelled_caller_leaves_the_others_answered(db: AsyncDatabase[Document]) -> None:
    batcher = InsertBatcher(db["items"])
    first = asyncio.ensure_future(batcher.insert({"_id": "gone"}))
    second = asyncio.ensure_future(batcher.insert({"_id": "stays"}))
    await asyncio.sleep(0)
    first.cancel()

    await second

    assert first.cancelled()
    assert await db["items"].count_documents({"_id": "stays"}) == 1
