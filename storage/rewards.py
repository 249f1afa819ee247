"""MongoDB storage of reward redemptions (``reward_redemptions``) and reward stock (``reward_stock``).

A redemption's ``_id`` is the client's key; a stock document's ``_id`` is the reward id, with
``remaining`` (units left), ``stock`` (the configured stock it was seeded with) and ``keys`` (the
redemptions holding a unit; never longer than the stock). Every change is one conditional
``update_one`` checked through ``modified_count``: never read-then-write, never ``find_one_and_update``.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, Final, Literal

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from loyalty.rewards import RedemptionRecord
from loyalty.vouchers import Take
from storage.clients import Document

REDEMPTIONS: Final = "reward_redemptions"
STOCK: Final = "reward_stock"
# Rounds of "take, else find out why": a unit given back or a first seed between them calls for another.
_TAKE_ROUNDS: Final = 5


def _to_document(record: RedemptionRecord) -> Document:
    document = record.model_dump(exclude={"key"})
    document["_id"] = record.key
    return document


def _from_document(document: Document) -> RedemptionRecord:
    fields = {name: value for name, value in document.items() if name != "_id"}
    return RedemptionRecord.model_validate({**fields, "key": document["_id"]})


class MongoRewardRepository:
    """Implements ``loyalty.rewards.RewardRepository`` and ``loyalty.customers.CustomerOwned``."""

    name: Final = "reward_redemptions"

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.redemptions: AsyncCollection[Document] = db[REDEMPTIONS]
        self.stock: AsyncCollection[Document] = db[STOCK]

    # ------------------------------------------------------------------------------------------ records
    async def create(self, record: RedemptionRecord) -> RedemptionRecord:
        try:
            await self.redemptions.insert_one(_to_document(record))
        except DuplicateKeyError:
            stored = await self.get(record.key)
            assert stored is not None  # records are never deleted
            return stored
        return record

    async def get(self, key: str) -> RedemptionRecord | None:
        document = await self.redemptions.find_one({"_id": key})
        return None if document is None else _from_document(document)

    async def finish(
        self,
        key: str,
        state: Literal["completed", "rolled_back"],
        *,
        at: datetime,
        voucher_code: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        fields: Document = {"state": state, "finished_at": at}
        if state == "completed":
            fields["voucher_code"] = voucher_code
        else:
            fields |= {"error_code": error_code, "error_message": error_message}
        result = await self.redemptions.update_one({"_id": key, "state": "pending"}, {"$set": fields})
        return result.modified_count == 1

    async def pending(self, *, older_than: datetime, limit: int) -> list[RedemptionRecord]:
        cursor = (
            self.redemptions.find({"state": "pending", "created_at": {"$lt": older_than}})
            .sort("created_at", ASCENDING)
            .limit(limit)
        )
        return [_from_document(document) async for document in cursor]

    async def for_customer(self, customer_id: str) -> list[RedemptionRecord]:
        """Every redemption of a customer, newest first (exports, support)."""
        cursor = self.redemptions.find({"customer_id": customer_id}).sort("created_at", -1)
        return [_from_document(document) async for document in cursor]

    # ------------------------------------------------------------------------------------------ stock
    async def take_stock(self, reward_id: str, key: str, *, stock: int) -> Take:
        query = {"_id": reward_id, "remaining": {"$gt": 0}, "keys": {"$ne": key}}
        update = {"$inc": {"remaining": -1}, "$push": {"keys": key}}
        for _ in range(_TAKE_ROUNDS):
            result = await self.stock.update_one(query, update)
            if result.modified_count == 1:
                return Take.FRESH
            if await self.stock.find_one({"_id": reward_id, "keys": key}, {"_id": 1}) is not None:
                return Take.HELD
            document = await self.stock.find_one({"_id": reward_id}, {"remaining": 1})
            if document is None:
                # First use of this reward: seed its counter from the program (concurrent seeds make one).
                with contextlib.suppress(DuplicateKeyError):
                    await self.stock.update_one(
                        {"_id": reward_id},
                        {"$setOnInsert": {"remaining": stock, "stock": stock, "keys": []}},
                        upsert=True,
                    )
            elif document["remaining"] <= 0:
                return Take.FULL
            # else: seeded or given back between the update and the read: take again.
        return Take.FULL

    async def give_back_stock(self, reward_id: str, key: str) -> None:
        await self.stock.update_one(
            {"_id": reward_id, "keys": key}, {"$inc": {"remaining": 1}, "$pull": {"keys": key}}
        )

    async def remaining(self, reward_ids: list[str]) -> dict[str, int]:
        if not reward_ids:
            return {}
        cursor = self.stock.find({"_id": {"$in": reward_ids}}, {"remaining": 1})
        return {document["_id"]: int(document["remaining"]) async for document in cursor}

    async def sync_stock(self, reward_id: str, stock: int) -> bool:
        document = await self.stock.find_one({"_id": reward_id}, {"stock": 1})
        if document is None or document["stock"] == stock:
            return False  # never used yet (it is seeded with the new stock), or unchanged
        # Conditional on the stock it was read with: two processes syncing apply the difference once.
        result = await self.stock.update_one(
            {"_id": reward_id, "stock": document["stock"]},
            {"$inc": {"remaining": stock - int(document["stock"])}, "$set": {"stock": stock}},
        )
        return result.modified_count == 1

    # ------------------------------------------------------------------------------------------ merges
    async def reassign_customer(self, from_id: str, into_id: str) -> int:
        result = await self.redemptions.update_many(
            {"customer_id": from_id}, {"$set": {"customer_id": into_id}}
        )
        return result.modified_count

    # ------------------------------------------------------------------------------------------ personal data
    async def export_customer(self, customer_id: str) -> list[dict[str, Any]]:
        cursor = self.redemptions.find({"customer_id": customer_id}).sort("created_at", 1)
        return [document async for document in cursor]

    async def erase_customer(self, customer_id: str) -> int:
        """Redemptions hold no personal data (reward, points, voucher code): they stay, for accounting."""
        return 0
