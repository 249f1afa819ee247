"""The Mini App API through HTTP: the real app (real SecantusDB and Redis), a fake Zalo Graph API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from app import keys
from app.factory import create_app
from app.settings import Settings
from loyalty.clock import FrozenClock
from loyalty.core import Loyalty
from tests.fakes.zalo_graph import FakeZaloGraph

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
START = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
API = "/api/miniapp/v1"
USER = "5521772797175877"
TOKEN = "zalo-user-token-1"
ORIGIN = "https://h5.zdn.vn"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def graph(aiohttp_server: ServerFactory) -> tuple[FakeZaloGraph, str]:
    fake = FakeZaloGraph()
    fake.add_user(TOKEN, USER, name="Nguyễn Văn An", avatar="https://s120-ava-talk.zadn.vn/a/b.jpg")
    server = await aiohttp_server(fake.app())
    return fake, str(server.make_url("")).rstrip("/")


@pytest.fixture
def api_settings(settings: Settings, graph: tuple[FakeZaloGraph, str]) -> Settings:
    fake, base = graph
    return settings.model_copy(
        update={
            "zalo_app_id": "360846524940903967",
            "zalo_app_secret": SecretStr(fake.app_secret),
            "zalo_graph_base": base,
            "miniapp_cors_origins": ORIGIN,
        }
    )


@pytest.fixture
async def api(
    aiohttp_client: ClientFactory, api_settings: Settings, clock: FrozenClock, redis: Any
) -> Client:
    return await aiohttp_client(create_app(api_settings, clock=clock, worker=False))


def loyalty_of(api: Client) -> Loyalty:
    return api.app[keys.RESOURCES].loyalty


async def login(api: Client, token: str = TOKEN) -> dict[str, Any]:
    response = await api.post(f"{API}/auth/login", json={"access_token": token})
    assert response.status == 200, await response.text()
    data: dict[str, Any] = await response.json()
    return data


def bearer(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['access_token']}"}
