"""Every flow through a real dispatcher, the real copy and the real loyalty core (SecantusDB)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.paths import MESSAGES_DIR
from bot import (
    Attachment,
    Buttons,
    ContactShared,
    Dispatcher,
    Follow,
    Message,
    Postback,
    QuickReplies,
    Referral,
    Unfollow,
)
from bot.replies import Card, Reply, RequestPhone
from bot.replies import Text as TextReply
from handlers.common import HELP_PAYLOAD, identity_of
from loyalty.clock import FrozenClock
from loyalty.core import Loyalty
from loyalty.customers import Identity, ProfileUpdate
from tests.handlers.conftest import Outbox, make


def texts(replies: list[Reply]) -> str:
    out = []
    for reply in replies:
        if isinstance(reply, Card):
            out.append(f"{reply.title} | {reply.subtitle}")
        else:
            out.append(getattr(reply, "text", ""))
    return "\n".join(out)


async def onboard(
    dp: Dispatcher, outbox: Outbox, user: str = "u1", phone: str = "0912345678", **kw: str
) -> None:
    await dp.feed_update(make(Follow, user=user, **kw))
    await dp.feed_update(make(ContactShared, user=user, phone=phone, **kw))
    outbox.take()


# ------------------------------------------------------------------ onboarding
async def test_a_follower_is_greeted_by_name_and_asked_for_the_phone(
    dispatcher: Dispatcher, outbox: Outbox
) -> None:
    outbox.profiles["u1"] = {"display_name": "Lan"}

    await dispatcher.feed_update(make(Follow))

    welcome, ask = outbox.take()
    assert isinstance(welcome, TextReply)
    assert welcome.text.startswith("Chào Lan! Cảm ơn bạn đã quan tâm Cà Phê Sữa")
    assert "10.000đ = 1 điểm" in welcome.text
    assert isinstance(ask, RequestPhone)
    assert "nhắn số điện thoại" in ask.text


@pytest.mark.parametrize(
    "typed", ["0912345678", "0912 345 678", "+84 912 345 678", "84912345678", "091.234.5678"]
)
async def test_a_typed_number_in_any_format_gives_the_welcome_voucher_card(
    typed: str, dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await dispatcher.feed_update(make(Follow))
    outbox.take()

    await dispatcher.feed_update(make(Message, text=typed))

    replies = outbox.take()
    assert "+84912***678" in texts(replies)
    (card,) = [r for r in replies if isinstance(r, Card)]
    assert card.title == "Giảm 20.000đ cho đơn đầu tiên"
    assert "giảm 20.000đ cho đơn từ 50.000đ" in (card.subtitle or "")
    assert isinstance(replies[-1], QuickReplies)  # the menu after the flow
    customer = await loyalty.customers.by_identity(Identity(channel="zalo", user_id="u1"))
    assert customer is not None and customer.phone == "+84912345678"
    assert len(await loyalty.vouchers.list_for(customer.id)) == 1


async def test_three_wrong_numbers_then_the_menu(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await dispatcher.feed_update(make(Follow))
    outbox.take()

    await dispatcher.feed_update(make(Message, text="12345"))
    (first,) = outbox.take()
    await dispatcher.feed_update(make(Message, text="abc"))
    (second,) = outbox.take()
    await dispatcher.feed_update(make(Message, text="0283 822 1234"))
    give_up = outbox.take()
    await dispatcher.feed_update(make(Message, text="xyz"))
    after = outbox.take()

    assert isinstance(first, RequestPhone) and "còn 2 lần thử" in first.text
    assert isinstance(second, RequestPhone) and "còn 1 lần thử" in second.text
    assert "Không sao cả" in texts(give_up) and isinstance(give_up[-1], QuickReplies)
    assert 'chưa hiểu "xyz"' in texts(after)  # no longer asking: plain fallback
    customer = await loyalty.customers.by_identity(Identity(channel="zalo", user_id="u1"))
    assert customer is not None and customer.phone is None


async def test_a_flow_keyword_while_the_phone_is_asked_goes_to_its_flow(
    dispatcher: Dispatcher, outbox: Outbox
) -> None:
    await dispatcher.feed_update(make(Follow))
    outbox.take()

    await dispatcher.feed_update(make(Message, text="diem"))
    replies = outbox.take()

    # the points flow answers (it needs the phone first, so it asks for it), not "a wrong number"
    assert "lần thử" not in texts(replies)
    assert isinstance(replies[-1], RequestPhone)


async def test_a_landline_gets_its_own_correction(dispatcher: Dispatcher, outbox: Outbox) -> None:
    await dispatcher.feed_update(make(Follow))
    outbox.take()
    await dispatcher.feed_update(make(Message, text="028 3822 1234"))
    (answer,) = outbox.take()
    assert "số máy bàn" in getattr(answer, "text", "")


async def test_refollowing_gives_no_second_voucher(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await onboard(dispatcher, outbox)

    await dispatcher.feed_update(make(Unfollow))
    customer = await loyalty.customers.by_identity(Identity(channel="zalo", user_id="u1"))
    assert customer is not None and customer.following == {"zalo": False}
    await dispatcher.feed_update(make(Follow))

    replies = outbox.take()
    assert "mừng bạn quay lại" in texts(replies)
    assert not any(isinstance(r, Card | RequestPhone) for r in replies)
    customer = await loyalty.customers.get(customer.id)
    assert customer.following == {"zalo": True}
    assert len(await loyalty.vouchers.list_for(customer.id)) == 1


async def test_the_same_phone_on_another_channel_is_one_customer_greeted_with_the_balance(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty, clock: FrozenClock
) -> None:
    await onboard(dispatcher, outbox, user="psid-1", channel="messenger")
    first = await loyalty.customers.by_identity(Identity(channel="messenger", user_id="psid-1"))
    assert first is not None
    await loyalty.ledger.earn(first.id, 120, key="order:x1", reason="order")
    clock.advance(timedelta(days=3))

    await dispatcher.feed_update(make(Follow, user="zalo-1"))
    await dispatcher.feed_update(make(ContactShared, user="zalo-1", phone="84912345678"))

    replies = outbox.take()
    assert "đã gộp lại thành một. Bạn đang có 120 điểm" in texts(replies)
    assert not any(isinstance(r, Card) for r in replies)  # the welcome voucher was given on Messenger
    on_zalo = await loyalty.customers.by_identity(Identity(channel="zalo", user_id="zalo-1"))
    assert on_zalo is not None and on_zalo.id == first.id and on_zalo.balance == 120
    assert len(await loyalty.vouchers.list_for(first.id)) == 1


async def test_a_retried_contact_event_does_the_work_once(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await dispatcher.feed_update(make(Follow))
    contact = make(ContactShared, phone="0912345678")
    await dispatcher.feed_update(contact)
    await dispatcher.feed_update(contact)
    customer = await loyalty.customers.by_identity(Identity(channel="zalo", user_id="u1"))
    assert customer is not None
    assert len(await loyalty.vouchers.list_for(customer.id)) == 1


# ------------------------------------------------------------------ points
@pytest.mark.parametrize("word", ["điểm", "diem", "tích điểm", "points", "ĐIỂM"])
async def test_points_ask_for_the_phone_first_then_answer(
    word: str, dispatcher: Dispatcher, outbox: Outbox
) -> None:
    await dispatcher.feed_update(make(Message, text=word))
    (ask,) = outbox.take()
    assert isinstance(ask, RequestPhone) and ask.text.startswith("Để xem điểm")

    await dispatcher.feed_update(make(Message, text="0912345678"))
    replies = outbox.take()
    assert "bạn có 0 điểm, hạng Member" in texts(replies)
    assert "Còn 500 điểm nữa để lên hạng Silver" in texts(replies)


async def test_points_show_tier_expiry_and_last_movements(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty, clock: FrozenClock
) -> None:
    await onboard(dispatcher, outbox)
    customer = await loyalty.customers.by_identity(Identity(channel="zalo", user_id="u1"))
    assert customer is not None
    await loyalty.ledger.earn(
        customer.id, 30, key="k1", reason="order", expires_at=clock.now() + timedelta(days=10)
    )
    for n in range(2, 5):
        await loyalty.ledger.earn(customer.id, n, key=f"k{n}", reason="checkin")

    await dispatcher.feed_update(make(Postback, payload="sl:points"))

    (answer,) = outbox.take()
    text = getattr(answer, "text", "")
    assert "bạn có 39 điểm" in text
    assert "30 điểm sẽ hết hạn trong 30 ngày tới" in text
    assert text.count("(check-in)") == 3 and "mua hàng" not in text  # the last three movements only


# ------------------------------------------------------------------ vouchers and rewards
async def test_my_vouchers_are_cards(dispatcher: Dispatcher, outbox: Outbox) -> None:
    await onboard(dispatcher, outbox)
    await dispatcher.feed_update(make(Message, text="ưu đãi"))
    replies = outbox.take()
    assert [r.title for r in replies if isinstance(r, Card)] == ["Giảm 20.000đ cho đơn đầu tiên"]


async def test_a_reward_is_redeemed_once_after_confirming(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await onboard(dispatcher, outbox)
    customer = await loyalty.customers.by_identity(Identity(channel="zalo", user_id="u1"))
    assert customer is not None
    await loyalty.ledger.earn(customer.id, 60, key="k1", reason="order")

    await dispatcher.feed_update(make(Message, text="đổi quà"))
    _intro, card = outbox.take()
    assert isinstance(card, Card) and card.title == "Đồ uống size M miễn phí"  # 80-point reward not shown
    await dispatcher.feed_update(make(Postback, payload=card.buttons[0].payload or ""))
    (confirm,) = outbox.take()
    assert isinstance(confirm, Buttons) and "Đổi 50 điểm" in confirm.text
    press = confirm.buttons[0].payload or ""
    await dispatcher.feed_update(make(Postback, payload=press))
    await dispatcher.feed_update(make(Postback, payload=press))  # pressed twice

    done = outbox.take()
    assert "Còn lại 10 điểm" in texts(done)
    assert await loyalty.ledger.balance(customer.id) == 10
    assert len([v for v in await loyalty.vouchers.list_for(customer.id) if v.source == "reward"]) == 1


async def test_a_reward_without_enough_points_says_how_many_are_missing(
    dispatcher: Dispatcher, outbox: Outbox
) -> None:
    await onboard(dispatcher, outbox)
    await dispatcher.feed_update(make(Message, text="doi qua"))
    (answer,) = outbox.take()
    assert 'Cần thêm 50 điểm để đổi "Đồ uống size M miễn phí"' in getattr(answer, "text", "")


async def test_a_forged_redeem_payload_redeems_nothing(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await onboard(dispatcher, outbox)
    await dispatcher.feed_update(make(Postback, payload='sl:redeem:free-drink:{"$ne": ""}'))
    (answer,) = outbox.take()
    assert "không đổi được" in getattr(answer, "text", "")


# ------------------------------------------------------------------ check-in
async def code(loyalty: Loyalty, clock: FrozenClock, **kw: object) -> tuple[str, str]:
    issued = await loyalty.checkin.create_code(
        points=10, voucher_template=None, max_uses=100, expires_at=clock.now() + timedelta(days=7),
        store="q1", created_by="staff:t", **kw,
    )  # fmt: skip
    return issued.token, issued.short_code


async def test_a_first_time_customer_arriving_by_qr_gets_the_reward_after_the_phone(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty, clock: FrozenClock
) -> None:
    token, _ = await code(loyalty, clock)

    await dispatcher.feed_update(make(Postback, channel="messenger", payload="sl:get_started"))
    await dispatcher.feed_update(
        make(Referral, channel="messenger", ref=f"checkin.{token}", source="SHORTLINK")
    )
    kept = outbox.take()
    assert "giữ mã check-in" in texts(kept)
    await dispatcher.feed_update(make(ContactShared, channel="messenger", phone="0912345678"))

    replies = outbox.take()
    assert "Check-in thành công tại q1! +10 điểm. Bạn đang có 10 điểm." in texts(replies)
    assert any(isinstance(r, Card) for r in replies)  # and the welcome voucher


@pytest.mark.parametrize("flavour", ["expired", "used", "forged", "daily_cap"])
async def test_each_refusal_has_its_own_message(
    flavour: str, dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty, clock: FrozenClock
) -> None:
    await onboard(dispatcher, outbox)
    token, short = await code(loyalty, clock)
    other, _ = await code(loyalty, clock)
    expected = {
        "expired": "đã hết hạn",
        "used": "đã check-in bằng mã này rồi",
        "forged": "không hợp lệ",
        "daily_cap": "đủ lượt",
    }[flavour]
    if flavour in ("used", "daily_cap"):
        await dispatcher.feed_update(make(Message, text=f"#{short}"))
        outbox.take()
    if flavour == "expired":
        clock.advance(timedelta(days=8))
    ref = {"forged": token[:-3] + "AAA", "daily_cap": other}.get(flavour, token)

    await dispatcher.feed_update(make(Referral, ref=f"checkin.{ref}"))

    assert expected in texts(outbox.take())


async def test_typed_codes_are_rate_limited(dispatcher: Dispatcher, outbox: Outbox) -> None:
    await onboard(dispatcher, outbox)
    for n in range(5):
        await dispatcher.feed_update(make(Message, text=f"#ABCDEFG{n + 2}"))
    assert texts(outbox.take()).count("không hợp lệ") == 5
    await dispatcher.feed_update(make(Message, text="#ABCDEFGH"))
    assert "đợi" in texts(outbox.take())


# ------------------------------------------------------------------ referral
async def test_a_friend_arriving_by_link_is_credited_and_told(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await onboard(dispatcher, outbox, user="referrer", channel="messenger", phone="0912000001")
    await dispatcher.feed_update(make(Message, user="referrer", channel="messenger", text="giới thiệu"))
    info = outbox.take()
    referrer = await loyalty.customers.by_identity(Identity(channel="messenger", user_id="referrer"))
    assert referrer is not None
    assert f"Mã giới thiệu của bạn: {referrer.referral_code}" in texts(info)
    assert (
        isinstance(info[0], Buttons)
        and info[0].buttons[0].url == f"https://m.me/democafe?ref=ref.{referrer.referral_code}"
    )

    await dispatcher.feed_update(make(Postback, user="friend", channel="messenger", payload="sl:get_started"))
    await dispatcher.feed_update(
        make(Referral, user="friend", channel="messenger", ref=f"ref.{referrer.referral_code}")
    )
    await dispatcher.feed_update(make(ContactShared, user="friend", channel="messenger", phone="0912000002"))

    assert "Bạn được cộng 20 điểm và một ưu đãi" in texts(outbox.take())
    assert await loyalty.ledger.balance(referrer.id) == 50


async def test_a_typed_referral_code_is_recorded(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await onboard(dispatcher, outbox, user="referrer", phone="0912000001")
    referrer = await loyalty.customers.by_identity(Identity(channel="zalo", user_id="referrer"))
    assert referrer is not None
    await dispatcher.feed_update(make(Message, user="friend", text=f"gt {referrer.referral_code.lower()}"))
    assert "ghi nhận mã giới thiệu" in texts(outbox.take())
    await dispatcher.feed_update(make(Message, user="friend", text="0912000002"))
    assert "Bạn được cộng 20 điểm" in texts(outbox.take())


async def test_the_referrer_is_told_once_on_the_same_channel(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await onboard(dispatcher, outbox, user="referrer", phone="0912000001")
    referrer = await loyalty.customers.by_identity(Identity(channel="zalo", user_id="referrer"))
    assert referrer is not None
    await dispatcher.feed_update(make(Message, user="friend", text=f"GT {referrer.referral_code}"))
    outbox.take()
    shares_phone = make(Message, user="friend", text="0912000002")

    await dispatcher.feed_update(shares_phone)
    await dispatcher.feed_update(shares_phone)  # the platform's retry: paid once, told once

    to_referrer = [reply for to, reply in outbox.sent if to.user_id == "referrer"]
    assert len(to_referrer) == 1
    assert "Một người bạn bạn giới thiệu vừa tham gia Cà Phê Sữa! Bạn được cộng 50 điểm" in texts(to_referrer)


async def test_an_unknown_referral_code_is_refused(dispatcher: Dispatcher, outbox: Outbox) -> None:
    await dispatcher.feed_update(make(Message, text="GT ZZZZZZ"))
    assert 'Mã giới thiệu "ZZZZZZ" không đúng' in texts(outbox.take())


# ------------------------------------------------------------------ menu, help, fallback
@pytest.mark.parametrize("text", ["trợ giúp", "tro giup", "help", "Menu", "?"])
async def test_help_shows_the_menu(text: str, dispatcher: Dispatcher, outbox: Outbox) -> None:
    await dispatcher.feed_update(make(Message, text=text))
    (answer,) = outbox.take()
    assert isinstance(answer, QuickReplies)
    assert answer.text.startswith("Bạn có thể nhắn cho Cà Phê Sữa:")
    assert [o.payload for o in answer.options] == [
        "sl:points",
        "sl:vouchers",
        "sl:rewards",
        "sl:referral",
        "sl:checkin",
    ]


async def test_unknown_text_gets_a_short_help_and_a_menu_button(
    dispatcher: Dispatcher, outbox: Outbox
) -> None:
    await dispatcher.feed_update(make(Message, text="cho mình hỏi giờ mở cửa"))
    (answer,) = outbox.take()
    assert isinstance(answer, Buttons)
    assert answer.text.startswith('Xin lỗi, mình chưa hiểu "cho mình hỏi giờ mở cửa"')
    assert answer.buttons[0].payload == HELP_PAYLOAD


@pytest.mark.parametrize(("kind", "words"), [("sticker", "Sticker dễ thương"), ("image", "hình ảnh")])
async def test_stickers_and_images_get_a_friendly_reply(
    kind: str, words: str, dispatcher: Dispatcher, outbox: Outbox
) -> None:
    await dispatcher.feed_update(make(Message, attachments=(Attachment(type=kind),)))
    (answer,) = outbox.take()
    assert words in getattr(answer, "text", "")


async def test_english_customers_are_answered_in_english(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await onboard(dispatcher, outbox)
    customer = await loyalty.customers.by_identity(identity_of(make(Message, text="x")))
    assert customer is not None
    await loyalty.customers.update_profile(customer.id, ProfileUpdate(locale="en"))
    await dispatcher.feed_update(make(Message, text="points"))
    assert "you have 0 points, tier Member" in texts(outbox.take())


def test_every_message_template_exists_in_both_locales() -> None:
    vi = {p.name for p in (MESSAGES_DIR / "vi").glob("*.j2")}
    en = {p.name for p in (MESSAGES_DIR / "en").glob("*.j2")}
    assert vi == en
