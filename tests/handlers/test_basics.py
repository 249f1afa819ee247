from __future__ import annotations

import pytest

from app.paths import MESSAGES_DIR
from bot import Attachment, Buttons, Dispatcher, Follow, Message, Postback
from bot.replies import Text as TextReply
from handlers.basics import GET_STARTED_PAYLOAD, HELP_PAYLOAD
from tests.handlers.conftest import Outbox, make


async def test_a_follower_is_welcomed_with_the_brand_and_a_help_button(
    dispatcher: Dispatcher, outbox: Outbox
) -> None:
    result = await dispatcher.feed_update(make(Follow))

    assert result.handled
    (welcome,) = outbox.replies
    assert isinstance(welcome, Buttons)
    assert welcome.text.startswith("Xin chào! Cảm ơn bạn đã quan tâm Cà Phê Sữa")
    assert [(b.title, b.payload) for b in welcome.buttons] == [("Trợ giúp", HELP_PAYLOAD)]


@pytest.mark.parametrize("text", ["trợ giúp", "tro giup", "TRỢ GIÚP", "  Trợ  giúp ", "help", "Menu", "?"])
async def test_help_answers_every_way_of_asking(text: str, dispatcher: Dispatcher, outbox: Outbox) -> None:
    await dispatcher.feed_update(make(Message, text=text))

    (answer,) = outbox.replies
    assert isinstance(answer, TextReply)
    assert answer.text.startswith("Bạn có thể nhắn cho Cà Phê Sữa:")


async def test_the_help_button_answers_like_the_keyword(dispatcher: Dispatcher, outbox: Outbox) -> None:
    await dispatcher.feed_update(make(Postback, payload=HELP_PAYLOAD, title="Trợ giúp"))
    await dispatcher.feed_update(make(Message, text="help"))

    by_button, by_text = outbox.replies
    assert by_button == by_text


async def test_unknown_text_is_quoted_back_with_a_way_out(dispatcher: Dispatcher, outbox: Outbox) -> None:
    await dispatcher.feed_update(make(Message, text="cho mình hỏi giờ mở cửa"))

    (answer,) = outbox.replies
    assert isinstance(answer, Buttons)
    assert answer.text.startswith('Xin lỗi, mình chưa hiểu "cho mình hỏi giờ mở cửa"')
    assert answer.buttons[0].payload == HELP_PAYLOAD


async def test_a_very_long_text_is_shortened_when_quoted(dispatcher: Dispatcher, outbox: Outbox) -> None:
    await dispatcher.feed_update(make(Message, text="a" * 500))

    (answer,) = outbox.replies
    assert isinstance(answer, Buttons)
    assert '"' + "a" * 57 + '..."' in answer.text


async def test_an_image_gets_a_polite_explanation(dispatcher: Dispatcher, outbox: Outbox) -> None:
    await dispatcher.feed_update(
        make(Message, attachments=(Attachment(type="image", url="https://x/y.jpg"),))
    )

    (answer,) = outbox.replies
    assert isinstance(answer, TextReply)
    assert "hình ảnh" in answer.text


async def test_replies_go_to_the_user_on_the_channel_it_came_from(
    dispatcher: Dispatcher, outbox: Outbox
) -> None:
    await dispatcher.feed_update(make(Message, text="help", user="psid-42", channel="messenger"))

    ((to, _),) = outbox.sent
    assert (to.channel, to.account_id, to.user_id) == ("messenger", "oa-1", "psid-42")


def test_every_message_template_exists_in_both_locales() -> None:
    vi = {p.name for p in (MESSAGES_DIR / "vi").glob("*.j2")}
    en = {p.name for p in (MESSAGES_DIR / "en").glob("*.j2")}

    assert vi == en
    assert {"welcome.j2", "help.j2", "fallback.j2"} <= vi


async def test_get_started_on_messenger_is_welcomed_like_a_follow(
    dispatcher: Dispatcher, outbox: Outbox
) -> None:
    await dispatcher.feed_update(
        make(Postback, channel="messenger", payload=GET_STARTED_PAYLOAD, title="Bắt đầu")
    )

    (welcome,) = outbox.replies
    assert isinstance(welcome, Buttons)
    assert "Cà Phê Sữa" in welcome.text
