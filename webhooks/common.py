"""What every inbound endpoint shares: JSON errors with codes, strict JSON body parsing."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, Final, Protocol, TypeVar

import msgspec
from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.sink import UpdateSink
from bot.types import BaseUpdate

log = logging.getLogger("loyalty.webhooks")

ModelT = TypeVar("ModelT", bound=BaseModel)


CounterKey = tuple[str, tuple[tuple[str, str], ...]]


def counter_key(name: str, **labels: str) -> CounterKey:
    """The key of one labelled counter; hot paths build theirs once and use :meth:`Counters.add`."""
    return (name, tuple(sorted(labels.items())))


class Counters:
    """Named counters with labels, for ``/metrics`` (per process, as Prometheus scrapes them)."""

    def __init__(self) -> None:
        self.values: dict[CounterKey, int] = {}

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self.add(counter_key(name, **labels), amount)

    def add(self, key: CounterKey, amount: int = 1) -> None:
        self.values[key] = self.values.get(key, 0) + amount

    def get(self, name: str, **labels: str) -> int:
        return self.values.get(counter_key(name, **labels), 0)


class Prepared(msgspec.Struct, frozen=True, gc=False):
    """An update checked on the ack path but not built: who and which event, and the update as the JSON
    object :data:`bot.UPDATE_ADAPTER` reads (``kind``, the identity fields, ``timestamp`` in ISO 8601,
    ``raw`` and the kind's fields). The worker builds the model from that JSON, as for every queued update.

    Whoever prepares one guarantees the model can be built from it: its input passed a validation at
    least as strict as the update's fields (lengths, types), so an acknowledged event is never refused
    later. This skips building and serialising a pydantic model per event on the path that must answer.

    A msgspec ``Struct`` (built in C: a fifth of a ``NamedTuple``'s instructions, one per event on the
    ack path); it holds only strings and bytes, so it needs no GC tracking.
    """

    channel: str
    account_id: str
    user_id: str
    event_id: str
    json: bytes


class PreparedSink(UpdateSink, Protocol):
    """An :class:`~bot.sink.UpdateSink` that also queues :class:`Prepared` updates."""

    def submit(self, prepared: Sequence[Prepared]) -> Awaitable[Sequence[str | None]]:
        """Queue ``prepared`` (a plain call: the hot path awaits the result directly); per update, the
        queue's id for a new event or ``None`` for a duplicate. The awaitable raises when nothing could
        be queued."""
        ...


SINK: Final = web.AppKey("update_sink", PreparedSink)
COUNTERS: Final = web.AppKey("webhook_counters", Counters)


class ApiError(web.HTTPException):
    """An error with a stable code, rendered by the app's error middleware as
    ``{"error": {"code", "message", "details", "request_id"}}``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        self.status_code = status
        super().__init__(text=message)
        self.error_code = code
        self.details = details


async def read_body(request: web.Request) -> bytes:
    """The request's body, as ``await request.read()`` returns it: 413 over the app's
    ``client_max_size``, and errors of the connection raised alike. Read once: a second call, or
    ``request.read()`` after it, may find the stream drained.

    A webhook's body is small and has usually arrived whole before the handler runs (aiohttp has fed
    it and marked the end of the stream): then it is taken from the stream's buffer in one call
    (:meth:`~aiohttp.StreamReader.read_nowait`). ``request.read()`` loops over ``readany()`` into a
    ``bytearray`` and copies it out again, about 200 interpreted bytecodes a request, a twelfth of
    what aiohttp itself runs to serve one (``bench/README.md``, seventh pass). A body still arriving,
    or over the limit, goes through ``request.read()``.
    """
    payload = request.content
    if payload.is_eof() and payload.total_bytes <= request.client_max_size:
        return payload.read_nowait()
    return await request.read()


async def parse_json_body(request: web.Request, model: type[ModelT]) -> ModelT:
    """Read and validate a JSON body; any problem is a 400/415 that names it, and nothing else happens."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await read_body(request)
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
    if not updates:
        return 0
    counters = request.app[COUNTERS]
    try:
        results = await request.app[SINK].publish(updates)
    except Exception as error:
        raise queue_failure(request.app, len(updates), error, source=source) from error
    new = sum(results)
    queued, duplicate = _outcome_keys(source)
    counters.add(queued, new)
    counters.add(duplicate, len(results) - new)
    return new


def queue_failure(app: web.Application, count: int, error: Exception, *, source: str) -> ApiError:
    """The 503 for ``count`` updates the sink could not queue (counted and logged here): the platform
    delivers them again. The Messenger webhook awaits ``app[SINK].submit(...)`` itself (one coroutine
    less per request than :func:`enqueue`) and raises this when the awaitable fails."""
    app[COUNTERS].inc("webhook_queue_failures_total", source=source)
    log.error("%s: cannot queue %d update(s): %s: %s", source, count, type(error).__name__, error)
    return ApiError(503, "queue_unavailable", "the event could not be queued; try again")


def count_queued(app: web.Application, results: Sequence[str | None], *, source: str) -> int:
    """Count what :meth:`PreparedSink.submit` answered (new or duplicate); return how many were new."""
    duplicates = results.count(None)
    queued, duplicate = _outcome_keys(source)
    counters = app[COUNTERS]
    counters.add(queued, len(results) - duplicates)
    counters.add(duplicate, duplicates)
    return len(results) - duplicates


_OUTCOME_KEYS: dict[str, tuple[CounterKey, CounterKey]] = {}


def _outcome_keys(source: str) -> tuple[CounterKey, CounterKey]:
    keys = _OUTCOME_KEYS.get(source)
    if keys is None:
        keys = _OUTCOME_KEYS[source] = (
            counter_key("webhook_updates_total", source=source, outcome="queued"),
            counter_key("webhook_updates_total", source=source, outcome="duplicate"),
        )
    return keys
