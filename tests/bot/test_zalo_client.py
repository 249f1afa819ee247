"""The Zalo OA client, its tokens and ZNS, against the fake Zalo, real MongoDB and real Redis."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from bot.channels.base import Recipient
from bot.channels.errors import (
    ConfigurationError,
    PermanentError,
    RecipientUnavailableError,
    RetryPolicy,
    TokenError,
    WindowClosedError,
)
from bot.channels.zalo import (
    QuotaExhaustedError,
    ReauthorizationRequired,
    RetryLaterError,
    ZaloOAClient,
    ZaloRateLimitedError,
    ZaloTokens,
    ZaloTransientError,
    normalize_phone,
    split_text,
)
from bot.channels.zalo_payload import PREFIX, encode
from bot.channels.zns import DeliveryUnknownError, RedisZnsSendLog, ZnsClient, seconds_until_morning
from bot.replies import Button, Buttons, Card, Image, QuickReplies, QuickReply, RequestPhone, Text
from storage.clients import Document, MongoClient
from storage.platform_tokens import MongoTokenStore
from tests.fakes.zalo import ZNS_PREFIX, FakeZalo

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
MongoDatabase = AsyncDatabase[Document]

FAST = RetryPolicy(attempts=3, base=0.001, cap=0.005)
USER = "6618469916374226710"


class MovableClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def fake() -> FakeZalo:
    return FakeZalo()


@pytest.fixture
async def base(aiohttp_server: ServerFactory, fake: FakeZalo) -> str:
    server = await aiohttp_server(fake.app())
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=0.5) as client:
        yield client


@pytest.fixture
def store(db: MongoDatabase, redis: Redis) -> MongoTokenStore:
    return MongoTokenStore(db, redis)


@pytest.fixture
def db(mongo_client: MongoClient, db_name: str) -> MongoDatabase:
    return mongo_client[db_name]


@pytest.fixture
def new_worker(
    http: httpx.AsyncClient, base: str, fake: FakeZalo, db: MongoDatabase, redis: Redis
) -> Callable[..., ZaloOAClient]:
    """``new_worker(**token_options)``: the client of another worker process (its own store object)."""

    def make(**options: Any) -> ZaloOAClient:
        store = MongoTokenStore(db, redis)
        return ZaloOAClient(http, make_tokens(http, store, base, fake, **options), api_base=base, policy=FAST)

    return make


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


def make_tokens(
    http: httpx.AsyncClient, store: MongoTokenStore, base: str, fake: FakeZalo, **options: Any
) -> ZaloTokens:
    settings: dict[str, Any] = {
        "seed_access_token": fake.access_token,
        "seed_refresh_token": fake.refresh_token,
        **options,
    }
    return ZaloTokens(
        http,
        store,
        oauth_base=f"{base}/oauth",
        app_id=fake.app_id,
        app_secret=fake.app_secret,
        account_id=fake.oa_id,
        **settings,
    )


@pytest.fixture
def tokens(
    http: httpx.AsyncClient, store: MongoTokenStore, base: str, fake: FakeZalo, clock: MovableClock
) -> ZaloTokens:
    return make_tokens(http, store, base, fake, clock=clock)


@pytest.fixture
def client(http: httpx.AsyncClient, tokens: ZaloTokens, base: str) -> ZaloOAClient:
    return ZaloOAClient(http, tokens, api_base=base, policy=FAST)


@pytest.fixture
def to(fake: FakeZalo) -> Recipient:
    return Recipient("zalo", fake.oa_id, USER)


def messages(fake: FakeZalo) -> list[dict[str, Any]]:
    """What Zalo accepted, without the recipient (checked once below)."""
    assert all(body["recipient"] == {"user_id": USER} for body in fake.messages)
    return [body["message"] for body in fake.messages]


def secrets_of(fake: FakeZalo, *more: str | None) -> set[str]:
    """Every token value and the app secret the fake ever knew."""
    values = {fake.app_secret, fake.refresh_token, *fake.used_refresh_tokens, *fake.tokens_seen, *more}
    if fake.access_token:
        values.add(fake.access_token)
    return {value for value in values if value}


def quiet_driver(caplog: pytest.LogCaptureFixture) -> None:
    """Everything at DEBUG (ours, httpx, httpcore) except PyMongo's command log, kept at INFO as the app does.

    PyMongo's DEBUG command log prints whole documents, so the stored tokens too (and any personal data):
    ``app.logs.configure_logging`` keeps ``pymongo`` at WARNING unless the whole service runs at DEBUG.
    """
    caplog.set_level(logging.INFO, logger="pymongo")


# ------------------------------------------------------------------------------------- reply kinds


async def test_a_text_is_the_documented_body_with_a_bare_access_token_header(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient
) -> None:
    seed = fake.access_token
    headers: list[dict[str, str]] = []

    async def capture(route: str, request: web.Request) -> None:
        headers.append(dict(request.headers))

    fake.observers.append(capture)

    await client.send(to, [Text("Xin chào")])

    assert fake.messages == [{"recipient": {"user_id": USER}, "message": {"text": "Xin chào"}}]
    (sent,) = headers
    assert sent["access_token"] == seed
    assert "Authorization" not in sent
    assert sent["Content-Type"] == "application/json"


async def test_a_long_text_is_split_into_messages_of_at_most_2000_characters(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient
) -> None:
    words = [f"từ{n}" for n in range(1200)]
    text = " ".join(words)
    assert len(text) > 4000

    await client.send(to, [Text(text)])

    pieces = [message["text"] for message in messages(fake)]
    assert len(pieces) == -(-len(text) // 2000)  # as few messages as the limit allows
    assert all(1990 <= len(piece) <= 2000 for piece in pieces[:-1])
    assert " ".join(pieces).split() == words  # cut between words, nothing lost


def test_a_word_longer_than_the_limit_is_cut_and_blank_text_gives_nothing() -> None:
    assert split_text("x" * 4500) == ["x" * 2000, "x" * 2000, "x" * 500]
    assert split_text("  ") == []


async def test_buttons_become_zalo_buttons_and_postbacks_carry_the_payload_prefix(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient
) -> None:
    reply = Buttons(
        "Bạn muốn làm gì?",
        (
            Button.postback("Xem điểm", "points"),
            Button.link("Website", "https://shop.example"),
            Button.call("Gọi cửa hàng", "0901 234 567"),
        ),
    )

    await client.send(to, [reply])

    assert messages(fake) == [
        {
            "text": "Bạn muốn làm gì?",
            "attachment": {
                "type": "template",
                "payload": {
                    "buttons": [
                        {"title": "Xem điểm", "type": "oa.query.hide", "payload": "#pl:points"},
                        {
                            "title": "Website",
                            "type": "oa.open.url",
                            "payload": {"url": "https://shop.example"},
                        },
                        {
                            "title": "Gọi cửa hàng",
                            "type": "oa.open.phone",
                            "payload": {"phone_code": "84901234567"},
                        },
                    ]
                },
            },
        }
    ]
    assert encode("points") == PREFIX + "points" == "#pl:points"


async def test_quick_replies_become_buttons_since_zalo_has_none(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient
) -> None:
    await client.send(
        to, [QuickReplies("Đổi quà?", (QuickReply("Có", "redeem:yes"), QuickReply("Không", "no")))]
    )

    (message,) = messages(fake)
    assert message["text"] == "Đổi quà?"
    assert message["attachment"]["payload"]["buttons"] == [
        {"title": "Có", "type": "oa.query.hide", "payload": "#pl:redeem:yes"},
        {"title": "Không", "type": "oa.query.hide", "payload": "#pl:no"},
    ]


async def test_more_buttons_than_zalo_shows_become_numbered_text(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient
) -> None:
    buttons = tuple(Button.postback(f"Quà {n}", f"gift:{n}") for n in range(1, 7))

    await client.send(to, [Buttons("Chọn quà", buttons)])

    assert messages(fake) == [
        {"text": "Chọn quà\n1. Quà 1\n2. Quà 2\n3. Quà 3\n4. Quà 4\n5. Quà 5\n6. Quà 6"}
    ]


async def test_an_image_url_is_a_media_template_with_its_caption(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient
) -> None:
    await client.send(
        to, [Image(url="https://cdn.example/qr.png", caption="Mã của bạn"), Image(url="https://x/y.png")]
    )

    media = {"type": "template", "payload": {"template_type": "media", "elements": []}}
    first, second = messages(fake)
    assert first == {
        "text": "Mã của bạn",
        "attachment": {
            **media,
            "payload": {
                "template_type": "media",
                "elements": [{"media_type": "image", "url": "https://cdn.example/qr.png"}],
            },
        },
    }
    assert second == {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "media",
                "elements": [{"media_type": "image", "url": "https://x/y.png"}],
            },
        }
    }


async def test_image_bytes_are_refused_before_anything_is_sent(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient
) -> None:
    with pytest.raises(PermanentError, match="public URL") as caught:
        await client.send(to, [Text("Mã QR của bạn"), Image(data=b"\x89PNG...")])

    assert caught.value.code == "image_bytes"
    assert fake.message_attempts == 0


async def test_a_card_is_a_list_template_with_one_element_and_its_buttons(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient
) -> None:
    card = Card(
        "Voucher 50.000đ",
        "Mã K7P2Q9XM · HSD 31/12",
        "https://cdn.example/voucher.png",
        (
            Button.postback("Dùng ngay", "voucher:use:K7P2Q9XM"),
            Button.link("Điều kiện", "https://shop.example/t"),
        ),
    )

    await client.send(to, [card])

    assert messages(fake) == [
        {
            "attachment": {
                "type": "template",
                "payload": {
                    "template_type": "list",
                    "elements": [
                        {
                            "title": "Voucher 50.000đ",
                            "subtitle": "Mã K7P2Q9XM · HSD 31/12",
                            "image_url": "https://cdn.example/voucher.png",
                        }
                    ],
                    "buttons": [
                        {
                            "title": "Dùng ngay",
                            "type": "oa.query.hide",
                            "payload": "#pl:voucher:use:K7P2Q9XM",
                        },
                        {
                            "title": "Điều kiện",
                            "type": "oa.open.url",
                            "payload": {"url": "https://shop.example/t"},
                        },
                    ],
                },
            }
        }
    ]


async def test_request_phone_is_a_request_user_info_form(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient
) -> None:
    await client.send(
        to,
        [
            RequestPhone(
                "Chia sẻ số điện thoại để nhận ưu đãi",
                title="Tên thương hiệu",
                image_url="https://cdn.example/banner.png",
            ),
            RequestPhone("Cho mình xin số điện thoại nhé"),
        ],
    )

    first, second = messages(fake)
    assert first == {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "request_user_info",
                "elements": [
                    {
                        "title": "Tên thương hiệu",
                        "subtitle": "Chia sẻ số điện thoại để nhận ưu đãi",
                        "image_url": "https://cdn.example/banner.png",
                    }
                ],
            },
        }
    }
    assert second["attachment"]["payload"]["elements"] == [{"title": "Cho mình xin số điện thoại nhé"}]


async def test_a_long_text_with_buttons_sends_its_head_first_and_the_buttons_with_the_tail(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient
) -> None:
    text = "a" * 1500 + "\n" + "b" * 1500

    await client.send(to, [Buttons(text, (Button.postback("OK", "ok"),))])

    first, second = messages(fake)
    assert first == {"text": "a" * 1500}
    assert second["text"] == "b" * 1500
    assert second["attachment"]["payload"]["buttons"] == [
        {"title": "OK", "type": "oa.query.hide", "payload": "#pl:ok"}
    ]


async def test_the_optional_appsecret_proof_header(
    http: httpx.AsyncClient, tokens: ZaloTokens, base: str, fake: FakeZalo, to: Recipient
) -> None:
    seen: list[str | None] = []

    async def capture(route: str, request: web.Request) -> None:
        seen.append(request.headers.get("appsecret_proof"))

    fake.observers.append(capture)
    await ZaloOAClient(http, tokens, api_base=base, policy=FAST, appsecret_proof=True).send(to, [Text("hi")])

    expected = hmac.new(
        fake.app_secret.encode(), (fake.access_token or "").encode(), hashlib.sha256
    ).hexdigest()
    assert seen == [expected]


async def test_a_recipient_of_another_oa_is_refused(client: ZaloOAClient, fake: FakeZalo) -> None:
    with pytest.raises(ConfigurationError):
        await client.send(Recipient("zalo", "another-oa", USER), [Text("hi")])
    assert fake.message_attempts == 0


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        (-213, RecipientUnavailableError),
        (-227, RecipientUnavailableError),
        (-230, WindowClosedError),
        (-232, WindowClosedError),
        (-305, WindowClosedError),
        (-311, WindowClosedError),
        (-211, QuotaExhaustedError),
        (-218, QuotaExhaustedError),
        (-201, PermanentError),
        (-233, PermanentError),
        (-240, PermanentError),
        (-209, ConfigurationError),
        (-212, ConfigurationError),
        (-221, ConfigurationError),
        (-224, ConfigurationError),
        (-242, ConfigurationError),
        (-999, PermanentError),
    ],
)
async def test_final_zalo_errors_map_to_typed_errors_and_are_not_retried(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient, code: int, error_class: type[Exception]
) -> None:
    fake.fail("message", error=code, message="refused")

    with pytest.raises(error_class) as caught:
        await client.send(to, [Text("Xin chào")])

    assert type(caught.value) is error_class
    assert getattr(caught.value, "code", None) == str(code)
    assert fake.message_attempts == 1
    assert fake.messages == []


async def test_a_follower_who_left_is_recipient_unavailable(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient
) -> None:
    fake.not_following.add(USER)

    with pytest.raises(RecipientUnavailableError) as caught:
        await client.send(to, [Text("Xin chào")])

    assert caught.value.code == "-213"


@pytest.mark.parametrize(
    "failure",
    [{"status": 502}, {"status": 429}, {"error": -32}, {"hang": True}],
    ids=["5xx", "http-429", "rate-limit", "timeout"],
)
async def test_5xx_timeouts_and_rate_limits_are_retried(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient, failure: dict[str, Any]
) -> None:
    fake.fail("message", **failure)

    await client.send(to, [Text("Xin chào")])

    assert fake.message_attempts == 2
    assert messages(fake) == [{"text": "Xin chào"}]


async def test_a_lasting_5xx_is_a_transient_error_after_the_policy_attempts(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient
) -> None:
    fake.fail("message", status=503, times=5)

    with pytest.raises(ZaloTransientError) as caught:
        await client.send(to, [Text("Xin chào")])

    assert caught.value.code == "http_503"
    assert fake.message_attempts == FAST.attempts


async def test_a_lasting_rate_limit_keeps_its_code(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient
) -> None:
    fake.fail("message", error=-32, times=5)

    with pytest.raises(ZaloRateLimitedError) as caught:
        await client.send(to, [Text("Xin chào")])

    assert caught.value.code == "-32"


# ------------------------------------------------------------------------------------------ tokens


async def test_a_token_that_expires_mid_conversation_is_refreshed_exactly_once(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient, store: MongoTokenStore
) -> None:
    seed = fake.access_token
    await client.send(to, [Text("1")])
    fake.expire_access_token()

    await client.send(to, [Text("2"), Text("3")])

    assert [m["text"] for m in messages(fake)] == ["1", "2", "3"]
    assert fake.refresh_calls == 1
    assert fake.tokens_seen == [seed, seed, fake.access_token, fake.access_token]
    stored = await store.load(fake.oa_id)
    assert stored is not None and stored["version"] == 2
    assert stored["access_token"] == fake.access_token


@pytest.mark.parametrize("code", [-216, -220, -124])
async def test_each_token_error_code_refreshes_once_and_sends_again(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient, code: int
) -> None:
    fake.fail("message", error=code)

    await client.send(to, [Text("Xin chào")])

    assert fake.refresh_calls == 1
    assert messages(fake) == [{"text": "Xin chào"}]


async def test_a_token_refused_again_after_the_refresh_is_final(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient
) -> None:
    fake.fail("message", error=-216, times=2)

    with pytest.raises(TokenError) as caught:
        await client.send(to, [Text("Xin chào")])

    assert caught.value.code == "-216"
    assert fake.refresh_calls == 1


async def test_a_token_close_to_expiry_is_refreshed_before_it_is_used(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient, clock: MovableClock, store: MongoTokenStore
) -> None:
    await client.send(to, [Text("1")])
    clock.now += timedelta(hours=24, minutes=51)  # 9 minutes left of 25 hours

    await client.send(to, [Text("2")])

    assert fake.refresh_calls == 1
    assert fake.message_attempts == 2  # no call was refused: the token was renewed first
    assert fake.tokens_seen[-1] == fake.access_token
    stored = await store.load(fake.oa_id)
    assert stored is not None
    assert stored["access_expires_at"] == clock.now + timedelta(seconds=90000)  # expires_in: "90000"
    assert stored["refresh_expires_at"] == clock.now + timedelta(days=90)


async def test_two_workers_hitting_an_expired_token_share_one_refresh(
    new_worker: Callable[..., ZaloOAClient], fake: FakeZalo, to: Recipient
) -> None:
    # Two worker processes: each its own store object, token cache and client; one database and Redis.
    workers = [new_worker(), new_worker()]
    first, second = workers
    await first.send(to, [Text("warm-up 1")])
    await second.send(to, [Text("warm-up 2")])
    fake.expire_access_token()
    fake.refresh_delay = 0.2

    await asyncio.gather(
        *(worker.send(to, [Text(f"w{n}-m{m}")]) for n, worker in enumerate(workers) for m in range(3))
    )

    assert fake.refresh_calls == 1
    assert fake.refresh_failures == 0
    sent = sorted(m["text"] for m in messages(fake)[2:])
    assert sent == ["w0-m0", "w0-m1", "w0-m2", "w1-m0", "w1-m1", "w1-m2"]


async def test_the_new_refresh_token_is_stored_before_the_new_access_token_is_used(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient, store: MongoTokenStore
) -> None:
    seed = fake.access_token
    checked: list[dict[str, Any]] = []

    async def check_store(route: str, request: web.Request) -> None:
        used = request.headers.get("access_token")
        if route == "message" and used not in (seed, None):
            stored = await store.load(fake.oa_id)
            assert stored is not None
            checked.append(stored)
            assert stored["access_token"] == used
            assert stored["refresh_token"] == fake.refresh_token  # the one Zalo just issued

    fake.observers.append(check_store)
    await client.send(to, [Text("1")])
    fake.expire_access_token()

    await client.send(to, [Text("2")])

    assert len(checked) == 1
    assert checked[0]["version"] == 2


async def test_a_rejected_refresh_token_requires_reauthorization_logged_without_the_token(
    client: ZaloOAClient, fake: FakeZalo, to: Recipient, caplog: pytest.LogCaptureFixture
) -> None:
    revoked = fake.refresh_token
    fake.revoke_refresh_token()
    fake.expire_access_token()

    quiet_driver(caplog)
    with caplog.at_level(logging.DEBUG), pytest.raises(ReauthorizationRequired) as caught:
        await client.send(to, [Text("Xin chào")])

    assert fake.refresh_calls == 1
    assert fake.messages == []
    errors = [
        r for r in caplog.records if r.levelno == logging.ERROR and r.name == "loyalty.bot.channels.zalo"
    ]
    assert len(errors) == 1
    assert "authorize" in errors[0].getMessage()
    assert "-14014" in errors[0].getMessage()
    assert "authorize" in str(caught.value)
    for secret in secrets_of(fake, revoked):
        assert secret not in caplog.text
        assert secret not in str(caught.value)


async def test_the_first_use_seeds_the_store_from_the_settings_tokens(
    http: httpx.AsyncClient, store: MongoTokenStore, base: str, fake: FakeZalo, to: Recipient
) -> None:
    seed_access, seed_refresh = fake.access_token, fake.refresh_token
    assert await store.load(fake.oa_id) is None
    client = ZaloOAClient(http, make_tokens(http, store, base, fake), api_base=base, policy=FAST)

    await client.send(to, [Text("Xin chào")])

    stored = await store.load(fake.oa_id)
    assert stored is not None
    assert (stored["access_token"], stored["refresh_token"], stored["version"]) == (
        seed_access,
        seed_refresh,
        1,
    )
    assert fake.refresh_calls == 0
    assert fake.tokens_seen == [seed_access]
    # another worker without tokens in its settings uses the stored ones
    other = ZaloOAClient(
        http,
        make_tokens(http, store, base, fake, seed_access_token=None, seed_refresh_token=None),
        api_base=base,
        policy=FAST,
    )
    await other.send(to, [Text("again")])
    assert fake.tokens_seen == [seed_access, seed_access]


async def test_only_a_refresh_token_in_the_settings_is_refreshed_at_once(
    http: httpx.AsyncClient, store: MongoTokenStore, base: str, fake: FakeZalo, to: Recipient
) -> None:
    client = ZaloOAClient(
        http, make_tokens(http, store, base, fake, seed_access_token=None), api_base=base, policy=FAST
    )

    await client.send(to, [Text("Xin chào")])

    assert fake.refresh_calls == 1
    assert fake.tokens_seen == [fake.access_token]


async def test_no_tokens_anywhere_requires_reauthorization(
    http: httpx.AsyncClient, store: MongoTokenStore, base: str, fake: FakeZalo, to: Recipient
) -> None:
    tokens = make_tokens(http, store, base, fake, seed_access_token=None, seed_refresh_token=None)

    with pytest.raises(ReauthorizationRequired):
        await ZaloOAClient(http, tokens, api_base=base, policy=FAST).send(to, [Text("hi")])
    assert fake.message_attempts == 0


async def test_newly_authorized_tokens_are_adopted_and_old_settings_do_not_put_theirs_back(
    http: httpx.AsyncClient, store: MongoTokenStore, base: str, fake: FakeZalo, to: Recipient
) -> None:
    old_access, old_refresh = fake.access_token, fake.refresh_token
    old = make_tokens(http, store, base, fake)
    await ZaloOAClient(http, old, api_base=base, policy=FAST).send(to, [Text("1")])
    new_access, _ = fake.mint()  # an admin authorized again: the old tokens are dead

    new = make_tokens(http, store, base, fake)  # a worker restarted with the new settings
    await ZaloOAClient(http, new, api_base=base, policy=FAST).send(to, [Text("2")])
    # a worker still configured with the old settings (a rolling restart) keeps the newer stored tokens
    stale = make_tokens(http, store, base, fake, seed_access_token=old_access, seed_refresh_token=old_refresh)
    await ZaloOAClient(http, stale, api_base=base, policy=FAST).send(to, [Text("3")])

    assert fake.tokens_seen[1:] == [new_access, new_access]
    stored = await store.load(fake.oa_id)
    assert stored is not None and stored["version"] == 2 and stored["access_token"] == new_access
    assert len(stored["seeds"]) == 2
    assert fake.refresh_calls == 0


async def test_a_concurrent_seed_by_two_workers_stores_one_version(
    http: httpx.AsyncClient, store: MongoTokenStore, base: str, fake: FakeZalo
) -> None:
    first, second = make_tokens(http, store, base, fake), make_tokens(http, store, base, fake)

    one, two = await asyncio.gather(first.current(), second.current())

    assert one.version == two.version == 1
    assert one.access_token == two.access_token == fake.access_token
    assert fake.access_token not in repr(one)


# ----------------------------------------------------------------------------------------- profile


async def test_the_profile_normalises_the_shared_phone(client: ZaloOAClient, fake: FakeZalo) -> None:
    fake.users[USER] = {
        "user_id": USER,
        "user_id_by_app": "5521772797175877",
        "display_name": "Nguyễn Văn An",
        "avatar": "https://avatar.example/a.jpg",
        "user_is_follower": True,
        "shared_info": {"address": "", "city": "", "phone": 84912345678, "name": ""},
    }
    fake.users["u2"] = {
        "user_id": "u2",
        "display_name": "B",
        "user_is_follower": False,
        "shared_info": {"phone": 0},
    }
    fake.users["u3"] = {"user_id": "u3", "display_name": "C", "user_is_follower": True}

    profile = await client.profile(USER)
    empty = await client.profile("u2")
    missing = await client.profile("u3")

    assert profile["display_name"] == "Nguyễn Văn An"
    assert profile["avatar"] == "https://avatar.example/a.jpg"
    assert profile["user_is_follower"] is True
    assert profile["phone"] == profile["shared_info"]["phone"] == "84912345678"
    assert (empty["phone"], empty["user_is_follower"]) == (None, False)
    assert missing["phone"] is None


async def test_an_unknown_user_profile_is_recipient_unavailable(client: ZaloOAClient) -> None:
    with pytest.raises(RecipientUnavailableError):
        await client.profile("nobody")


# --------------------------------------------------------------------------------------------- ZNS


@pytest.fixture
def zns(http: httpx.AsyncClient, tokens: ZaloTokens, base: str, redis: Redis) -> ZnsClient:
    return ZnsClient(
        http, tokens, zns_base=f"{base}{ZNS_PREFIX}", policy=FAST, send_log=RedisZnsSendLog(redis)
    )


TEMPLATE_DATA = {"customer_name": "Nguyễn Văn An", "voucher_code": "K7P2Q9XM", "expiry": "31/12/2026"}
TRACKING = "campaign:winback-45:2026-11-23:cus_8f2a"


async def test_zns_sends_a_template_with_its_tracking_id(zns: ZnsClient, fake: FakeZalo) -> None:
    seed = fake.access_token

    msg_id = await zns.send_template("0987654321", "7895417a7d3f9461cd2e", TEMPLATE_DATA, TRACKING)

    assert fake.zns == [
        {
            "phone": "84987654321",
            "template_id": "7895417a7d3f9461cd2e",
            "template_data": TEMPLATE_DATA,
            "tracking_id": TRACKING,
        }
    ]
    assert fake.tokens_seen == [seed]
    assert len(msg_id) == 20
    assert zns.remaining_quota == 499


@pytest.mark.parametrize(
    "phone", ["0987654321", "+84987654321", "84987654321", "+84 98 765 4321", "098.765.4321"]
)
async def test_zns_phone_forms_are_converted(zns: ZnsClient, fake: FakeZalo, phone: str) -> None:
    await zns.send_template(phone, "tpl", {"a": "b"}, f"t-{len(fake.zns)}")

    assert fake.zns[0]["phone"] == "84987654321"


@pytest.mark.parametrize(
    "phone", ["12345", "+1 415 555 0100", "", "09876", "84abc987654", "+44 20 7946 0958"]
)
async def test_zns_refuses_phones_it_cannot_convert(zns: ZnsClient, fake: FakeZalo, phone: str) -> None:
    with pytest.raises(ValueError, match="phone"):
        await zns.send_template(phone, "tpl", {"a": "b"}, "t1")
    assert fake.zns_attempts == 0


@pytest.mark.parametrize("tracking_id", ["", "x" * 49, "a b", "ưu-đãi"])
async def test_zns_refuses_tracking_ids_zalo_would_refuse(
    zns: ZnsClient, fake: FakeZalo, tracking_id: str
) -> None:
    with pytest.raises(ValueError, match="tracking_id"):
        await zns.send_template("0987654321", "tpl", {"a": "b"}, tracking_id)
    assert fake.zns_attempts == 0


def test_vietnamese_phone_normalisation() -> None:
    assert normalize_phone("0084 912 345 678") == "84912345678"
    assert normalize_phone("(028) 3822 1234") == "842838221234"  # a landline: 84 + 10 digits
    with pytest.raises(ValueError, match="Vietnamese"):
        normalize_phone("+8491")


async def test_a_zns_retry_with_the_same_tracking_id_is_not_sent_again_even_by_another_worker(
    zns: ZnsClient, redis: Redis, fake: FakeZalo
) -> None:
    other = ZnsClient(
        zns.http, zns.tokens, zns_base=zns.zns_base, policy=FAST, send_log=RedisZnsSendLog(redis)
    )

    first = await zns.send_template("0987654321", "tpl", TEMPLATE_DATA, TRACKING)
    again = await zns.send_template("0987654321", "tpl", TEMPLATE_DATA, TRACKING)
    elsewhere = await other.send_template("0987654321", "tpl", TEMPLATE_DATA, TRACKING)

    assert first == again == elsewhere
    assert len(fake.zns) == 1 and fake.zns_attempts == 1


@pytest.mark.parametrize("failure", [{"status": 502}, {"hang": True}], ids=["5xx", "timeout"])
async def test_a_zns_send_whose_outcome_is_unknown_is_never_resent(
    zns: ZnsClient, fake: FakeZalo, failure: dict[str, Any]
) -> None:
    fake.fail("zns", **failure)

    with pytest.raises(DeliveryUnknownError) as caught:
        await zns.send_template("0987654321", "tpl", TEMPLATE_DATA, TRACKING)
    assert caught.value.tracking_id == TRACKING
    with pytest.raises(DeliveryUnknownError, match="pending"):
        await zns.send_template("0987654321", "tpl", TEMPLATE_DATA, TRACKING)

    assert fake.zns_attempts == 1


async def test_a_settled_unknown_zns_send_returns_its_msg_id(zns: ZnsClient, fake: FakeZalo) -> None:
    fake.fail("zns", status=504)
    with pytest.raises(DeliveryUnknownError):
        await zns.send_template("0987654321", "tpl", TEMPLATE_DATA, TRACKING)

    await zns.send_log.sent(TRACKING, "a4d0243feee163bd3af2")  # the delivery webhook said it arrived

    assert await zns.send_template("0987654321", "tpl", TEMPLATE_DATA, TRACKING) == "a4d0243feee163bd3af2"
    assert fake.zns_attempts == 1


async def test_a_zns_rate_limit_is_retried(zns: ZnsClient, fake: FakeZalo) -> None:
    fake.fail("zns", error=-32)

    await zns.send_template("0987654321", "tpl", TEMPLATE_DATA, TRACKING)

    assert fake.zns_attempts == 2 and len(fake.zns) == 1


async def test_a_refused_zns_token_is_refreshed_once(zns: ZnsClient, fake: FakeZalo) -> None:
    seed = fake.access_token
    fake.expire_access_token()

    await zns.send_template("0987654321", "tpl", TEMPLATE_DATA, TRACKING)

    assert fake.refresh_calls == 1
    assert len(fake.zns) == 1 and fake.tokens_seen == [seed, fake.access_token]


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        (-108, PermanentError),
        (-118, RecipientUnavailableError),
        (-139, RecipientUnavailableError),
        (-144, QuotaExhaustedError),
        (-1472, QuotaExhaustedError),
        (-131, ConfigurationError),
        (-1122, PermanentError),
        (-133, RetryLaterError),
    ],
)
async def test_zns_errors_are_mapped_and_release_the_tracking_id(
    zns: ZnsClient, fake: FakeZalo, code: int, error_class: type[Exception]
) -> None:
    fake.fail("zns", error=code)

    with pytest.raises(error_class) as caught:
        await zns.send_template("0987654321", "tpl", TEMPLATE_DATA, TRACKING)
    assert type(caught.value) is error_class
    assert getattr(caught.value, "code", None) == str(code)
    if code == -133:
        assert isinstance(caught.value, RetryLaterError)
        assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 24 * 3600

    await zns.send_template("0987654321", "tpl", TEMPLATE_DATA, TRACKING)  # refused, so not sent: may retry
    assert len(fake.zns) == 1


def test_zns_quiet_hours_end_at_six_in_vietnam() -> None:
    assert seconds_until_morning(datetime(2026, 11, 23, 16, 0, tzinfo=UTC)) == 7 * 3600  # 23:00 ICT
    assert seconds_until_morning(datetime(2026, 11, 22, 22, 30, tzinfo=UTC)) == 30 * 60  # 05:30 ICT
    assert seconds_until_morning(datetime(2026, 11, 22, 23, 0, tzinfo=UTC)) == 24 * 3600  # 06:00 ICT


# ------------------------------------------------------------------------------------------ hygiene


async def test_token_values_never_appear_in_logs(
    client: ZaloOAClient, zns: ZnsClient, fake: FakeZalo, to: Recipient, caplog: pytest.LogCaptureFixture
) -> None:
    seed_access, seed_refresh = fake.access_token, fake.refresh_token
    quiet_driver(caplog)
    with caplog.at_level(logging.DEBUG):
        await client.send(to, [Text("1")])
        fake.expire_access_token()
        await client.send(to, [Text("2")])
        fake.fail("message", error=-216)
        await client.send(to, [Text("3")])
        fake.expire_access_token()
        await zns.send_template("0987654321", "tpl", TEMPLATE_DATA, TRACKING)
        fake.revoke_refresh_token()
        fake.expire_access_token()
        with pytest.raises(ReauthorizationRequired):
            await client.send(to, [Text("4")])

    assert fake.refresh_calls == 4
    assert caplog.records  # the flow did log
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in secrets_of(fake, seed_access, seed_refresh):
        assert secret not in logged
