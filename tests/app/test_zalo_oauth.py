"""Zalo OA re-authorization: the consent link, the callback, and the tokens it stores (fake Zalo, real
MongoDB and Redis). A bad, expired, replayed or refused authorization stores nothing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from redis.asyncio import Redis

from app import keys
from app.factory import create_app
from app.settings import Settings
from app.zalo_oauth import CALLBACK_PATH, start_authorization
from bot.channels.zalo import OATokens, ZaloTokens, pkce_challenge, pkce_pair
from bot.timeutil import EPOCH
from storage.clients import MongoClient
from storage.platform_tokens import MongoTokenStore, OAuthStateStore
from tests.fakes.zalo import FakeZalo

Client = TestClient[web.Request, web.Application]
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
ClientFactory = Callable[[web.Application], Awaitable[Client]]

PUBLIC = "https://loyalty.example.vn"


@pytest.fixture
def fake() -> FakeZalo:
    return FakeZalo()


@pytest.fixture
async def zalo_root(aiohttp_server: ServerFactory, fake: FakeZalo) -> str:
    server = await aiohttp_server(fake.app())
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def zalo_settings(settings: Settings, fake: FakeZalo, zalo_root: str) -> Settings:
    return settings.model_copy(
        update={
            "zalo_app_id": fake.app_id,
            "zalo_app_secret": SecretStr(fake.app_secret),
            "zalo_oa_id": fake.oa_id,
            "zalo_oauth_base": f"{zalo_root}/oauth",
            "public_base_url": PUBLIC,
        }
    )


@pytest.fixture
async def client(aiohttp_client: ClientFactory, zalo_settings: Settings) -> Client:
    return await aiohttp_client(create_app(zalo_settings, worker=False))


async def stored(client: Client, fake: FakeZalo) -> dict[str, Any] | None:
    app = client.app
    return await MongoTokenStore(app[keys.MONGO_DB], app[keys.REDIS]).load(fake.oa_id)


async def consent(link: str) -> dict[str, str]:
    """The admin opens the link and consents: the query Zalo's redirect brings to our callback."""
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(link)
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{PUBLIC}{CALLBACK_PATH}"
    return {name: values[0] for name, values in parse_qs(location.query).items()}


async def test_the_consent_link_is_the_documented_one_with_an_s256_challenge(
    zalo_settings: Settings, redis: Redis, zalo_root: str, fake: FakeZalo
) -> None:
    link = await start_authorization(zalo_settings, redis)

    parts = urlsplit(link)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{zalo_root}/oauth/v4/oa/permission"
    assert set(query) == {"app_id", "redirect_uri", "code_challenge", "state"}
    assert query["app_id"] == fake.app_id
    assert query["redirect_uri"] == f"{PUBLIC}{CALLBACK_PATH}"
    # the verifier stays on our side; the challenge is its S256
    data = await OAuthStateStore(redis).take(query["state"])
    assert data is not None
    assert query["code_challenge"] == pkce_challenge(data["verifier"])
    assert "=" not in query["code_challenge"] and len(data["verifier"]) == 43


def test_pkce_is_base64url_sha256_without_padding() -> None:
    verifier, challenge = pkce_pair()
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == expected
    assert len(base64.urlsafe_b64decode(verifier + "=")) == 32


async def test_an_authorization_stores_the_new_tokens_and_a_replay_stores_nothing(
    client: Client, zalo_settings: Settings, fake: FakeZalo
) -> None:
    # given an admin who consented on the link the command printed
    query = await consent(await start_authorization(zalo_settings, client.app[keys.REDIS]))

    # when Zalo sends the browser back
    response = await client.get(CALLBACK_PATH, params=query)

    # then the new pair is stored (the one Zalo minted), and the page says so
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.headers["Cache-Control"] == "no-store"
    document = await stored(client, fake)
    assert document is not None
    tokens = OATokens.from_document(document)
    assert (tokens.access_token, tokens.refresh_token) == (fake.access_token, fake.refresh_token)
    assert tokens.version == 1

    # and the same callback again (a replay, a reload) is refused without touching the store
    again = await client.get(CALLBACK_PATH, params=query)
    assert again.status == 400
    assert await stored(client, fake) == document


async def test_an_authorization_replaces_tokens_zalo_refused_as_the_next_version(
    client: Client, zalo_settings: Settings, fake: FakeZalo
) -> None:
    store = MongoTokenStore(client.app[keys.MONGO_DB], client.app[keys.REDIS])
    old = {"access_token": "at-old", "refresh_token": "rt-spent", "version": 7, "seeds": []}
    refused = OATokens.from_document({**old, "access_expires_at": EPOCH, "refresh_expires_at": EPOCH})
    await store.save(fake.oa_id, refused.to_document())

    query = await consent(await start_authorization(zalo_settings, client.app[keys.REDIS]))
    response = await client.get(CALLBACK_PATH, params=query)

    assert response.status == 200
    document = await stored(client, fake)
    assert document is not None
    assert (document["access_token"], document["version"]) == (fake.access_token, 8)


@pytest.mark.parametrize(
    ("_case", "change"),
    [
        ("unknown state", {"state": "forged-state-0123456789"}),
        ("no state", {"state": None}),
        ("no code", {"code": None}),
        ("another OA", {"oa_id": "999999999999999999"}),
        ("a code Zalo refuses", {"code": "code-never-issued"}),
    ],
)
async def test_a_bad_callback_is_400_and_stores_nothing(
    _case: str, change: dict[str, str | None], client: Client, zalo_settings: Settings, fake: FakeZalo
) -> None:
    query = await consent(await start_authorization(zalo_settings, client.app[keys.REDIS]))
    for name, value in change.items():
        if value is None:
            query.pop(name)
        else:
            query[name] = value

    response = await client.get(CALLBACK_PATH, params=query)

    assert response.status == 400
    assert await stored(client, fake) is None


async def test_an_expired_state_is_refused(client: Client, fake: FakeZalo) -> None:
    verifier, challenge = pkce_pair()
    await OAuthStateStore(client.app[keys.REDIS]).put(
        "short-lived-state", {"verifier": verifier, "app_id": fake.app_id, "oa_id": fake.oa_id}, ttl=0.05
    )
    await asyncio.sleep(0.15)

    query = {"code": fake.consent(challenge), "state": "short-lived-state", "oa_id": fake.oa_id}
    response = await client.get(CALLBACK_PATH, params=query)

    assert response.status == 400
    assert await stored(client, fake) is None


async def test_the_callback_exists_only_when_zalo_is_configured(
    aiohttp_client: ClientFactory, settings: Settings, mongo_client: MongoClient
) -> None:
    plain = await aiohttp_client(create_app(settings, worker=False))

    assert (await plain.get(CALLBACK_PATH, params={"code": "x", "state": "y"})).status == 404


async def test_configured_seed_tokens_are_never_adopted_over_an_authorized_pair(
    aiohttp_client: ClientFactory, zalo_settings: Settings, fake: FakeZalo, zalo_root: str
) -> None:
    # given settings still carrying tokens from before (never used: the store is empty)
    seeded = zalo_settings.model_copy(
        update={
            "zalo_oa_access_token": SecretStr("at-from-settings"),
            "zalo_oa_refresh_token": SecretStr("rt-from-settings"),
        }
    )
    client = await aiohttp_client(create_app(seeded, worker=False))
    query = await consent(await start_authorization(seeded, client.app[keys.REDIS]))
    assert (await client.get(CALLBACK_PATH, params=query)).status == 200

    # when a worker configured with those settings asks for a token
    async with httpx.AsyncClient() as http:
        tokens = ZaloTokens(
            http,
            MongoTokenStore(client.app[keys.MONGO_DB], client.app[keys.REDIS]),
            oauth_base=f"{zalo_root}/oauth",
            app_id=fake.app_id,
            app_secret=fake.app_secret,
            account_id=fake.oa_id,
            seed_access_token="at-from-settings",
            seed_refresh_token="rt-from-settings",
        )
        # then it gets the authorized one
        assert await tokens.access_token() == fake.access_token
