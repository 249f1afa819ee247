"""API keys of the integrations API, in MongoDB (``api_keys``): the id and the SHA-256 of the secret,
never the secret. Implements ``miniapp_api.ports.ApiKeyRepository`` (structurally, with plain
mappings: storage knows no entry point)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from storage.clients import Document

COLLECTION = "api_keys"


class MongoApiKeyRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._collection = db[COLLECTION]

    async def insert(self, record: Mapping[str, Any]) -> None:
        data = dict(record)
        data["_id"] = data.pop("id")
        await self._collection.insert_one(data)

    async def get(self, key_id: str) -> Mapping[str, Any] | None:
        found = await self._collection.find_one({"_id": key_id})
        return _record(found) if found is not None else None

    async def list_all(self) -> list[Mapping[str, Any]]:
        return [_record(doc) async for doc in self._collection.find({}).sort("created_at", 1)]

    async def revoke(self, key_id: str, at: datetime) -> bool:
        result = await self._collection.update_one(
            {"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": at}}
        )
        return result.modified_count == 1


def _record(doc: Document) -> dict[str, Any]:
    data = dict(doc)
    data["id"] = data.pop("_id")
    return data
