"""ZNS delivery receipts: what Zalo reported for each template message we sent (campaign reports)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, Protocol

from pymongo.asynchronous.database import AsyncDatabase

from storage.clients import Document

COLLECTION: Final = "zns_deliveries"  # indexed by tracking_id (storage.indexes)


class DeliveryStatus(Protocol):
    """What the Zalo webhook parses from a ZNS event (``webhooks.zalo.ZnsDeliveryStatus``)."""

    @property
    def msg_id(self) -> str: ...
    @property
    def tracking_id(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def delivered_at(self) -> datetime: ...


class ZnsDeliveries:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db[COLLECTION]

    async def record(self, statuses: Sequence[DeliveryStatus]) -> None:
        """Upsert one document per Zalo message id; a repeated receipt changes nothing."""
        for status in statuses:
            await self.collection.update_one(
                {"_id": status.msg_id},
                {
                    "$set": {"status": str(status.status), "delivered_at": status.delivered_at},
                    "$setOnInsert": {"tracking_id": status.tracking_id},
                },
                upsert=True,
            )

    async def get(self, msg_id: str) -> Document | None:
        return await self.collection.find_one({"_id": msg_id})
