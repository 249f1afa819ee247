from __future__ import annotations

import pytest
from pymongo.errors import DuplicateKeyError

from storage.clients import MongoClient
from storage.indexes import IndexSpec, ensure_indexes

SPECS = (
    IndexSpec("things", (("code", 1),), name="things_code", unique=True),
    IndexSpec("things", (("owner", 1), ("created_at", -1)), name="things_owner_created"),
    IndexSpec(
        "things",
        (("phone", 1),),
        name="things_phone",
        unique=True,
        partial_filter={"phone": {"$type": "string"}},
    ),
)


async def test_indexes_are_created_once(mongo_client: MongoClient, db_name: str) -> None:
    db = mongo_client[db_name]

    first = await ensure_indexes(db, SPECS)
    second = await ensure_indexes(db, SPECS)

    assert (first, second) == (3, 0)
    info = await db.things.index_information()
    assert {"things_code", "things_owner_created", "things_phone"} <= set(info)
    assert info["things_owner_created"]["key"] == [("owner", 1), ("created_at", -1)]


async def test_a_unique_index_is_enforced(mongo_client: MongoClient, db_name: str) -> None:
    db = mongo_client[db_name]
    await ensure_indexes(db, SPECS)
    await db.things.insert_one({"code": "A1"})

    with pytest.raises(DuplicateKeyError):
        await db.things.insert_one({"code": "A1"})


async def test_a_partial_unique_index_ignores_documents_outside_it(
    mongo_client: MongoClient, db_name: str
) -> None:
    db = mongo_client[db_name]
    await ensure_indexes(db, SPECS)

    # two customers without a phone are fine; two with the same phone are not
    await db.things.insert_many([{"code": "a"}, {"code": "b"}])
    await db.things.insert_one({"code": "c", "phone": "+84912345678"})
    with pytest.raises(DuplicateKeyError):
        await db.things.insert_one({"code": "d", "phone": "+84912345678"})


async def test_a_changed_definition_is_rebuilt(mongo_client: MongoClient, db_name: str) -> None:
    db = mongo_client[db_name]
    await ensure_indexes(db, (IndexSpec("things", (("code", 1),), name="things_code"),))

    rebuilt = await ensure_indexes(
        db, (IndexSpec("things", (("code", 1),), name="things_code", unique=True),)
    )

    assert rebuilt == 1
    assert (await db.things.index_information())["things_code"].get("unique") is True
