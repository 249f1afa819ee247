"""Consent records and erasure audits on MongoDB (:class:`loyalty.privacy.ConsentRepository`).

``consents`` holds one document per act (given or withdrawn), never updated except to move it to the
surviving customer on merge; the unique index ``(origin_id, purpose, seq)`` makes two concurrent acts
of one customer on one purpose unable to take the same place in the order. ``erasures`` holds one audit
document per erased customer (``_id`` = the customer id, so a repeated request finds the first).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from loyalty.privacy import ConsentRecord, ErasureRecord
from storage.clients import Document

CONSENTS: Final = "consents"
ERASURES: Final = "erasures"
_ORDER: Final = [("at", ASCENDING), ("seq", ASCENDING), ("_id", ASCENDING)]
_LATEST_FIRST: Final = [("at", DESCENDING), ("seq", DESCENDING), ("_id", DESCENDING)]


class MongoConsentRepository:
    """Consents (a personal data holder and customer-owned) and the erasure audit trail."""

    name: Final = "consents"

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._consents = db[CONSENTS]
        self._erasures = db[ERASURES]

    # ---------------------------------------------------------------- consent records
    async def insert(self, record: ConsentRecord) -> bool:
        try:
            await self._consents.insert_one(_consent_doc(record))
        except DuplicateKeyError:
            return False
        return True

    async def latest(self, customer_id: str, purpose: str) -> ConsentRecord | None:
        doc = await self._consents.find_one(
            {"customer_id": customer_id, "purpose": purpose}, sort=_LATEST_FIRST
        )
        return _consent(doc) if doc is not None else None

    async def last_seq(self, origin_id: str, purpose: str) -> int:
        doc = await self._consents.find_one(
            {"origin_id": origin_id, "purpose": purpose}, {"seq": 1}, sort=[("seq", DESCENDING)]
        )
        return int(doc["seq"]) if doc is not None else 0

    async def records(self, customer_id: str) -> list[ConsentRecord]:
        return [_consent(doc) async for doc in self._consents.find({"customer_id": customer_id}, sort=_ORDER)]

    async def reassign_customer(self, from_id: str, into_id: str) -> int:
        """Merge: the records move to the survivor; ``origin_id`` (and so the unique order) stays."""
        result = await self._consents.update_many(
            {"customer_id": from_id}, {"$set": {"customer_id": into_id}}
        )
        return result.modified_count

    # ---------------------------------------------------------------- personal data holder
    async def export_customer(self, customer_id: str) -> list[dict[str, Any]]:
        return [record.model_dump(mode="json") for record in await self.records(customer_id)]

    async def erase_customer(self, customer_id: str) -> int:
        """Delete the customer's consent records.

        Once a customer asked to be forgotten nothing is sent to them any more, so there is no consent
        left to prove; the erasure audit entry is the brand's record that the request was honoured.
        """
        result = await self._consents.delete_many({"customer_id": customer_id})
        return result.deleted_count

    # ---------------------------------------------------------------- erasure audit
    async def start_erasure(self, record: ErasureRecord) -> ErasureRecord:
        doc = record.model_dump()
        doc["_id"] = doc.pop("customer_id")
        try:
            await self._erasures.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.erasure(record.customer_id)
            if existing is not None:
                return existing
            raise
        return record

    async def erasure_step_done(self, customer_id: str, holder: str, count: int) -> None:
        await self._erasures.update_one({"_id": customer_id}, {"$set": {f"erased.{holder}": count}})

    async def finish_erasure(self, customer_id: str, at: datetime) -> None:
        await self._erasures.update_one(
            {"_id": customer_id, "finished_at": None}, {"$set": {"finished_at": at}}
        )

    async def erasure(self, customer_id: str) -> ErasureRecord | None:
        doc = await self._erasures.find_one({"_id": customer_id})
        return _erasure(doc) if doc is not None else None

    async def unfinished_erasures(self) -> list[ErasureRecord]:
        return [
            _erasure(doc)
            async for doc in self._erasures.find({"finished_at": None}, sort=[("requested_at", 1)])
        ]


def _consent_doc(record: ConsentRecord) -> Document:
    doc = record.model_dump()
    doc["_id"] = doc.pop("id")
    return doc


def _consent(doc: Document) -> ConsentRecord:
    data = dict(doc)
    data["id"] = data.pop("_id")
    return ConsentRecord.model_validate(data)


def _erasure(doc: Document) -> ErasureRecord:
    data = dict(doc)
    data["customer_id"] = data.pop("_id")
    return ErasureRecord.model_validate(data)
