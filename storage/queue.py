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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from storage.redis_pipe import RedisPipe, bulk, open_pipe

DEFAULT_STREAM: Final = "events:inbound"
DEFAULT_GROUP: Final = "workers"
DEDUPE_TTL_SECONDS: Final = 24 * 3600
MALFORMED_KIND: Final = "queue.malformed"

# KEYS[1] = stream; ARGV = ttl, then per event: dedupe key ('' = no dedupe), key, kind, data. (The time an
# event was queued is its entry id's: XADD's automatic ids are Redis's clock in milliseconds, a sequence.)
# Returns, per event, the new entry id, or false when it was a duplicate. The dedupe key is claimed with
# SET NX (one command instead of EXISTS + SET) and deleted again if the append fails, so a failed append
# never leaves a dedupe key behind; the error is then the script's reply.
_PUBLISH: Final = """
local ttl = tonumber(ARGV[1])
local result = {}
local n = 0
for i = 2, #ARGV, 4 do
  local dedupe = ARGV[i]
  n = n + 1
  if dedupe ~= '' and not redis.call('SET', dedupe, '1', 'NX', 'EX', ttl) then
    result[n] = false
  else
    local ok, id = pcall(redis.call, 'XADD', KEYS[1], '*',
      'kind', ARGV[i + 2], 'key', ARGV[i + 1], 'data', ARGV[i + 3])
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
    enqueued_at_ms: int  # epoch milliseconds, Redis's clock: the entry id's first part
    deliveries: int = 1
    raw: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class EventQueue:
    redis: Redis
    stream: str = DEFAULT_STREAM
    group: str = DEFAULT_GROUP
    dedupe_ttl: int = DEDUPE_TTL_SECONDS
    _group_ready: bool = field(default=False, init=False)
    _dedupe_prefix: str = field(default="", init=False, repr=False)  # a dedupe key is this + the event's id

    def __post_init__(self) -> None:
        self._dedupe_prefix = f"dedupe:{self.stream}:"

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.stream}:dead"

    # ------------------------------------------------------------------ producing
    def encode(self, kind: str, key: str, data: bytes, dedupe_id: str | None = None) -> bytes:
        """One event as the publishing script's four arguments (dedupe key, key, kind, data), already in
        the Redis protocol: :meth:`publish_command` puts a batch of them in one ``EVALSHA`` without
        packing each argument again (redis-py's packing cost ~6 µs an event).

        The three text arguments are written as one string and encoded once, the data (already bytes)
        after them.
        """
        dedupe = self._dedupe_prefix + dedupe_id if dedupe_id else ""
        head = (
            f"${len(dedupe)}\r\n{dedupe}\r\n${len(key)}\r\n{key}\r\n"
            f"${len(kind)}\r\n{kind}\r\n${len(data)}\r\n"
        )
        if head.isascii():  # the usual case: then lengths in characters are lengths in bytes
            return head.encode() + data + b"\r\n"
        return b"".join((*(bulk(text.encode()) for text in (dedupe, key, kind)), bulk(data)))

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

    async def publish_encoded(self, encoded: Sequence[bytes]) -> list[str | None]:
        """:meth:`publish` for events made by :meth:`encode`, on a connection of the pool."""
        if not encoded:
            return []
        try:
            result: list[str | None] = await self._call(encoded)
        except Exception as error:
            raise QueueError(
                f"cannot queue {len(encoded)} event(s): {type(error).__name__}: {error}"
            ) from error
        return [entry if entry else None for entry in result]

    def publish_command(self, encoded: Sequence[bytes], *, load: bool = False) -> bytes:
        """The publishing script's call for events made by :meth:`encode`, packed: ``EVALSHA``, or
        ``EVAL`` with the script's text when ``load`` (Redis does not know the script)."""
        script = bulk(_PUBLISH.encode()) if load else b"$40\r\n%s\r\n" % _PUBLISH_SHA
        head = b"*%d\r\n%s%s$1\r\n1\r\n%s%s" % (
            5 + 4 * len(encoded),
            b"$4\r\nEVAL\r\n" if load else b"$7\r\nEVALSHA\r\n",
            script,
            bulk(self.stream.encode()),
            bulk(b"%d" % self.dedupe_ttl),
        )
        return b"".join((head, *encoded))

    def _socket_timeout(self) -> float | None:
        timeout: float | None = self.redis.connection_pool.connection_kwargs.get("socket_timeout")
        return timeout

    async def _call(self, encoded: Sequence[bytes]) -> Any:
        """Send the publishing script's call on a connection of the pool and read its reply.

        The script is sent with the call when Redis does not know it (after a restart; ``NOSCRIPT``
        runs nothing). A connection broken before or during the call (Redis restarted, the socket is
        stale) is replaced once: the dedupe keys make a repeated call queue nothing twice.
        """
        pool = self.redis.connection_pool
        load = loaded = reconnected = False
        while True:
            held = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                await held.send_packed_command(self.publish_command(encoded, load=load))
                return await held.read_response()
            except NoScriptError:
                if loaded:
                    raise
                load = loaded = True
            except RedisConnectionError:
                await held.disconnect()
                if reconnected:
                    raise
                reconnected = True
            finally:
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
            at = _entry_millis(entry_id)
            return Delivery(entry_id, MALFORMED_KIND, fields.get("key", ""), {}, at, deliveries, dict(fields))
        return Delivery(
            entry_id=entry_id,
            kind=fields.get("kind", ""),
            key=fields.get("key", ""),
            data=data,
            enqueued_at_ms=_entry_millis(entry_id),
            deliveries=deliveries,
            raw=dict(fields),
        )


def _entry_millis(entry_id: str) -> int:
    """When an entry was appended: the milliseconds part of its automatic id (``<ms>-<seq>``)."""
    millis, _, _ = entry_id.partition("-")
    return int(millis) if millis.isdigit() else 0


_Waiter = tuple[asyncio.Future[list[str | None]], int]  # a caller of submit, and how many events


class CoalescingPublisher:
    """Publishes concurrent callers' events together: one Lua call for all the events that arrived in
    the same turn of the event loop, or while the previous call was running (up to ``max_batch``).

    Each caller still gets its own answer, and only once its events are in Redis, so a webhook acks
    nothing that is not durably queued; but N concurrent webhook requests cost about one round trip
    instead of N (redis-py's per-command overhead dominates otherwise: see DESIGN.md).

    :meth:`submit` is the hot path's entry: a plain call that returns a future (no coroutine to create
    and resume per request), taking events already encoded by :meth:`EventQueue.encode`. The calls go
    on a connection of the publisher's own, a :class:`~storage.redis_pipe.RedisPipe`: a call's reply is
    handled in the loop's I/O callback that receives it, which answers the call's callers and writes the
    next call at once (a reply read by a coroutine waits behind every callback already queued: about a
    millisecond under load, a tenth of the webhook's throughput, see bench/README.md). One call at a
    time, so events reach the stream in the order they were submitted. :meth:`aclose` closes the
    connection.

    Failures: a call that gets no reply within the pool's socket timeout fails its callers and its
    connection is closed (a late reply is never read as the next call's); a connection lost during a
    call is opened again and the call sent once more (the dedupe keys make a repeat queue nothing
    twice); a Redis that forgot the script (a restart) gets it with the call again (``EVAL``).
    """

    def __init__(self, queue: EventQueue, *, max_batch: int = 64) -> None:
        self.queue = queue
        self.max_batch = max_batch
        self._encoded: list[bytes] = []
        self._waiters: list[_Waiter] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pipe: RedisPipe | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._in_flight: _Call | None = None
        self._retry: _Call | None = None  # a call whose connection was lost: sent first on the next one
        self._idle: list[asyncio.Future[None]] = []
        self.batches = 0

    def submit(self, encoded: Sequence[bytes]) -> asyncio.Future[list[str | None]]:
        """Queue ``encoded`` events with the others of this turn of the loop.

        The future's result is, per event, its entry id or ``None`` for a duplicate, set once the
        batch's script has run; or the batch's :class:`QueueError`. One caller's events always go in the
        same script call (a delivery is queued whole or, on failure, reported failed whole).
        """
        loop = self._loop
        if loop is None or not loop.is_running():
            # The loop, looked up once: asyncio.get_running_loop() makes a getpid system call on CPython
            # 3.11 (its fork check), once per request otherwise. A publisher serves one loop at a time
            # (its connection is bound to it); a loop that stopped is replaced by the running one.
            loop = self._loop = asyncio.get_running_loop()
            self._forget()
        future: asyncio.Future[list[str | None]] = loop.create_future()
        if not encoded:
            future.set_result([])
            return future
        self._encoded += encoded
        self._waiters.append((future, len(encoded)))
        if len(self._encoded) >= self.max_batch:
            self._pump()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._pump)
        return future

    async def publish(self, events: Sequence[Event]) -> list[str | None]:
        return await self.submit([self.queue.encode_event(event) for event in events])

    async def aclose(self) -> None:
        """Wait for the calls in flight and the events submitted, then close the publisher's connection
        (a later call opens another)."""
        if self._busy():
            idle = asyncio.get_running_loop().create_future()
            self._idle.append(idle)
            await idle
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()
            await pipe.wait_closed()

    def _forget(self) -> None:
        """Drop the state of a loop that stopped: its connection and calls died with it."""
        self._pipe = self._in_flight = self._retry = self._connecting = None
        self._encoded, self._waiters, self._idle = [], [], []
        self._scheduled = False

    def _busy(self) -> bool:
        return bool(self._waiters or self._in_flight or self._connecting or self._retry)

    def _pump(self) -> None:
        """Send the next call, unless one is in flight (its reply sends the next) or the connection is
        being opened (that sends it)."""
        self._scheduled = False
        if self._in_flight is not None or self._connecting is not None:
            return
        if self._retry is None and not self._waiters:
            for idle in self._idle:
                if not idle.done():
                    idle.set_result(None)
            self._idle.clear()
            return
        pipe = self._pipe
        if pipe is None or pipe.closed:
            loop = self._loop or asyncio.get_running_loop()
            self._connecting = loop.create_task(self._connect())
            return
        call, self._retry = self._retry, None
        if call is None:
            encoded, waiters = self._take()
            call = _Call(encoded, waiters)
            self.batches += 1
        self._send(pipe, call)

    def _take(self) -> tuple[list[bytes], list[_Waiter]]:
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

    def _send(self, pipe: RedisPipe, call: _Call) -> None:
        self._in_flight = call
        timeout = self.queue._socket_timeout()
        if timeout is not None and self._loop is not None:
            call.timer = self._loop.call_later(timeout, self._timed_out, call)
        try:
            pipe.send(self.queue.publish_command(call.encoded, load=call.load), partial(self._on_reply, call))
        except ConnectionError as error:
            self._on_reply(call, error)

    def _on_reply(self, call: _Call, reply: Any) -> None:
        """The reply of ``call`` (in the pipe's I/O callback): answer its callers, send the next call."""
        if call is not self._in_flight:
            return  # it timed out: its callers were answered already
        self._in_flight = None
        if call.timer is not None:
            call.timer.cancel()
        if isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT") and not call.load:
            call.load = True  # Redis restarted or flushed its scripts: the same call with the script
            self._retry = call
        elif isinstance(reply, ConnectionError) and not call.resent:
            call.resent = True  # the connection broke (Redis restarted, killed it): once more on a new one
            self._retry = call
            self._pipe = None
        elif isinstance(reply, Exception):
            _fail(call.waiters, call.size, reply)
        elif not isinstance(reply, list) or len(reply) != call.size:  # not the script's answer
            _fail(call.waiters, call.size, QueueError(f"unexpected reply from Redis: {reply!r:.100}"))
        else:
            start = 0
            for future, size in call.waiters:  # (the pipe decodes: an entry id is a str, a duplicate None)
                if not future.done():
                    future.set_result(reply[start : start + size])
                start += size
        self._pump()

    def _timed_out(self, call: _Call) -> None:
        if call is not self._in_flight:
            return
        self._in_flight = None
        _fail(call.waiters, call.size, TimeoutError("Redis did not answer in time"))
        # its reply may still come: on this connection it would be read as the next call's
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()
        self._pump()

    async def _connect(self) -> None:
        try:
            self._pipe = await open_pipe(self.queue.redis.connection_pool)
        except Exception as error:  # noqa: BLE001 - every caller waiting gets the failure
            failed, self._retry = self._retry, None
            if failed is not None:
                _fail(failed.waiters, failed.size, error)
            encoded, waiters = self._encoded, self._waiters
            self._encoded, self._waiters = [], []
            _fail(waiters, len(encoded), error)
        finally:
            self._connecting = None
        self._pump()


@dataclass(slots=True, eq=False)
class _Call:
    """One script call of the :class:`CoalescingPublisher`: its events and the callers they came from."""

    encoded: list[bytes]
    waiters: list[_Waiter]
    load: bool = False  # sent with the script (EVAL), Redis having forgotten it
    resent: bool = False
    timer: asyncio.TimerHandle | None = None

    @property
    def size(self) -> int:
        return len(self.encoded)


def _fail(waiters: Sequence[_Waiter], count: int, error: Exception) -> None:
    failure = QueueError(f"cannot queue {count} event(s): {type(error).__name__}: {error}")
    for future, _ in waiters:
        if not future.done():
            future.set_exception(failure)
