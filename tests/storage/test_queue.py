"""The durable event queue against the real Redis server."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from storage.clients import create_redis_client
from storage.queue import (
    DEDUPE_TTL_SECONDS,
    MALFORMED_KIND,
    CoalescingPublisher,
    Event,
    EventQueue,
    QueueError,
)


def _event(n: int, *, dedupe: str | None = None, key: str = "zalo:oa:u1") -> Event:
    return Event(kind="test.event", key=key, data={"n": n, "text": "điểm"}, dedupe_id=dedupe)


async def test_published_events_are_read_in_order_with_their_data(redis: Redis) -> None:
    queue = EventQueue(redis)

    ids = await queue.publish([_event(1, dedupe="m1"), _event(2, dedupe="m2")])
    deliveries = await queue.read("c1", block_ms=10)

    assert all(ids)
    assert [d.entry_id for d in deliveries] == ids
    assert [d.data for d in deliveries] == [{"n": 1, "text": "điểm"}, {"n": 2, "text": "điểm"}]
    assert {(d.kind, d.key, d.deliveries) for d in deliveries} == {("test.event", "zalo:oa:u1", 1)}


async def test_a_repeated_event_id_is_queued_once(redis: Redis) -> None:
    queue = EventQueue(redis)

    first = await queue.publish([_event(1, dedupe="m1")])
    again = await queue.publish([_event(1, dedupe="m1"), _event(1, dedupe="m1")])

    assert first[0] is not None
    assert again == [None, None]
    assert await queue.backlog() == 1


async def test_the_dedupe_key_lives_a_day(redis: Redis) -> None:
    queue = EventQueue(redis)

    await queue.publish([_event(1, dedupe="m1")])

    ttl = await redis.ttl("dedupe:events:inbound:m1")
    assert DEDUPE_TTL_SECONDS - 5 <= ttl <= DEDUPE_TTL_SECONDS


async def test_events_without_a_dedupe_id_are_all_queued(redis: Redis) -> None:
    queue = EventQueue(redis)

    ids = await queue.publish([_event(1), _event(1)])

    assert all(ids)
    assert await queue.backlog() == 2


async def test_concurrent_deliveries_of_one_event_queue_it_once(redis: Redis) -> None:
    # given a platform retrying one event 50 times at once
    queue = EventQueue(redis)

    results = await asyncio.gather(*(queue.publish([_event(1, dedupe="same")]) for _ in range(50)))

    # then exactly one delivery was queued
    assert sum(1 for (entry,) in results if entry) == 1
    assert await queue.backlog() == 1


async def test_a_failed_append_leaves_no_dedupe_key(redis: Redis) -> None:
    # given a stream key that cannot take XADD (wrong type)
    queue = EventQueue(redis, stream="broken")
    await redis.set("broken", "not a stream")

    with pytest.raises(QueueError):
        await queue.publish([_event(1, dedupe="m1")])

    # then the platform's retry is not mistaken for a duplicate once the stream works again
    assert await redis.exists("dedupe:broken:m1") == 0
    await redis.delete("broken")
    assert (await queue.publish([_event(1, dedupe="m1")]))[0] is not None


async def test_publishing_to_an_unreachable_redis_is_a_queue_error() -> None:
    client = create_redis_client("redis://127.0.0.1:1/0", timeout=0.5)
    try:
        with pytest.raises(QueueError):
            await EventQueue(client).publish([_event(1, dedupe="m1")])
    finally:
        await client.aclose()


async def test_ack_removes_the_event_from_the_backlog(redis: Redis) -> None:
    queue = EventQueue(redis)
    await queue.publish([_event(1), _event(2)])
    first, second = await queue.read("c1", block_ms=10)

    await queue.ack(first.entry_id)

    assert await queue.backlog() == 1
    assert await redis.xpending(queue.stream, queue.group) == {
        "pending": 1,
        "min": second.entry_id,
        "max": second.entry_id,
        "consumers": [{"name": "c1", "pending": 1}],
    }


async def test_an_unacknowledged_event_is_claimed_by_another_consumer(redis: Redis) -> None:
    # given consumer c1 read an event and died without acknowledging it
    queue = EventQueue(redis)
    await queue.publish([_event(1)])
    (lost,) = await queue.read("c1", block_ms=10)

    # when c2 looks for stalled events
    await asyncio.sleep(0.05)
    claimed = await queue.claim_stale("c2", min_idle_ms=20)

    # then it gets it, marked as a second delivery
    assert [(d.entry_id, d.data, d.deliveries) for d in claimed] == [
        (lost.entry_id, {"n": 1, "text": "điểm"}, 2)
    ]
    # and nothing is claimed while the new owner is still within the idle time
    assert await queue.claim_stale("c3", min_idle_ms=60_000) == []


async def test_dead_letter_keeps_the_event_and_its_error(redis: Redis) -> None:
    queue = EventQueue(redis)
    await queue.publish([_event(7)])
    (delivery,) = await queue.read("c1", block_ms=10)

    await queue.dead_letter(delivery, "ValueError: bad payload")

    assert await queue.backlog() == 0
    (dead,) = await queue.dead_letters()
    assert dead["kind"] == "test.event"
    assert dead["error"] == "ValueError: bad payload"
    assert dead["source_id"] == delivery.entry_id
    assert dead["data"] == '{"n":7,"text":"điểm"}'


async def test_an_entry_not_written_by_publish_is_handed_over_as_malformed(redis: Redis) -> None:
    queue = EventQueue(redis)
    await queue.ensure_group()
    await redis.xadd(queue.stream, {"kind": "test.event", "data": "{not json"})

    (delivery,) = await queue.read("c1", block_ms=10)

    assert delivery.kind == MALFORMED_KIND


async def test_concurrent_publishers_share_round_trips_and_each_gets_its_answer(redis: Redis) -> None:
    # given 200 webhook requests publishing at once, each its own event, ten of them repeats
    publisher = CoalescingPublisher(EventQueue(redis), max_batch=64)
    events = [_event(n, dedupe=f"m{n % 190}") for n in range(200)]

    results = await asyncio.gather(*(publisher.publish([event]) for event in events))

    # then every caller learnt whether its event was new, and far fewer calls than events were made
    assert sum(1 for (entry,) in results if entry) == 190
    assert await EventQueue(redis).backlog() == 190
    assert publisher.batches <= 200 / 16


async def test_a_failed_batch_fails_every_caller_in_it() -> None:
    client = create_redis_client("redis://127.0.0.1:1/0", timeout=0.5)
    publisher = CoalescingPublisher(EventQueue(client))
    try:
        results = await asyncio.gather(
            *(publisher.publish([_event(n, dedupe=f"m{n}")]) for n in range(5)), return_exceptions=True
        )
    finally:
        await client.aclose()

    assert all(isinstance(result, QueueError) for result in results)


async def test_publishing_after_redis_forgot_the_script_loads_it_again(redis: Redis) -> None:
    # given a Redis that lost its scripts (a restart, SCRIPT FLUSH)
    queue = EventQueue(redis)
    await queue.publish([_event(1, dedupe="m1")])
    await redis.script_flush()

    # then the next publish still queues, once
    ids = await queue.publish([_event(2, dedupe="m2"), _event(1, dedupe="m1")])

    assert ids[0] is not None and ids[1] is None
    assert await queue.backlog() == 2


async def _kill_client_connections(redis: Redis) -> int:
    """Have Redis kill every client connection but the killer's own; how many it killed."""
    kwargs = redis.connection_pool.connection_kwargs
    killer = Redis(host=kwargs["host"], port=kwargs["port"], db=kwargs.get("db", 0))
    try:
        return int(await killer.client_kill_filter(_type="normal", skipme=True))
    finally:
        await killer.aclose()


async def test_a_pooled_connection_killed_by_redis_is_replaced(redis: Redis) -> None:
    queue = EventQueue(redis)
    await queue.publish([_event(1, dedupe="m1")])  # leaves a connection in the pool
    assert await _kill_client_connections(redis) >= 1

    ids = await queue.publish([_event(2, dedupe="m2")])

    assert ids[0] is not None
    assert await queue.backlog() == 2


async def test_encoded_events_are_read_back_as_published(redis: Redis) -> None:
    queue = EventQueue(redis)
    encoded = queue.encode("test.event", "zalo:oa:u1", '{"text":"điểm"}'.encode(), "m1")

    (entry,) = await queue.publish_encoded([encoded])
    (delivery,) = await queue.read("c1", block_ms=10)

    assert (delivery.entry_id, delivery.kind, delivery.key, delivery.data) == (
        entry,
        "test.event",
        "zalo:oa:u1",
        {"text": "điểm"},
    )
    # when it was queued: the entry id's milliseconds (Redis's clock), not a field of the event
    assert delivery.enqueued_at_ms == int(entry.split("-")[0])
    assert abs(delivery.enqueued_at_ms - time.time() * 1000) < 60_000
    assert set(delivery.raw) == {"kind", "key", "data"}


async def test_one_callers_events_are_answered_together_and_never_split(redis: Redis) -> None:
    # given a batch limit of 4 and callers of 3 events each
    publisher = CoalescingPublisher(EventQueue(redis), max_batch=4)
    callers = [[_event(n * 3 + i, dedupe=f"m{n}-{i}") for i in range(3)] for n in range(5)]

    futures = [publisher.submit([publisher.queue.encode_event(e) for e in events]) for events in callers]
    results = await asyncio.gather(*futures)

    assert [len(r) for r in results] == [3] * 5 and all(all(r) for r in results)
    # each call held whole callers and at most 4 events: one call per caller
    assert publisher.batches == 5
    deliveries = await EventQueue(redis).read("c1", count=100, block_ms=10)
    assert [d.data["n"] for d in deliveries] == list(range(15))


async def test_an_empty_submit_is_answered_at_once(redis: Redis) -> None:
    publisher = CoalescingPublisher(EventQueue(redis))

    assert await publisher.submit([]) == []
    assert publisher.batches == 0


async def test_the_publishers_own_connection_killed_by_redis_is_replaced(redis: Redis) -> None:
    publisher = CoalescingPublisher(EventQueue(redis))
    try:
        await publisher.publish([_event(1, dedupe="m1")])  # opens the publisher's connection
        assert await _kill_client_connections(redis) >= 1

        (entry,) = await publisher.publish([_event(2, dedupe="m2")])

        assert entry is not None
        await redis.connection_pool.disconnect()  # the test's pooled connections were killed too
        assert await EventQueue(redis).backlog() == 2
    finally:
        await publisher.aclose()


async def test_a_call_that_timed_out_does_not_leave_its_reply_for_the_next_call(redis: Redis) -> None:
    """Redis answers a call after the publisher gave up on it: that late reply must not be read as the
    next call's answer (redis-py disconnects a connection whose read was interrupted; the publisher's
    connection then reconnects)."""
    kwargs = redis.connection_pool.connection_kwargs
    impatient = create_redis_client(
        f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}", timeout=0.2
    )
    publisher = CoalescingPublisher(EventQueue(impatient))
    try:
        await publisher.publish([_event(1, dedupe="m1")])  # opens the connection, loads the script
        sleeping = asyncio.ensure_future(redis.execute_command("DEBUG", "SLEEP", "1.0"))  # type: ignore[no-untyped-call]
        await asyncio.sleep(0.2)  # the server is asleep from here
        with pytest.raises(QueueError):
            await publisher.publish([_event(2, dedupe="m2")])
        await sleeping

        (entry,) = await publisher.publish([_event(3, dedupe="m3")])

        deliveries = {
            d.entry_id: d.data["n"] for d in await EventQueue(redis).read("c1", count=10, block_ms=10)
        }
        assert entry is not None and deliveries[entry] == 3
    finally:
        await publisher.aclose()
        await impatient.aclose()
