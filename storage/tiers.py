"""Tier changes on MongoDB: the tier on the customer document (with pending changes) and the history
in ``tier_history``. See :mod:`loyalty.tiers` for why a change is pushed as pending with the tier."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Final

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from loyalty.tiers import TierChange
from storage.clients import Document
from storage.ledger import CUSTOMERS

TIER_HISTORY: Final = "tier_history"
TIER_REVIEWS: Final = "tier_reviews"


class MongoTierRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._customers = db[CUSTOMERS]
        self._history = db[TIER_HISTORY]
        self._reviews = db[TIER_REVIEWS]

    async def change_tier(self, change: TierChange, *, expected: str, review_period: str | None) -> bool:
        query: Document = {"_id": change.customer_id, "status": "active", "tier": expected}
        values: Document = {"tier": change.to_tier, "tier_since": change.at}
        if review_period is not None:
            query["last_review"] = {"$ne": review_period}
            values["last_review"] = review_period
        result = await self._customers.update_one(
            query, {"$set": values, "$push": {"pending_tier": _doc(change)}}
        )
        return result.modified_count == 1

    async def pending_changes(self, limit: int) -> list[TierChange]:
        cursor = self._customers.find({"pending_tier.id": {"$exists": True}}, {"pending_tier": 1}).limit(
            limit
        )
        return [TierChange(**item) async for doc in cursor for item in doc.get("pending_tier") or ()]

    async def record(self, change: TierChange) -> None:
        doc = _doc(change)
        doc["_id"] = doc.pop("id")
        with contextlib.suppress(DuplicateKeyError):  # recorded before a crash: once is enough
            await self._history.insert_one(doc)

    async def done(self, change: TierChange) -> None:
        await self._customers.update_one(
            {"_id": change.customer_id}, {"$pull": {"pending_tier": {"id": change.id}}}
        )

    async def history(self, customer_id: str) -> list[TierChange]:
        cursor = self._history.find({"customer_id": customer_id}).sort("at", ASCENDING)
        return [
            TierChange(id=doc.pop("_id"), **{k: v for k, v in doc.items() if k != "merged_from"})
            async for doc in cursor
        ]

    async def customers_in_tiers(
        self, tiers: list[str], after: str | None, limit: int
    ) -> list[tuple[str, str]]:
        query: Document = {"status": "active", "tier": {"$in": tiers}}
        if after is not None:
            query["_id"] = {"$gt": after}
        cursor = self._customers.find(query, {"tier": 1}).sort("_id", ASCENDING).limit(limit)
        return [(doc["_id"], doc["tier"]) async for doc in cursor]

    async def review_completed(self, period: str) -> bool:
        return await self._reviews.count_documents({"_id": period}, limit=1) > 0

    async def complete_review(self, period: str, report: dict[str, int], at: datetime) -> None:
        await self._reviews.update_one({"_id": period}, {"$set": {"at": at, **report}}, upsert=True)

    async def reassign_customer(self, from_id: str, into_id: str) -> int:
        result = await self._history.update_many(
            {"customer_id": from_id}, {"$set": {"customer_id": into_id, "merged_from": from_id}}
        )
        return result.modified_count


def _doc(change: TierChange) -> Document:
    doc = change.model_dump()
    doc["vouchers"] = [list(pair) for pair in change.vouchers]
    return doc
