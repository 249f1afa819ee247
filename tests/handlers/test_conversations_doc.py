"""``docs/conversations.md`` is generated here: each flow is played through the real dispatcher, handlers
and loyalty core (SecantusDB, a frozen clock), and the transcript written as the customer would see it.

The test fails when the committed document differs from what the flows say now. Regenerate it with
``UPDATE_CONVERSATIONS=1 .venv/bin/pytest tests/handlers/test_conversations_doc.py``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot import Buttons, ContactShared, Dispatcher, Follow, Message, Postback, QuickReplies, Referral
from bot.replies import Card, Reply, RequestPhone
from bot.types import Attachment, BaseUpdate
from loyalty.clock import FrozenClock
from loyalty.core import Loyalty
from loyalty.customers import Identity
from tests.handlers.conftest import Outbox, make

DOC = Path(__file__).resolve().parents[2] / "docs" / "conversations.md"
Step = Callable[[], Awaitable[BaseUpdate | None]]

HEADER = """# Conversations

What customers and the bot say to each other, flow by flow. **Generated** by
`tests/handlers/test_conversations_doc.py` from the real handlers, copy and loyalty core (do not edit by
hand: `UPDATE_CONVERSATIONS=1 .venv/bin/pytest tests/handlers/test_conversations_doc.py`). The brand is
"Cà Phê Sữa" with the demo program. Random codes are shown as `ABCDE-FGHJK` (vouchers), `LAN234`
(referral) and `K7P2MXRT` (check-in). Buttons are in [brackets]: Zalo shows them as buttons, Messenger as
buttons or quick replies (the framework fits them, `bot/render.py`).
"""


def render_reply(reply: Reply) -> list[str]:
    if isinstance(reply, Card):
        lines = [f"🃏 **{reply.title}** — {reply.subtitle or ''}".rstrip(" —")]
        if reply.buttons:
            lines.append(" ".join(f"[{b.title}]" for b in reply.buttons))
        return lines
    if isinstance(reply, RequestPhone):
        return [*reply.text.splitlines(), "[📱 share phone number]"]
    lines = getattr(reply, "text", "").splitlines()
    if isinstance(reply, Buttons):
        lines.append(" ".join(f"[{b.title}]" for b in reply.buttons))
    if isinstance(reply, QuickReplies):
        lines.append(" ".join(f"[{o.title}]" for o in reply.options))
    return lines


def describe(update: BaseUpdate) -> str:
    if isinstance(update, Follow):
        return "*(follows the OA / presses Get Started)*"
    if isinstance(update, Postback):
        return f"*(presses [{update.title or update.payload}])*"
    if isinstance(update, ContactShared):
        return f"*(shares the phone number {update.phone})*"
    if isinstance(update, Referral):
        return f"*(scans a QR / opens a link: ref `{update.ref}`)*"
    if isinstance(update, Message) and update.attachments:
        return f"*(sends a {update.attachments[0].type.value})*"
    assert isinstance(update, Message)
    return str(update.text)


class Transcript:
    def __init__(self, dp: Dispatcher, outbox: Outbox, channel: str, user: str) -> None:
        self.dp, self.outbox, self.channel, self.user = dp, outbox, channel, user
        self.lines: list[str] = []
        self.last: list[Reply] = []

    async def say(self, kind: type[BaseUpdate], **fields: Any) -> list[Reply]:
        update = make(kind, user=self.user, channel=self.channel, **fields)
        await self.dp.feed_update(update)
        self.last = self.outbox.take()
        self.lines.append(f"> 🧑 {describe(update)}")
        self.lines.append(">")
        for reply in self.last:
            for line in render_reply(reply):
                self.lines.append(f"> 🤖 {line}" if line else ">")
        self.lines.append("")
        return self.last

    def button(self, title_part: str) -> tuple[str, str]:
        for reply in self.last:
            for button in [*getattr(reply, "buttons", ()), *getattr(reply, "options", ())]:
                if title_part in button.title and button.payload:
                    return button.title, button.payload
        raise AssertionError(f"no button {title_part!r} in {self.last}")

    async def press(self, title_part: str) -> list[Reply]:
        title, payload = self.button(title_part)
        return await self.say(Postback, payload=payload, title=title)


async def flows(
    dp: Dispatcher, outbox: Outbox, loyalty: Loyalty, clock: FrozenClock
) -> list[tuple[str, str, Transcript]]:
    out: list[tuple[str, str, Transcript]] = []

    outbox.profiles["zalo-an"] = {"display_name": "An"}
    t = Transcript(dp, outbox, "zalo", "zalo-an")
    await t.say(Follow)
    await t.say(Message, text="0912 34")
    await t.say(Message, text="0912 345 678")
    out.append(("1. Follow, phone number, welcome voucher (Zalo)",
                "Greeting by the profile's name, a wrong number corrected, the number typed in a common "
                "format, the welcome voucher as a card, the main menu.", t))  # fmt: skip

    customer = await loyalty.customers.by_identity(Identity(channel="zalo", user_id="zalo-an"))
    assert customer is not None
    await loyalty.ledger.earn(customer.id, 120, key="doc:order-1", reason="order")
    clock.advance(timedelta(days=2))
    await loyalty.ledger.earn(customer.id, 10, key="doc:checkin-1", reason="checkin")
    t = Transcript(dp, outbox, "zalo", "zalo-an")
    await t.say(Message, text="diem")
    await t.say(Message, text="ưu đãi")
    await t.say(Message, text="đổi quà")
    await t.press("Đổi quà này")
    await t.press("Xác nhận")
    out.append(("2. Points, my vouchers, rewards (Zalo)",
                "\"diem\" without diacritics works; rewards the customer can afford, a confirm step, the "
                "voucher in the chat.", t))  # fmt: skip

    issued = await loyalty.checkin.create_code(
        points=10, voucher_template=None, max_uses=100, expires_at=clock.now() + timedelta(days=7),
        store="Quận 1", created_by="staff:doc",
    )  # fmt: skip
    outbox.profiles["psid-lan"] = {"first_name": "Lan"}
    t = Transcript(dp, outbox, "messenger", "psid-lan")
    await t.say(Postback, payload="sl:get_started", title="Bắt đầu")
    await t.say(Referral, ref=f"checkin.{issued.token}", source="SHORTLINK")
    await t.say(ContactShared, phone="+84987654321")
    await t.say(Referral, ref=f"checkin.{issued.token}", source="SHORTLINK")
    out.append(("3. QR check-in of a first-time customer (Messenger)",
                "The m.me link of the QR carries `checkin.<token>`: kept while the phone is asked, then "
                "rewarded; the same QR again is refused with its own message.", t))  # fmt: skip

    t = Transcript(dp, outbox, "zalo", "zalo-an")
    await t.say(Message, text=f"#{issued.short_code}")
    await t.say(Message, text="#ABCD2345")
    out.append(("4. Check-in by the short code (Zalo)",
                "A Zalo follow carries no ref, so the code printed under the QR is typed; then a wrong one.",
                t))  # fmt: skip

    t = Transcript(dp, outbox, "zalo", "zalo-an")
    await t.say(Message, text="giới thiệu")
    referrer = t.lines[:]
    friend = Transcript(dp, outbox, "messenger", "psid-minh")
    friend.lines = referrer
    await friend.say(Postback, payload="sl:get_started", title="Bắt đầu")
    await friend.say(Referral, ref=f"ref.{customer.referral_code}", source="SHORTLINK")
    await friend.say(ContactShared, phone="+84901234567")
    out.append(("5. Referral",
                "The referrer asks for their code (Zalo); a friend opens the m.me link with "
                "`ref.<code>` (Messenger) and is credited when the phone is verified. The referrer is not "
                "messaged proactively (see handlers/referral.py).", friend))  # fmt: skip

    t = Transcript(dp, outbox, "messenger", "psid-lan")
    await t.say(Message, text="menu")
    await t.say(Message, text="cho mình hỏi giờ mở cửa")
    await t.say(Message, attachments=(Attachment(type="sticker"),))
    out.append(
        (
            "6. Menu, help and fallback (Messenger)",
            "Unknown text and stickers are answered, never silence.",
            t,
        )
    )
    return out


def render_doc(played: list[tuple[str, str, Transcript]], secrets: dict[str, str]) -> str:
    parts = [HEADER]
    for title, note, transcript in played:
        parts += [f"## {title}", "", note, "", *transcript.lines]
    text = "\n".join(parts).rstrip() + "\n"
    for secret, shown in secrets.items():
        text = text.replace(secret, shown)
    return re.sub(r"\b[A-HJ-NP-Z2-9]{5}-[A-HJ-NP-Z2-9]{5}\b", "ABCDE-FGHJK", text)


async def test_the_conversations_doc_is_up_to_date(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty, clock: FrozenClock
) -> None:
    played = await flows(dispatcher, outbox, loyalty, clock)
    an = await loyalty.customers.by_identity(Identity(channel="zalo", user_id="zalo-an"))
    codes = await loyalty.checkin.list_codes()
    assert an is not None and codes
    secrets = {an.referral_code: "LAN234", codes[0].short_code: "K7P2MXRT"}
    secrets[loyalty.checkin.token_for(codes[0])] = "<token>"
    text = render_doc(played, secrets)

    if os.environ.get("UPDATE_CONVERSATIONS") == "1":
        DOC.write_text(text, encoding="utf-8")
    assert DOC.exists(), "run with UPDATE_CONVERSATIONS=1 to write docs/conversations.md"
    assert DOC.read_text(encoding="utf-8") == text, (
        "docs/conversations.md is stale; regenerate it with "
        "UPDATE_CONVERSATIONS=1 .venv/bin/pytest tests/handlers/test_conversations_doc.py"
    )
