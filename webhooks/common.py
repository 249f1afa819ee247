"""What every inbound endpoint shares: JSON errors with codes, strict JSON body parsing."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Final, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.sink import UpdateSink
from bot.types import BaseUpdate

log = logging.getLogger("loyalty.webhooks")

ModelT = TypeVar("ModelT", bound=BaseModel)


class Counters:
    """Named counters with labels, for ``/metrics`` (per process, as Prometheus scrapes them)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        self.values[key] = self.values.get(key, 0) + amount

    def get(self, name: str, **labels: str) -> int:
        return self.values.get((name, tuple(sorted(labels.items()))), 0)


SINK: Final = web.AppKey("update_sink", UpdateSink)
COUNTERS: Final = web.AppKey("webhook_counters", Counters)


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


async def enqueue(request: web.Request, updates: Sequence[BaseUpdate], *, source: str) -> int:
    """Queue ``updates`` durably, or fail the request with 503 so the platform delivers it again.

    Returns how many were new (the rest were repeated deliveries). Never answer 200 for an event that
    is not in the queue: Messenger never resends after a 200.
    """
    counters = request.app[COUNTERS]
    if not updates:
        return 0
    try:
        results = await request.app[SINK].publish(updates)
    except Exception as error:
        counters.inc("webhook_queue_failures_total", source=source)
        log.error("%s: cannot queue %d update(s): %s: %s", source, len(updates), type(error).__name__, error)
        raise ApiError(503, "queue_unavailable", "the event could not be queued; try again") from error
    new = sum(results)
    counters.inc("webhook_updates_total", new, source=source, outcome="queued")
    counters.inc("webhook_updates_total", len(results) - new, source=source, outcome="duplicate")
    return new
