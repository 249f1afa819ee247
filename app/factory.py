"""``create_app(settings)``: the aiohttp application, its resources and its routes.

Resources are opened and closed with the app through ``cleanup_ctx``, in dependency order: the
storage clients first, then the in-process worker (stopped first at shutdown, so it never runs
without its clients). The settings must carry the URIs of running servers: ``loyalty serve`` starts
the embedded ones first (:mod:`app.runtime`) when none are configured.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.web_log import AccessLogger

from app import keys
from app.middlewares import MAX_BODY_BYTES, error_middleware, request_id_middleware
from app.resources import open_resources
from app.settings import Settings
from app.worker import Worker, event_handlers
from loyalty.clock import Clock, SystemClock
from storage.health import check_mongo, check_redis

log = logging.getLogger("loyalty.app")


def create_app(settings: Settings, *, clock: Clock | None = None, worker: bool = True) -> web.Application:
    """Build the application. Nothing connects until the app starts.

    :param worker: run the in-process worker (``loyalty serve`` does; tests of the HTTP surface may not).
    """
    if settings.mongodb_uri is None or settings.redis_url is None:
        raise ValueError("create_app needs MONGODB_URI and REDIS_URL (start the embedded servers first)")
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[keys.SETTINGS] = settings
    app[keys.CLOCK] = clock or SystemClock()
    app.cleanup_ctx.append(_resources_ctx)
    if worker:
        app.cleanup_ctx.append(_worker_ctx)
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/readyz", readyz, allow_head=True)
    return app


async def _resources_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_resources(app[keys.SETTINGS], app[keys.CLOCK], role="web") as resources:
        app[keys.MONGO_CLIENT] = resources.mongo
        app[keys.MONGO_DB] = resources.db
        app[keys.REDIS] = resources.redis
        app[keys.QUEUE] = resources.queue
        yield


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    worker = Worker(app[keys.QUEUE], event_handlers())
    app[keys.WORKER] = worker
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop), name="in-process-worker")
    yield
    stop.set()
    await task


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process is up and its event loop answers. Touches no server."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 only when MongoDB and Redis both answer now; 503 names the one that failed."""
    checks = await asyncio.gather(
        check_mongo(request.app[keys.MONGO_CLIENT]),
        check_redis(request.app[keys.REDIS]),
    )
    ready = all(check.ok for check in checks)
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": {check.name: check.as_dict() for check in checks},
    }
    return web.json_response(body, status=200 if ready else 503)


class QuietProbesAccessLogger(AccessLogger):
    """The access log, minus successful health probes (an orchestrator sends one every few seconds)."""

    PROBES = frozenset({"/healthz", "/readyz"})

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if response.status < 400 and request.path in self.PROBES:
            return
        super().log(request, response, time)
