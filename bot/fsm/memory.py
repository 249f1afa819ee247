"""In-process storage and isolation: one process, no persistence (tests, the benchmark, demos)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from bot.fsm.storage import BaseStorage, EventIsolation, StorageKey


class MemoryStorage(BaseStorage):
    def __init__(self) -> None:
        self._states: dict[StorageKey, str] = {}
        self._data: dict[StorageKey, dict[str, Any]] = {}

    async def get_state(self, key: StorageKey) -> str | None:
        return self._states.get(key)

    async def set_state(self, key: StorageKey, state: str | None) -> None:
        if state is None:
            self._states.pop(key, None)
        else:
            self._states[key] = state

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        # a deep copy, so a handler mutating what it read does not change the stored data behind our back
        return copy.deepcopy(self._data.get(key, {}))

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if data:
            self._data[key] = copy.deepcopy(dict(data))
        else:
            self._data.pop(key, None)


class _UserLock:
    """An ``asyncio.Lock`` (FIFO) that removes itself from the table when nobody holds or awaits it."""

    __slots__ = ("_key", "_lock", "_owner", "_users")

    def __init__(self, owner: MemoryIsolation, key: StorageKey) -> None:
        self._owner = owner
        self._key = key
        self._lock = asyncio.Lock()
        self._users = 0

    async def __aenter__(self) -> None:
        self._users += 1
        try:
            await self._lock.acquire()
        except BaseException:
            self._release_user()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()
        self._release_user()

    def _release_user(self) -> None:
        self._users -= 1
        if self._users == 0:
            self._owner._locks.pop(self._key, None)


class MemoryIsolation(EventIsolation):
    """Per-user ``asyncio.Lock``s: FIFO, so one user's events run in the order they were fed."""

    def __init__(self) -> None:
        self._locks: dict[StorageKey, _UserLock] = {}

    def lock(self, key: StorageKey) -> _UserLock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = _UserLock(self, key)
        return lock
