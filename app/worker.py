"""The worker: reads the event queue and runs the handler registered for each event's kind.

It runs inside ``loyalty serve`` (as a task of the web process) and as ``loyalty worker`` (a process
of its own, any number of them in one consumer group). Guarantees:

- an event is acknowledged only after its handler returned, so a worker that dies mid-way loses
  nothing: its pending events are claimed by another worker after ``claim_idle_ms``;
- events with the same ordering key (one chat user) are handled one at a time, in queue order, while
  different keys run concurrently;
- a failing event is retried (after ``claim_idle_ms``) and, after ``max_deliveries`` attempts, moved
  to the dead-letter stream with its error and logged; an event of a kind nobody handles goes there
  at once. A handler's exception never stops the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from storage.queue import Delivery, EventQueue

log = logging.getLogger("loyalty.worker")

EventHandler = Callable[[Delivery], Awaitable[None]]

DEFAULT_CLAIM_IDLE_MS: Final = 60_000
DEFAULT_MAX_DELIVERIES: Final = 5


def consumer_name() -> str:
    """Unique per process, readable in ``XINFO CONSUMERS``: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class WorkerStats:
    handled: int = 0
    failed: int = 0
    dead_lettered: int = 0
    claimed: int = 0


@dataclass
class Worker:
    """Consumes ``queue`` with ``handlers`` (event kind → async handler)."""

    queue: EventQueue
    handlers: Mapping[str, EventHandler]
    consumer: str = field(default_factory=consumer_name)
    batch_size: int = 64
    block_ms: int = 1000
    claim_idle_ms: int = DEFAULT_CLAIM_IDLE_MS
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    stats: WorkerStats = field(default_factory=WorkerStats)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; then finish the batch in hand and return."""
        log.info(
            "worker %s consuming %s (kinds: %s)",
            self.consumer,
            self.queue.stream,
            ", ".join(self.handlers) or "none",
        )
        claim_every = max(self.claim_idle_ms / 1000 / 2, 0.05)
        loop = asyncio.get_running_loop()
        next_claim = loop.time()
        while not stop.is_set():
            try:
                if loop.time() >= next_claim:
                    next_claim = loop.time() + claim_every
                    claimed = await self.queue.claim_stale(
                        self.consumer, min_idle_ms=self.claim_idle_ms, count=self.batch_size
                    )
                    if claimed:
                        self.stats.claimed += len(claimed)
                        log.warning("worker %s took over %d stalled event(s)", self.consumer, len(claimed))
                        await self.process(claimed)
                fresh = await self.queue.read(self.consumer, count=self.batch_size, block_ms=self.block_ms)
                await self.process(fresh)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - Redis gone, say: log, wait and retry, never die
                log.error(
                    "worker %s: queue unavailable (%s: %s); retrying",
                    self.consumer,
                    type(error).__name__,
                    error,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
        await self._leave_group()

    async def process(self, deliveries: list[Delivery]) -> None:
        """Handle a batch: same-key events in order, different keys concurrently.

        The events that were handled are acknowledged together, in one round trip, once the whole
        batch is done: a crash before that only means they are delivered again.
        """
        if not deliveries:
            return
        lanes: dict[str, list[Delivery]] = {}
        for delivery in deliveries:
            lanes.setdefault(delivery.key, []).append(delivery)
        results = await asyncio.gather(*(self._lane(lane) for lane in lanes.values()))
        done = [entry_id for lane_done in results for entry_id in lane_done]
        await self.queue.ack(*done)
        self.stats.handled += len(done)

    async def _lane(self, lane: list[Delivery]) -> list[str]:
        return [delivery.entry_id for delivery in lane if await self._handle(delivery)]

    async def _handle(self, delivery: Delivery) -> bool:
        """Run the event's handler; True when it is done with (to be acknowledged)."""
        handler = self.handlers.get(delivery.kind)
        if handler is None:
            await self._dead_letter(delivery, f"no handler for event kind {delivery.kind!r}")
            return False
        try:
            await handler(delivery)
        except Exception as error:
            self.stats.failed += 1
            log.exception(
                "event %s (%s) failed on delivery %d of %d",
                delivery.entry_id,
                delivery.kind,
                delivery.deliveries,
                self.max_deliveries,
            )
            if delivery.deliveries >= self.max_deliveries:
                await self._dead_letter(delivery, f"{type(error).__name__}: {error}")
            # otherwise it stays pending, and is retried once it has been idle for claim_idle_ms
            return False
        return True

    async def _dead_letter(self, delivery: Delivery, error: str) -> None:
        await self.queue.dead_letter(delivery, error)
        self.stats.dead_lettered += 1
        log.error(
            "event %s (%s) moved to %s: %s",
            delivery.entry_id,
            delivery.kind,
            self.queue.dead_letter_stream,
            error,
        )

    async def _leave_group(self) -> None:
        """On a clean stop, remove this consumer from the group unless it still owns pending events."""
        with contextlib.suppress(Exception):
            pending = await self.queue.redis.xpending_range(
                self.queue.stream, self.queue.group, min="-", max="+", count=1, consumername=self.consumer
            )
            if not pending:
                await self.queue.redis.xgroup_delconsumer(self.queue.stream, self.queue.group, self.consumer)
