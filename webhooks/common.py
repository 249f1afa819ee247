"""What every inbound endpoint shares: JSON errors with codes, strict JSON body parsing."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class ApiError(web.HTTPException):
    """An error with a stable code, rendered by the app's error middleware as
    ``{"error": {"code", "message", "details", "request_id"}}``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        self.status_code = status
        super().__init__(text=message)
        self.error_code = code
        self.details = details


async def parse_json_body(request: web.Request, model: type[ModelT]) -> ModelT:
    """Read and validate a JSON body; any problem is a 400/415 that names it, and nothing else happens."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    return validate(model, data)


def validate(model: type[ModelT], data: Any) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "problem": e["msg"]}
            for e in error.errors(include_url=False, include_input=False)
        ]
        raise ApiError(400, "invalid_request", "the request is invalid", details) from None
