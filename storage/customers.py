"""Customers, identities and merges on MongoDB.

``identities`` maps ``channel:user_id`` (its ``_id``, so unique) to a customer id. ``customers`` holds
the profile, follow state, tier and the wallet (see :mod:`storage.ledger`); a unique partial index keeps
one *active* customer per phone number. ``merges`` is the audit trail of merges, with the steps done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from loyalty.customers import Customer, Identity, MergeRecord
from loyalty.ledger import EPOCH, FROZEN
from storage.clients import Document
from storage.ledger import CUSTOMERS, new_wallet

IDENTITIES: Final = "identities"
MERGES: Final = "merges"


class MongoCustomerRepository:
    name: Final = "customers"

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._customers = db[CUSTOMERS]
        self._identities = db[IDENTITIES]
        self._merges = db[MERGES]

    # ---------------------------------------------------------------- look-ups
    async def get(self, customer_id: str) -> Customer | None:
        doc = await self._customers.find_one({"_id": customer_id}, {"wallet.lots": 0, "wallet.journal": 0})
        return _customer(doc) if doc is not None else None

    async def customer_for_identity(self, identity_key: str) -> str | None:
        doc = await self._identities.find_one({"_id": identity_key})
        return str(doc["customer_id"]) if doc is not None else None

    async def claim_identity(self, identity_key: str, customer_id: str, at: datetime) -> bool:
        try:
            await self._identities.insert_one({"_id": identity_key, "customer_id": customer_id, "at": at})
        except DuplicateKeyError:
            return False
        return True

    async def insert(self, customer: Customer) -> bool:
        doc = _customer_doc(customer)
        doc["wallet"] = new_wallet()
        try:
            await self._customers.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def referral_code_taken(self, code: str) -> bool:
        return await self._customers.count_documents({"referral_code": code}, limit=1) > 0

    async def by_phone(self, phone: str) -> Customer | None:
        doc = await self._customers.find_one(
            {"phone": phone, "status": "active"}, {"wallet.lots": 0, "wallet.journal": 0}
        )
        return _customer(doc) if doc is not None else None

    async def by_referral_code(self, code: str) -> Customer | None:
        doc = await self._customers.find_one({"referral_code": code}, {"wallet.lots": 0, "wallet.journal": 0})
        return _customer(doc) if doc is not None else None

    # ---------------------------------------------------------------- changes
    async def set_phone(self, customer_id: str, phone: str, at: datetime) -> bool:
        try:
            result = await self._customers.update_one(
                {"_id": customer_id, "status": "active"},
                {"$set": {"phone": phone, "phone_verified_at": at}},
            )
        except DuplicateKeyError:
            return False
        return result.matched_count == 1

    async def update_profile(self, customer_id: str, fields: Mapping[str, Any]) -> bool:
        values = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in fields.items()}
        result = await self._customers.update_one({"_id": customer_id, "status": "active"}, {"$set": values})
        return result.matched_count == 1

    async def set_following(self, customer_id: str, channel: str, following: bool, at: datetime) -> None:
        await self._customers.update_one(
            {"_id": customer_id},
            {"$set": {f"following.{channel}": following, f"last_interaction.{channel}": at}},
        )

    async def touch(self, customer_id: str, channel: str, at: datetime) -> None:
        await self._customers.update_one({"_id": customer_id}, {"$max": {f"last_interaction.{channel}": at}})

    async def record_order(self, customer_id: str, at: datetime) -> None:
        await self._customers.update_one({"_id": customer_id}, {"$max": {"last_order_at": at}})

    async def add_tags(self, customer_id: str, tags: Sequence[str]) -> None:
        await self._customers.update_one({"_id": customer_id}, {"$addToSet": {"tags": {"$each": list(tags)}}})

    async def set_tier(self, customer_id: str, expected: str, tier: str, at: datetime) -> bool:
        result = await self._customers.update_one(
            {"_id": customer_id, "tier": expected}, {"$set": {"tier": tier, "tier_since": at}}
        )
        return result.modified_count == 1

    # ---------------------------------------------------------------- merging
    async def start_merge(self, record: MergeRecord) -> MergeRecord:
        doc = record.model_dump(exclude={"id"})
        doc["_id"] = record.id
        try:
            await self._merges.insert_one(doc)
        except DuplicateKeyError:
            existing = await self._merges.find_one({"_id": record.id})
            assert existing is not None
            return _merge(existing)
        return record

    async def merge_step_done(self, merge_id: str, step: str, moved: int) -> None:
        await self._merges.update_one(
            {"_id": merge_id}, {"$addToSet": {"steps": step}, "$set": {f"moved.{step}": moved}}
        )

    async def finish_merge(self, merge_id: str, at: datetime) -> None:
        await self._merges.update_one({"_id": merge_id, "finished_at": None}, {"$set": {"finished_at": at}})

    async def unfinished_merges(self) -> list[MergeRecord]:
        return [_merge(doc) async for doc in self._merges.find({"finished_at": None}).sort("started_at", 1)]

    async def merges_of(self, customer_id: str) -> list[MergeRecord]:
        cursor = self._merges.find({"$or": [{"from_id": customer_id}, {"into_id": customer_id}]})
        return [_merge(doc) async for doc in cursor]

    async def freeze(self, from_id: str, into_id: str) -> bool:
        """Mark the source as merging and freeze its wallet: the watermark goes to the end of time, so
        every ledger apply (which requires ``cb <= created_at``) is refused from here on. The open
        watermark is kept in ``cb_open`` for the survivor."""
        result = await self._customers.update_one(
            {
                "_id": from_id,
                "status": {"$in": ["active", "merging"]},
                "merged_into": {"$in": [None, into_id]},
                "wallet.cb": {"$lt": FROZEN},
            },
            [
                {
                    "$set": {
                        "status": "merging",
                        "merged_into": into_id,
                        "wallet.cb_open": "$wallet.cb",
                        "wallet.cb": FROZEN,
                    }
                }
            ],
        )
        if result.matched_count == 1:
            return True
        frozen = await self._customers.count_documents(
            {"_id": from_id, "merged_into": into_id, "wallet.cb": FROZEN}, limit=1
        )
        return frozen == 1

    async def move_wallet(self, from_id: str, into_id: str) -> int:
        """Add the (frozen) source wallet to the survivor once, then empty the source."""
        source = await self._customers.find_one({"_id": from_id}, {"wallet": 1})
        wallet: Document = (source or {}).get("wallet") or new_wallet()
        inc: Document = {
            "wallet.balance": wallet["balance"],
            "wallet.lifetime": wallet["lifetime"],
            "wallet.v": 1,
        }
        for month, points in (wallet.get("q") or {}).items():
            inc[f"wallet.q.{month}"] = points
        await self._customers.update_one(
            {"_id": into_id, "merged_from": {"$ne": from_id}},
            {
                "$inc": inc,
                "$push": {
                    "wallet.lots": {"$each": wallet.get("lots") or []},
                    "wallet.journal": {"$each": wallet.get("journal") or []},
                    "merged_from": from_id,
                },
                "$max": {"wallet.cb": wallet.get("cb_open") or EPOCH},
            },
        )
        # Only once the survivor has it (a resumed merge finds `merged_from` and skips the line above).
        emptied = new_wallet() | {"v": wallet.get("v", 0) + 1, "cb": FROZEN}  # merged: frozen for good
        await self._customers.update_one({"_id": from_id, "status": "merging"}, {"$set": {"wallet": emptied}})
        return int(wallet["balance"])

    async def move_identities(self, from_id: str, into_id: str) -> int:
        source = await self._customers.find_one({"_id": from_id}, {"identities": 1})
        identities = (source or {}).get("identities") or []
        if identities:
            await self._customers.update_one(
                {"_id": into_id}, {"$addToSet": {"identities": {"$each": identities}}}
            )
        result = await self._identities.update_many(
            {"customer_id": from_id}, {"$set": {"customer_id": into_id}}
        )
        return result.modified_count

    async def move_profile(self, from_id: str, into_id: str, at: datetime) -> int:
        """Fill the survivor's empty profile fields from the source; keep the latest activity."""
        source = await self._customers.find_one({"_id": from_id})
        target = await self._customers.find_one({"_id": into_id})
        if source is None or target is None:
            return 0
        fill: Document = {}
        for name in ("name", "birthday", "gender", "locale", "phone", "phone_verified_at"):
            if target.get(name) is None and source.get(name) is not None:
                fill[name] = source[name]
        for channel, following in (source.get("following") or {}).items():
            if channel not in (target.get("following") or {}):
                fill[f"following.{channel}"] = following
        latest: Document = {
            f"last_interaction.{ch}": t for ch, t in (source.get("last_interaction") or {}).items()
        }
        if source.get("last_order_at") is not None:
            latest["last_order_at"] = source["last_order_at"]
        update: Document = {"$addToSet": {"tags": {"$each": source.get("tags") or []}}}
        if fill:
            update["$set"] = fill
        if latest:
            update["$max"] = latest
        if "phone" in fill:
            # the source is frozen (not "active"), so the unique phone index no longer counts it
            await self._customers.update_one({"_id": from_id}, {"$unset": {"phone": ""}})
        await self._customers.update_one({"_id": into_id}, update)
        return len(fill)

    async def mark_merged(self, from_id: str, into_id: str, at: datetime) -> None:
        await self._customers.update_one(
            {"_id": from_id}, {"$set": {"status": "merged", "merged_into": into_id, "merged_at": at}}
        )

    # ---------------------------------------------------------------- personal data
    async def export_customer(self, customer_id: str) -> dict[str, Any]:
        doc = await self._customers.find_one({"_id": customer_id}, {"wallet.journal": 0})
        identities = [d async for d in self._identities.find({"customer_id": customer_id})]
        return {
            "customer": doc,
            "identities": identities,
            "merges": [m.model_dump() for m in await self.merges_of(customer_id)],
        }

    async def erase_customer(self, customer_id: str) -> int:
        """Remove the personal fields and identities; the wallet's amounts stay for accounting."""
        await self._identities.delete_many({"customer_id": customer_id})
        result = await self._customers.update_one(
            {"_id": customer_id},
            {
                "$set": {
                    "status": "erased",
                    "wallet.cb": FROZEN,  # the amounts stay, frozen: nothing is earned or spent any more
                    "identities": [],
                    "tags": [],
                    "following": {},
                    "last_interaction": {},
                },
                "$unset": {"name": "", "phone": "", "phone_verified_at": "", "birthday": "", "gender": ""},
            },
        )
        return result.modified_count


def _customer_doc(customer: Customer) -> Document:
    doc = customer.model_dump(exclude={"id", "balance", "lifetime_earned"})
    doc["_id"] = customer.id
    if customer.birthday is not None:
        doc["birthday"] = customer.birthday.isoformat()
    if doc.get("phone") is None:
        doc.pop("phone", None)  # absent, not null: the unique index counts only real numbers
    return doc


def _customer(doc: Document) -> Customer:
    data = {k: v for k, v in doc.items() if k in Customer.model_fields}
    wallet = doc.get("wallet") or {}
    data["identities"] = tuple(Identity(**item) for item in doc.get("identities") or ())
    return Customer(
        id=doc["_id"], balance=wallet.get("balance", 0), lifetime_earned=wallet.get("lifetime", 0), **data
    )


def _merge(doc: Document) -> MergeRecord:
    data = {k: v for k, v in doc.items() if k in MergeRecord.model_fields}
    return MergeRecord(id=doc["_id"], **data)
