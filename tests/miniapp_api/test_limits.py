"""Rate limits per customer and per IP (Redis), CORS for the configured origins, the docs."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from app.factory import create_app
from app.settings import Settings
from loyalty.clock import FrozenClock
from tests.miniapp_api.conftest import API, ORIGIN, Client, ClientFactory, bearer, login


@pytest.fixture
async def strict_api(
    aiohttp_client: ClientFactory, api_settings: Settings, clock: FrozenClock, redis: Redis
) -> Client:
    limited = api_settings.model_copy(
        update={"miniapp_rate_limit_per_customer": 3, "miniapp_rate_limit_per_ip": 6}
    )
    return await aiohttp_client(create_app(limited, clock=clock, worker=False))


async def test_a_customer_over_the_limit_gets_429_with_retry_after(strict_api: Client) -> None:
    session = await login(strict_api)  # 1 of the IP's 6
    statuses = [(await strict_api.get(f"{API}/me", headers=bearer(session))).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = await strict_api.get(f"{API}/me", headers=bearer(session))
    assert refused.status == 429
    assert (await refused.json())["error"]["code"] == "too_many_requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


async def test_an_ip_over_the_limit_is_refused_before_anything_else(strict_api: Client) -> None:
    statuses = [
        (await strict_api.post(f"{API}/auth/login", json={"access_token": "nope"})).status for _ in range(7)
    ]
    assert statuses == [401] * 6 + [429]


async def test_cors_answers_the_configured_origin_only(api: Client) -> None:
    preflight = await api.options(
        f"{API}/orders",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Idempotency-Key" in preflight.headers["Access-Control-Allow-Headers"]
    stranger = await api.options(f"{API}/orders", headers={"Origin": "https://evil.example"})
    assert stranger.status == 403 and "Access-Control-Allow-Origin" not in stranger.headers

    answer = await api.post(f"{API}/auth/login", json={"access_token": "nope"}, headers={"Origin": ORIGIN})
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN  # errors too, so the app can read them
    plain = await api.post(
        f"{API}/auth/login", json={"access_token": "nope"}, headers={"Origin": "https://x.y"}
    )
    assert "Access-Control-Allow-Origin" not in plain.headers


def test_an_origin_setting_with_a_path_is_refused() -> None:
    from app.settings import SettingsError, load_settings  # noqa: PLC0415

    with pytest.raises(SettingsError, match="MINIAPP_CORS_ORIGINS"):
        load_settings(env_file=None, miniapp_cors_origins="https://ok.example,https://bad.example/path")


async def test_the_openapi_document_and_the_docs_page(api: Client) -> None:
    document = await (await api.get(f"{API}/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    operations = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert ("POST", f"{API}/auth/login") in operations and ("DELETE", f"{API}/me") in operations
    assert len(operations) == 23
    assert "Profile" in document["components"]["schemas"]
    integrations = await (await api.get("/api/integrations/v1/openapi.json")).json()
    assert "/api/integrations/v1/orders/{order_id}/complete" in integrations["paths"]
    page = await api.get("/api/miniapp/docs")
    assert page.status == 200 and page.content_type == "text/html"
    text = await page.text()
    assert "/api/miniapp/v1/me/phone" in text and "<script" not in text
