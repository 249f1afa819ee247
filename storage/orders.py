"""Orders in MongoDB (``orders``), for :class:`loyalty.orders.OrderService`.

One document per order, ``_id`` = the order id. ``(source, external_id)`` is unique where an external id
is given (a partial index), which makes a POS or integration that sends its order twice get one order.
Every status change is an ``update_one`` with the expected status in the filter (never
``find_one_and_update``, which scans the collection on SecantusDB).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from loyalty.errors import LoyaltyError
from loyalty.orders import Order, OrderStatus
from storage.clients import Document
from storage.paging import newest_first

COLLECTION: Final = "orders"

# Indexes (in storage.indexes.INDEXES): (source, external_id) unique where external_id is a string;
# (customer_id, created_at desc, _id desc) for a customer's orders, newest first.

# Fields the service may set; anything else is a programming error, not something to write.
_SETTABLE: Final = frozenset(
    {
        "completed_at",
        "completed_by",
        "points",
        "effects_done",
        "cancelled_at",
        "cancelled_by",
        "cancel_reason",
        "refunded_at",
        "reversal_done",
        "voucher_redeemed",
    }
)


def _to_document(order: Order) -> Document:
    document = order.model_dump(mode="python")
    document["_id"] = document.pop("id")
    document["items"] = [dict(item) for item in document["items"]]
    if document["external_id"] is None:
        del document["external_id"]  # outside the partial unique index
    return document


def _from_document(document: Document) -> Order:
    data = dict(document)
    data["id"] = data.pop("_id")
    return Order.model_validate(data)


class MongoOrderRepository:
    """Implements :class:`loyalty.orders.OrderRepository`, :class:`loyalty.customers.CustomerOwned` and
    :class:`loyalty.privacy.PersonalDataHolder` (what a customer bought is theirs to see)."""

    name: Final = "orders"

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._orders: AsyncCollection[Document] = db[COLLECTION]

    async def insert(self, order: Order) -> Order:
        try:
            await self._orders.insert_one(_to_document(order))
        except DuplicateKeyError:
            if order.external_id is None:
                raise
            existing = await self.by_external_id(order.source, order.external_id)
            if existing is None:  # the duplicate was deleted (a failed creation) in between
                raise LoyaltyError("the order with this external id is being created: retry") from None
            return existing
        return order

    async def get(self, order_id: str) -> Order | None:
        document = await self._orders.find_one({"_id": order_id})
        return _from_document(document) if document is not None else None

    async def by_external_id(self, source: str, external_id: str) -> Order | None:
        document = await self._orders.find_one({"source": source, "external_id": external_id})
        return _from_document(document) if document is not None else None

    async def transition(
        self, order_id: str, from_status: OrderStatus, to_status: OrderStatus, fields: Mapping[str, Any]
    ) -> bool:
        _check_fields(fields)
        result = await self._orders.update_one(
            {"_id": order_id, "status": from_status}, {"$set": {"status": to_status, **fields}}
        )
        return result.modified_count == 1

    async def set_fields(self, order_id: str, fields: Mapping[str, Any]) -> None:
        _check_fields(fields)
        await self._orders.update_one({"_id": order_id}, {"$set": dict(fields)})

    async def delete_pending(self, order_id: str) -> bool:
        result = await self._orders.delete_one(
            {"_id": order_id, "status": "pending", "voucher_redeemed": {"$ne": True}}
        )
        return result.deleted_count == 1

    async def list_for(
        self, customer_id: str, *, limit: int, before: tuple[datetime, str] | None
    ) -> list[Order]:
        documents = await newest_first(self._orders, {"customer_id": customer_id}, limit=limit, before=before)
        return [_from_document(document) for document in documents]

    async def reassign_customer(self, from_id: str, into_id: str) -> int:
        result = await self._orders.update_many({"customer_id": from_id}, {"$set": {"customer_id": into_id}})
        return result.modified_count

    # ---------------------------------------------------------------- personal data
    async def export_customer(self, customer_id: str) -> list[dict[str, Any]]:
        cursor = self._orders.find({"customer_id": customer_id}).sort([("created_at", 1), ("_id", 1)])
        return [_from_document(document).model_dump(mode="python") async for document in cursor]

    async def erase_customer(self, customer_id: str) -> int:
        """Orders stay (amounts and items are accounting records); the free-text note, the only field a
        customer writes in their own words, is removed."""
        result = await self._orders.update_many(
            {"customer_id": customer_id, "note": {"$type": "string"}}, {"$unset": {"note": ""}}
        )
        return result.modified_count


def _check_fields(fields: Mapping[str, Any]) -> None:
    unknown = set(fields) - _SETTABLE
    if unknown:
        raise ValueError(f"orders: fields not settable: {sorted(unknown)}")
