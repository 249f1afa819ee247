"""The update models: frozen, strict, UTC, and round-tripping through JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from bot import (
    UPDATE_ADAPTER,
    Attachment,
    AttachmentType,
    BaseUpdate,
    Channel,
    ContactShared,
    Follow,
    Message,
    OptIn,
    Postback,
    Referral,
    Unfollow,
    UpdateKind,
)
from bot.types import UPDATE_CLASSES, kind_of

BASE: dict[str, Any] = {
    "channel": "zalo",
    "account_id": "4318712345",
    "user_id": "84123456789",
    "event_id": "evt-1",
    "timestamp": datetime(2025, 3, 1, 8, 30, tzinfo=UTC),
}

SAMPLES: list[tuple[str, type[BaseUpdate], dict[str, Any]]] = [
    ("follow", Follow, {"ref": "qr-store-1"}),
    ("unfollow", Unfollow, {}),
    (
        "message",
        Message,
        {
            "text": "Cho tôi xem điểm",
            "attachments": (
                Attachment(type=AttachmentType.IMAGE, url="https://example.vn/a.png"),
                Attachment(type=AttachmentType.LOCATION, latitude=10.77, longitude=106.7),
            ),
            "raw": {"event_name": "user_send_text", "nested": {"ids": [1, 2]}},
        },
    ),
    ("postback", Postback, {"payload": "checkin:abc", "title": "Check-in", "ref": "r"}),
    ("contact", ContactShared, {"phone": "+84901234567", "name": "Lan"}),
    ("referral", Referral, {"ref": "store-1", "source": "QR"}),
    ("optin", OptIn, {"ref": "r", "topic": "offers", "token": "tok"}),
]


def build(model: type[BaseUpdate], **fields: Any) -> Any:
    return model(**{**BASE, **fields})


@pytest.mark.parametrize(("_case", "model", "fields"), SAMPLES)
def test_every_kind_round_trips_through_json(
    _case: str, model: type[BaseUpdate], fields: dict[str, Any]
) -> None:
    update = build(model, **fields)

    parsed = UPDATE_ADAPTER.validate_python(update.model_dump(mode="json"))

    assert type(parsed) is model
    assert parsed == update
    assert UPDATE_ADAPTER.validate_json(update.model_dump_json()) == update


def test_the_samples_cover_every_kind() -> None:
    assert {model for _, model, _ in SAMPLES} == set(UPDATE_CLASSES.values())
    assert set(UPDATE_CLASSES) == set(UpdateKind)


@pytest.mark.parametrize(("_case", "model", "fields"), SAMPLES)
def test_each_model_carries_its_kind(_case: str, model: type[BaseUpdate], fields: dict[str, Any]) -> None:
    update = build(model, **fields)

    assert UPDATE_CLASSES[kind_of(update)] is model
    assert update.model_dump(mode="json")["kind"] == _case


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValidationError):
        UPDATE_ADAPTER.validate_python({**BASE, "kind": "typing"})


def test_updates_are_frozen() -> None:
    update = build(Message, text="hi")

    with pytest.raises(ValidationError):
        update.text = "changed"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        update.user_id = "someone else"  # type: ignore[misc]


def test_attachments_are_frozen() -> None:
    attachment = Attachment(type=AttachmentType.STICKER, sticker_id="s1")

    with pytest.raises(ValidationError):
        attachment.sticker_id = "s2"  # type: ignore[misc]


def test_extra_fields_are_forbidden() -> None:
    with pytest.raises(ValidationError, match="extra"):
        build(Message, text="hi", mood="happy")


def test_extra_fields_are_forbidden_when_parsing() -> None:
    with pytest.raises(ValidationError, match="extra"):
        UPDATE_ADAPTER.validate_python({**BASE, "kind": "unfollow", "text": "bye"})


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        build(Follow, timestamp=datetime(2025, 3, 1, 8, 30))


def test_an_aware_timestamp_is_converted_to_utc() -> None:
    hanoi = timezone(timedelta(hours=7))

    update = build(Follow, timestamp=datetime(2025, 3, 1, 15, 30, tzinfo=hanoi))

    assert update.timestamp == datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
    assert update.timestamp.utcoffset() == timedelta(0)
    assert update.timestamp.hour == 8


def test_an_iso_timestamp_with_offset_is_converted_to_utc() -> None:
    update = UPDATE_ADAPTER.validate_python(
        {**BASE, "kind": "follow", "timestamp": "2025-03-01T15:30:00+07:00"}
    )

    assert update.timestamp == datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
    assert update.timestamp.utcoffset() == timedelta(0)


def test_the_channel_is_an_enum() -> None:
    update = build(Follow, channel="messenger")

    assert update.channel is Channel.MESSENGER
    with pytest.raises(ValidationError):
        build(Follow, channel="telegram")


def test_user_key() -> None:
    update = build(Message, text="hi")

    assert update.user_key == ("zalo", "4318712345", "84123456789")


@pytest.mark.parametrize(
    ("_case", "fields"),
    [
        ("empty account", {"account_id": ""}),
        ("empty user", {"user_id": ""}),
        ("empty event id", {"event_id": ""}),
        ("too long text", {"text": "x" * 4097}),
        ("too long user", {"user_id": "u" * 129}),
    ],
)
def test_field_limits(_case: str, fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        build(Message, **fields)


def test_defaults() -> None:
    message = build(Message)

    assert message.text is None
    assert message.attachments == ()
    assert message.raw == {}
    assert "raw" not in repr(message)
