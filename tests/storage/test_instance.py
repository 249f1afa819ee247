from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.clients import MongoClient
from storage.instance import record_start


async def test_the_instance_record_keeps_its_id_and_counts_starts(
    mongo_client: MongoClient, db_name: str
) -> None:
    db = mongo_client[db_name]
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    first = await record_start(db, created)
    second = await record_start(db, created + timedelta(days=1))

    assert first.instance_id == second.instance_id
    assert (first.starts, second.starts) == (1, 2)
    assert second.created_at == created  # tz-aware UTC round trip
