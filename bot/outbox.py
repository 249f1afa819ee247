"""At most once per event and step: a reply is not sent again when its event is handled again.

Handlers are idempotent, so an event may be handled twice (a worker died after sending, before
acknowledging). Every send made while handling an event gets a step number (0, 1, 2... in the order
the handler sends), and the :class:`Outbox` records ``(event, step)`` before sending:

- no record → record it as *sending*, with a lease; send; mark it *sent* (or drop the record if the
  send failed, so a retry of the event may send it);
- *sent* → skip: the customer got it;
- *sending*, lease still running → another worker is sending it right now, or died doing so: the
  caller raises :class:`OutboxBusyError` (transient), the event stays pending and is tried again;
- *sending*, lease expired → the sender died: send it now.

So a message is lost never, and doubled only when a worker dies after the platform accepted the send
and before it was marked sent (no platform offers an idempotency key that would close that gap). The
lease must be shorter than the time after which the queue hands a stalled event to another worker.
*Sent* records expire after a day, the queue's dedupe window.
"""

from __future__ import annotations

import abc
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # only RedisOutbox's callers need Redis; the dispatcher must not pull it in
    from redis.asyncio import Redis

OUTBOX_TTL_SECONDS: Final = 24 * 3600
DEFAULT_LEASE_SECONDS: Final = 30.0


class Claim(StrEnum):
    NEW = "new"  # ours to send
    SENT = "sent"  # already delivered: skip
    BUSY = "busy"  # someone holds a live lease on it: try the event again later


class OutboxBusyError(TimeoutError):
    """A send step of this event is leased by another attempt; the event is to be retried later."""


class Outbox(abc.ABC):
    @abc.abstractmethod
    async def claim(self, key: str) -> Claim:
        """Take the lease on ``key`` if nobody holds it and it was not sent."""

    @abc.abstractmethod
    async def sent(self, key: str) -> None:
        """The send of ``key`` succeeded."""

    @abc.abstractmethod
    async def release(self, key: str) -> None:
        """The send of ``key`` failed: a later attempt may send it."""


class MemoryOutbox(Outbox):
    def __init__(self, *, lease: float = DEFAULT_LEASE_SECONDS) -> None:
        self.lease = lease
        self.records: dict[str, tuple[str, float]] = {}  # key → (state, lease deadline)

    async def claim(self, key: str) -> Claim:
        state, deadline = self.records.get(key, ("", 0.0))
        if state == "sent":
            return Claim.SENT
        if state == "sending" and deadline > time.monotonic():
            return Claim.BUSY
        self.records[key] = ("sending", time.monotonic() + self.lease)
        return Claim.NEW

    async def sent(self, key: str) -> None:
        self.records[key] = ("sent", 0.0)

    async def release(self, key: str) -> None:
        self.records.pop(key, None)


class RedisOutbox(Outbox):
    """``<prefix>:<key>`` = ``sending`` (expiring with the lease) or ``sent`` (kept a day)."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "outbox",
        ttl: int = OUTBOX_TTL_SECONDS,
        lease: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl
        self.lease_ms = max(1, int(lease * 1000))

    async def claim(self, key: str) -> Claim:
        name = f"{self.prefix}:{key}"
        for _ in range(3):
            if await self.redis.set(name, "sending", nx=True, px=self.lease_ms):
                return Claim.NEW
            state = await self.redis.get(name)
            if state is None:
                continue  # the lease ran out in between: try to take it again
            return Claim.SENT if state in ("sent", b"sent") else Claim.BUSY
        return Claim.BUSY

    async def sent(self, key: str) -> None:
        await self.redis.set(f"{self.prefix}:{key}", "sent", ex=self.ttl)

    def mark_sent(self, pipe: Any, key: str) -> None:
        """Queue the *sent* mark on a transaction that also delivers the message (same Redis), so the
        two happen together or not at all: exactly once, with no gap to fall into."""
        pipe.set(f"{self.prefix}:{key}", "sent", ex=self.ttl)

    async def release(self, key: str) -> None:
        await self.redis.delete(f"{self.prefix}:{key}")
