"""Channel-agnostic updates: what a customer did, whichever platform it came from.

Every update is a frozen pydantic model with the fields that identify it (``channel``, ``account_id``:
the OA or Page id, ``user_id``: opaque, ``event_id``: for dedupe, ``timestamp``: UTC) and the platform
payload it came from (``raw``). :data:`Update` is the discriminated union of all kinds, and
:data:`UPDATE_ADAPTER` parses one from JSON (the queue carries updates as JSON).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator


class Channel(StrEnum):
    ZALO = "zalo"
    MESSENGER = "messenger"
    EMULATOR = "emulator"


class UpdateKind(StrEnum):
    """One observer per kind: ``router.follow``, ``router.message``... (also the decorators' names)."""

    FOLLOW = "follow"
    UNFOLLOW = "unfollow"
    MESSAGE = "message"
    POSTBACK = "postback"
    CONTACT = "contact"
    REFERRAL = "referral"
    OPTIN = "optin"


class AttachmentType(StrEnum):
    IMAGE = "image"
    STICKER = "sticker"
    LOCATION = "location"
    FILE = "file"
    AUDIO = "audio"
    VIDEO = "video"
    LINK = "link"


class Attachment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: AttachmentType
    url: str | None = None
    name: str | None = None
    sticker_id: str | None = None
    latitude: float | None = None
    longitude: float | None = None


class BaseUpdate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: Channel
    account_id: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=128)
    event_id: str = Field(min_length=1, max_length=256)
    timestamp: datetime
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        return value.astimezone(UTC)

    @property
    def user_key(self) -> tuple[str, str, str]:
        """``(channel, account_id, user_id)``: who this is, for FSM keys, locks and ordering."""
        return (self.channel.value, self.account_id, self.user_id)


class Follow(BaseUpdate):
    """The user followed the OA, or pressed Get Started on the Page."""

    kind: Literal[UpdateKind.FOLLOW] = UpdateKind.FOLLOW
    ref: str | None = None


class Unfollow(BaseUpdate):
    kind: Literal[UpdateKind.UNFOLLOW] = UpdateKind.UNFOLLOW


class Message(BaseUpdate):
    """Something the user sent: text, attachments, or both."""

    kind: Literal[UpdateKind.MESSAGE] = UpdateKind.MESSAGE
    text: str | None = Field(default=None, max_length=4096)
    attachments: tuple[Attachment, ...] = ()


class Postback(BaseUpdate):
    """A button or quick reply we sent was pressed; ``payload`` is what we wrote into it."""

    kind: Literal[UpdateKind.POSTBACK] = UpdateKind.POSTBACK
    payload: str = Field(max_length=1000)
    title: str | None = None
    ref: str | None = None


class ContactShared(BaseUpdate):
    """The user shared a phone number (Zalo's shared-info event, Messenger's phone quick reply)."""

    kind: Literal[UpdateKind.CONTACT] = UpdateKind.CONTACT
    phone: str = Field(min_length=3, max_length=32)
    name: str | None = None


class Referral(BaseUpdate):
    """The user arrived through a link or QR code carrying ``ref`` (m.me link, QR, deep link)."""

    kind: Literal[UpdateKind.REFERRAL] = UpdateKind.REFERRAL
    ref: str = Field(max_length=1000)
    source: str | None = None


class OptIn(BaseUpdate):
    """The user opted in to messages (a checkbox plugin, a notification request)."""

    kind: Literal[UpdateKind.OPTIN] = UpdateKind.OPTIN
    ref: str | None = None
    topic: str | None = None
    token: str | None = None


Update = Annotated[
    Follow | Unfollow | Message | Postback | ContactShared | Referral | OptIn,
    Field(discriminator="kind"),
]
UPDATE_ADAPTER: TypeAdapter[Update] = TypeAdapter(Update)

UPDATE_CLASSES: dict[UpdateKind, type[BaseUpdate]] = {
    UpdateKind.FOLLOW: Follow,
    UpdateKind.UNFOLLOW: Unfollow,
    UpdateKind.MESSAGE: Message,
    UpdateKind.POSTBACK: Postback,
    UpdateKind.CONTACT: ContactShared,
    UpdateKind.REFERRAL: Referral,
    UpdateKind.OPTIN: OptIn,
}


def kind_of(update: BaseUpdate) -> UpdateKind:
    kind: UpdateKind = update.kind  # type: ignore[attr-defined]
    return kind
