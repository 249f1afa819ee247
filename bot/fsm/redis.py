"""Redis storage and isolation: shared by every worker process; state and data expire when abandoned."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

from redis.asyncio import Redis

from bot.fsm.storage import BaseStorage, EventIsolation, StorageKey

log = logging.getLogger("loyalty.bot.fsm")

DEFAULT_STATE_TTL: Final = 7 * 24 * 3600
DEFAULT_DATA_TTL: Final = 7 * 24 * 3600

# Release and extend only a lock we still own (its token is ours).
_RELEASE: Final = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
_EXTEND: Final = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
)


class RedisStorage(BaseStorage):
    """``fsm:<channel>:<account>:<user>:state|data`` with TTLs, so abandoned flows expire.

    :param state_ttl: seconds a state lives after its last change (``None``: forever).
    :param data_ttl: the same for data.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "fsm",
        state_ttl: int | None = DEFAULT_STATE_TTL,
        data_ttl: int | None = DEFAULT_DATA_TTL,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.state_ttl = state_ttl
        self.data_ttl = data_ttl

    async def get_state(self, key: StorageKey) -> str | None:
        value: str | bytes | None = await self.redis.get(key.build(self.prefix, "state"))
        if isinstance(value, bytes):
            return value.decode()
        return value

    async def set_state(self, key: StorageKey, state: str | None) -> None:
        name = key.build(self.prefix, "state")
        if state is None:
            await self.redis.delete(name)
        else:
            await self.redis.set(name, state, ex=self.state_ttl)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        value = await self.redis.get(key.build(self.prefix, "data"))
        if not value:
            return {}
        data: dict[str, Any] = json.loads(value)
        return data

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        name = key.build(self.prefix, "data")
        if not data:
            await self.redis.delete(name)
        else:
            await self.redis.set(name, json.dumps(dict(data), ensure_ascii=False), ex=self.data_ttl)

    async def clear(self, key: StorageKey) -> None:
        await self.redis.delete(key.build(self.prefix, "state"), key.build(self.prefix, "data"))


class LockTimeoutError(TimeoutError):
    """Another process held the user's lock for longer than ``wait`` seconds."""


class RedisIsolation(EventIsolation):
    """A Redis lock per user, so events of one user never run at once, across all worker processes.

    The lock expires after ``ttl`` seconds if its owner dies (so a crash cannot block a user forever)
    and is renewed every ``ttl / 3`` while the handler runs (so a slow handler keeps it). Waiters poll
    with a short backoff; within one process the worker's per-user lanes keep arrival order.

    :param ttl: seconds the lock survives its owner.
    :param wait: seconds to wait for it before :class:`LockTimeoutError` (the event is then retried).
    """

    def __init__(self, redis: Redis, *, prefix: str = "fsm", ttl: float = 30.0, wait: float = 60.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_ms = int(ttl * 1000)
        self.wait = wait

    def lock(self, key: StorageKey) -> contextlib.AbstractAsyncContextManager[None]:
        return self._lock(key.build(self.prefix, "lock"))

    @contextlib.asynccontextmanager
    async def _lock(self, name: str) -> AsyncIterator[None]:
        token = secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        delay = 0.002
        while not await self.redis.set(name, token, nx=True, px=self.ttl_ms):
            if loop.time() > deadline:
                raise LockTimeoutError(f"user lock {name} still held after {self.wait:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)
        renewal = asyncio.create_task(self._renew(name, token))
        try:
            yield
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            await self.redis.eval(_RELEASE, 1, name, token)

    async def _renew(self, name: str, token: str) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                still_ours = await self.redis.eval(_EXTEND, 1, name, token, self.ttl_ms)
            except Exception as error:  # noqa: BLE001 - keep trying while the handler runs
                log.warning("could not renew %s: %s", name, error)
                continue
            if not still_ours:
                log.error("lost user lock %s (expired before renewal): events may overlap", name)
                return
