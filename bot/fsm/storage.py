"""The storage contract: where a user's state and data live, and how their events are serialised.

Keys carry the channel and the account (OA or Page) as well as the user, so two bots sharing a storage
never see each other's conversations (an aiogram trap: its default key omits the bot id).
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StorageKey:
    channel: str
    account_id: str
    user_id: str

    def build(self, prefix: str, part: str) -> str:
        """``prefix:channel:account:user:part``, with ``%`` and ``:`` escaped in the ids so that
        ``("a:b", "c")`` and ``("a", "b:c")`` never share a key."""
        return f"{prefix}:{_escape(self.channel)}:{_escape(self.account_id)}:{_escape(self.user_id)}:{part}"


def _escape(value: str) -> str:
    if "%" in value or ":" in value:
        return value.replace("%", "%25").replace(":", "%3A")
    return value


class BaseStorage(abc.ABC):
    """A user's FSM state (a string or ``None``) and data (a JSON-able dict)."""

    @abc.abstractmethod
    async def get_state(self, key: StorageKey) -> str | None: ...

    @abc.abstractmethod
    async def set_state(self, key: StorageKey, state: str | None) -> None: ...

    @abc.abstractmethod
    async def get_data(self, key: StorageKey) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None: ...

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``data`` into the stored data and return the result. Safe under per-user isolation."""
        current = await self.get_data(key)
        current.update(data)
        await self.set_data(key, current)
        return current

    async def clear(self, key: StorageKey) -> None:
        await self.set_state(key, None)
        await self.set_data(key, {})

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections, if any."""


class EventIsolation(abc.ABC):
    """Handles one user's events one at a time: ``async with isolation.lock(key): ...``."""

    @abc.abstractmethod
    def lock(self, key: StorageKey) -> contextlib.AbstractAsyncContextManager[None]: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources, if any."""


class NoIsolation(EventIsolation):
    """Opt-out: events of one user may run concurrently. Only for handlers that keep no state."""

    @contextlib.asynccontextmanager
    async def _noop(self) -> AsyncIterator[None]:
        yield

    def lock(self, key: StorageKey) -> contextlib.AbstractAsyncContextManager[None]:
        return self._noop()
