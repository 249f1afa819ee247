"""The periodic jobs of the loyalty core, run inside the worker processes.

Every ``JOBS_INTERVAL_SECONDS`` one process (a Redis lock decides which; the others skip that turn)
runs :meth:`loyalty.core.Loyalty.run_jobs`: expiry of points and vouchers, tier reviews, and the
repair of whatever a crash left half-done. Each job is idempotent, so the lock is about not doing the
work N times, not about correctness: a lock that expires mid-run is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from loyalty.core import Loyalty

log = logging.getLogger("loyalty.jobs")

LOCK_KEY: Final = "loyalty:jobs:lock"


class JobRunner:
    def __init__(self, loyalty: Loyalty, redis: Redis, *, interval: float) -> None:
        self._loyalty = loyalty
        self._redis = redis
        self._interval = interval
        self._token = secrets.token_hex(8)
        self.runs = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Run the jobs every interval until ``stop`` is set (the first turn right away)."""
        while not stop.is_set():
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval)

    async def run_once(self) -> bool:
        """One turn: the jobs, if this process got the lock. A failure is logged, never raised."""
        try:
            # held for most of the interval: another process's turn comes after it expires
            got = await self._redis.set(LOCK_KEY, self._token, nx=True, px=int(self._interval * 900))
        except RedisError as error:
            log.warning("jobs skipped: Redis unavailable (%s)", error)
            return False
        if not got:
            return False
        try:
            report = await self._loyalty.run_jobs()
        except Exception:
            log.exception("periodic jobs failed")
            return False
        self.runs += 1
        if any(_nonzero(value) for value in report.values()):
            log.info("periodic jobs: %s", report)
        return True


def _nonzero(value: object) -> bool:
    if isinstance(value, dict):
        return any(_nonzero(v) for v in value.values())
    return bool(value)
