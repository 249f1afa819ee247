"""Request ids and one JSON error shape for every failure, around every route's handler.

Every error a client sees is ``{"error": {"code": ..., "message": ..., "request_id": ...}}`` with the
right status; no stack trace ever leaves the process (it is logged, with the request id, instead).

This is not an aiohttp middleware. An app with any middleware runs every request through two more
coroutine layers (aiohttp's own ``_fix_request_current_app`` and the middleware) and a cache look-up
of the chain; on the webhook's ack path that was 3% of the request's instructions (``bench/README.md``,
fifth pass). Instead, :func:`install` wraps each route's handler in :func:`request_context`
when the app starts (so routes added after ``create_app`` are covered too), and adds a last route that
answers what no other route matches with the JSON 404 or 405 (with ``Allow``) aiohttp would have raised.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Callable, Coroutine
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler

from app.logs import request_id_var

log = logging.getLogger("loyalty.http")

REQUEST_ID_HEADER: Final = "X-Request-ID"
MAX_BODY_BYTES: Final = 1024 * 1024  # aiohttp's client_max_size: larger bodies get 413
_VALID_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._\-]{8,64}$")
# New request ids: 16 random hex digits drawn once per process, then a 16-digit counter. Unique across
# processes like a uuid4 but without a getrandom() call per request (a request id names a request in
# the logs; it is no secret).
_ID_PREFIX: Final = os.urandom(8).hex()
_ID_COUNTER: Final = itertools.count(1)

#: The name of the route that answers what no other route matches (404 or 405).
NO_ROUTE: Final = "no_route"
_IN_CONTEXT: Final = "__in_request_context__"  # the mark of a handler made by request_context

# Stable, documented codes for the statuses aiohttp raises on its own.
_CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}


def error_response(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, details: Any = None
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message, "request_id": request_id_var.get()}
    if details is not None:
        error["details"] = details
    return web.json_response({"error": error}, status=status, headers=headers)


def new_request_id() -> str:
    """32 hex digits, unique across processes."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def request_context(handler: Handler) -> Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]:
    """``handler`` with the request id and the JSON error shape.

    The caller's ``X-Request-ID`` is kept if it is sane, otherwise a new one is made; it is echoed on the
    response and set for the log lines of the request. Every exception becomes the JSON error shape.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        request_id = request.headers.get(REQUEST_ID_HEADER)
        if request_id is None or not _VALID_REQUEST_ID.match(request_id):
            request_id = new_request_id()
        token = request_id_var.set(request_id)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                exc.headers[REQUEST_ID_HEADER] = request_id
                raise  # redirects and the like pass through
            response = _http_error(exc)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = error_response(500, "internal_error", "internal server error")
        finally:
            request_id_var.reset(token)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response

    handle.__wrapped__ = handler  # type: ignore[attr-defined]
    setattr(handle, _IN_CONTEXT, True)
    return handle


def in_context(handler: object) -> bool:
    """Whether ``handler`` was made by :func:`request_context`."""
    return getattr(handler, _IN_CONTEXT, False) is True


def install(app: web.Application) -> None:
    """Give every route of ``app`` the request context, and JSON 404/405s, once all its routes are in: on
    start-up, before the router is frozen."""
    app.on_startup.append(_wrap_routes)


async def _wrap_routes(app: web.Application) -> None:
    for route in app.router.routes():
        if not in_context(route.handler):
            # aiohttp has no public way to change a route's handler, and registering every route through
            # a wrapper would miss those added by libraries and tests. tests/app/test_http.py checks
            # that every route, static files included, answers in context.
            route._handler = request_context(route.handler)
    app.router.add_route("*", "/{path:.*}", request_context(_no_route), name=NO_ROUTE)


async def _no_route(request: web.Request) -> web.StreamResponse:
    """What aiohttp's router answers when no route matches: 405 with ``Allow`` if the path exists with
    other methods, else 404. This route is the last one, so it is reached only then."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.name != NO_ROUTE:
            _, methods = await resource.resolve(request)
            allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound


def _http_error(exc: web.HTTPException) -> web.Response:
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    # entry points raise errors carrying their own stable code and details (webhooks.common.ApiError)
    code = getattr(exc, "error_code", None) or _CODES.get(exc.status, "http_error")
    message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
    if exc.status == 413:
        message = f"request body too large (limit {MAX_BODY_BYTES} bytes)"
    return error_response(exc.status, code, message, headers=headers, details=getattr(exc, "details", None))
