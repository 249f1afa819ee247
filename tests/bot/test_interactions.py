from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from bot import Message, Unfollow
from bot.channels.base import Recipient
from bot.interactions import INTERACTION_TTL_SECONDS, RedisInteractionLog

WHEN = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
ME = Recipient("zalo", "oa", "u1")


def message(at: datetime, user: str = "u1") -> Message:
    return Message(
        channel="zalo", account_id="oa", user_id=user, event_id=f"e{at.timestamp()}", timestamp=at, text="x"
    )


async def test_the_latest_interaction_is_remembered(redis: Redis) -> None:
    log = RedisInteractionLog(redis)

    await log.record(message(WHEN))
    await log.record(message(WHEN + timedelta(hours=3)))

    assert await log.last_interaction(ME) == WHEN + timedelta(hours=3)


async def test_a_late_delivery_of_an_older_event_does_not_move_it_back(redis: Redis) -> None:
    log = RedisInteractionLog(redis)

    await log.record(message(WHEN + timedelta(hours=3)))
    await log.record(message(WHEN))

    assert await log.last_interaction(ME) == WHEN + timedelta(hours=3)


async def test_an_unfollow_is_not_an_interaction(redis: Redis) -> None:
    log = RedisInteractionLog(redis)

    await log.record(Unfollow(channel="zalo", account_id="oa", user_id="u1", event_id="x", timestamp=WHEN))

    assert await log.last_interaction(ME) is None


async def test_records_are_per_user_and_expire_after_the_longest_window(redis: Redis) -> None:
    log = RedisInteractionLog(redis)

    await log.record(message(WHEN, user="u2"))

    assert await log.last_interaction(ME) is None
    assert await log.last_interaction(Recipient("zalo", "oa", "u2")) == WHEN
    assert 0 < await redis.ttl("seen:zalo:oa:u2:last") <= INTERACTION_TTL_SECONDS
