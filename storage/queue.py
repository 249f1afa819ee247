"""The durable event queue: a Redis Stream read through a consumer group.

Producers (webhooks, the emulator) :meth:`EventQueue.publish` events; workers read them, run a handler,
and :meth:`EventQueue.ack` them only after it finished. So an event the producer was told is queued is
handled at least once, even if a worker dies mid-way: its pending entries are claimed by another
worker after ``claim_idle`` (``XAUTOCLAIM``). Handlers are idempotent, so at-least-once is safe.

- **Dedupe and append are one atomic step** (a Lua script): an event whose ``dedupe_id`` was seen in
  the last ``dedupe_ttl`` seconds is dropped, and the dedupe key is written only after the append
  succeeded, so a failed append never makes the platform's retry look like a duplicate.
- **Acknowledged entries are deleted** (``XACK`` + ``XDEL``): the stream holds only the backlog, and
  nothing unhandled is ever trimmed away.
- **Poison events** that failed ``max_deliveries`` times move to a dead-letter stream, with the error,
  so one bad event cannot block a user's queue forever.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

DEFAULT_STREAM: Final = "events:inbound"
DEFAULT_GROUP: Final = "workers"
DEDUPE_TTL_SECONDS: Final = 24 * 3600
MALFORMED_KIND: Final = "queue.malformed"

# KEYS[1] = stream; ARGV = ttl, then per event: dedupe key ('' = no dedupe), kind, key, data, at.
# Returns, per event, the new entry id, or false when it was a duplicate. The dedupe key is claimed with
# SET NX (one command instead of EXISTS + SET) and deleted again if the append fails, so a failed append
# never leaves a dedupe key behind; the error is then the script's reply.
_PUBLISH: Final = """
local ttl = tonumber(ARGV[1])
local result = {}
local n = 0
for i = 2, #ARGV, 5 do
  local dedupe = ARGV[i]
  n = n + 1
  if dedupe ~= '' and not redis.call('SET', dedupe, '1', 'NX', 'EX', ttl) then
    result[n] = false
  else
    local ok, id = pcall(redis.call, 'XADD', KEYS[1], '*',
      'kind', ARGV[i + 1], 'key', ARGV[i + 2], 'data', ARGV[i + 3], 'at', ARGV[i + 4])
    if not ok then
      if dedupe ~= '' then
        redis.call('DEL', dedupe)
      end
      return redis.error_reply(type(id) == 'table' and id.err or tostring(id))
    end
    result[n] = id
  end
end
return result
"""
_PUBLISH_SHA: Final = hashlib.sha1(_PUBLISH.encode()).hexdigest().encode()  # noqa: S324 - Redis names scripts so


def _bulk(value: bytes) -> bytes:
    """One argument as a RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


class QueueError(Exception):
    """The queue could not be written or read (Redis unavailable, script error)."""


@dataclass(frozen=True, slots=True)
class Event:
    """An event to queue.

    :param kind: what it is (``chat.update``...): the worker picks the handler by it.
    :param key: the ordering key: events with the same key are handled one at a time, in order.
    :param data: the JSON-serialisable payload, or a JSON object already serialised (``str`` or UTF-8
        ``bytes``: callers holding a pydantic model pass its JSON, much cheaper than a dict).
    :param dedupe_id: the platform's event/message id; the same id is queued once per ``dedupe_ttl``.
    """

    kind: str
    key: str
    data: Mapping[str, Any] | str | bytes
    dedupe_id: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event as a worker received it."""

    entry_id: str
    kind: str
    key: str
    data: dict[str, Any]
    enqueued_at_ms: int
    deliveries: int = 1
    raw: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class EventQueue:
    redis: Redis
    stream: str = DEFAULT_STREAM
    group: str = DEFAULT_GROUP
    dedupe_ttl: int = DEDUPE_TTL_SECONDS
    _group_ready: bool = field(default=False, init=False)

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.stream}:dead"

    def _dedupe_key(self, dedupe_id: str) -> str:
        return f"dedupe:{self.stream}:{dedupe_id}"

    # ------------------------------------------------------------------ producing
    def encode(self, kind: str, key: str, data: bytes, dedupe_id: str | None = None) -> bytes:
        """One event as the publishing script's five arguments (dedupe key, kind, key, data, enqueue
        time), already in the Redis protocol: :meth:`publish_encoded` sends a batch of them as one
        ``EVALSHA`` without packing each argument again (redis-py's packing cost ~6 µs an event)."""
        dedupe = f"dedupe:{self.stream}:{dedupe_id}".encode() if dedupe_id else b""
        kind_bytes, key_bytes, at = kind.encode(), key.encode(), b"%d" % (time.time() * 1000)
        return b"$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            len(dedupe),
            dedupe,
            len(kind_bytes),
            kind_bytes,
            len(key_bytes),
            key_bytes,
            len(data),
            data,
            len(at),
            at,
        )

    def encode_event(self, event: Event) -> bytes:
        data = event.data
        if isinstance(data, str):
            data = data.encode()
        elif not isinstance(data, bytes):
            data = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        return self.encode(event.kind, event.key, data, event.dedupe_id)

    async def publish(self, events: Sequence[Event]) -> list[str | None]:
        """Queue ``events`` in one round trip; per event, its entry id, or ``None`` for a duplicate.

        :raises QueueError: nothing was queued (or, for a script error mid-batch, the events before
            the failing one were: their ids are lost to the caller, who must retry the whole batch,
            and the dedupe keys make that retry queue only the rest).
        """
        return await self.publish_encoded([self.encode_event(event) for event in events])

    async def publish_encoded(
        self, encoded: Sequence[bytes], *, connection: AbstractConnection | None = None
    ) -> list[str | None]:
        """:meth:`publish` for events made by :meth:`encode`.

        :param connection: a connection from :meth:`dedicated_connection` that the caller uses for one call
            at a time (the :class:`CoalescingPublisher`), instead of one checked out of the pool per call.
        """
        if not encoded:
            return []
        head = b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$1\r\n1\r\n%s%s" % (
            5 + 5 * len(encoded),
            _PUBLISH_SHA,
            _bulk(self.stream.encode()),
            _bulk(b"%d" % self.dedupe_ttl),
        )
        try:
            result: list[str | None]
            if connection is None:
                result = await self._call([head, *encoded], None)
            else:
                # the pool's socket timeout, once for the whole call (the connection has none of its own)
                async with asyncio.timeout(self._socket_timeout()):
                    result = await self._call([head, *encoded], connection)
        except Exception as error:
            raise QueueError(
                f"cannot queue {len(encoded)} event(s): {type(error).__name__}: {error}"
            ) from error
        return [entry if entry else None for entry in result]

    def dedicated_connection(self) -> AbstractConnection:
        """A connection to this queue's Redis outside the pool, for a caller that publishes one call at a
        time (:class:`CoalescingPublisher`) and closes it. It has no socket timeout of its own: redis-py
        would run every send under ``asyncio.wait_for`` (a task per call); :meth:`publish_encoded` bounds
        the whole call by the pool's socket timeout instead. It connects on first use."""
        pool = self.redis.connection_pool
        return pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})

    def _socket_timeout(self) -> float | None:
        timeout: float | None = self.redis.connection_pool.connection_kwargs.get("socket_timeout")
        return timeout

    async def _call(self, command: list[bytes], connection: AbstractConnection | None) -> Any:
        """Send a packed ``EVALSHA`` of the publishing script and read its reply, on ``connection`` or,
        when it is None, on a connection checked out of the pool for this call.

        The script is loaded when Redis does not know it (after a restart; ``NOSCRIPT`` runs nothing).
        A connection broken before or during the call (Redis restarted, the socket is stale) is
        replaced once: the dedupe keys make a repeated call queue nothing twice.
        """
        pool = self.redis.connection_pool
        loaded = reconnected = False
        while True:
            if connection is None:
                held = await pool.get_connection()  # type: ignore[no-untyped-call]
            else:
                held = connection
            try:
                await held.send_packed_command(command)
                return await held.read_response()
            except NoScriptError:
                if loaded:
                    raise
                loaded = True
                await held.send_command("SCRIPT", "LOAD", _PUBLISH)
                await held.read_response()
            except RedisConnectionError:
                await held.disconnect()
                if reconnected:
                    raise
                reconnected = True
            finally:
                if connection is None:
                    await pool.release(held)

    # ------------------------------------------------------------------ consuming
    async def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if they do not exist yet."""
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._group_ready = True

    async def read(self, consumer: str, *, count: int = 64, block_ms: int = 1000) -> list[Delivery]:
        """New events for ``consumer`` (blocks up to ``block_ms`` when there are none)."""
        await self.ensure_group()
        # redis-py types replies as a union of RESP2/RESP3 shapes; this client speaks RESP2, decoded
        response: Any
        try:
            response = await self.redis.xreadgroup(
                self.group, consumer, {self.stream: ">"}, count=count, block=block_ms
            )
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self._group_ready = False  # the stream was deleted under us: recreate and retry next time
            return []
        if not response:
            return []
        _stream, entries = response[0]
        return [self._delivery(entry_id, fields, 1) for entry_id, fields in entries]

    async def claim_stale(self, consumer: str, *, min_idle_ms: int, count: int = 64) -> list[Delivery]:
        """Take over events another consumer read but did not ack within ``min_idle_ms`` (it died)."""
        await self.ensure_group()
        reply: Any = await self.redis.xautoclaim(
            self.stream, self.group, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count
        )
        claimed = [(entry_id, fields) for entry_id, fields in reply[1] if fields]
        if not claimed:
            return []
        # how many times each was delivered, to send poison events to the dead-letter stream
        pending: Any = await self.redis.xpending_range(
            self.stream, self.group, min=claimed[0][0], max=claimed[-1][0], count=len(claimed) * 2 + 16
        )
        times = {item["message_id"]: int(item["times_delivered"]) for item in pending}
        return [self._delivery(entry_id, fields, times.get(entry_id, 1)) for entry_id, fields in claimed]

    async def ack(self, *entry_ids: str) -> None:
        """The events were handled: acknowledge and delete them, atomically."""
        if not entry_ids:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, *entry_ids)
            pipe.xdel(self.stream, *entry_ids)
            await pipe.execute()

    async def dead_letter(self, delivery: Delivery, error: str) -> str:
        """Move a poison event to the dead-letter stream with its error; return the new entry id."""
        fields = {
            **delivery.raw,
            "error": error[:2000],
            "deliveries": str(delivery.deliveries),
            "source_id": delivery.entry_id,
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead_letter_stream, fields)  # type: ignore[arg-type]
            pipe.xack(self.stream, self.group, delivery.entry_id)
            pipe.xdel(self.stream, delivery.entry_id)
            results = await pipe.execute()
        return str(results[0])

    # ------------------------------------------------------------------ introspection
    async def backlog(self) -> int:
        """Events queued and not yet acknowledged (new plus in progress)."""
        return int(await self.redis.xlen(self.stream))

    async def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        entries: Any = await self.redis.xrange(self.dead_letter_stream, count=count)
        return [{"id": entry_id, **fields} for entry_id, fields in entries]

    @staticmethod
    def _delivery(entry_id: str, fields: dict[str, str], deliveries: int) -> Delivery:
        try:
            data = json.loads(fields.get("data") or "{}")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            # not written by publish(): hand it over as a kind no handler has, so it is dead-lettered
            return Delivery(entry_id, MALFORMED_KIND, fields.get("key", ""), {}, 0, deliveries, dict(fields))
        return Delivery(
            entry_id=entry_id,
            kind=fields.get("kind", ""),
            key=fields.get("key", ""),
            data=data,
            enqueued_at_ms=int(fields.get("at") or 0),
            deliveries=deliveries,
            raw=dict(fields),
        )


class CoalescingPublisher:
    """Publishes concurrent callers' events together: one Lua call for all the events that arrived in
    the same turn of the event loop, or while the previous call was running (up to ``max_batch``).

    Each caller still gets its own answer, and only once its events are in Redis, so a webhook acks
    nothing that is not durably queued; but N concurrent webhook requests cost about one round trip
    instead of N (redis-py's per-command overhead dominates otherwise: see DESIGN.md).

    :meth:`submit` is the hot path's entry: a plain call that returns a future (no coroutine to create
    and resume per request), taking events already encoded by :meth:`EventQueue.encode`. The calls go on
    a connection of the publisher's own (:meth:`EventQueue.dedicated_connection`; no pool checkout per
    call), which :meth:`aclose` closes.
    """

    def __init__(self, queue: EventQueue, *, max_batch: int = 64) -> None:
        self.queue = queue
        self.max_batch = max_batch
        self._encoded: list[bytes] = []
        self._waiters: list[tuple[asyncio.Future[list[str | None]], int]] = []
        self._scheduled = False
        self._draining = False
        self._flushes: set[asyncio.Task[None]] = set()
        self._connection: AbstractConnection | None = None
        self.batches = 0

    def submit(self, encoded: Sequence[bytes]) -> asyncio.Future[list[str | None]]:
        """Queue ``encoded`` events with the others of this turn of the loop.

        The future's result is, per event, its entry id or ``None`` for a duplicate, set once the
        batch's script has run; or the batch's :class:`QueueError`. One caller's events always go in the
        same script call (a delivery is queued whole or, on failure, reported failed whole).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[str | None]] = loop.create_future()
        if not encoded:
            future.set_result([])
            return future
        self._encoded += encoded
        self._waiters.append((future, len(encoded)))
        if len(self._encoded) >= self.max_batch:
            self._flush_now()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush_now)
        return future

    async def publish(self, events: Sequence[Event]) -> list[str | None]:
        return await self.submit([self.queue.encode_event(event) for event in events])

    async def aclose(self) -> None:
        """Wait for the calls in flight, then close the publisher's connection (a later call reopens it)."""
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        if self._connection is not None:
            await self._connection.disconnect()

    def _flush_now(self) -> None:
        self._scheduled = False
        if self._draining or not self._waiters:
            return  # the running drain takes these next
        self._draining = True
        task = asyncio.get_running_loop().create_task(self._drain())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _drain(self) -> None:
        """One script call at a time, each with whatever arrived meanwhile: the events reach the stream in
        the order they were submitted (one user's two deliveries never swap places), and under load the
        batches grow instead of the calls multiplying."""
        try:
            while self._waiters:
                encoded, waiters = self._take()
                await self._flush(encoded, waiters)
        finally:
            self._draining = False

    def _take(self) -> tuple[list[bytes], list[tuple[asyncio.Future[list[str | None]], int]]]:
        """The first whole callers that fit in ``max_batch`` events (at least one caller, however large)."""
        count = taken = 0
        for _, size in self._waiters:
            if taken and count + size > self.max_batch:
                break
            count += size
            taken += 1
        encoded, self._encoded = self._encoded[:count], self._encoded[count:]
        waiters, self._waiters = self._waiters[:taken], self._waiters[taken:]
        return encoded, waiters

    async def _flush(
        self, encoded: list[bytes], waiters: list[tuple[asyncio.Future[list[str | None]], int]]
    ) -> None:
        self.batches += 1
        if self._connection is None:
            self._connection = self.queue.dedicated_connection()
        try:
            entry_ids = await self.queue.publish_encoded(encoded, connection=self._connection)
        except Exception as error:  # noqa: BLE001 - every caller of the batch gets the failure
            for future, _ in waiters:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for future, size in waiters:
            if not future.done():
                future.set_result(entry_ids[start : start + size])
            start += size
