"""MongoDB storage of vouchers (``vouchers``) and their issue-limit counters (``voucher_counters``).

A voucher document's ``_id`` is its code. Every state change is one ``update_one`` with the expected
state in the filter, checked through ``modified_count`` (never ``find_one_and_update``, which scans the
whole collection on SecantusDB). See :mod:`loyalty.vouchers` for the protocol these writes implement.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, Final, Literal

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from loyalty.vouchers import Counter, Take, Voucher, VoucherStatus
from storage.clients import Document

VOUCHERS: Final = "vouchers"
COUNTERS: Final = "voucher_counters"

# The redemption fields a release clears, so a voucher given back looks as it did before.
_REDEMPTION_FIELDS: Final = ("redeemed_at", "redeemed_by", "order_id", "order_total", "discount")


def _to_document(voucher: Voucher) -> Document:
    document = voucher.model_dump(exclude={"code"})
    document["_id"] = voucher.code
    return document


def _from_document(document: Document) -> Voucher:
    fields = {name: value for name, value in document.items() if name != "_id"}
    return Voucher.model_validate({**fields, "code": document["_id"]})


class MongoVoucherRepository:
    """Implements ``loyalty.vouchers.VoucherRepository`` and ``loyalty.customers.CustomerOwned``."""

    name: Final = "vouchers"

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.vouchers: AsyncCollection[Document] = db[VOUCHERS]
        self.counters: AsyncCollection[Document] = db[COUNTERS]

    # ------------------------------------------------------------------------------------------ vouchers
    async def insert(self, voucher: Voucher) -> Voucher | None:
        try:
            await self.vouchers.insert_one(_to_document(voucher))
        except DuplicateKeyError:
            # Either the key (a concurrent issue with the same key won) or, very rarely, the code.
            return await self.by_key(voucher.key)
        return voucher

    async def get(self, code: str) -> Voucher | None:
        document = await self.vouchers.find_one({"_id": code})
        return None if document is None else _from_document(document)

    async def by_key(self, key: str) -> Voucher | None:
        document = await self.vouchers.find_one({"key": key})
        return None if document is None else _from_document(document)

    async def list_for(
        self, customer_id: str, statuses: tuple[VoucherStatus, ...], *, now: datetime, expired: bool | None
    ) -> list[Voucher]:
        query: Document = {"customer_id": customer_id, "status": {"$in": list(statuses)}}
        if expired is True:
            query["expires_at"] = {"$lte": now}
        elif expired is False:
            query["expires_at"] = {"$gt": now}
        cursor = self.vouchers.find(query).sort([("issued_at", DESCENDING), ("_id", DESCENDING)])
        return [_from_document(document) async for document in cursor]

    async def decide(self, code: str, status: Literal["issued", "refused"]) -> bool:
        result = await self.vouchers.update_one(
            {"_id": code, "status": "pending"}, {"$set": {"status": status}}
        )
        return result.modified_count == 1

    async def redeem(
        self,
        code: str,
        *,
        customer_id: str | None,
        now: datetime,
        by: str,
        order_id: str | None,
        order_total: int,
        discount: int,
    ) -> bool:
        query: Document = {"_id": code, "status": "issued", "expires_at": {"$gt": now}}
        if customer_id is not None:
            query["customer_id"] = customer_id
        update = {
            "$set": {
                "status": "redeemed",
                "redeemed_at": now,
                "redeemed_by": by,
                "order_id": order_id,
                "order_total": order_total,
                "discount": discount,
            }
        }
        result = await self.vouchers.update_one(query, update)
        return result.modified_count == 1

    async def release(self, code: str, *, order_id: str) -> bool:
        result = await self.vouchers.update_one(
            {"_id": code, "status": "redeemed", "order_id": order_id},
            {"$set": {"status": "issued", **dict.fromkeys(_REDEMPTION_FIELDS)}},
        )
        return result.modified_count == 1

    async def void(self, code: str, *, reason: str, now: datetime, by: str) -> bool:
        result = await self.vouchers.update_one(
            {"_id": code, "status": "issued"},
            {"$set": {"status": "void", "void_reason": reason, "voided_at": now, "voided_by": by}},
        )
        return result.modified_count == 1

    async def expire_due(self, now: datetime) -> int:
        result = await self.vouchers.update_many(
            {"status": "issued", "expires_at": {"$lte": now}},
            {"$set": {"status": "expired", "expired_at": now}},
        )
        return result.modified_count

    # ------------------------------------------------------------------------------------------ counters
    async def take(self, counter: Counter, key: str) -> Take:
        query = {"_id": counter.id, "count": {"$lt": counter.limit}, "keys": {"$ne": key}}
        update: dict[str, Any] = {"$inc": {"count": 1}, "$push": {"keys": key}}
        on_insert: Document = {"template_id": counter.template_id}
        if counter.customer_id is not None:
            on_insert["customer_id"] = counter.customer_id
        try:
            result = await self.counters.update_one(query, {**update, "$setOnInsert": on_insert}, upsert=True)
        except DuplicateKeyError:
            # The counter exists but the filter did not match (full, or the key holds a slot), or a
            # concurrent first use created it a moment ago: try once more without the upsert.
            result = await self.counters.update_one(query, update)
            if result.modified_count == 1:
                return Take.FRESH
        else:
            if result.modified_count == 1 or result.upserted_id is not None:
                return Take.FRESH
        holding = await self.counters.find_one({"_id": counter.id, "keys": key}, {"_id": 1})
        return Take.HELD if holding is not None else Take.FULL

    async def give_back(self, counter: Counter, key: str) -> None:
        await self.counters.update_one(
            {"_id": counter.id, "keys": key}, {"$inc": {"count": -1}, "$pull": {"keys": key}}
        )

    async def count(self, counter_id: str) -> int:
        """How many slots of a counter are taken (reports and tests)."""
        document = await self.counters.find_one({"_id": counter_id}, {"count": 1})
        return 0 if document is None else int(document["count"])

    # ------------------------------------------------------------------------------------------ merges
    async def reassign_customer(self, from_id: str, into_id: str) -> int:
        """Move ``from_id``'s vouchers to ``into_id``; add its per-customer counts to the survivor's.

        Idempotent: the survivor's counter records each merged customer (``merged_from``), so a repeated
        merge (a retry after a crash between the two writes) adds nothing twice.
        """
        async for counter in self.counters.find({"customer_id": from_id}):
            template_id = counter["template_id"]
            into_counter = f"customer:{template_id}:{into_id}"
            # A duplicate key: this merge was already added to the survivor's counter.
            with contextlib.suppress(DuplicateKeyError):
                await self.counters.update_one(
                    {"_id": into_counter, "merged_from": {"$ne": from_id}},
                    {
                        "$inc": {"count": int(counter["count"])},
                        "$addToSet": {
                            "keys": {"$each": list(counter.get("keys", []))},
                            "merged_from": from_id,
                        },
                        "$setOnInsert": {"template_id": template_id, "customer_id": into_id},
                    },
                    upsert=True,
                )
            await self.counters.delete_one({"_id": counter["_id"]})
        result = await self.vouchers.update_many({"customer_id": from_id}, {"$set": {"customer_id": into_id}})
        return result.modified_count

    # ------------------------------------------------------------------------------------------ personal data
    async def export_customer(self, customer_id: str) -> list[dict[str, Any]]:
        cursor = self.vouchers.find({"customer_id": customer_id}).sort("issued_at", 1)
        return [document async for document in cursor]

    async def erase_customer(self, customer_id: str) -> int:
        """Vouchers hold no personal data (a code, amounts, dates): they stay, for accounting."""
        return 0
