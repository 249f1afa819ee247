"""Which MongoDB and Redis this process uses: the configured ones, or embedded ones it starts.

:func:`storage_servers` is the one place that decides. It starts whatever is not configured, holds the
``DATA_DIR`` lock while they run, logs one line saying what is in use, and stops them on exit (after
the application has stopped using them).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
from collections.abc import Iterator
from typing import Final

from pydantic import SecretStr

from app.embedded import DataDirLock, EmbeddedMongo, EmbeddedRedis
from app.settings import Settings

log = logging.getLogger("loyalty.runtime")

#: The cyclic collector's first threshold for a long-running process: objects allocated (net) before a
#: young collection. CPython's default, 700, is crossed over and over by the objects of the requests in
#: flight (64 concurrent webhooks hold a few thousand), so `bench.ingest` measured ~500 young and a few
#: full collections in 6 s, ~10% of the CPU, each full one ~70 ms (the p99 of the acks).
GC_YOUNG_THRESHOLD: Final = 10_000


def tune_gc() -> None:
    """Call once a long-running process has started (its modules, settings and clients are loaded).

    ``gc.freeze()`` moves everything alive now (modules, pydantic schemas, clients: ~100k objects) out of
    the collector's sight, so a full collection no longer walks them all; a higher young threshold stops
    collections that find nothing (the request path makes no reference cycles).
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


@contextlib.contextmanager
def storage_servers(settings: Settings) -> Iterator[Settings]:
    """Yield ``settings`` with ``MONGODB_URI`` and ``REDIS_URL`` pointing at running servers."""
    with contextlib.ExitStack() as stack:
        updates: dict[str, SecretStr] = {}
        if settings.embedded_mongo or settings.embedded_redis:
            lock = DataDirLock(settings.data_dir)
            lock.acquire()
            stack.callback(lock.release)
        if settings.embedded_mongo:
            mongo = stack.enter_context(EmbeddedMongo(settings.data_dir))
            updates["mongodb_uri"] = SecretStr(mongo.url)
        if settings.embedded_redis:
            redis = stack.enter_context(
                EmbeddedRedis(settings.data_dir, appendfsync=settings.embedded_redis_appendfsync)
            )
            updates["redis_url"] = SecretStr(redis.url)
        effective = settings.model_copy(update=updates)
        log.info("storage: %s", describe(settings, effective))
        yield effective


def describe(configured: Settings, effective: Settings) -> str:
    """One line naming each server and whether it is embedded (no credentials in it)."""
    assert effective.mongodb_uri is not None
    assert effective.redis_url is not None
    mongo = _where(effective.mongodb_uri.get_secret_value())
    redis = _where(effective.redis_url.get_secret_value())
    data_dir = configured.data_dir.resolve()
    mongo_kind = (
        f"embedded SecantusDB at {mongo}, data in {data_dir / 'mongodb'}"
        if configured.embedded_mongo
        else f"external at {mongo}"
    )
    redis_kind = (
        f"embedded Redis at {redis}, data in {data_dir / 'redis'}"
        if configured.embedded_redis
        else f"external at {redis}"
    )
    return f"MongoDB {mongo_kind}; Redis {redis_kind}"


_URL: Final = re.compile(r"^(?P<scheme>[a-z+]+)://(?:[^@/]*@)?(?P<hosts>[^/?]*)(?P<path>/[^?]*)?")


def _where(url: str) -> str:
    """``scheme://hosts/path`` of a URL, without user, password or query (multi-host URIs too)."""
    match = _URL.match(url)
    if match is None:
        return "(unparsable URL)"
    path = match["path"] if match["path"] not in (None, "", "/") else ""
    return f"{match['scheme']}://{match['hosts']}{path}"
