"""Every conversation flow end to end on all three channels (issue 8's matrix): signed Zalo and Messenger
webhooks and the emulator's API → the queue → the worker → the handlers and the loyalty core (real Redis,
real SecantusDB) → the fake platform servers, which refuse bodies the real APIs would refuse. Each flow is
one test parametrized over ``zalo``, ``messenger`` and ``emulator``; every step that awards something is
delivered twice (a platform retry: the same event id) and must give one award and one reply.

The minigames have their own per-channel tests (tests/app/test_conversations_games_e2e.py)."""

from __future__ import annotations

import asyncio
import itertools
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from redis.asyncio import Redis

from app import keys
from app.factory import create_app
from app.settings import Settings
from bot.channels.zalo_payload import PREFIX
from loyalty.core import Loyalty
from loyalty.customers import Customer, Identity
from tests.app.conversations import (
    APP_SECRET,
    OA_SECRET_KEY,
    Emulator,
    Messenger,
    Zalo,
    message_text,
)
from tests.fakes.graph import FakeGraph
from tests.fakes.zalo import OAUTH_PREFIX, FakeZalo

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Client = TestClient[web.Request, web.Application]
CHANNELS = ("zalo", "messenger", "emulator")
ZALO_USERS = ("6618469916374226780", "6618469916374226781")
PSIDS = ("24000000000000080", "24000000000000081")
EMULATOR_USERS = ("an", "binh")
NAMES = ("Minh", "Lan")
SETTLE = 0.6  # seconds: time enough for a wrong extra reply (a duplicate delivery answered) to arrive
_mids = itertools.count(1)


@dataclass
class Fakes:
    zalo: FakeZalo
    zalo_base: str
    graph: FakeGraph
    graph_base: str


@pytest.fixture
async def fakes(aiohttp_server: ServerFactory) -> Fakes:
    zalo, graph = FakeZalo(), FakeGraph()
    for user, psid, name in zip(ZALO_USERS, PSIDS, NAMES, strict=True):
        zalo.users[user] = {"user_id": user, "display_name": name, "user_is_follower": True}
        graph.profiles[psid] = {"id": psid, "first_name": name, "last_name": "Trần"}
    zalo_server, graph_server = await aiohttp_server(zalo.app()), await aiohttp_server(graph.app())
    return Fakes(
        zalo, str(zalo_server.make_url("")).rstrip("/"), graph, str(graph_server.make_url("")).rstrip("/")
    )


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings, redis: Redis, fakes: Fakes) -> Client:
    """One app with the Zalo OA, the Messenger Page and the emulator, against the fake platforms."""
    zalo, graph = fakes.zalo, fakes.graph
    configured = settings.model_copy(
        update={
            "zalo_app_id": zalo.app_id,
            "zalo_app_secret": SecretStr(zalo.app_secret),
            "zalo_oa_id": zalo.oa_id,
            "zalo_oa_secret_key": SecretStr(OA_SECRET_KEY),
            "zalo_oa_access_token": SecretStr(zalo.access_token or ""),
            "zalo_oa_refresh_token": SecretStr(zalo.refresh_token),
            "zalo_oa_api_base": fakes.zalo_base,
            "zalo_oauth_base": fakes.zalo_base + OAUTH_PREFIX,
            "facebook_app_secret": SecretStr(APP_SECRET),
            "facebook_verify_token": SecretStr("verify-token-conversations"),
            "facebook_page_id": graph.page_id,
            "facebook_page_access_token": SecretStr(graph.token),
            "facebook_graph_base": fakes.graph_base,
            "facebook_graph_version": graph.version,
            "emulator_enabled": True,
        }
    )
    return await aiohttp_client(create_app(configured))


# ------------------------------------------------------------------------------------ the chat drivers


class Button(NamedTuple):
    title: str
    value: str  # the payload as the handler sees it, or a link's URL
    quick: bool = False  # a Messenger quick reply (sent back as a message), not a postback button


@dataclass(frozen=True)
class Said:
    """One message as the customer sees it, whatever the channel."""

    kind: str  # text, buttons, quick_replies, card, request_phone, image, numbered
    text: str
    buttons: tuple[Button, ...]
    raw: dict[str, Any]


class Chat(ABC):
    """One customer on one channel: what they do, and what the OA / Page / emulator sent them."""

    channel: str
    name: str | None

    def __init__(self, client: Client, fakes: Fakes, index: int) -> None:
        self.client = client
        self.log: list[Said] = []
        self.seen = 0

    @property
    @abstractmethod
    def identity(self) -> Identity:
        """The customer identity the handlers give this user."""

    @abstractmethod
    async def start(self, *, ref: str | None = None, times: int = 1) -> None:
        """Follow the OA / press Get Started (with the m.me link's ``ref``) / the emulator's follow."""

    @abstractmethod
    async def scan(self, ref: str, *, times: int = 1) -> None:
        """Open the chat through a link or QR carrying ``ref`` (Messenger and the emulator)."""

    @abstractmethod
    async def contact(self, phone: str, *, times: int = 1) -> None:
        """Share the phone the channel's native way (Zalo's form, Messenger's quick reply, a contact)."""

    @abstractmethod
    async def text(self, text: str, *, times: int = 1) -> None:
        """Type ``text``."""

    @abstractmethod
    async def press(self, button: Button, *, times: int = 1) -> None:
        """Press ``button`` (sent back the way the platform sends that kind of button)."""

    @abstractmethod
    async def attachment(self, kind: str) -> None:
        """Send a ``sticker`` or an ``image``."""

    @abstractmethod
    async def stop(self) -> None:
        """Leave (unfollow) where the platform tells the bot."""

    @abstractmethod
    async def refresh(self) -> None:
        """Update :attr:`log` with everything sent to this user so far."""

    async def said(self, until: Callable[[list[Said]], bool], within: float = 15.0) -> list[Said]:
        """The messages sent since the last call, once ``until`` holds for them and nothing more came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        await self.refresh()
        while not until(self.log[self.seen :]) and loop.time() < deadline:
            await asyncio.sleep(0.05)
            await self.refresh()
        await asyncio.sleep(SETTLE)
        await self.refresh()
        new = self.log[self.seen :]
        self.seen = len(self.log)
        assert until(new), [m.text for m in new]
        return new

    async def count(self, n: int) -> list[Said]:
        return await self.said(lambda new: len(new) >= n)


class ZaloChat(Chat):
    channel = "zalo"

    def __init__(self, client: Client, fakes: Fakes, index: int) -> None:
        super().__init__(client, fakes, index)
        self.fake = fakes.zalo
        self.user, self.name = ZALO_USERS[index], NAMES[index]
        self.oa = Zalo(client, self.fake, self.user)

    @property
    def identity(self) -> Identity:
        return Identity(channel="zalo", user_id=self.user)

    async def start(self, *, ref: str | None = None, times: int = 1) -> None:
        assert ref is None, "a Zalo follow carries no ref"
        await self.oa.follow(times=times)

    async def stop(self) -> None:
        await self.oa.unfollow()

    async def scan(self, ref: str, *, times: int = 1) -> None:
        raise AssertionError("a Zalo follow carries no ref: the customer types the code under the QR")

    async def contact(self, phone: str, *, times: int = 1) -> None:
        await self.oa.share_phone(phone.removeprefix("+").replace(" ", ""), times=times)

    async def text(self, text: str, *, times: int = 1) -> None:
        await self.oa.text(text, times=times)

    async def press(self, button: Button, *, times: int = 1) -> None:
        await self.oa.text(PREFIX + button.value, times=times)  # what Zalo posts for an oa.query.hide

    async def attachment(self, kind: str) -> None:
        if kind == "sticker":
            await self.oa.sticker()
            return
        url = "https://s240-ava-talk.zadn.vn/5/e/0/4/1/240/3f8a1c2b9d7e4f60.jpg"
        await self.oa.post(
            {
                "sender": {"id": self.user},
                "recipient": {"id": self.fake.oa_id},
                "event_name": "user_send_image",
                "message": {
                    "msg_id": f"zimg-{next(_mids)}",
                    "text": "Hoá đơn hôm nay",
                    "attachments": [{"type": "image", "payload": {"thumbnail": url, "url": url}}],
                },
            }
        )

    async def refresh(self) -> None:
        mine = [b for b in self.fake.messages if b["recipient"] == {"user_id": self.user}]
        self.log = [_zalo_said(body["message"]) for body in mine]


def _zalo_said(message: dict[str, Any]) -> Said:
    payload = (message.get("attachment") or {}).get("payload") or {}
    template = payload.get("template_type")
    kind = {"request_user_info": "request_phone", "list": "card", "media": "image"}.get(template or "")
    buttons = []
    for button in payload.get("buttons") or []:
        if button["type"] == "oa.query.hide":
            assert button["payload"].startswith(PREFIX)
            buttons.append(Button(button["title"], button["payload"].removeprefix(PREFIX)))
        else:
            buttons.append(Button(button["title"], str(button["payload"].get("url", ""))))
    if kind is None:
        kind = "buttons" if buttons else "text"
    return Said(kind, message_text(message), tuple(buttons), message)


class MessengerChat(Chat):
    channel = "messenger"

    def __init__(self, client: Client, fakes: Fakes, index: int) -> None:
        super().__init__(client, fakes, index)
        self.fake = fakes.graph
        self.user, self.name = PSIDS[index], NAMES[index]
        self.page = Messenger(client, self.fake, self.user)

    @property
    def identity(self) -> Identity:
        return Identity(channel="messenger", user_id=self.user)

    async def start(self, *, ref: str | None = None, times: int = 1) -> None:
        await self.page.get_started(ref=ref, times=times)

    async def stop(self) -> None:
        """Messenger tells a Page nothing when a user leaves: coming back is a new Get Started."""

    async def scan(self, ref: str, *, times: int = 1) -> None:
        await self.page.post(
            {"referral": {"ref": ref, "source": "SHORTLINK", "type": "OPEN_THREAD"}}, times=times
        )

    async def contact(self, phone: str, *, times: int = 1) -> None:
        await self.page.share_phone(phone, times=times)

    async def text(self, text: str, *, times: int = 1) -> None:
        await self.page.text(text, times=times)

    async def press(self, button: Button, *, times: int = 1) -> None:
        mid = f"m_matrix_{next(_mids)}"
        if button.quick:
            message = {"mid": mid, "text": button.title, "quick_reply": {"payload": button.value}}
            await self.page.post({"message": message}, times=times)
        else:
            postback = {"title": button.title, "payload": button.value, "mid": mid}
            await self.page.post({"postback": postback}, times=times)

    async def attachment(self, kind: str) -> None:
        payload: dict[str, Any] = {"url": "https://scontent.xx.fbcdn.net/v/t39.1997-6/851557_n.png"}
        message: dict[str, Any] = {"mid": f"m_att_{next(_mids)}"}
        if kind == "sticker":
            payload["sticker_id"] = message["sticker_id"] = 369239263222822
        message["attachments"] = [{"type": "image", "payload": payload}]
        await self.page.post({"message": message})

    async def refresh(self) -> None:
        mine = [b for b in self.fake.sent if b["recipient"] == {"id": self.user} and "message" in b]
        self.log = [_messenger_said(body["message"]) for body in mine]


def _messenger_button(button: dict[str, Any]) -> Button:
    if button["type"] == "postback":
        return Button(button["title"], button["payload"])
    return Button(button["title"], button.get("url") or button.get("payload") or "")


def _messenger_said(message: dict[str, Any]) -> Said:
    quick = message.get("quick_replies") or []
    if quick == [{"content_type": "user_phone_number"}]:
        return Said("request_phone", message["text"], (), message)
    if quick:
        options = tuple(Button(o["title"], o["payload"], quick=True) for o in quick)
        return Said("quick_replies", message["text"], options, message)
    attachment = message.get("attachment") or {}
    payload = attachment.get("payload") or {}
    if payload.get("template_type") == "button":
        return Said(
            "buttons", message_text(message), tuple(map(_messenger_button, payload["buttons"])), message
        )
    if payload.get("template_type") == "generic":
        buttons = [_messenger_button(b) for e in payload["elements"] for b in e.get("buttons") or []]
        return Said("card", message_text(message), tuple(buttons), message)
    if attachment.get("type") == "image":
        return Said("image", "", (), message)
    return Said("text", message["text"], (), message)


class EmulatorChat(Chat):
    channel = "emulator"

    def __init__(self, client: Client, fakes: Fakes, index: int) -> None:
        super().__init__(client, fakes, index)
        self.user, self.name = EMULATOR_USERS[index], None
        self.emulator = Emulator(client, self.user)

    @property
    def identity(self) -> Identity:
        return Identity(channel="emulator", user_id=f"emulator-zalo:{self.user}")

    async def start(self, *, ref: str | None = None, times: int = 1) -> None:
        await self.emulator.send({"type": "follow", **({"ref": ref} if ref else {})}, times=times)

    async def stop(self) -> None:
        await self.emulator.send({"type": "unfollow"})

    async def scan(self, ref: str, *, times: int = 1) -> None:
        await self.emulator.send({"type": "referral", "ref": ref}, times=times)

    async def contact(self, phone: str, *, times: int = 1) -> None:
        await self.emulator.send({"type": "contact", "phone": phone}, times=times)

    async def text(self, text: str, *, times: int = 1) -> None:
        await self.emulator.send({"type": "text", "text": text}, times=times)

    async def press(self, button: Button, *, times: int = 1) -> None:
        await self.emulator.send({"type": "postback", "payload": button.value}, times=times)

    async def attachment(self, kind: str) -> None:
        await self.emulator.send({"type": kind})

    async def refresh(self) -> None:
        response = await self.client.get(
            "/emulator/api/messages",
            params={"user_id": self.user, "flavor": "zalo", "after": self.emulator.after, "wait": "0"},
        )
        assert response.status == 200, await response.text()
        body = await response.json()
        self.log += [_emulator_said(m["reply"]) for m in body["messages"]]
        self.emulator.after = body["last_id"]


def _emulator_said(reply: dict[str, Any]) -> Said:
    kind = reply["type"]
    buttons = reply.get("buttons") or reply.get("options") or []
    parts = [reply.get("text") or "", reply.get("title") or "", reply.get("subtitle") or ""]
    text = " | ".join(p for p in parts if p)
    return Said(
        kind, text, tuple(Button(b["title"], b.get("payload") or b.get("url") or "") for b in buttons), reply
    )


DRIVERS: dict[str, type[Chat]] = {
    "zalo": ZaloChat,
    "messenger": MessengerChat,
    "emulator": EmulatorChat,
}
AnyChat = Chat


@pytest.fixture(params=CHANNELS)
def channel(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def chat(client: Client, fakes: Fakes, channel: str) -> AnyChat:
    return DRIVERS[channel](client, fakes, 0)


@pytest.fixture
def friend(client: Client, fakes: Fakes, channel: str) -> AnyChat:
    return DRIVERS[channel](client, fakes, 1)


# ------------------------------------------------------------------------------------------- helpers


def loyalty_of(client: Client) -> Loyalty:
    resources = client.app[keys.RESOURCES]
    assert resources.loyalty is not None
    return resources.loyalty


async def customer_of(chat: Chat) -> Customer:
    found = await loyalty_of(chat.client).customers.by_identity(chat.identity)
    assert found is not None
    return found


def has(part: str) -> Callable[[list[Said]], bool]:
    return lambda new: any(part in m.text for m in new)


def once(said: list[Said]) -> None:
    """No message shown twice: a duplicate delivery answered again would repeat the whole reply."""
    repeated = [text for text, n in Counter(m.text for m in said).items() if n > 1]
    assert not repeated, repeated


def menu_of(said: Said) -> list[str]:
    return [b.value for b in said.buttons]


MENU = ["sl:points", "sl:vouchers", "sl:rewards", "sl:referral", "sl:checkin"]


async def onboard(chat: AnyChat, phone: str) -> Customer:
    await chat.start()
    await chat.said(lambda new: any(m.kind == "request_phone" for m in new))
    await chat.contact(phone)
    await chat.said(has("Giảm 20.000đ cho đơn đầu tiên"))
    return await customer_of(chat)


# ------------------------------------------------------------------------------------------ the flows


async def test_onboarding_follow_phone_welcome_voucher_and_refollow(chat: AnyChat) -> None:
    loyalty = loyalty_of(chat.client)
    await chat.start(times=2)
    greeting, ask = await chat.count(2)
    hello = f"Chào {chat.name}! " if chat.name else "Xin chào! "
    assert greeting.text.startswith(hello + "Cảm ơn bạn đã quan tâm Demo Café 🎉")
    assert ask.kind == "request_phone" and "số điện thoại" in ask.text
    if chat.channel == "zalo":
        assert ask.raw["attachment"]["payload"]["elements"][0]["title"]
    elif chat.channel == "messenger":
        assert ask.raw["quick_replies"] == [{"content_type": "user_phone_number"}]

    await chat.text("12345")  # a wrong number: a friendly correction and the question again
    (wrong,) = await chat.count(1)
    assert wrong.kind == "request_phone"
    assert '"12345" chưa phải số điện thoại di động hợp lệ.' in wrong.text and "còn 2 lần thử" in wrong.text

    await chat.text("0912 345 678", times=2)  # typed, in a common Vietnamese format; delivered twice
    saved, gift, card, menu = await chat.count(4)
    assert "Số +84912***678 đã được lưu vào thẻ thành viên Demo Café" in saved.text
    assert gift.text.startswith("🎁 Quà chào mừng")
    assert card.kind == "card" and "Giảm 20.000đ cho đơn đầu tiên" in card.text
    if chat.channel == "zalo":
        assert card.raw["attachment"]["payload"]["template_type"] == "list"
    elif chat.channel == "messenger":
        assert card.raw["attachment"]["payload"]["template_type"] == "generic"
    assert menu_of(menu) == MENU
    customer = await customer_of(chat)
    assert customer.phone == "+84912345678"
    vouchers = await loyalty.vouchers.list_for(customer.id)
    assert [v.source for v in vouchers] == ["welcome"]

    await chat.stop()
    await chat.start(times=2)
    again, menu = await chat.count(2)
    assert menu_of(menu) == MENU
    assert "mừng bạn quay lại Demo Café! Bạn đang có 0 điểm" in again.text
    assert len(await loyalty.vouchers.list_for(customer.id)) == 1  # no second welcome voucher


async def test_points_with_and_without_diacritics(chat: AnyChat) -> None:
    loyalty = loyalty_of(chat.client)
    await chat.text("Điểm")  # before a phone is known: asked for first, then answered
    (ask,) = await chat.count(1)
    assert ask.kind == "request_phone" and "Để xem điểm, bạn chia sẻ số điện thoại với Demo Café" in ask.text
    await chat.contact("+84912345601", times=2)
    shown = await chat.said(has("⭐ Demo Café: bạn có 0 điểm"))
    once(shown)
    assert "Số +84912***601 đã được lưu" in shown[0].text
    assert sum("Giảm 20.000đ cho đơn đầu tiên" in m.text for m in shown) == 1  # the welcome card
    customer = await customer_of(chat)
    assert len(await loyalty.vouchers.list_for(customer.id)) == 1
    await loyalty.ledger.earn(customer.id, 120, key="order:matrix-points", reason="order")

    await chat.text("điểm", times=2)
    (points,) = await chat.count(1)
    assert points.text.startswith("⭐ Demo Café: bạn có 120 điểm, hạng Member.")
    assert "Còn 380 điểm nữa để lên hạng Silver." in points.text
    assert "+120 (mua hàng)" in points.text
    assert menu_of(points) == MENU

    for typed in ("diem", "Xem Diem"):
        await chat.text(typed)
        (again,) = await chat.count(1)
        assert again.text == points.text


async def test_my_vouchers_as_cards(chat: AnyChat) -> None:
    await onboard(chat, "+84912345602")
    await chat.text("ưu đãi", times=2)
    shown = await chat.said(lambda new: any(m.kind == "card" for m in new) and bool(new[-1].buttons))
    once(shown)
    assert shown[0].text.startswith("🎟️ Bạn có 1 ưu đãi đang dùng được")
    cards = [m for m in shown if m.kind == "card"]
    assert len(cards) == 1 and "Giảm 20.000đ cho đơn đầu tiên" in cards[0].text
    assert menu_of(shown[-1]) == MENU

    await chat.text("uu dai")
    assert [m.text for m in await chat.count(len(shown))] == [m.text for m in shown]


async def test_rewards_list_confirm_and_redeem_once(chat: AnyChat) -> None:
    loyalty = loyalty_of(chat.client)
    customer = await onboard(chat, "+84912345603")
    await loyalty.ledger.earn(customer.id, 60, key="order:matrix-rewards", reason="order")

    await chat.text("đổi quà")
    listed = await chat.said(lambda new: any(m.kind == "card" for m in new))
    once(listed)
    assert listed[0].text.startswith("🎁 Với 60 điểm, bạn đổi được:")
    cards = [m for m in listed if m.kind == "card"]
    assert len(cards) == 1 and "Đồ uống size M miễn phí" in cards[0].text  # 80 points is out of reach
    await chat.press(cards[0].buttons[0], times=2)
    (confirm,) = await chat.count(1)
    assert 'Đổi 50 điểm lấy "Đồ uống size M miễn phí"? Bạn đang có 60 điểm.' in confirm.text
    yes, no = confirm.buttons
    assert yes.value.startswith("sl:redeem:free-drink:") and no.value == "sl:cancel"

    await chat.press(yes, times=2)  # the confirm, delivered twice
    done, card, menu = await chat.count(3)
    assert done.text.startswith("✅ Đổi quà thành công! Còn lại 10 điểm.")
    assert card.kind == "card" and "Một ly đồ uống size M miễn phí" in card.text
    assert menu_of(menu) == MENU
    assert await loyalty.ledger.balance(customer.id) == 10
    rewarded = [v for v in await loyalty.vouchers.list_for(customer.id) if v.source == "reward"]
    assert len(rewarded) == 1

    await chat.press(yes)  # a second tap: the same redemption shown again, nothing spent
    again = await chat.count(3)
    assert [m.text for m in again] == [done.text, card.text, menu.text]
    assert await loyalty.ledger.balance(customer.id) == 10
    assert len([v for v in await loyalty.vouchers.list_for(customer.id) if v.source == "reward"]) == 1


async def test_qr_check_in_awarded_once(chat: AnyChat) -> None:
    loyalty = loyalty_of(chat.client)
    customer = await onboard(chat, "+84912345604")
    issued = await loyalty.checkin.create_code(
        points=10, voucher_template=None, max_uses=10, expires_at=loyalty.clock.now() + timedelta(days=1),
        store="q1", created_by="staff:matrix",
    )  # fmt: skip

    if chat.channel == "zalo":  # a follow carries no ref: the code printed under the QR is typed
        await chat.text(f"#{issued.short_code.lower()}", times=2)
    else:  # Messenger: the QR's m.me link with ref; the emulator's "scan" is the same
        await chat.scan(f"checkin.{issued.token}", times=2)
    shown = await chat.said(has("Check-in thành công"))
    once(shown)
    assert "📍 Check-in thành công tại q1! +10 điểm. Bạn đang có 10 điểm." in shown[0].text
    assert await loyalty.ledger.balance(customer.id) == 10
    assert len(await loyalty.checkin.history(customer.id)) == 1

    if chat.channel == "zalo":  # the same QR again, a new event: its own message, nothing awarded
        await chat.text(f"#{issued.short_code}")
    else:
        await chat.scan(f"checkin.{issued.token}")
    (used,) = await chat.said(lambda new: bool(new) and bool(new[-1].buttons))
    assert "Bạn đã check-in bằng mã này rồi." in used.text or "Hôm nay bạn đã check-in đủ lượt" in used.text
    if chat.channel == "zalo":  # a forged code
        await chat.text("#ZZZZ9999")
    else:
        await chat.scan(f"checkin.{issued.token[:-4]}AAAA")
    (forged,) = await chat.said(lambda new: bool(new) and bool(new[-1].buttons))
    assert "Mã check-in này không hợp lệ. Bạn kiểm tra lại mã in dưới QR nhé." in forged.text
    assert await loyalty.ledger.balance(customer.id) == 10
    assert len(await loyalty.checkin.history(customer.id)) == 1


async def test_referral_code_share_link_and_the_new_customer_credited_once(
    chat: AnyChat, friend: AnyChat
) -> None:
    loyalty = loyalty_of(chat.client)
    referrer = await onboard(chat, "+84912345605")
    await chat.text("giới thiệu")
    shown = await chat.said(has("Mã giới thiệu của bạn"))
    once(shown)
    code = referrer.referral_code
    info = shown[0]
    assert f"👫 Mã giới thiệu của bạn: {code}" in info.text
    assert (
        f'Bạn bè nhắn "GT {code}" cho Demo Café trên Zalo (https://zalo.me/0000000000000000000)' in info.text
    )
    share = Button("Gửi qua Messenger", f"https://m.me/democafe?ref=ref.{code}")
    assert share in info.buttons
    if chat.channel == "zalo":
        assert {"title": share.title, "type": "oa.open.url", "payload": {"url": share.value}} in info.raw[
            "attachment"
        ]["payload"]["buttons"]
    elif chat.channel == "messenger":
        assert {"type": "web_url", "url": share.value, "title": share.title} in info.raw["attachment"][
            "payload"
        ]["buttons"]

    if friend.channel == "zalo":  # on Zalo the friend sends "GT <code>" as the message says
        await friend.text(f"GT {code}", times=2)
    elif friend.channel == "messenger":  # the m.me link opens the chat with the ref on Get Started
        await friend.start(ref=f"ref.{code}", times=2)
    else:
        await friend.scan(f"ref.{code}", times=2)
    arrived = await friend.said(
        lambda new: any(m.kind == "request_phone" for m in new) and has("ghi nhận")(new)
    )
    once(arrived)
    assert any(f"Mình đã ghi nhận mã giới thiệu {code}" in m.text for m in arrived)

    await friend.contact("0912345606", times=2)
    got = await friend.said(has("Người giới thiệu bạn cũng đã nhận quà"))
    once(got)
    rewarded = [m for m in got if "Cảm ơn bạn đến với Demo Café qua lời giới thiệu" in m.text]
    assert len(rewarded) == 1 and "Bạn được cộng 20 điểm và một ưu đãi" in rewarded[0].text
    newcomer = await customer_of(friend)
    assert await loyalty.ledger.balance(newcomer.id) == 20
    sources = sorted(v.source for v in await loyalty.vouchers.list_for(newcomer.id))
    assert sources == ["referral", "welcome"]
    assert await loyalty.ledger.balance(referrer.id) == 50
    stats = await loyalty.referral.stats(referrer.id)
    assert (stats.invited, stats.rewarded) == (1, 1)
    # the referrer is told too (the same channel, inside their messaging window), once
    told = await chat.said(has("Một người bạn bạn giới thiệu vừa tham gia Demo Café"))
    once(told)
    assert "Bạn được cộng 50 điểm" in told[0].text


async def test_menu_help_fallback_and_attachments(chat: AnyChat) -> None:
    await chat.text("menu", times=2)
    (menu,) = await chat.count(1)
    assert menu.text.startswith("Bạn có thể nhắn cho Demo Café:")
    assert menu_of(menu) == MENU
    for typed in ("help", "?", "Trợ giúp", "tro giup"):
        await chat.text(typed)
        (again,) = await chat.count(1)
        assert again.text == menu.text and menu_of(again) == MENU

    await chat.text("cho mình hỏi giờ mở cửa", times=2)
    (fallback,) = await chat.count(1)
    assert fallback.text.startswith('Xin lỗi, mình chưa hiểu "cho mình hỏi giờ mở cửa".')
    assert [b.value for b in fallback.buttons] == ["sl:help"]
    await chat.press(fallback.buttons[0])
    (from_button,) = await chat.count(1)
    assert from_button.text == menu.text

    await chat.attachment("sticker")
    (sticker,) = await chat.count(1)
    assert sticker.text.startswith("Sticker dễ thương quá! 😄")
    await chat.attachment("image")
    (image,) = await chat.count(1)
    assert image.text.startswith("Mình đã nhận được hình ảnh của bạn.")
    assert menu_of(image) == MENU
