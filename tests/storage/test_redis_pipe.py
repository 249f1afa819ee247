"""The publisher's own Redis connection (storage.redis_pipe) against the real Redis server."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
import uvloop
from redis.asyncio import Redis

from storage.clients import APP_NAME, create_redis_client
from storage.queue import CoalescingPublisher, Event, EventQueue, QueueError
from storage.redis_pipe import open_pipe, pack


def _event(n: int) -> Event:
    return Event(kind="test.event", key="zalo:oa:u1", data={"n": n}, dedupe_id=f"m{n}")


def _url(redis_url: str, *, db: int = 0, user: str | None = None, password: str | None = None) -> str:
    parts = urlsplit(redis_url)
    auth = f"{user}:{password}@" if user is not None else ""
    return f"redis://{auth}{parts.hostname}:{parts.port}/{db}"


def test_commands_are_packed_as_arrays_of_bulk_strings() -> None:
    assert pack("SET", b"k\r\n", 12) == b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n12\r\n"


def test_the_publisher_answers_on_uvloop(redis_url: str) -> None:
    """`loyalty serve` runs on uvloop, whose transports are not asyncio's classes: the same publisher
    must work there (the rest of the suite runs on asyncio's loop)."""

    async def scenario() -> tuple[list[list[str | None]], int]:
        client = create_redis_client(redis_url)
        publisher = CoalescingPublisher(EventQueue(client, stream="uvloop:events"))
        try:
            await client.delete("uvloop:events")
            results = await asyncio.gather(*(publisher.publish([_event(n)]) for n in range(100)))
            return results, await client.xlen("uvloop:events")
        finally:
            await publisher.aclose()
            await client.delete("uvloop:events", *(f"dedupe:uvloop:events:m{n}" for n in range(100)))
            await client.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        results, length = runner.run(scenario())

    assert all(entry is not None for (entry,) in results)
    assert length == 100


async def test_a_pipe_uses_the_pools_database_and_client_name(redis_url: str, redis: Redis) -> None:
    # given a client of database 3
    other = create_redis_client(_url(redis_url, db=3))
    publisher = CoalescingPublisher(EventQueue(other))
    try:
        await other.flushdb()
        (entry,) = await publisher.publish([_event(1)])

        # then the event is in database 3, not in the default one, and the connection has our name
        assert entry is not None
        assert await EventQueue(other).backlog() == 1
        assert await EventQueue(redis).backlog() == 0
        names = [client.get("name") for client in await redis.client_list()]
        assert APP_NAME in names
    finally:
        await publisher.aclose()
        await other.flushdb()
        await other.aclose()


async def test_a_pipe_authenticates_as_the_urls_user(redis_url: str, redis: Redis) -> None:
    # given a Redis user with a password
    await redis.acl_setuser(
        "pipe-tester", enabled=True, passwords=["+pipe-secret"], keys=["*"], commands=["+@all"]
    )
    allowed = create_redis_client(_url(redis_url, user="pipe-tester", password="pipe-secret"))
    refused = create_redis_client(_url(redis_url, user="pipe-tester", password="wrong"))
    good, bad = CoalescingPublisher(EventQueue(allowed)), CoalescingPublisher(EventQueue(refused))
    try:
        # then the right password queues, as that user, and a wrong one fails the callers
        (entry,) = await good.publish([_event(1)])
        assert entry is not None
        assert "pipe-tester" in [client.get("user") for client in await redis.client_list()]
        with pytest.raises(QueueError, match=r"WRONGPASS|invalid"):
            await bad.publish([_event(2)])
        assert await EventQueue(redis).backlog() == 1
    finally:
        await good.aclose()
        await bad.aclose()
        await allowed.aclose()
        await refused.aclose()
        await redis.acl_deluser("pipe-tester")


async def test_aclose_waits_for_the_events_already_submitted(redis: Redis) -> None:
    publisher = CoalescingPublisher(EventQueue(redis))
    futures = [publisher.submit([publisher.queue.encode_event(_event(n))]) for n in range(10)]

    await publisher.aclose()

    assert all(future.done() and future.result()[0] is not None for future in futures)
    assert await EventQueue(redis).backlog() == 10


async def test_a_reply_nobody_asked_for_closes_the_pipe(redis: Redis) -> None:
    """A connection whose replies no longer match its commands would answer callers with others'
    results: it is closed instead."""
    pipe = await open_pipe(redis.connection_pool)
    try:
        pipe.data_received(b"+OK\r\n")  # as if Redis answered twice

        await asyncio.wait_for(pipe.wait_closed(), 5)
        assert pipe.closed
    finally:
        pipe.close()


async def test_a_command_sent_on_a_closed_pipe_fails_at_once(redis: Redis) -> None:
    pipe = await open_pipe(redis.connection_pool)
    pipe.close()
    await pipe.wait_closed()

    with pytest.raises(ConnectionError):
        pipe.send(pack("PING"), lambda reply: None)


def test_a_publisher_outlives_its_first_event_loop(redis_url: str) -> None:
    """The CLI's commands and the tests run one loop after another: a publisher made in one must work in
    the next (its connection died with the first loop)."""
    client = create_redis_client(redis_url)
    publisher = CoalescingPublisher(EventQueue(client, stream="loops:events"))

    async def publish(n: int) -> str | None:
        (entry,) = await publisher.publish([_event(n)])
        client.connection_pool.reset()  # the pool's connections belong to this loop too
        return entry

    try:
        with asyncio.Runner() as runner:
            first = runner.run(publish(1))
        with asyncio.Runner() as runner:
            second = runner.run(publish(2))
            length = runner.run(client.xlen("loops:events"))
            runner.run(client.delete("loops:events", "dedupe:loops:events:m1", "dedupe:loops:events:m2"))
    finally:
        client.connection_pool.reset()

    assert first is not None and second is not None
    assert length == 2
