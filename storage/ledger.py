"""The points ledger on MongoDB: entries in ``ledger``, the wallet inside each ``customers`` document.

The wallet sub-document (``wallet``) holds ``balance``, ``lifetime``, ``q`` (qualifying points by local
month), ``lots`` (``k`` key, ``n`` remaining, ``x`` expiry, ``t`` earned), ``journal`` (``k`` key, ``at``),
``v`` (version) and ``cb`` (the compaction watermark). See :mod:`loyalty.ledger` for the protocol; this
module only translates it into single-document conditional updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from loyalty.ledger import EPOCH, JournalItem, LedgerEntry, Lot, Wallet, WalletChange
from storage.clients import Document
from storage.paging import newest_first

LEDGER: Final = "ledger"
CUSTOMERS: Final = "customers"

_WALLET_FIELDS: Final = {"status": 1, "wallet": 1}


def new_wallet() -> Document:
    """The wallet of a new customer (every field present: the apply filter compares ``cb``)."""
    return {"balance": 0, "lifetime": 0, "q": {}, "lots": [], "journal": [], "v": 0, "cb": EPOCH}


class MongoLedgerRepository:
    name: Final = "ledger"

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._ledger = db[LEDGER]
        self._customers = db[CUSTOMERS]

    # ---------------------------------------------------------------- entries
    async def claim(self, entry: LedgerEntry) -> LedgerEntry | None:
        try:
            await self._ledger.insert_one(_entry_doc(entry))
        except DuplicateKeyError:
            existing = await self.entry(entry.key)
            if existing is None:  # released between our insert and our read: claim again
                return await self.claim(entry)
            return existing
        return None

    async def entry(self, key: str) -> LedgerEntry | None:
        doc = await self._ledger.find_one({"_id": key})
        return _entry(doc) if doc is not None else None

    async def set_points(self, key: str, points: int) -> None:
        await self._ledger.update_one({"_id": key, "state": "pending"}, {"$set": {"points": points}})

    async def refuse(self, entry: LedgerEntry, code: str) -> bool:
        result = await self._customers.update_one(
            {"_id": entry.customer_id, "wallet.journal.k": {"$ne": entry.key}},
            {"$push": {"wallet.journal": {"k": entry.key, "at": entry.created_at, "n": 0, "void": True}}},
        )
        if result.modified_count != 1:
            return False
        await self._ledger.update_one(
            {"_id": entry.key, "state": "pending"}, {"$set": {"state": "void", "void_code": code}}
        )
        return True

    async def release(self, key: str) -> None:
        await self._ledger.delete_one({"_id": key, "state": "pending", "applied": False})

    async def rebase(self, key: str, created_at: datetime, now: datetime) -> LedgerEntry | None:
        result = await self._ledger.update_one(
            {"_id": key, "state": "pending", "applied": False, "created_at": created_at},
            {"$set": {"created_at": now}},
        )
        return await self.entry(key) if result.modified_count else None

    async def entries(
        self, customer_id: str, *, limit: int, before: tuple[datetime, str] | None
    ) -> list[LedgerEntry]:
        # `state` is checked here, not in the filter: with it the query could not use the
        # (customer_id, created_at, _id) index on SecantusDB (see storage.paging); void entries are rare.
        documents = await newest_first(
            self._ledger,
            {"customer_id": customer_id},
            limit=limit,
            before=before,
            keep=lambda document: document.get("state") == "pending",
        )
        return [_entry(document) for document in documents]

    async def all_entries(self, customer_id: str) -> list[LedgerEntry]:
        return [_entry(doc) async for doc in self._ledger.find({"customer_id": customer_id})]

    async def pending_entries(self, older_than: datetime, limit: int) -> list[LedgerEntry]:
        cursor = self._ledger.find(
            {"applied": False, "state": "pending", "created_at": {"$lt": older_than}}
        ).limit(limit)
        return [_entry(doc) async for doc in cursor]

    # ---------------------------------------------------------------- wallets
    async def wallet(self, customer_id: str) -> Wallet | None:
        doc = await self._customers.find_one({"_id": customer_id}, _WALLET_FIELDS)
        return _wallet(doc) if doc is not None else None

    async def apply(self, entry: LedgerEntry, change: WalletChange, *, version: int | None) -> bool:
        # No `status` condition: a customer being merged or erased has a frozen wallet (its watermark
        # at the end of time), which the `cb` condition refuses. One condition fewer on the hot path.
        query: Document = {
            "_id": entry.customer_id,
            "wallet.journal.k": {"$ne": entry.key},
            "wallet.cb": {"$lte": entry.created_at},
        }
        if version is not None:
            query["wallet.v"] = version
        inc: Document = {"wallet.balance": change.balance, "wallet.v": 1}
        if change.lifetime:
            inc["wallet.lifetime"] = change.lifetime
        for month, points in change.qualifying.items():
            if points:
                inc[f"wallet.q.{month}"] = points
        push: Document = {"wallet.journal": {"k": entry.key, "at": entry.created_at, "n": change.balance}}
        update: Document = {"$inc": inc, "$push": push}
        if change.new_lot is not None:
            push["wallet.lots"] = _lot_doc(change.new_lot)
        if change.lots is not None:
            update["$set"] = {"wallet.lots": [_lot_doc(lot) for lot in change.lots]}
        result = await self._customers.update_one(query, update)
        return result.modified_count == 1

    async def compact(self, customer_id: str, items: Sequence[JournalItem], watermark: datetime) -> None:
        # First the outcomes onto the entries (a settled entry is always journaled or marked), then
        # the journal.
        writes = [
            UpdateOne({"_id": item.key}, {"$set": {"state": "void", "void_code": "insufficient_points"}})
            if item.void
            else UpdateOne({"_id": item.key}, {"$set": {"applied": True, "points": item.points}})
            for item in items
        ]
        if writes:
            await self._ledger.bulk_write(writes, ordered=False)
        keys = [item.key for item in items]
        await self._customers.update_one(
            {"_id": customer_id},
            {"$pull": {"wallet.journal": {"k": {"$in": keys}}}, "$max": {"wallet.cb": watermark}},
        )

    async def customers_with_expired_lots(self, now: datetime, limit: int) -> list[str]:
        cursor = self._customers.find({"wallet.lots.x": {"$lte": now}, "status": "active"}, {"_id": 1})
        return [doc["_id"] async for doc in cursor.limit(limit)]

    async def customers_with_old_journal(self, before: datetime, limit: int) -> list[str]:
        cursor = self._customers.find({"wallet.journal.at": {"$lt": before}}, {"_id": 1})
        return [doc["_id"] async for doc in cursor.limit(limit)]

    async def customer_ids(self, after: str | None, limit: int) -> list[str]:
        query: Document = {"_id": {"$gt": after}} if after is not None else {}
        cursor = self._customers.find(query, {"_id": 1}).sort("_id", ASCENDING).limit(limit)
        return [doc["_id"] async for doc in cursor]

    async def set_totals(self, customer_id: str, balance: int, lifetime: int) -> None:
        await self._customers.update_one(
            {"_id": customer_id},
            {"$set": {"wallet.balance": balance, "wallet.lifetime": lifetime}, "$inc": {"wallet.v": 1}},
        )

    async def export_customer(self, customer_id: str) -> list[dict[str, Any]]:
        cursor = self._ledger.find({"customer_id": customer_id}).sort("created_at", ASCENDING)
        return [doc async for doc in cursor]

    async def erase_customer(self, customer_id: str) -> int:
        """The ledger keeps its amounts for accounting (Law 91/2025 allows what the law requires to be
        kept); its entries hold no name, phone or platform identity, so nothing is changed."""
        return 0

    async def reassign_customer(self, from_id: str, into_id: str) -> int:
        result = await self._ledger.update_many(
            {"customer_id": from_id}, {"$set": {"customer_id": into_id, "merged_from": from_id}}
        )
        return result.modified_count


def _entry_doc(entry: LedgerEntry) -> Document:
    doc = entry.model_dump(exclude={"key"})
    doc["_id"] = entry.key
    return doc


def _entry(doc: Document) -> LedgerEntry:
    data = {k: v for k, v in doc.items() if k in LedgerEntry.model_fields}
    return LedgerEntry(key=doc["_id"], **data)


def _lot_doc(lot: Lot) -> Document:
    return {"k": lot.key, "n": lot.remaining, "x": lot.expires_at, "t": lot.earned_at}


def _wallet(doc: Document) -> Wallet:
    wallet: dict[str, Any] = doc.get("wallet") or new_wallet()
    return Wallet(
        customer_id=doc["_id"],
        status=doc.get("status", "active"),
        balance=wallet.get("balance", 0),
        lifetime_earned=wallet.get("lifetime", 0),
        qualifying_by_month=dict(wallet.get("q") or {}),
        lots=tuple(
            Lot(key=lot["k"], remaining=lot["n"], expires_at=lot.get("x"), earned_at=lot["t"])
            for lot in wallet.get("lots") or ()
        ),
        journal=tuple(
            JournalItem(key=item["k"], at=item["at"], points=item.get("n", 0), void=item.get("void", False))
            for item in wallet.get("journal") or ()
        ),
        version=wallet.get("v", 0),
        compacted_before=wallet.get("cb", EPOCH),
    )
