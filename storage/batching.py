"""Concurrent ``insert_one`` calls to one collection, sent together as one ``insert_many``.

Every write to the embedded SecantusDB is a transaction fsynced on commit, taken under the
collection's lock; an ``insert_many`` of N documents is one transaction and one fsync. So when many
customers earn at once (a busy worker, a POS import), their ledger claims, each its own
``insert_one``, cost N commits; batched, about one. On MongoDB, N round trips become one.

Each caller keeps its own outcome: its document inserted, or :class:`DuplicateKeyError` for its
document alone (the unordered insert goes on past a duplicate). When the command fails as a whole,
the batch's documents are inserted one by one, so that each caller gets its own document's outcome.
A caller is answered only once its document is written. A batch is sent while the previous one is in
flight only after it returns, so batches grow with the load and add no wait when there is none (one
turn of the event loop).
"""

from __future__ import annotations

import asyncio
from typing import Final

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from storage.clients import Document

_DUPLICATE_KEY: Final = 11000

_Waiter = tuple[Document, "asyncio.Future[None]"]


class InsertBatcher:
    def __init__(self, collection: AsyncCollection[Document], *, max_batch: int = 256) -> None:
        self.collection = collection
        self.max_batch = max_batch
        self._pending: list[_Waiter] = []
        self._running: asyncio.Task[None] | None = None
        self.batches = 0

    async def insert(self, document: Document) -> None:
        """Insert ``document`` with the others of this turn of the loop.

        :raises DuplicateKeyError: its ``_id`` (or another unique key) exists.
        """
        loop = asyncio.get_running_loop()
        if self._running is not None and self._running.get_loop() is not loop:
            self._pending, self._running = [], None  # left by an event loop that is gone
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((document, future))
        if self._running is None or self._running.done():
            self._running = loop.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(0)  # let the callers of this turn of the loop join the batch
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                self.batches += 1
                await self._send(batch)
        except asyncio.CancelledError as error:  # the loop is shutting down: answer whoever waits
            for _, future in self._pending:
                _answer(future, error)
            self._pending = []
            raise

    async def _send(self, batch: list[_Waiter]) -> None:
        try:
            await self.collection.insert_many([document for document, _ in batch], ordered=False)
        except BulkWriteError as error:
            failed = {item["index"]: item for item in error.details.get("writeErrors", [])}
            for index, (_, future) in enumerate(batch):
                item = failed.get(index)
                _answer(future, None if item is None else _write_error(item))
        except asyncio.CancelledError as error:
            for _, future in batch:
                _answer(future, error)
            raise
        except Exception as error:  # noqa: BLE001 - answered per caller
            if len(batch) == 1:
                _answer(batch[0][1], error)
            else:  # a document that cannot be encoded, a lost connection: each document alone
                await self._one_by_one(batch)
        else:
            for _, future in batch:
                _answer(future, None)

    async def _one_by_one(self, batch: list[_Waiter]) -> None:
        for document, future in batch:
            try:
                await self.collection.insert_one(document)
            except Exception as error:  # noqa: BLE001 - the caller's own outcome
                _answer(future, error)
            else:
                _answer(future, None)


def _write_error(item: Document) -> WriteError:
    message = item.get("errmsg", "write error")
    if item.get("code") == _DUPLICATE_KEY:
        return DuplicateKeyError(message, _DUPLICATE_KEY, item)
    return WriteError(message, item.get("code"), item)


def _answer(future: asyncio.Future[None], outcome: BaseException | None) -> None:
    if future.done():  # its caller was cancelled: the document is written all the same
        return
    if outcome is None:
        future.set_result(None)
    else:
        future.set_exception(outcome)
