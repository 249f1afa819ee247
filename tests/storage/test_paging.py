"""Newest-first pages by a (created_at, _id) cursor: every document once, in order, through the index."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import monitoring
from pymongo.asynchronous.database import AsyncDatabase

from loyalty.ledger import LedgerEntry
from storage.clients import Document, create_mongo_client
from storage.indexes import ensure_indexes
from storage.ledger import MongoLedgerRepository
from storage.paging import newest_first

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


class _Finds(monitoring.CommandListener):
    """The find commands a client sent (filter and sort), to explain them on the server."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            command = event.command
            self.sent.append(
                (command["find"], dict(command.get("filter", {})), dict(command.get("sort", {})))
            )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def watched(mongo_url: str, db_name: str) -> AsyncIterator[tuple[AsyncDatabase[Document], _Finds]]:
    finds = _Finds()
    client = create_mongo_client(mongo_url)
    client_watched = type(client)(mongo_url, event_listeners=[finds], tz_aware=True)
    db = client_watched[db_name]
    await ensure_indexes(db)
    yield db, finds
    await client.drop_database(db_name)
    await client.close()
    await client_watched.close()


def _entry(key: str, customer_id: str, at: datetime, *, void: bool = False) -> LedgerEntry:
    return LedgerEntry(
        key=key,
        customer_id=customer_id,
        kind="earn",
        points=1,
        reason="test",
        created_at=at,
        state="void" if void else "pending",
    )


async def _pages(repo: MongoLedgerRepository, customer_id: str, size: int) -> list[list[str]]:
    pages: list[list[str]] = []
    before: tuple[datetime, str] | None = None
    while page := await repo.entries(customer_id, limit=size, before=before):
        pages.append([entry.key for entry in page])
        before = (page[-1].created_at, page[-1].key)
    return pages


async def test_pages_hold_every_entry_once_across_ties_and_leave_out_void_ones(
    watched: tuple[AsyncDatabase[Document], _Finds],
) -> None:
    db, _ = watched
    repo = MongoLedgerRepository(db)
    # five entries at one instant (a frozen clock, a bulk import), two void, then three older ones
    for n in range(5):
        await repo.claim(_entry(f"same{n}", "c1", T0, void=n in (1, 3)))
    for n in range(3):
        await repo.claim(_entry(f"old{n}", "c1", T0 - timedelta(minutes=n + 1)))
    await repo.claim(_entry("other", "c2", T0))

    pages = await _pages(repo, "c1", 2)

    assert pages == [["same4", "same2"], ["same0", "old0"], ["old1", "old2"]]


async def test_pages_without_a_filter_after_the_read_hold_every_document_once(
    watched: tuple[AsyncDatabase[Document], _Finds],
) -> None:
    """Orders page without `keep` (the server stops at the page's size): ties on the instant too."""
    db, _ = watched
    await db["orders"].insert_many(
        [{"_id": f"same{n}", "customer_id": "c1", "created_at": T0} for n in range(3)]
        + [
            {"_id": f"old{n}", "customer_id": "c1", "created_at": T0 - timedelta(minutes=n + 1)}
            for n in range(2)
        ]
        + [{"_id": "other", "customer_id": "c2", "created_at": T0}]
    )
    pages: list[list[str]] = []
    before: tuple[datetime, str] | None = None
    while page := await newest_first(db["orders"], {"customer_id": "c1"}, limit=2, before=before):
        pages.append([document["_id"] for document in page])
        before = (page[-1]["created_at"], page[-1]["_id"])

    assert pages == [["same2", "same1"], ["same0", "old0"], ["old1"]]


async def test_history_and_order_pages_are_read_through_the_index(
    watched: tuple[AsyncDatabase[Document], _Finds],
) -> None:
    """The queries actually sent, explained on the server: a page reads the customer's documents, not
    the collection (a top-level `$or` cursor made SecantusDB read every customer's history)."""
    db, finds = watched
    at = [T0 - timedelta(seconds=n) for n in range(400)]
    await db["ledger"].insert_many(
        [
            {**_entry(f"k{n}", f"c{n % 100}", at[n]).model_dump(exclude={"key"}), "_id": f"k{n}"}
            for n in range(400)
        ]
    )
    await db["orders"].insert_many(
        [{"_id": f"o{n}", "customer_id": f"c{n % 100}", "created_at": at[n]} for n in range(400)]
    )
    ledger = MongoLedgerRepository(db)
    first = await ledger.entries("c7", limit=2, before=None)
    await ledger.entries("c7", limit=2, before=(first[-1].created_at, first[-1].key))
    # orders page through the same function (MongoOrderRepository.list_for)
    await newest_first(db["orders"], {"customer_id": "c7"}, limit=2, before=(at[7], "o7"))

    assert len(finds.sent) >= 4
    for collection, query, sort in finds.sent:
        plan = await db.command("explain", {"find": collection, "filter": query, "sort": sort})
        examined = plan["executionStats"]["totalDocsExamined"]
        assert examined <= 4, (collection, query, examined)
