"""The instance record: one document that says when this deployment's data was created.

It gives every deployment a stable id (for logs and support) and makes "the data survived a restart"
visible in the start-up log line: the start count goes up, the id and creation date stay.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from storage.clients import Document

INSTANCE_ID = "instance"


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    instance_id: str
    created_at: datetime
    starts: int


async def record_start(db: AsyncDatabase[Document], now: datetime) -> InstanceInfo:
    """Count one more start of this deployment, creating the record on the first one (atomic upsert)."""
    await db.meta.update_one(
        {"_id": INSTANCE_ID},
        {
            "$setOnInsert": {"kind": "instance", "instance_id": secrets.token_hex(8), "created_at": now},
            "$set": {"last_started_at": now},
            "$inc": {"starts": 1},
        },
        upsert=True,
    )
    doc = await db.meta.find_one({"_id": INSTANCE_ID})
    assert doc is not None
    return InstanceInfo(doc["instance_id"], doc["created_at"], int(doc["starts"]))
