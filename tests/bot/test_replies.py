"""Replies, their JSON form, and how they are fitted to each platform's limits."""

from __future__ import annotations

from typing import Any

import pytest

from bot import Button, Buttons, Card, Image, QuickReplies, QuickReply, RequestPhone, TextReply
from bot.render import LIMITS, MESSENGER, ZALO, NumberedOptions, fit, fitted_to_json
from bot.replies import Reply, as_reply, reply_to_json


def buttons(n: int) -> tuple[Button, ...]:
    return tuple(Button.postback(f"Nút {i}", f"opt:{i}") for i in range(1, n + 1))


def quick(n: int) -> tuple[QuickReply, ...]:
    return tuple(QuickReply(f"Chọn {i}", f"q:{i}") for i in range(1, n + 1))


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("_case", "kwargs"),
    [
        ("payload", {"payload": "p"}),
        ("url", {"url": "https://example.vn"}),
        ("phone", {"phone": "+84901234567"}),
    ],
)
def test_a_button_with_exactly_one_action(_case: str, kwargs: dict[str, Any]) -> None:
    button = Button("Nút", **kwargs)

    assert button.title == "Nút"


@pytest.mark.parametrize(
    ("_case", "kwargs"),
    [
        ("none", {}),
        ("payload and url", {"payload": "p", "url": "https://example.vn"}),
        ("url and phone", {"url": "https://example.vn", "phone": "1"}),
        ("all three", {"payload": "p", "url": "https://example.vn", "phone": "1"}),
    ],
)
def test_a_button_needs_exactly_one_action(_case: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="exactly one of payload, url or phone"):
        Button("Nút", **kwargs)


def test_button_constructors() -> None:
    assert Button.postback("A", "a") == Button("A", payload="a")
    assert Button.link("B", "https://example.vn") == Button("B", url="https://example.vn")
    assert Button.call("C", "+84901234567") == Button("C", phone="+84901234567")


@pytest.mark.parametrize(
    ("_case", "kwargs", "valid"),
    [
        ("url", {"url": "https://example.vn/a.png"}, True),
        ("data", {"data": b"\x89PNG"}, True),
        ("neither", {}, False),
        ("both", {"url": "https://example.vn/a.png", "data": b"\x89PNG"}, False),
    ],
)
def test_an_image_needs_url_xor_data(_case: str, kwargs: dict[str, Any], valid: bool) -> None:
    if valid:
        assert Image(**kwargs).mime == "image/png"
    else:
        with pytest.raises(ValueError, match="exactly one of url or data"):
            Image(**kwargs)


def test_replies_are_frozen() -> None:
    reply = TextReply("hi")

    with pytest.raises(AttributeError):
        reply.text = "changed"  # type: ignore[misc]


def test_a_string_is_a_text_reply() -> None:
    assert as_reply("Xin chào") == TextReply("Xin chào")
    reply = Buttons("x", buttons(1))
    assert as_reply(reply) is reply


# --------------------------------------------------------------------------- JSON form


@pytest.mark.parametrize(
    ("_case", "reply", "expected"),
    [
        ("text", TextReply("Xin chào"), {"type": "text", "text": "Xin chào"}),
        (
            "buttons",
            Buttons(
                "Bạn muốn làm gì?",
                (
                    Button.postback("Điểm", "menu:points"),
                    Button.link("Web", "https://example.vn"),
                    Button.call("Gọi", "+84901234567"),
                ),
            ),
            {
                "type": "buttons",
                "text": "Bạn muốn làm gì?",
                "buttons": [
                    {"title": "Điểm", "payload": "menu:points"},
                    {"title": "Web", "url": "https://example.vn"},
                    {"title": "Gọi", "phone": "+84901234567"},
                ],
            },
        ),
        (
            "quick replies",
            QuickReplies("Chọn", (QuickReply("Có", "yes"), QuickReply("Không", "no"))),
            {
                "type": "quick_replies",
                "text": "Chọn",
                "options": [{"title": "Có", "payload": "yes"}, {"title": "Không", "payload": "no"}],
            },
        ),
        (
            "image by url",
            Image(url="https://example.vn/a.png", caption="Ảnh"),
            {"type": "image", "url": "https://example.vn/a.png", "caption": "Ảnh", "has_data": False},
        ),
        (
            "image by data",
            Image(data=b"\x89PNG"),
            {"type": "image", "url": None, "caption": None, "has_data": True},
        ),
        (
            "request phone",
            RequestPhone("Cho mình xin số điện thoại", title="Số điện thoại", subtitle="Để tích điểm"),
            {
                "type": "request_phone",
                "text": "Cho mình xin số điện thoại",
                "title": "Số điện thoại",
                "subtitle": "Để tích điểm",
            },
        ),
        (
            "card",
            Card(
                "Voucher 10%",
                "Hết hạn 31/12",
                "https://example.vn/v.png",
                (Button.postback("Dùng", "use:1"),),
            ),
            {
                "type": "card",
                "title": "Voucher 10%",
                "subtitle": "Hết hạn 31/12",
                "image_url": "https://example.vn/v.png",
                "buttons": [{"title": "Dùng", "payload": "use:1"}],
            },
        ),
        (
            "bare card",
            Card("Quà"),
            {"type": "card", "title": "Quà", "subtitle": None, "image_url": None, "buttons": []},
        ),
    ],
)
def test_reply_to_json(_case: str, reply: Reply, expected: dict[str, Any]) -> None:
    assert reply_to_json(reply) == expected


# --------------------------------------------------------------------------- fitting


def test_the_limits_per_platform() -> None:
    assert LIMITS == {"zalo": ZALO, "messenger": MESSENGER}
    assert (MESSENGER.max_buttons, MESSENGER.max_quick_replies, MESSENGER.max_card_buttons) == (3, 13, 3)
    assert (ZALO.max_buttons, ZALO.max_quick_replies, ZALO.max_card_buttons) == (5, 0, 5)


@pytest.mark.parametrize(
    ("_case", "limits", "count", "numbered"),
    [
        ("messenger, 3", MESSENGER, 3, False),
        ("messenger, 4", MESSENGER, 4, True),
        ("zalo, 5", ZALO, 5, False),
        ("zalo, 6", ZALO, 6, True),
    ],
)
def test_fit_buttons(_case: str, limits: Any, count: int, numbered: bool) -> None:
    reply = Buttons("Chọn", buttons(count))

    fitted = fit(reply, limits)

    if numbered:
        assert fitted == NumberedOptions("Chọn", buttons(count))
    else:
        assert fitted is reply


@pytest.mark.parametrize(
    ("_case", "count", "numbered"), [("within", 13, False), ("one too many", 14, True), ("one", 1, False)]
)
def test_fit_quick_replies_on_messenger(_case: str, count: int, numbered: bool) -> None:
    reply = QuickReplies("Chọn", quick(count))

    fitted = fit(reply, MESSENGER)

    if numbered:
        assert isinstance(fitted, NumberedOptions)
        assert [b.payload for b in fitted.options] == [f"q:{i}" for i in range(1, count + 1)]
    else:
        assert fitted is reply


@pytest.mark.parametrize("count", [1, 5])
def test_quick_replies_become_buttons_on_zalo(count: int) -> None:
    fitted = fit(QuickReplies("Chọn", quick(count)), ZALO)

    assert fitted == Buttons(
        "Chọn", tuple(Button.postback(f"Chọn {i}", f"q:{i}") for i in range(1, count + 1))
    )


def test_too_many_quick_replies_are_numbered_on_zalo() -> None:
    fitted = fit(QuickReplies("Chọn", quick(6)), ZALO)

    assert isinstance(fitted, NumberedOptions)
    assert len(fitted.options) == 6


@pytest.mark.parametrize(
    ("_case", "limits", "count", "kept"),
    [("messenger", MESSENGER, 5, 3), ("messenger within", MESSENGER, 3, 3), ("zalo", ZALO, 7, 5)],
)
def test_card_buttons_are_trimmed(_case: str, limits: Any, count: int, kept: int) -> None:
    card = Card("Voucher", "10%", "https://example.vn/v.png", buttons(count))

    fitted = fit(card, limits)

    assert fitted == Card("Voucher", "10%", "https://example.vn/v.png", buttons(count)[:kept])


@pytest.mark.parametrize(
    ("_case", "reply"),
    [
        ("text", TextReply("x")),
        ("image", Image(url="https://example.vn/a.png")),
        ("request phone", RequestPhone("số?")),
    ],
)
@pytest.mark.parametrize("limits", [MESSENGER, ZALO], ids=["messenger", "zalo"])
def test_other_replies_fit_as_they_are(_case: str, reply: Reply, limits: Any) -> None:
    assert fit(reply, limits) is reply


def test_numbered_options_text() -> None:
    numbered = NumberedOptions("Bạn muốn làm gì?", buttons(3))

    assert numbered.rendered_text() == "Bạn muốn làm gì?\n1. Nút 1\n2. Nút 2\n3. Nút 3"


def test_fitted_to_json_of_numbered_options() -> None:
    fitted = fit(
        Buttons(
            "Chọn",
            (*buttons(3), Button.link("Web", "https://example.vn")),
        ),
        MESSENGER,
    )

    assert fitted_to_json(fitted) == {
        "type": "numbered",
        "text": "Chọn\n1. Nút 1\n2. Nút 2\n3. Nút 3\n4. Web",
        "options": [
            {"title": "Nút 1", "payload": "opt:1"},
            {"title": "Nút 2", "payload": "opt:2"},
            {"title": "Nút 3", "payload": "opt:3"},
            {"title": "Web", "url": "https://example.vn"},
        ],
    }


def test_fitted_to_json_of_a_reply_that_fits() -> None:
    reply = Buttons("Chọn", buttons(2))

    assert fitted_to_json(fit(reply, MESSENGER)) == reply_to_json(reply)


def test_long_button_titles_are_shortened_to_the_platform_limit() -> None:
    reply = Buttons("Chọn", (Button.postback("Đổi điểm lấy voucher giảm giá", "r:1"),))

    fitted = fit(reply, MESSENGER)

    assert isinstance(fitted, Buttons)
    (button,) = fitted.buttons
    assert len(button.title) <= 20
    assert button.title.endswith("…")
    assert button.payload == "r:1"
