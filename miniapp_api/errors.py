"""One error shape for the Mini App and integrations APIs: ``{"error": {"code", "message"}}``.

Domain refusals keep the stable ``code`` of :mod:`loyalty.errors`; this module only chooses the HTTP
status. Errors of the API itself (auth, validation, limits) have codes of their own, listed in
:data:`API_CODES` and in the OpenAPI document.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from loyalty import errors as domain


class ApiError(Exception):
    """An error answered as JSON with ``status`` and a stable ``code``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


# The API's own codes and their statuses (the domain's are mapped by `status_for`).
API_CODES: Final[dict[str, int]] = {
    "invalid_json": 400,
    "invalid_cursor": 400,
    "invalid_idempotency_key": 400,
    "unauthorized": 401,
    "invalid_token": 401,
    "token_expired": 401,
    "invalid_api_key": 401,
    "zalo_phone_refused": 422,
    "zalo_user_mismatch": 403,
    "validation_error": 422,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "idempotency_in_progress": 409,
    "idempotency_key_reused": 422,
    "too_many_requests": 429,
    "zalo_unavailable": 503,
    "service_unavailable": 503,
    "cors_origin_not_allowed": 403,
    "not_found": 404,
}

_UNPROCESSABLE: Final = (
    domain.InvalidPhone,
    domain.InvalidAmount,
    domain.InvalidQuantity,
    domain.UnknownProduct,
    domain.OrderEmpty,
    domain.InvalidConsent,
    domain.InvalidErasure,
    domain.CheckinForged,  # also checkin_malformed: not a code we made
    domain.MinSpendNotMet,
    domain.GameInvalid,
)


def status_for(error: domain.LoyaltyError) -> int:
    """The HTTP status of a domain refusal."""
    if isinstance(error, domain.NotFound):
        return 404
    if isinstance(error, domain.GameRateLimited):
        return 429
    if isinstance(error, domain.CustomerInactive):
        return 403
    if isinstance(error, domain.VoucherNotYours):
        return 403
    if isinstance(error, _UNPROCESSABLE):
        return 422
    return 409  # a refusal given the current state: not enough points, sold out, already used...


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(
    status: int, code: str, message: str, *, details: Any = None, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(error_body(code, message, details), ensure_ascii=False).encode(),
        content_type="application/json",
        headers=headers,
    )


def from_exception(error: Exception) -> web.Response | None:
    """The response for an error a handler raised; ``None`` for one that is a bug (re-raised)."""
    if isinstance(error, ApiError):
        return error_response(
            error.status, error.code, error.message, details=error.details, headers=error.headers
        )
    if isinstance(error, domain.LoyaltyError):
        return error_response(status_for(error), error.code, error.message)
    return None
