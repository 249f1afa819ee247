"""Readiness checks: does each server answer, right now, within a deadline?"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

from redis.asyncio import Redis

from storage.clients import MongoClient


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"status": "ok" if self.ok else "error", "detail": self.detail}


async def _timed(name: str, probe: Awaitable[object], timeout: float) -> Check:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await asyncio.wait_for(probe, timeout)
    except TimeoutError:
        return Check(name, ok=False, detail=f"no answer within {timeout:g}s")
    except Exception as error:  # noqa: BLE001 - any failure means "not ready"; the class name says which
        return Check(name, ok=False, detail=type(error).__name__)
    return Check(name, ok=True, detail=f"{(loop.time() - started) * 1000:.1f}ms")


async def check_mongo(client: MongoClient, *, timeout: float = 2.0) -> Check:
    return await _timed("mongodb", client.admin.command("ping"), timeout)


async def check_redis(client: Redis, *, timeout: float = 2.0) -> Check:
    return await _timed("redis", client.ping(), timeout)
