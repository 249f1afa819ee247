"""Referrals in MongoDB, for :class:`loyalty.referral.ReferralService`.

``referrals``: one document per referral, ``_id`` = its id. Among *active* referrals (``active: true``,
a partial unique index each) the referee is unique (one referrer per customer) and so is the referee's
phone hash (one referral per phone, across accounts). A deactivated referral drops ``active`` and so
leaves both indexes, but stays as a record (and its phone hash still counts for
:meth:`MongoReferralRepository.phone_hash_known`).

``referral_counters``: one document per referrer, ``{_id: referrer_id, count, referral_ids}``: the
referrals that took one of the referrer's rewarded slots, taken with a conditional ``update_one``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from loyalty.referral import Referral, ReferralStatus
from storage.clients import Document

REFERRALS: Final = "referrals"
COUNTERS: Final = "referral_counters"

# Indexes (in storage.indexes.INDEXES): referee_id unique where active; phone_hash unique where active;
# phone_hash (every referral, for the "referred before" check); (referrer_id, status) for stats.

_SETTABLE: Final = frozenset(
    {
        "rewarded_at",
        "referrer_points",
        "referee_points",
        "referrer_voucher",
        "referee_voucher",
        "referrer_capped",
    }
)
_SLOT_RETRIES: Final = 5


def _to_document(referral: Referral) -> Document:
    document = referral.model_dump(mode="python", exclude_none=True)
    document["_id"] = document.pop("id")
    if not referral.active:
        del document["active"]  # outside the partial unique indexes
    return document


def _from_document(document: Document) -> Referral:
    data = dict(document)
    data["id"] = data.pop("_id")
    data["active"] = bool(data.get("active"))
    return Referral.model_validate(data)


class MongoReferralRepository:
    """Implements :class:`loyalty.referral.ReferralRepository` (and so ``CustomerOwned``) and
    :class:`loyalty.privacy.PersonalDataHolder`."""

    name: Final = "referrals"

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._referrals: AsyncCollection[Document] = db[REFERRALS]
        self._counters: AsyncCollection[Document] = db[COUNTERS]

    async def insert(self, referral: Referral) -> bool:
        try:
            await self._referrals.insert_one(_to_document(referral))
        except DuplicateKeyError:
            return False
        return True

    async def get(self, referral_id: str) -> Referral | None:
        document = await self._referrals.find_one({"_id": referral_id})
        return _from_document(document) if document is not None else None

    async def active_for_referee(self, referee_id: str) -> Referral | None:
        document = await self._referrals.find_one({"referee_id": referee_id, "active": True})
        return _from_document(document) if document is not None else None

    async def phone_hash_known(self, phone_hash: str) -> bool:
        return await self._referrals.find_one({"phone_hash": phone_hash}, {"_id": 1}) is not None

    async def bind_phone_hash(self, referral_id: str, phone_hash: str) -> bool:
        try:
            await self._referrals.update_one(
                {"_id": referral_id, "phone_hash": {"$exists": False}}, {"$set": {"phone_hash": phone_hash}}
            )
        except DuplicateKeyError:
            return False
        return True

    async def transition(
        self,
        referral_id: str,
        from_status: ReferralStatus,
        to_status: ReferralStatus,
        fields: Mapping[str, Any],
    ) -> bool:
        unknown = set(fields) - _SETTABLE
        if unknown:
            raise ValueError(f"referrals: fields not settable: {sorted(unknown)}")
        result = await self._referrals.update_one(
            {"_id": referral_id, "status": from_status, "active": True},
            {"$set": {"status": to_status, **fields}},
        )
        return result.modified_count == 1

    async def deactivate(self, referral_id: str, reason: str) -> bool:
        result = await self._referrals.update_one(
            {"_id": referral_id, "status": {"$in": ["pending", "rewarding"]}},
            {"$set": {"status": "void", "void_reason": reason}, "$unset": {"active": ""}},
        )
        return result.modified_count == 1

    async def take_slot(self, referrer_id: str, referral_id: str, limit: int) -> bool:
        """``count < limit`` and the referral not yet counted, in the filter of one ``update_one``.

        The first slot of a referrer upserts its counter; two first slots at once may both try the
        insert, and the loser's duplicate key is retried as an ordinary update.
        """
        for _ in range(_SLOT_RETRIES):
            try:
                result = await self._counters.update_one(
                    {"_id": referrer_id, "count": {"$lt": limit}, "referral_ids": {"$ne": referral_id}},
                    {"$inc": {"count": 1}, "$push": {"referral_ids": referral_id}},
                    upsert=True,
                )
            except DuplicateKeyError:
                # The counter exists and did not match: already counted, full, or created meanwhile.
                if await self._counters.find_one(
                    {"_id": referrer_id, "referral_ids": referral_id}, {"_id": 1}
                ):
                    return True
                counter = await self._counters.find_one({"_id": referrer_id}, {"count": 1})
                if counter is not None and counter.get("count", 0) >= limit:
                    return False
                continue
            return result.modified_count == 1 or result.upserted_id is not None
        return False

    async def count_invited(self, referrer_id: str) -> int:
        return await self._referrals.count_documents({"referrer_id": referrer_id, "active": True})

    async def count_rewarded(self, referrer_id: str) -> int:
        return await self._referrals.count_documents(
            {"referrer_id": referrer_id, "status": "rewarded", "referrer_capped": {"$ne": True}}
        )

    async def reassign_customer(self, from_id: str, into_id: str) -> int:
        """Move ``from_id``'s referrals to ``into_id``; idempotent (a merge may be resumed).

        As referrer: every referral moves, and the counter's slots are added to the survivor's. As
        referee: the survivor keeps one active referral: a rewarded (or being rewarded) one wins over a
        pending one, else the survivor's own; the other is deactivated, so it is never paid. A pending
        referral that became a self-referral (the referee merged into the referrer) is voided.
        """
        moved = (
            await self._referrals.update_many({"referrer_id": from_id}, {"$set": {"referrer_id": into_id}})
        ).modified_count
        moved += await self._merge_counters(from_id, into_id)
        moved += await self._merge_referee(from_id, into_id)
        await self._referrals.update_many(
            {"referrer_id": into_id, "referee_id": into_id, "status": {"$in": ["pending", "rewarding"]}},
            {"$set": {"status": "void", "void_reason": "merged_self"}, "$unset": {"active": ""}},
        )
        return moved

    async def _merge_referee(self, from_id: str, into_id: str) -> int:
        source = await self.active_for_referee(from_id)
        if source is None:
            return 0
        target = await self.active_for_referee(into_id)
        if target is not None:
            keep, drop = (source, target) if _paid(source) and not _paid(target) else (target, source)
            await self._referrals.update_one(
                {"_id": drop.id},
                {"$set": {"void_reason": "merged", "superseded_by": keep.id}, "$unset": {"active": ""}},
            )
            await self._referrals.update_one(
                {"_id": drop.id, "status": {"$in": ["pending", "rewarding"]}}, {"$set": {"status": "void"}}
            )
            if keep.phone_hash is None and drop.phone_hash is not None:
                await self.bind_phone_hash(keep.id, drop.phone_hash)
            if keep.id == target.id:
                return 1
        result = await self._referrals.update_one(
            {"_id": source.id, "active": True}, {"$set": {"referee_id": into_id}}
        )
        return result.modified_count

    async def _merge_counters(self, from_id: str, into_id: str) -> int:
        counter = await self._counters.find_one({"_id": from_id})
        if counter is None or not counter.get("referral_ids"):
            return 0
        ids = list(counter["referral_ids"])
        await self._counters.update_one(
            {"_id": into_id}, {"$addToSet": {"referral_ids": {"$each": ids}}}, upsert=True
        )
        # The count is the number of slots, recomputed in the same document (a pipeline update).
        await self._counters.update_one({"_id": into_id}, [{"$set": {"count": {"$size": "$referral_ids"}}}])
        await self._counters.update_one({"_id": from_id}, {"$set": {"merged_into": into_id}})
        return 0

    # ---------------------------------------------------------------- personal data
    async def export_customer(self, customer_id: str) -> list[dict[str, Any]]:
        """Who invited the customer and whom they invited (ids, dates, what was paid)."""
        cursor = self._referrals.find({"$or": [{"referee_id": customer_id}, {"referrer_id": customer_id}]})
        return [
            _from_document(document).model_dump(mode="python", exclude={"phone_hash"})
            async for document in cursor.sort([("created_at", 1), ("_id", 1)])
        ]

    async def erase_customer(self, customer_id: str) -> int:
        """Nothing to erase: a referral holds customer ids and amounts, and a keyed hash of the referee's
        phone that is kept on purpose (pseudonymous: it only answers "was this phone referred before?",
        so an erased customer coming back under a new account cannot be paid for the same friend twice)."""
        return 0


def _paid(referral: Referral) -> bool:
    return referral.status in ("rewarded", "rewarding")
