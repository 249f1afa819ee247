"""QR check-in on MongoDB: ``checkin_codes``, ``checkins`` (one claim per customer and code, ``_id`` = the
claim key) and ``checkin_daily`` (one counter per customer and local day, ``_id`` = ``<customer>:<day>``).

Every hot-path write is one conditional ``update_one`` (or an insert guarded by the ``_id``) checked
through ``modified_count``: never ``find_one_and_update``, which scans the collection on SecantusDB.
The protocol these writes implement is in :mod:`loyalty.checkin`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from loyalty.checkin import CheckinClaim, CheckinCode, claim_key
from storage.clients import Document

CODES: Final = "checkin_codes"
CLAIMS: Final = "checkins"
DAILY: Final = "checkin_daily"


class MongoCheckinRepository:
    """Also a ``loyalty.customers.CustomerOwned`` (merges) and a ``loyalty.privacy.PersonalDataHolder``."""

    name: Final = "checkins"

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._codes = db[CODES]
        self._claims = db[CLAIMS]
        self._daily = db[DAILY]

    # ---------------------------------------------------------------- codes
    async def insert_code(self, code: CheckinCode) -> bool:
        doc = code.model_dump(exclude={"id"})
        doc["_id"] = code.id
        try:
            await self._codes.insert_one(doc)
        except DuplicateKeyError as error:
            if "short_code" in str(error.details or error):
                return False
            raise
        return True

    async def code(self, code_id: str) -> CheckinCode | None:
        doc = await self._codes.find_one({"_id": code_id})
        return _code(doc) if doc is not None else None

    async def code_by_short(self, short_code: str) -> CheckinCode | None:
        doc = await self._codes.find_one({"short_code": short_code})
        return _code(doc) if doc is not None else None

    async def codes(self, *, live_at: datetime | None, store: str | None, limit: int) -> list[CheckinCode]:
        query: dict[str, Any] = {}
        if live_at is not None:
            query.update(status="active", expires_at={"$gt": live_at})
        if store is not None:
            query["store"] = store
        cursor = self._codes.find(query).sort("created_at", DESCENDING).limit(limit)
        return [_code(doc) async for doc in cursor]

    async def revoke(self, code_id: str, at: datetime) -> bool:
        result = await self._codes.update_one(
            {"_id": code_id, "status": "active"}, {"$set": {"status": "revoked", "revoked_at": at}}
        )
        if result.modified_count:
            return True
        return await self._codes.count_documents({"_id": code_id}, limit=1) > 0

    async def take_use(self, code_id: str, now: datetime) -> bool:
        result = await self._codes.update_one(
            {"_id": code_id, "status": "active", "expires_at": {"$gt": now}, "remaining": {"$gt": 0}},
            {"$inc": {"remaining": -1}},
        )
        return result.modified_count == 1

    async def give_back_use(self, code_id: str) -> None:
        await self._codes.update_one(
            {"_id": code_id, "$expr": {"$lt": ["$remaining", "$max_uses"]}}, {"$inc": {"remaining": 1}}
        )

    # ---------------------------------------------------------------- daily counters
    async def take_daily(self, customer_id: str, day: str, cap: int, *, expires_at: datetime) -> bool:
        counter_id = f"{customer_id}:{day}"
        update = {
            "$inc": {"count": 1},
            "$setOnInsert": {"customer_id": customer_id, "day": day, "expires_at": expires_at},
        }
        try:
            result = await self._daily.update_one(
                {"_id": counter_id, "count": {"$lt": cap}}, update, upsert=True
            )
        except DuplicateKeyError:
            # The counter exists and is at the cap, or a concurrent first scan of the day created it
            # between our filter and our insert: only a plain conditional update can tell.
            result = await self._daily.update_one(
                {"_id": counter_id, "count": {"$lt": cap}}, {"$inc": {"count": 1}}
            )
            return result.modified_count == 1
        return result.modified_count == 1 or result.upserted_id is not None

    async def give_back_daily(self, customer_id: str, day: str) -> None:
        await self._daily.update_one(
            {"_id": f"{customer_id}:{day}", "count": {"$gt": 0}}, {"$inc": {"count": -1}}
        )

    async def daily_count(self, customer_id: str, day: str) -> int:
        doc = await self._daily.find_one({"_id": f"{customer_id}:{day}"})
        return int(doc["count"]) if doc is not None else 0

    # ---------------------------------------------------------------- claims
    async def claim(self, claim: CheckinClaim) -> bool:
        try:
            await self._claims.insert_one(_claim_doc(claim))
        except DuplicateKeyError:
            return False
        return True

    async def claim_of(self, key: str) -> CheckinClaim | None:
        doc = await self._claims.find_one({"_id": key})
        return _claim(doc) if doc is not None else None

    async def take_over(self, key: str, seen_lease: datetime, lease_until: datetime) -> bool:
        result = await self._claims.update_one(
            {"_id": key, "state": "pending", "lease_until": seen_lease},
            {"$set": {"lease_until": lease_until}},
        )
        return result.modified_count == 1

    async def mark_taken(self, key: str) -> None:
        await self._claims.update_one({"_id": key, "state": "pending"}, {"$set": {"taken": True}})

    async def release(self, key: str, at: datetime) -> None:
        await self._claims.update_one({"_id": key, "state": "pending"}, {"$set": {"lease_until": at}})

    async def drop_claim(self, key: str) -> None:
        await self._claims.delete_one({"_id": key, "state": "pending"})

    async def finish(self, key: str, *, points: int, voucher_id: str | None, at: datetime) -> None:
        await self._claims.update_one(
            {"_id": key, "state": "pending"},
            {"$set": {"state": "rewarded", "points": points, "voucher_id": voucher_id, "rewarded_at": at}},
        )

    async def claims_of_customer(self, customer_id: str, *, limit: int) -> list[CheckinClaim]:
        cursor = self._claims.find({"customer_id": customer_id}).sort("created_at", DESCENDING).limit(limit)
        return [_claim(doc) async for doc in cursor]

    # ---------------------------------------------------------------- merges
    async def reassign_customer(self, from_id: str, into_id: str) -> int:
        """Move ``from_id``'s claims and daily counters to ``into_id``; idempotent.

        A claim's ``_id`` names its customer, so it is copied under the survivor's key and then deleted
        (a re-run finds the copy and only deletes). When both customers scanned the same code, the
        survivor's claim stays and the other one goes: either way the survivor cannot scan it again.
        A daily counter is first marked moved (so a re-run skips it), then added to the survivor's.
        """
        moved = 0
        async for doc in self._claims.find({"customer_id": from_id}):
            copy = {**doc, "_id": claim_key(doc["code_id"], into_id), "customer_id": into_id}
            copy["merged_from"] = from_id
            try:
                await self._claims.insert_one(copy)
                moved += 1
            except DuplicateKeyError:
                pass  # copied by an earlier run, or the survivor has its own scan of this code
            await self._claims.delete_one({"_id": doc["_id"]})
        async for doc in self._daily.find({"customer_id": from_id, "moved_to": {"$exists": False}}):
            marked = await self._daily.update_one(
                {"_id": doc["_id"], "moved_to": {"$exists": False}}, {"$set": {"moved_to": into_id}}
            )
            if not marked.modified_count:
                continue
            await self._daily.update_one(
                {"_id": f"{into_id}:{doc['day']}"},
                {
                    "$inc": {"count": int(doc["count"])},
                    "$setOnInsert": {
                        "customer_id": into_id,
                        "day": doc["day"],
                        "expires_at": doc["expires_at"],
                    },
                },
                upsert=True,
            )
            moved += 1
        return moved

    # ---------------------------------------------------------------- personal data
    async def export_customer(self, customer_id: str) -> list[dict[str, Any]]:
        """Every scan of the customer, oldest first, with the store of the code scanned."""
        claims = [
            _claim(doc) async for doc in self._claims.find({"customer_id": customer_id}).sort("created_at", 1)
        ]
        code_ids = sorted({claim.code_id for claim in claims})
        stores = {
            doc["_id"]: doc.get("store")
            async for doc in self._codes.find({"_id": {"$in": code_ids}}, {"store": 1})
        }
        return [
            {
                **claim.model_dump(mode="python", exclude={"key", "reward_key", "lease_until", "taken"}),
                "store": stores.get(claim.code_id),
            }
            for claim in claims
        ]

    async def erase_customer(self, customer_id: str) -> int:
        """Scans say where and when a person was: they are deleted with the daily counters. The points
        they earned stay in the ledger (amounts are accounting records); an erased customer cannot scan
        again, so the once-per-code guard is not needed any more."""
        claims = await self._claims.delete_many({"customer_id": customer_id})
        daily = await self._daily.delete_many({"customer_id": customer_id})
        return claims.deleted_count + daily.deleted_count


def _code(doc: Document) -> CheckinCode:
    return CheckinCode.model_validate({**doc, "id": doc["_id"]})


def _claim_doc(claim: CheckinClaim) -> Document:
    doc = claim.model_dump(exclude={"key"})
    doc["_id"] = claim.key
    return doc


def _claim(doc: Document) -> CheckinClaim:
    fields = {name: value for name, value in doc.items() if name in CheckinClaim.model_fields}
    return CheckinClaim.model_validate({**fields, "key": doc["_id"]})
