"""Delivery guarantees: retries with backoff, and at most one send per update and step."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from bot import Dispatcher, Message, Router, Sender
from bot.channels.base import Recipient
from bot.channels.emulator import EmulatorChannel, EmulatorOutbox
from bot.channels.errors import (
    PermanentError,
    RateLimitedError,
    RetryPolicy,
    TransientError,
    WindowClosedError,
    with_retries,
)
from bot.outbox import Claim, MemoryOutbox, Outbox, OutboxBusyError, RedisOutbox
from bot.replies import Reply


class FlakyChannel:
    """Records what it delivers; fails the first ``failures`` sends."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.delivered: list[Any] = []

    async def send(self, to: Recipient, replies: Sequence[Reply], *, in_reply_to: Any = None) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("network down")
        self.delivered.extend(replies)


def message(event_id: str = "ev-1", text: str = "hi") -> Message:
    return Message(
        channel="zalo",
        account_id="oa",
        user_id="u1",
        event_id=event_id,
        timestamp=datetime.now(UTC),
        text=text,
    )


def dispatcher(channel: FlakyChannel, outbox: Outbox | None) -> Dispatcher:
    dp = Dispatcher(channels={"zalo": channel}, outbox=outbox)
    router = Router()

    @router.message()
    async def answer(reply: Sender) -> None:
        await reply("một")
        await reply("hai")

    dp.include_router(router)
    return dp


@pytest.fixture(params=["memory", "redis"])
def outbox(request: pytest.FixtureRequest, redis: Redis) -> Outbox:
    return MemoryOutbox() if request.param == "memory" else RedisOutbox(redis)


async def test_an_update_handled_twice_sends_its_replies_once(outbox: Outbox) -> None:
    channel = FlakyChannel()
    dp = dispatcher(channel, outbox)

    await dp.feed_update(message())
    await dp.feed_update(message())  # the same event, delivered again

    assert [r.text for r in channel.delivered] == ["một", "hai"]


async def test_another_update_sends_its_own_replies(outbox: Outbox) -> None:
    channel = FlakyChannel()
    dp = dispatcher(channel, outbox)

    await dp.feed_update(message("ev-1"))
    await dp.feed_update(message("ev-2"))

    assert len(channel.delivered) == 4


async def test_a_failed_send_can_be_sent_by_the_retry(outbox: Outbox) -> None:
    # given the first attempt fails at the second step
    channel = FlakyChannel()
    dp = dispatcher(channel, outbox)
    original = channel.send
    calls = 0

    async def fail_second(to: Recipient, replies: Sequence[Reply], *, in_reply_to: Any = None) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("network down")
        await original(to, replies, in_reply_to=in_reply_to)

    channel.send = fail_second  # type: ignore[method-assign]
    first = await dp.feed_update(message())
    # when the event is handled again
    await dp.feed_update(message())

    # then step one was not repeated, and step two was sent by the retry
    assert isinstance(first.error, ConnectionError)
    assert [r.text for r in channel.delivered] == ["một", "hai"]


async def test_the_redis_outbox_keeps_records_a_day(redis: Redis) -> None:
    outbox = RedisOutbox(redis)

    assert await outbox.claim("k") is Claim.NEW
    await outbox.sent("k")

    assert await redis.get("outbox:k") == "sent"
    assert 86_000 < await redis.ttl("outbox:k") <= 86_400
    assert await outbox.claim("k") is Claim.SENT


@pytest.fixture(params=["memory", "redis"])
def leased_outbox(request: pytest.FixtureRequest, redis: Redis) -> Outbox:
    return MemoryOutbox(lease=0.3) if request.param == "memory" else RedisOutbox(redis, lease=0.3)


async def test_a_step_left_sending_by_a_dead_worker_is_sent_once_the_lease_runs_out(
    leased_outbox: Outbox,
) -> None:
    # given a worker that claimed step 0 of the update and died before sending it
    channel = FlakyChannel()
    dp = dispatcher(channel, leased_outbox)
    assert await leased_outbox.claim("zalo:oa:u1:ev-1:0") is Claim.NEW

    # when the update is handled again while the lease still runs, it is busy: retried later
    early = await dp.feed_update(message())
    assert isinstance(early.error, OutboxBusyError)
    assert channel.delivered == []

    # and once the lease ran out, the retry sends everything: nothing lost, nothing doubled
    await asyncio.sleep(0.35)
    late = await dp.feed_update(message())
    assert late.error is None
    assert [r.text for r in channel.delivered] == ["một", "hai"]


# --------------------------------------------------------------------------- retries


async def no_sleep(_seconds: float) -> None:
    return None


async def test_transient_errors_are_retried_until_success() -> None:
    attempts = 0

    async def call() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise TransientError("503")
        return "ok"

    assert await with_retries(call, policy=RetryPolicy(attempts=4), sleep=no_sleep) == "ok"
    assert attempts == 3


async def test_retries_stop_after_the_last_attempt() -> None:
    attempts = 0

    async def call() -> None:
        nonlocal attempts
        attempts += 1
        raise TransientError("timeout")

    with pytest.raises(TransientError):
        await with_retries(call, policy=RetryPolicy(attempts=3), sleep=no_sleep)
    assert attempts == 3


async def test_permanent_errors_are_not_retried() -> None:
    attempts = 0

    async def call() -> None:
        nonlocal attempts
        attempts += 1
        raise PermanentError("user blocked the page", code="551")

    with pytest.raises(PermanentError):
        await with_retries(call, sleep=no_sleep)
    assert attempts == 1


async def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(base=0.5, cap=4.0)

    delays = [policy.delay(n, TransientError("x")) for n in range(6) for _ in range(50)]

    assert all(0 <= d <= 4.0 for d in delays)
    assert max(policy.delay(0, TransientError("x")) for _ in range(50)) <= 0.5
    assert policy.delay(0, RateLimitedError("slow down", retry_after=3.0)) == 3.0


async def test_the_emulator_commits_a_reply_and_its_sent_mark_together(redis: Redis) -> None:
    emulator = EmulatorOutbox(redis)
    dp = Dispatcher(channels={"emulator": EmulatorChannel(emulator)}, outbox=RedisOutbox(redis))
    router = Router()

    @router.message()
    async def answer(reply: Sender) -> None:
        await reply("một")

    dp.include_router(router)
    update = Message(
        channel="emulator",
        account_id="emulator-zalo",
        user_id="u1",
        event_id="ev-9",
        timestamp=datetime.now(UTC),
    )

    # when the reply's stream cannot take it, neither the reply nor a "sent" mark is written
    await redis.set(emulator.stream("emulator-zalo", "u1"), "not a stream")
    failed = await dp.feed_update(update)
    assert failed.error is not None
    assert await redis.get("outbox:emulator:emulator-zalo:u1:ev-9:0") is None

    # and once it can, both are written, once
    await redis.delete(emulator.stream("emulator-zalo", "u1"))
    await dp.feed_update(update)
    await dp.feed_update(update)
    assert await redis.get("outbox:emulator:emulator-zalo:u1:ev-9:0") == "sent"
    assert await redis.xlen(emulator.stream("emulator-zalo", "u1")) == 1


class ClosedWindowFor:
    """Delivers to everyone but ``closed``, whose messaging window is closed."""

    def __init__(self, closed: str) -> None:
        self.closed = closed
        self.delivered: list[tuple[str, str]] = []

    async def send(self, to: Recipient, replies: Sequence[Reply], *, in_reply_to: Any = None) -> None:
        if to.user_id == self.closed:
            raise WindowClosedError("outside the 24 h window")
        self.delivered.extend((to.user_id, r.text) for r in replies)  # type: ignore[attr-defined]


def notifying(channel: ClosedWindowFor, outbox: Outbox, results: list[bool]) -> Dispatcher:
    dp = Dispatcher(channels={"zalo": channel}, outbox=outbox)
    router = Router()

    @router.message()
    async def answer(reply: Sender) -> None:
        await reply("cảm ơn bạn")
        results.append(await reply.notify(Recipient("zalo", "oa", "friend"), "bạn của bạn đã tham gia"))
        results.append(await reply.notify(Recipient("zalo", "oa", "gone"), "không tới được"))

    dp.include_router(router)
    return dp


async def test_a_notification_to_another_user_is_sent_once_and_never_fails_the_reply(outbox: Outbox) -> None:
    channel = ClosedWindowFor("gone")
    results: list[bool] = []
    dp = notifying(channel, outbox, results)

    await dp.feed_update(message())
    await dp.feed_update(message())  # delivered again: nothing is sent twice

    assert channel.delivered == [("u1", "cảm ơn bạn"), ("friend", "bạn của bạn đã tham gia")]
    assert results[:2] == [True, False]
