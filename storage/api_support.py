"""Redis-backed helpers of the HTTP APIs: fixed-window rate limits and the ``Idempotency-Key`` store.

They implement the protocols of ``miniapp_api.ports`` (structurally: storage imports no entry point).
Each operation is one round trip: a Lua script counts every rule of a request at once; an idempotency
key is reserved with ``SET NX`` and answered with one ``SET``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

from redis.asyncio import Redis

# KEYS: one counter per rule; ARGV: limit, window ms, limit, window ms... Counts every rule (a refused
# request still counts: a client hammering the API stays refused) and returns the longest wait, or 0.
_HIT: Final = """
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('PEXPIRE', key, window) end
  if count > limit then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then redis.call('PEXPIRE', key, window); ttl = window end
    if ttl > wait then wait = ttl end
  end
end
return wait
"""


class RedisRateLimiter:
    def __init__(self, redis: Redis, *, prefix: str = "ratelimit:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_HIT)

    async def hit(self, rules: Sequence[tuple[str, int, int]]) -> float:
        """Count one request against every ``(key, limit, window_seconds)``; 0 when allowed, else the
        seconds until the refusing window resets."""
        keys = [f"{self._prefix}{key}:{window}" for key, _, window in rules]
        args: list[int] = []
        for _, limit, window in rules:
            args.extend((limit, window * 1000))
        wait_ms = int(await self._script(keys=keys, args=args))
        return wait_ms / 1000


class RedisIdempotencyStore:
    """``idempotency:<key>`` holds ``{"state": "running"}`` (with a lease) or the stored answer."""

    def __init__(self, redis: Redis, *, prefix: str = "idempotency:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def begin(self, key: str, fingerprint: str, *, lease_seconds: int) -> tuple[int, bytes, str] | bool:
        name = self._prefix + key
        running = json.dumps({"state": "running", "fingerprint": fingerprint})
        if await self._redis.set(name, running, nx=True, ex=lease_seconds):
            return True
        stored = await self._redis.get(name)
        if stored is None:  # the lease or the answer expired just now: try once more
            return bool(await self._redis.set(name, running, nx=True, ex=lease_seconds))
        data = json.loads(stored)
        if data.get("state") != "done":
            return False
        return int(data["status"]), data["body"].encode("utf-8"), str(data["fingerprint"])

    async def finish(
        self, key: str, status: int, body: bytes, fingerprint: str, *, keep_seconds: int
    ) -> None:
        done = {"state": "done", "status": status, "body": body.decode("utf-8"), "fingerprint": fingerprint}
        await self._redis.set(self._prefix + key, json.dumps(done), ex=keep_seconds)

    async def abandon(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def use_once(self, key: str, *, ttl_seconds: int) -> bool:
        return bool(await self._redis.set(self._prefix + "once:" + key, "1", nx=True, ex=max(1, ttl_seconds)))
