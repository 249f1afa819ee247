"""The HTTP surface of the foundation: health, readiness, errors, request ids, body limit."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from app import keys
from app.factory import create_app
from app.middlewares import MAX_BODY_BYTES, NO_ROUTE, REQUEST_ID_HEADER, in_context
from app.settings import Settings

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


async def _echo_length(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"bytes": len(body)})


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("secret internals: /srv/loyalty/app.py line 42")


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory, settings: Settings
) -> TestClient[web.Request, web.Application]:
    app = create_app(settings)
    # test-only routes, added after create_app as a library's or an extension's would be
    app.router.add_post("/_test/echo", _echo_length)
    app.router.add_get("/_test/boom", _boom)
    return await aiohttp_client(app)


async def test_healthz_answers_ok(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/healthz")

    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_is_200_when_both_servers_answer(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get("/readyz")

    body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "ready"
    assert body["checks"]["mongodb"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"


async def test_start_up_creates_indexes_and_the_instance_record(
    client: TestClient[web.Request, web.Application],
) -> None:
    db = client.app[keys.MONGO_DB]

    instance = await db.meta.find_one({"_id": "instance"})
    indexes = await db.meta.index_information()

    assert instance is not None and instance["starts"] == 1
    assert "meta_kind" in indexes


async def test_unknown_path_is_a_json_404(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/nope")

    assert response.status == 404
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["error"]["code"] == "not_found"
    assert body["error"]["request_id"] == response.headers[REQUEST_ID_HEADER]


async def test_wrong_method_is_a_json_405_with_allow(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.post("/healthz")

    assert response.status == 405
    assert (await response.json())["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


async def test_an_unhandled_error_is_a_json_500_without_internals(
    client: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="loyalty.http"):
        response = await client.get("/_test/boom")

    assert response.status == 500
    text = await response.text()
    assert "secret internals" not in text and "Traceback" not in text
    assert (await response.json())["error"]["code"] == "internal_error"
    # the traceback is logged instead, for the operator
    assert any(record.exc_info for record in caplog.records)


async def test_a_body_over_one_mebibyte_is_refused_with_413(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.post("/_test/echo", data=b"x" * (MAX_BODY_BYTES + 1))

    assert response.status == 413
    assert (await response.json())["error"]["code"] == "payload_too_large"


async def test_a_body_at_the_limit_is_accepted(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.post("/_test/echo", data=b"x" * MAX_BODY_BYTES)

    assert response.status == 200
    assert await response.json() == {"bytes": MAX_BODY_BYTES}


async def test_a_sane_request_id_is_echoed(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/healthz", headers={REQUEST_ID_HEADER: "lb-abc123-def456"})

    assert response.headers[REQUEST_ID_HEADER] == "lb-abc123-def456"


@pytest.mark.parametrize(
    ("_case", "incoming"),
    [
        ("log injection", "abc\r\nX-Evil: 1"),
        ("too long", "a" * 65),
        ("odd characters", "<script>alert(1)</script>"),
    ],
)
async def test_an_unsafe_request_id_is_replaced(
    _case: str, incoming: str, client: TestClient[web.Request, web.Application]
) -> None:
    response = await client.get("/healthz", headers={REQUEST_ID_HEADER: incoming.replace("\r\n", " ")})

    echoed = response.headers[REQUEST_ID_HEADER]
    assert echoed != incoming.replace("\r\n", " ")
    assert len(echoed) == 32 and echoed.isalnum()


async def test_every_route_answers_in_the_request_context(
    client: TestClient[web.Request, web.Application],
) -> None:
    routes = list(client.app.router.routes())

    assert {route.resource.name for route in routes if route.resource is not None} >= {"static", NO_ROUTE}
    assert all(in_context(route.handler) for route in routes)


async def test_a_missing_static_file_is_a_404_with_a_request_id(
    client: TestClient[web.Request, web.Application],
) -> None:
    # (aiohttp's file response sets the 404 itself, with no body: nothing is raised to shape as JSON)
    response = await client.get("/static/no-such-file.css")

    assert response.status == 404
    assert REQUEST_ID_HEADER in response.headers


async def test_wrong_method_on_a_path_with_a_variable_is_a_json_405(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.delete("/games/spring-wheel/fairness")

    assert response.status == 405
    assert (await response.json())["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_an_unknown_path_is_a_404_whatever_the_method(
    method: str, client: TestClient[web.Request, web.Application]
) -> None:
    response = await client.request(method, "/no/such/thing")

    assert response.status == 404
    assert REQUEST_ID_HEADER in response.headers


def test_create_app_refuses_settings_without_servers(settings: Settings) -> None:
    with pytest.raises(ValueError, match="MONGODB_URI and REDIS_URL"):
        create_app(settings.model_copy(update={"mongodb_uri": None}))


async def test_platform_webhooks_exist_only_when_configured(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    plain = await aiohttp_client(create_app(settings, worker=False))
    configured = await aiohttp_client(
        create_app(
            settings.model_copy(
                update={
                    "facebook_app_secret": SecretStr("app-secret-for-tests"),
                    "facebook_verify_token": SecretStr("verify-token-for-tests"),
                }
            ),
            worker=False,
        )
    )
    query = {"hub.mode": "subscribe", "hub.verify_token": "verify-token-for-tests", "hub.challenge": "12345"}

    assert (await plain.get("/webhooks/messenger", params=query)).status == 404
    answer = await configured.get("/webhooks/messenger", params=query)
    assert answer.status == 200
    assert await answer.text() == "12345"
