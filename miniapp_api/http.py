"""The small framework under the routes: one :class:`Endpoint` per operation, declared once and used
both to serve it and to describe it in the OpenAPI document (``miniapp_api.openapi``).

Serving a request goes, in order: CORS headers; the caller (a session token, an API key, or nobody);
rate limits (per IP, and per customer or key, one Redis round trip); path, query and body validation
(strict pydantic models: ``{"$gt": ""}`` where a string belongs is a 422, never a query; bodies over
:attr:`MiniAppConfig.max_body_bytes` are a 413); the ``Idempotency-Key`` (a POST that creates something,
retried with the same key, gets the first answer again); the handler; the error mapping.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from aiohttp import web
from pydantic import BaseModel, ValidationError

from loyalty.core import Loyalty
from loyalty.customers import Customer
from miniapp_api.errors import ApiError, error_response, from_exception
from miniapp_api.ports import (
    ApiKeyRecord,
    ApiKeyRepository,
    IdempotencyStore,
    RateLimiter,
    RateRule,
    StoredAnswer,
    ZaloGraph,
)
from miniapp_api.sessions import Session, SessionSigner

log = logging.getLogger("loyalty.miniapp_api")

Auth = Literal["none", "bearer", "apikey"]
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
_IDEMPOTENCY_KEY: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PATH_PARAM: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_IDEMPOTENCY_LEASE: Final = 60
_IDEMPOTENCY_KEEP: Final = 24 * 3600


@dataclass(frozen=True, slots=True)
class MiniAppConfig:
    """The API's settings (from ``app.settings``: ``MINIAPP_*``)."""

    cors_origins: tuple[str, ...] = ()
    access_ttl_seconds: int = 3600
    refresh_ttl_seconds: int = 30 * 24 * 3600
    rate_per_ip: int = 300  # requests per minute
    rate_per_customer: int = 120
    rate_per_api_key: int = 600
    max_body_bytes: int = 16 * 1024


@dataclass(frozen=True, slots=True)
class MiniAppServices:
    """What the routes use, built once the process's resources are open (``app.miniapp``)."""

    loyalty: Loyalty
    graph: ZaloGraph
    limiter: RateLimiter
    idempotency: IdempotencyStore
    api_keys: ApiKeyRepository
    signer: SessionSigner


CONFIG: Final = web.AppKey("miniapp_config", MiniAppConfig)
SERVICES: Final = web.AppKey("miniapp_services", MiniAppServices)


@dataclass(slots=True)
class Call:
    """One request, validated: what a handler receives."""

    request: web.Request
    services: MiniAppServices
    config: MiniAppConfig
    path: dict[str, str]
    query: Any = None
    body: Any = None
    session: Session | None = None
    api_key: ApiKeyRecord | None = None
    idempotency_key: str | None = None

    @property
    def loyalty(self) -> Loyalty:
        return self.services.loyalty

    @property
    def customer_id(self) -> str:
        assert self.session is not None
        return self.session.customer_id

    async def customer(self) -> Customer:
        """The session's customer (the survivor after a merge); 403 ``customer_inactive`` if erased."""
        return await self.loyalty.customers.get_active(self.customer_id)


Result = BaseModel | tuple[int, BaseModel] | dict[str, Any]
HandlerFn = Callable[[Call], Awaitable[Result]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # relative to the API's prefix, aiohttp syntax: /orders/{order_id}
    handler: HandlerFn
    summary: str
    tag: str
    auth: Auth = "bearer"
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None  # None: a free-form JSON object
    status: int = 200
    idempotent: bool = False
    errors: tuple[int, ...] = ()
    description: str = ""
    operation_id: str = ""
    path_params: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        params = tuple(re.findall(r"{(\w+)}", self.path))
        object.__setattr__(self, "path_params", params)
        if not self.operation_id:
            object.__setattr__(self, "operation_id", self.handler.__name__.strip("_"))


def register(app: web.Application, prefix: str, endpoints: list[Endpoint], config: MiniAppConfig) -> None:
    """Add the endpoints under ``prefix``, each with a CORS preflight answer."""
    app[CONFIG] = app.get(CONFIG, config)
    paths: dict[str, list[str]] = {}
    for endpoint in endpoints:
        app.router.add_route(endpoint.method, prefix + endpoint.path, _serve(endpoint))
        paths.setdefault(prefix + endpoint.path, []).append(endpoint.method)
    for path, methods in paths.items():
        app.router.add_route("OPTIONS", path, _preflight(tuple(methods)))


# ------------------------------------------------------------------------------------------ CORS
def _cors_headers(request: web.Request, config: MiniAppConfig) -> dict[str, str]:
    origin = request.headers.get("Origin")
    if origin is None or origin not in config.cors_origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Vary": "Origin",
        "Access-Control-Expose-Headers": "Retry-After, X-Request-ID, Idempotency-Replayed",
    }


def _preflight(methods: tuple[str, ...]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def preflight(request: web.Request) -> web.Response:
        headers = _cors_headers(request, request.app[CONFIG])
        if not headers:
            return error_response(403, "cors_origin_not_allowed", "this origin may not call the API")
        headers.update(
            {
                "Access-Control-Allow-Methods": ", ".join((*methods, "OPTIONS")),
                "Access-Control-Allow-Headers": "Authorization, Content-Type, Idempotency-Key, X-Request-ID",
                "Access-Control-Max-Age": "600",
            }
        )
        return web.Response(status=204, headers=headers)

    return preflight


# ------------------------------------------------------------------------------------------ serving
def _serve(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        config = request.app[CONFIG]
        cors = _cors_headers(request, config)
        try:
            response = await _run(endpoint, request, config)
        except Exception as error:
            mapped = from_exception(error)
            if mapped is None:
                raise  # a bug: the application's middleware logs it and answers 500
            response = mapped
        response.headers.update(cors)
        return response

    handle.__name__ = endpoint.operation_id
    return handle


async def _run(endpoint: Endpoint, request: web.Request, config: MiniAppConfig) -> web.Response:
    services = request.app.get(SERVICES)
    if services is None:
        raise ApiError(503, "service_unavailable", "the API is starting")
    call = Call(request=request, services=services, config=config, path={})
    rules = [RateRule(f"ip:{request.remote or 'unknown'}", config.rate_per_ip, 60)]
    if endpoint.auth == "bearer":
        call.session = services.signer.verify(_bearer(request), "a")
        rules.append(RateRule(f"customer:{call.session.customer_id}", config.rate_per_customer, 60))
    elif endpoint.auth == "apikey":
        call.api_key = await _api_key(request, services.api_keys)
        rules.append(RateRule(f"apikey:{call.api_key.id}", config.rate_per_api_key, 60))
    retry_after = await services.limiter.hit([(r.key, r.limit, r.window_seconds) for r in rules])
    if retry_after > 0:
        wait = max(1, int(retry_after + 0.999))
        raise ApiError(
            429, "too_many_requests", "too many requests: slow down", headers={"Retry-After": str(wait)}
        )
    for name in endpoint.path_params:
        value = request.match_info.get(name, "")
        if not _PATH_PARAM.match(value):
            raise ApiError(404, "not_found", f"no such {name.removesuffix('_id')}")
        call.path[name] = value
    if endpoint.query is not None:
        call.query = _validate(endpoint.query, dict(request.query), where="query")
    raw = b""
    if endpoint.body is not None:
        raw = await _read_body(request, config.max_body_bytes)
        call.body = _parse_body(endpoint.body, raw)
    if not endpoint.idempotent or IDEMPOTENCY_HEADER not in request.headers:
        return await _respond(endpoint, call)
    key = request.headers[IDEMPOTENCY_HEADER]
    if not _IDEMPOTENCY_KEY.match(key):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-64 of A-Z a-z 0-9 _ -")
    call.idempotency_key = key
    return await _idempotent(endpoint, call, key, raw)


async def _idempotent(endpoint: Endpoint, call: Call, key: str, raw: bytes) -> web.Response:
    principal = call.session.customer_id if call.session else call.api_key.id if call.api_key else "-"
    store_key = f"{endpoint.operation_id}:{principal}:{key}"
    fingerprint = hashlib.sha256(
        b"\0".join([call.request.method.encode(), call.request.path.encode(), raw])
    ).hexdigest()
    store = call.services.idempotency
    begun = await store.begin(store_key, fingerprint, lease_seconds=_IDEMPOTENCY_LEASE)
    if begun is False:
        raise ApiError(
            409,
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still running: retry in a moment",
            headers={"Retry-After": "1"},
        )
    if not isinstance(begun, bool):
        stored = StoredAnswer(*begun)
        if stored.fingerprint != fingerprint:
            raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for another request")
        return web.Response(
            status=stored.status,
            body=stored.body,
            content_type="application/json",
            headers={"Idempotency-Replayed": "true"},
        )
    try:
        response = await _respond(endpoint, call)
    except Exception as error:
        mapped = from_exception(error)
        if mapped is None or mapped.status >= 500:
            await store.abandon(store_key)
            raise
        response = mapped
    assert isinstance(response.body, bytes)
    await store.finish(store_key, response.status, response.body, fingerprint, keep_seconds=_IDEMPOTENCY_KEEP)
    return response


async def _respond(endpoint: Endpoint, call: Call) -> web.Response:
    result = await endpoint.handler(call)
    status = endpoint.status
    if isinstance(result, tuple):
        status, result = result
    if isinstance(result, BaseModel):
        body = result.model_dump_json().encode()
    else:
        body = json.dumps(result, ensure_ascii=False, default=str).encode()
    return web.Response(status=status, body=body, content_type="application/json")


# ------------------------------------------------------------------------------------------ parts
def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <session token> (POST /auth/login)")
    return token.strip()


async def _api_key(request: web.Request, keys: ApiKeyRepository) -> ApiKeyRecord:
    from miniapp_api.apikeys import verify_api_key  # noqa: PLC0415 - avoids an import cycle

    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "invalid_api_key", "send Authorization: Bearer <API key> (loyalty apikey create)")
    return await verify_api_key(keys, token.strip())


async def _read_body(request: web.Request, limit: int) -> bytes:
    content_type = request.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "payload_too_large", f"request body too large (limit {limit} bytes)")
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, "payload_too_large", f"request body too large (limit {limit} bytes)")
    return raw


def _parse_body(model: type[BaseModel], raw: bytes) -> BaseModel:
    try:
        json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise _validation_error(error, where="body") from None


def _validate(model: type[BaseModel], data: dict[str, Any], *, where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _validation_error(error, where=where) from None


def _validation_error(error: ValidationError, *, where: str) -> ApiError:
    details = [
        {"loc": [where, *(str(part) for part in item["loc"])], "msg": item["msg"], "type": item["type"]}
        for item in error.errors(include_url=False, include_input=False, include_context=False)[:20]
    ]
    first = details[0]
    field_name = ".".join(first["loc"][1:]) or where
    return ApiError(422, "validation_error", f"{field_name}: {first['msg']}", details=details)
