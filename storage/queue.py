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
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

DEFAULT_STREAM: Final = "events:inbound"
DEFAULT_GROUP: Final = "workers"
DEDUPE_TTL_SECONDS: Final = 24 * 3600
MALFORMED_KIND: Final = "queue.malformed"

# KEYS[1] = stream; ARGV = ttl, then per event: dedupe key ('' = no dedupe), kind, key, data, at.
# Returns, per event, the new entry id, or false when it was a duplicate.
_PUBLISH: Final = """
local ttl = tonumber(ARGV[1])
local result = {}
local n = 0
for i = 2, #ARGV, 5 do
  local dedupe = ARGV[i]
  n = n + 1
  if dedupe ~= '' and redis.call('EXISTS', dedupe) == 1 then
    result[n] = false
  else
    local id = redis.call('XADD', KEYS[1], '*',
      'kind', ARGV[i + 1], 'key', ARGV[i + 2], 'data', ARGV[i + 3], 'at', ARGV[i + 4])
    if dedupe ~= '' then
      redis.call('SET', dedupe, id, 'EX', ttl)
    end
    result[n] = id
  end
end
return result
"""


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
    _publish_script: AsyncScript | None = field(default=None, init=False, repr=False)

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.stream}:dead"

    def _dedupe_key(self, dedupe_id: str) -> str:
        return f"dedupe:{self.stream}:{dedupe_id}"

    # ------------------------------------------------------------------ producing
    async def publish(self, events: Sequence[Event]) -> list[str | None]:
        """Queue ``events`` in one round trip; per event, its entry id, or ``None`` for a duplicate.

        :raises QueueError: nothing was queued (or, for a script error mid-batch, the events before
            the failing one were: their ids are lost to the caller, who must retry the whole batch,
            and the dedupe keys make that retry queue only the rest).
        """
        if not events:
            return []
        now_ms = str(int(time.time() * 1000))
        args: list[str | bytes | int] = [self.dedupe_ttl]
        for event in events:
            dedupe = self._dedupe_key(event.dedupe_id) if event.dedupe_id else ""
            data = event.data
            if not isinstance(data, str | bytes):
                data = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            args += [dedupe, event.kind, event.key, data, now_ms]
        if self._publish_script is None:
            # EVALSHA (redis-py loads the script once when the server does not know it): Redis need not
            # receive and hash the script's text on every call
            self._publish_script = self.redis.register_script(_PUBLISH)
        try:
            result: list[str | None] = await self._publish_script(keys=(self.stream,), args=args)
        except Exception as error:
            raise QueueError(
                f"cannot queue {len(events)} event(s): {type(error).__name__}: {error}"
            ) from error
        return [entry if entry else None for entry in result]

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
    the same turn of the event loop (up to ``max_batch``).

    Each caller still gets its own answer, and only once its events are in Redis, so a webhook acks
    nothing that is not durably queued; but N concurrent webhook requests cost about one round trip
    instead of N (redis-py's per-command overhead dominates otherwise: see DESIGN.md).
    """

    def __init__(self, queue: EventQueue, *, max_batch: int = 64) -> None:
        self.queue = queue
        self.max_batch = max_batch
        self._pending: list[tuple[Event, asyncio.Future[str | None]]] = []
        self._scheduled = False
        self._flushes: set[asyncio.Task[None]] = set()
        self.batches = 0

    async def publish(self, events: Sequence[Event]) -> list[str | None]:
        loop = asyncio.get_running_loop()
        if len(events) == 1:  # the usual webhook delivery: one future, no gather
            future: asyncio.Future[str | None] = loop.create_future()
            self._pending.append((events[0], future))
            self._schedule(loop)
            return [await future]
        futures = []
        for event in events:
            future = loop.create_future()
            self._pending.append((event, future))
            futures.append(future)
        self._schedule(loop)
        return list(await asyncio.gather(*futures))

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if len(self._pending) >= self.max_batch:
            self._flush_now()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._scheduled = False
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            task = asyncio.get_running_loop().create_task(self._flush(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[Event, asyncio.Future[str | None]]]) -> None:
        self.batches += 1
        try:
            entry_ids = await self.queue.publish([event for event, _ in batch])
        except Exception as error:  # noqa: BLE001 - every caller of the batch gets the failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), entry_id in zip(batch, entry_ids, strict=True):
            if not future.done():
                future.set_result(entry_id)
