"""The emulator channel: replies go to a Redis stream per conversation, read by the page and `loyalty chat`.

The emulator's updates come from ``channel="emulator"`` and ``account_id="emulator-<flavor>"``, where the
flavor (``zalo`` or ``messenger``) chooses which platform's limits replies are fitted to, so a person
sees what that platform would show (more buttons than Messenger allows become numbered options).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from redis.asyncio import Redis

from bot.channels.base import Recipient
from bot.render import LIMITS, ZALO, fit, fitted_to_json
from bot.replies import Reply

if TYPE_CHECKING:
    from bot.types import BaseUpdate

EMULATOR_ACCOUNT_PREFIX: Final = "emulator-"
FLAVORS: Final = ("zalo", "messenger")


def emulator_account(flavor: str) -> str:
    if flavor not in FLAVORS:
        raise ValueError(f"unknown emulator flavor {flavor!r}")
    return f"{EMULATOR_ACCOUNT_PREFIX}{flavor}"


MAX_WAIT_MS: Final = 4_000


class EmulatorOutbox:
    """One capped Redis stream of rendered replies per emulator conversation, kept for a day."""

    def __init__(
        self, redis: Redis, *, prefix: str = "emulator", maxlen: int = 500, ttl: int = 24 * 3600
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.maxlen = maxlen
        self.ttl = ttl

    def stream(self, account_id: str, user_id: str) -> str:
        return f"{self.prefix}:outbox:{account_id}:{user_id}"

    async def append(
        self, to: Recipient, messages: Sequence[dict[str, Any]], *, also: Callable[[Any], None] | None = None
    ) -> list[str]:
        """Append ``messages`` in one transaction; ``also`` may add commands to it (the outbox mark)."""
        name = self.stream(to.account_id, to.user_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            if also is not None:
                also(pipe)
            for message in messages:
                pipe.xadd(
                    name,
                    {"reply": json.dumps(message, ensure_ascii=False)},
                    maxlen=self.maxlen,
                    approximate=True,
                )
            pipe.expire(name, self.ttl)
            results = await pipe.execute()
        if also is not None:
            results = results[1:]
        return [str(entry) for entry in results[:-1]]

    async def read(
        self, account_id: str, user_id: str, *, after: str = "0-0", wait_ms: int = 0, count: int = 100
    ) -> list[tuple[str, dict[str, Any]]]:
        """Replies after entry ``after``, waiting up to ``wait_ms`` for one when there are none yet.

        The wait is capped at :data:`MAX_WAIT_MS`: a blocking read must end before the Redis client's
        socket timeout (5 s), or redis-py gives up on the connection with ``TimeoutError`` (a 500 for
        the page's long poll, which simply asks again after an empty answer).
        """
        name = self.stream(account_id, user_id)
        block = min(wait_ms, MAX_WAIT_MS) or None
        response: Any = await self.redis.xread({name: after}, count=count, block=block)
        if not response:
            return []
        _stream, entries = response[0]
        return [(entry_id, json.loads(fields["reply"])) for entry_id, fields in entries]


class EmulatorChannel:
    """A :class:`~bot.channels.base.ChannelClient` writing fitted replies to the :class:`EmulatorOutbox`."""

    def __init__(self, outbox: EmulatorOutbox) -> None:
        self.outbox = outbox

    async def send(
        self, to: Recipient, replies: Sequence[Reply], *, in_reply_to: BaseUpdate | None = None
    ) -> None:
        await self.send_and_mark(to, replies, in_reply_to=in_reply_to, mark=None)

    async def send_and_mark(
        self,
        to: Recipient,
        replies: Sequence[Reply],
        *,
        in_reply_to: BaseUpdate | None = None,
        mark: Callable[[Any], None] | None,
    ) -> None:
        """Send, with ``mark`` (the outbox's *sent* record) in the same Redis transaction."""
        flavor = to.account_id.removeprefix(EMULATOR_ACCOUNT_PREFIX)
        limits = LIMITS.get(flavor, ZALO)
        await self.outbox.append(to, [fitted_to_json(fit(reply, limits)) for reply in replies], also=mark)
