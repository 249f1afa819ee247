"""Wires the Mini App and integrations APIs (``miniapp_api``) into the application.

The routes are added when the app is built; their services (the loyalty core, the Zalo Graph client on
the shared httpx client, the Redis rate limiter and idempotency store, the API key repository, the
session signer) once the process's resources are open, by a ``cleanup_ctx`` that runs after the one
that opens them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

import miniapp_api
from app import keys
from app.settings import Settings
from app.zalo_graph import HttpZaloGraph
from miniapp_api.sessions import SessionSigner
from storage.api_keys import MongoApiKeyRepository
from storage.api_support import RedisIdempotencyStore, RedisRateLimiter


def config_from(settings: Settings) -> miniapp_api.MiniAppConfig:
    return miniapp_api.MiniAppConfig(
        cors_origins=settings.miniapp_cors_origin_list,
        access_ttl_seconds=settings.miniapp_session_ttl_seconds,
        refresh_ttl_seconds=settings.miniapp_refresh_ttl_seconds,
        rate_per_ip=settings.miniapp_rate_limit_per_ip,
        rate_per_customer=settings.miniapp_rate_limit_per_customer,
        rate_per_api_key=settings.integrations_rate_limit_per_key,
    )


def setup_miniapp(app: web.Application, settings: Settings) -> None:
    """Add the routes now and the services at start-up (call after the resources' ``cleanup_ctx``)."""
    miniapp_api.register(app, config_from(settings))
    app.cleanup_ctx.append(_services_ctx)


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    resources = app[keys.RESOURCES]
    settings = resources.settings
    config = app[miniapp_api.CONFIG]
    assert settings.secret_key is not None
    app_secret = settings.zalo_app_secret.get_secret_value() if settings.zalo_app_secret else None
    app[miniapp_api.SERVICES] = miniapp_api.MiniAppServices(
        loyalty=resources.loyalty,
        graph=HttpZaloGraph(resources.http, str(settings.zalo_graph_base), app_secret),
        limiter=RedisRateLimiter(resources.redis),
        idempotency=RedisIdempotencyStore(resources.redis),
        api_keys=MongoApiKeyRepository(resources.db),
        signer=SessionSigner(
            settings.secret_key.get_secret_value().encode(),
            resources.clock,
            access_ttl=config.access_ttl_seconds,
            refresh_ttl=config.refresh_ttl_seconds,
        ),
    )
    yield
