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

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.web_log import AccessLogger

from app import games_page, keys, middlewares, zalo_oauth
from app.chat import QueuedUpdates, ZnsReceipts, build_dispatcher, chat_worker
from app.jobs import JobRunner
from app.middlewares import MAX_BODY_BYTES
from app.miniapp import setup_miniapp
from app.paths import ASSETS_DIR, TEMPLATES_DIR
from app.resources import open_resources
from app.settings import Settings
from bot.channels.emulator import EmulatorOutbox
from loyalty.clock import Clock, SystemClock
from storage.health import check_mongo, check_redis
from webhooks import common as webhook_common
from webhooks import emulator, messenger, zalo

log = logging.getLogger("loyalty.app")


def create_app(settings: Settings, *, clock: Clock | None = None, worker: bool = True) -> web.Application:
    """Build the application. Nothing connects until the app starts.

    :param worker: run the in-process worker (``loyalty serve`` does; tests of the HTTP surface may not).
    """
    if settings.mongodb_uri is None or settings.redis_url is None:
        raise ValueError("create_app needs MONGODB_URI and REDIS_URL (start the embedded servers first)")
    app = web.Application(client_max_size=MAX_BODY_BYTES)  # no middlewares: see app.middlewares
    middlewares.install(app)
    app[keys.SETTINGS] = settings
    app[keys.CLOCK] = clock or SystemClock()
    app[webhook_common.COUNTERS] = webhook_common.Counters()
    app.cleanup_ctx.append(_resources_ctx)
    if worker:
        app.cleanup_ctx.append(_worker_ctx)
    template_dirs = [str(d) for d in (settings.templates_dir, TEMPLATES_DIR) if d is not None]
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(template_dirs),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    app[aiohttp_jinja2.static_root_key] = "/static"
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/readyz", readyz, allow_head=True)
    app.router.add_get("/metrics", metrics)
    app.router.add_static("/static/", ASSETS_DIR, name="static", append_version=True)
    _register_platform_webhooks(app, settings)
    setup_miniapp(app, settings)  # /api/miniapp/v1, /api/integrations/v1 (after the resources' ctx)
    games_page.register(app)  # /games/{campaign}/fairness: published odds, seed commitment, verification
    if settings.emulator_on:
        emulator.register(app)
        log.info("chat emulator on at %s/emulator (EMULATOR_ENABLED=false turns it off)", settings.base_url)
    return app


def _register_platform_webhooks(app: web.Application, settings: Settings) -> None:
    """Each platform's webhook, when its secrets are configured (and not otherwise: an endpoint that
    could not verify a signature must not exist)."""
    if settings.zalo_app_id and settings.zalo_oa_secret_key is not None:
        zalo.register(
            app,
            zalo.ZaloWebhookConfig(
                app_id=settings.zalo_app_id, oa_secret_key=settings.zalo_oa_secret_key.get_secret_value()
            ),
            clock=app[keys.CLOCK].now,
        )
        log.info("Zalo OA webhook at %s%s", settings.base_url, zalo.PATH)
    elif settings.zalo_app_id or settings.zalo_oa_secret_key is not None:
        log.warning("Zalo webhook off: it needs both ZALO_APP_ID and ZALO_OA_SECRET_KEY")
    if zalo_oauth.configured(settings):
        zalo_oauth.register(app)  # where an OA admin's consent comes back (`loyalty zalo authorize`)
    if settings.facebook_app_secret is not None and settings.facebook_verify_token is not None:
        messenger.register(
            app,
            messenger.MessengerWebhookConfig(
                app_secret=settings.facebook_app_secret.get_secret_value(),
                verify_token=settings.facebook_verify_token.get_secret_value(),
                page_id=settings.facebook_page_id,
            ),
        )
        log.info("Messenger webhook at %s%s", settings.base_url, messenger.PATH)
    elif settings.facebook_app_secret is not None or settings.facebook_verify_token is not None:
        log.warning("Messenger webhook off: it needs both FACEBOOK_APP_SECRET and FACEBOOK_VERIFY_TOKEN")


async def _resources_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_resources(app[keys.SETTINGS], app[keys.CLOCK], role="web") as resources:
        app[keys.MONGO_CLIENT] = resources.mongo
        app[keys.MONGO_DB] = resources.db
        app[keys.REDIS] = resources.redis
        app[keys.QUEUE] = resources.queue
        app[keys.RESOURCES] = resources
        sink = QueuedUpdates(resources.queue)
        app[webhook_common.SINK] = sink
        if zalo.ZNS_STATUS not in app:  # the default; a deployment or a test may bring its own
            app[zalo.ZNS_STATUS] = ZnsReceipts(resources)
        app[emulator.OUTBOX] = EmulatorOutbox(resources.redis)
        try:
            yield
        finally:
            await sink.aclose()


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    dispatcher = build_dispatcher(app[keys.RESOURCES])
    await dispatcher.emit_startup()
    worker = chat_worker(app[keys.RESOURCES], dispatcher)
    app[keys.DISPATCHER] = dispatcher
    app[keys.WORKER] = worker
    stop = asyncio.Event()
    tasks = [asyncio.create_task(worker.run(stop), name="in-process-worker")]
    settings = app[keys.SETTINGS]
    if settings.jobs_interval_seconds > 0:
        resources = app[keys.RESOURCES]
        jobs = JobRunner(resources.loyalty, resources.redis, interval=settings.jobs_interval_seconds)
        tasks.append(asyncio.create_task(jobs.run(stop), name="loyalty-jobs"))
    yield
    stop.set()
    await asyncio.gather(*tasks)
    await dispatcher.emit_shutdown()


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


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: webhook counters, the queue's backlog and dead letters, this worker's stats."""
    lines: list[str] = []
    for (name, labels), value in sorted(request.app[webhook_common.COUNTERS].values.items()):
        label_text = ",".join(f'{k}="{v}"' for k, v in labels)
        lines.append(f"loyalty_{name}{{{label_text}}} {value}" if label_text else f"loyalty_{name} {value}")
    queue = request.app[keys.QUEUE]
    try:
        lines.append(f"loyalty_queue_backlog {await queue.backlog()}")
        lines.append(f"loyalty_queue_dead_letters {await queue.redis.xlen(queue.dead_letter_stream)}")
    except Exception:  # noqa: BLE001 - metrics never fail because Redis is down; readiness says so
        lines.append("loyalty_queue_up 0")
    worker = request.app.get(keys.WORKER)
    if worker is not None:
        for field in ("handled", "failed", "dead_lettered", "claimed"):
            lines.append(f"loyalty_worker_events_{field}_total {getattr(worker.stats, field)}")
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


class QuietProbesAccessLogger(AccessLogger):
    """The access log, minus successful health probes (an orchestrator sends one every few seconds)."""

    PROBES = frozenset({"/healthz", "/readyz"})

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if response.status < 400 and request.path in self.PROBES:
            return
        super().log(request, response, time)
