"""At most once per event and step: a reply is not sent again when its event is handled again.

Handlers are idempotent, so an event may be handled twice (a worker died after sending, before
acknowledging). Every send made while handling an event gets a step number (0, 1, 2... in the order
the handler sends), and the :class:`Outbox` records ``(event, step)`` before sending:

- not recorded → record it as *sending*, send, mark it *sent* (or forget it if the send failed, so a
  retry of the event may send it);
- already recorded → skip: the customer got it, or a crash happened mid-send (and a duplicate message
  is worse than a missing one).

Records expire after a day, the queue's dedupe window.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # only RedisOutbox's callers need Redis; the dispatcher must not pull it in
    from redis.asyncio import Redis

OUTBOX_TTL_SECONDS: Final = 24 * 3600


class Outbox(abc.ABC):
    @abc.abstractmethod
    async def claim(self, key: str) -> bool:
        """Record ``key`` as being sent; False when it already was (do not send again)."""

    @abc.abstractmethod
    async def sent(self, key: str) -> None:
        """The send of ``key`` succeeded."""

    @abc.abstractmethod
    async def release(self, key: str) -> None:
        """The send of ``key`` failed: a later attempt may send it."""


class MemoryOutbox(Outbox):
    def __init__(self) -> None:
        self.records: dict[str, str] = {}

    async def claim(self, key: str) -> bool:
        if key in self.records:
            return False
        self.records[key] = "sending"
        return True

    async def sent(self, key: str) -> None:
        self.records[key] = "sent"

    async def release(self, key: str) -> None:
        self.records.pop(key, None)


class RedisOutbox(Outbox):
    def __init__(self, redis: Redis, *, prefix: str = "outbox", ttl: int = OUTBOX_TTL_SECONDS) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl

    async def claim(self, key: str) -> bool:
        return bool(await self.redis.set(f"{self.prefix}:{key}", "sending", nx=True, ex=self.ttl))

    async def sent(self, key: str) -> None:
        await self.redis.set(f"{self.prefix}:{key}", "sent", ex=self.ttl)

    async def release(self, key: str) -> None:
        await self.redis.delete(f"{self.prefix}:{key}")
