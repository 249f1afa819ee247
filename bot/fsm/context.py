"""``FSMContext``: a storage bound to one user's key (what a handler gets as ``state``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.fsm.state import State
from bot.fsm.storage import BaseStorage, StorageKey


class FSMContext:
    __slots__ = ("_on_state", "key", "storage")

    def __init__(
        self, storage: BaseStorage, key: StorageKey, on_state: Callable[[str | None], None] | None = None
    ) -> None:
        self.storage = storage
        self.key = key
        self._on_state = on_state

    async def get_state(self) -> str | None:
        return await self.storage.get_state(self.key)

    async def set_state(self, state: State | str | None = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self.storage.set_state(self.key, value)
        if self._on_state is not None:
            self._on_state(value)

    async def get_data(self) -> dict[str, Any]:
        return await self.storage.get_data(self.key)

    async def set_data(self, data: Mapping[str, Any]) -> None:
        await self.storage.set_data(self.key, data)

    async def update_data(self, data: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        return await self.storage.update_data(self.key, {**(data or {}), **kwargs})

    async def clear(self) -> None:
        await self.storage.clear(self.key)
        if self._on_state is not None:
            self._on_state(None)
