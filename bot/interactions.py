"""When did each user last interact with us, per channel and account?

Messaging windows depend on it (Messenger: 24 h for free-form messages; Zalo: 48 h free, up to 7 days
billed, then ZNS only). The worker records every inbound update except an unfollow; channel clients
ask before a message that does not answer an update (a campaign, a reminder).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from redis.asyncio import Redis

from bot.channels.base import Recipient
from bot.fsm.storage import StorageKey
from bot.types import BaseUpdate, UpdateKind

# Longer than the longest window (Zalo's 7 days), so "no record" means "outside every window".
INTERACTION_TTL_SECONDS: Final = 8 * 24 * 3600


class RedisInteractionLog:
    def __init__(self, redis: Redis, *, prefix: str = "seen", ttl: int = INTERACTION_TTL_SECONDS) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl

    def _key(self, channel: str, account_id: str, user_id: str) -> str:
        return StorageKey(channel, account_id, user_id).build(self.prefix, "last")

    async def record(self, update: BaseUpdate) -> None:
        """Remember ``update`` as the user's latest interaction (never moving the time backwards)."""
        if update.kind == UpdateKind.UNFOLLOW:  # type: ignore[attr-defined]
            return
        key = self._key(update.channel.value, update.account_id, update.user_id)
        millis = int(update.timestamp.timestamp() * 1000)
        async with self.redis.pipeline(transaction=True) as pipe:
            # GT: a late, retried delivery of an older event does not reopen a closed window
            pipe.zadd(key, {"t": millis}, gt=True)
            pipe.expire(key, self.ttl)
            await pipe.execute()

    async def last_interaction(self, to: Recipient) -> datetime | None:
        score = await self.redis.zscore(self._key(to.channel, to.account_id, to.user_id), "t")
        if score is None:
            return None
        return datetime.fromtimestamp(score / 1000, UTC)
