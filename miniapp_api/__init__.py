"""The REST API behind the brand's Zalo Mini App (``/api/miniapp/v1``) and the server-to-server
integrations API (``/api/integrations/v1``). Contract and examples: ``docs/miniapp-api.md``.

``register(app, config)`` adds the routes; the composition root (``app.miniapp``) puts the services
(:class:`~miniapp_api.http.MiniAppServices`) under :data:`~miniapp_api.http.SERVICES` once the
process's resources are open.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from miniapp_api import integrations, routes
from miniapp_api.http import CONFIG, SERVICES, MiniAppConfig, MiniAppServices
from miniapp_api.http import register as register_endpoints
from miniapp_api.openapi import build_document, docs_page

__all__ = ["CONFIG", "DOCS_PATH", "SERVICES", "MiniAppConfig", "MiniAppServices", "documents", "register"]

MINIAPP_PREFIX: Final = routes.PREFIX
INTEGRATIONS_PREFIX: Final = integrations.PREFIX
OPENAPI_PATH: Final = MINIAPP_PREFIX + "/openapi.json"
INTEGRATIONS_OPENAPI_PATH: Final = INTEGRATIONS_PREFIX + "/openapi.json"
DOCS_PATH: Final = "/api/miniapp/docs"
VERSION: Final = "1.0.0"


def documents() -> tuple[dict[str, Any], dict[str, Any]]:
    """The OpenAPI documents of the Mini App API and of the integrations API."""
    return (
        build_document("social-loyalty Mini App API", VERSION, MINIAPP_PREFIX, routes.ENDPOINTS),
        build_document(
            "social-loyalty integrations API", VERSION, INTEGRATIONS_PREFIX, integrations.ENDPOINTS
        ),
    )


def register(app: web.Application, config: MiniAppConfig) -> None:
    app[CONFIG] = config
    register_endpoints(app, MINIAPP_PREFIX, routes.ENDPOINTS, config)
    register_endpoints(app, INTEGRATIONS_PREFIX, integrations.ENDPOINTS, config)
    miniapp_doc, integrations_doc = documents()
    page = docs_page(miniapp_doc, OPENAPI_PATH) + docs_page(integrations_doc, INTEGRATIONS_OPENAPI_PATH)

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(miniapp_doc)

    async def integrations_openapi(request: web.Request) -> web.Response:
        return web.json_response(integrations_doc)

    async def docs(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get(OPENAPI_PATH, openapi)
    app.router.add_get(INTEGRATIONS_OPENAPI_PATH, integrations_openapi)
    app.router.add_get(DOCS_PATH, docs)
