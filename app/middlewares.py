"""Request ids and one JSON error shape for every failure.

Every error a client sees is ``{"error": {"code": ..., "message": ..., "request_id": ...}}`` with the
right status; no stack trace ever leaves the process (it is logged, with the request id, instead).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
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


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request id and the JSON error shape, in one middleware (one layer less on every request).

    The caller's ``X-Request-ID`` is kept if it is sane, otherwise a new one is made; it is echoed on the
    response and set for the log lines of the request. Every exception becomes the JSON error shape.
    """
    incoming = request.headers.get(REQUEST_ID_HEADER)
    request_id = incoming if incoming is not None and _VALID_REQUEST_ID.match(incoming) else new_request_id()
    token = request_id_var.set(request_id)
    try:
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
        response.headers[REQUEST_ID_HEADER] = request_id
        return response
    finally:
        request_id_var.reset(token)


def _http_error(exc: web.HTTPException) -> web.Response:
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    # entry points raise errors carrying their own stable code and details (webhooks.common.ApiError)
    code = getattr(exc, "error_code", None) or _CODES.get(exc.status, "http_error")
    message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
    if exc.status == 413:
        message = f"request body too large (limit {MAX_BODY_BYTES} bytes)"
    return error_response(exc.status, code, message, headers=headers, details=getattr(exc, "details", None))
