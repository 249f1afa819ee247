"""What a handler sends, independent of the platform. Each channel renders these to its own API.

Replies are small frozen dataclasses (handlers build many; no validation cost on the hot path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Button:
    """One button: exactly one of ``payload`` (comes back as a Postback), ``url`` or ``phone``."""

    title: str
    payload: str | None = None
    url: str | None = None
    phone: str | None = None

    def __post_init__(self) -> None:
        if sum(value is not None for value in (self.payload, self.url, self.phone)) != 1:
            raise ValueError(f"button {self.title!r} needs exactly one of payload, url or phone")

    @classmethod
    def postback(cls, title: str, payload: str) -> Button:
        return cls(title, payload=payload)

    @classmethod
    def link(cls, title: str, url: str) -> Button:
        return cls(title, url=url)

    @classmethod
    def call(cls, title: str, phone: str) -> Button:
        return cls(title, phone=phone)


@dataclass(frozen=True, slots=True)
class QuickReply:
    title: str
    payload: str


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Buttons:
    """Text with buttons under it."""

    text: str
    buttons: tuple[Button, ...]


@dataclass(frozen=True, slots=True)
class QuickReplies:
    """Text with one-tap answers that disappear once used."""

    text: str
    options: tuple[QuickReply, ...]


@dataclass(frozen=True, slots=True)
class Image:
    """An image by URL, or as bytes (a QR code we made); ``mime`` for bytes."""

    url: str | None = None
    data: bytes | None = field(default=None, repr=False)
    mime: str = "image/png"
    caption: str | None = None

    def __post_init__(self) -> None:
        if (self.url is None) == (self.data is None):
            raise ValueError("an Image needs exactly one of url or data")


@dataclass(frozen=True, slots=True)
class RequestPhone:
    """Ask for the phone number the platform's own way (Zalo: request-user-info; Messenger: quick reply)."""

    text: str
    title: str | None = None
    subtitle: str | None = None
    image_url: str | None = None


@dataclass(frozen=True, slots=True)
class Card:
    """A card (title, subtitle, image, buttons): vouchers, rewards, games."""

    title: str
    subtitle: str | None = None
    image_url: str | None = None
    buttons: tuple[Button, ...] = ()


Reply = Text | Buttons | QuickReplies | Image | RequestPhone | Card


def as_reply(value: Reply | str) -> Reply:
    """A plain string is a :class:`Text`."""
    return Text(value) if isinstance(value, str) else value


def reply_to_json(reply: Reply) -> dict[str, Any]:
    """A JSON form of a reply (the emulator's outbox, logs, tests)."""
    if isinstance(reply, Text):
        return {"type": "text", "text": reply.text}
    if isinstance(reply, Buttons):
        return {"type": "buttons", "text": reply.text, "buttons": [_button(b) for b in reply.buttons]}
    if isinstance(reply, QuickReplies):
        return {
            "type": "quick_replies",
            "text": reply.text,
            "options": [{"title": o.title, "payload": o.payload} for o in reply.options],
        }
    if isinstance(reply, Image):
        return {
            "type": "image",
            "url": reply.url,
            "caption": reply.caption,
            "has_data": reply.data is not None,
        }
    if isinstance(reply, RequestPhone):
        return {"type": "request_phone", "text": reply.text, "title": reply.title, "subtitle": reply.subtitle}
    return {
        "type": "card",
        "title": reply.title,
        "subtitle": reply.subtitle,
        "image_url": reply.image_url,
        "buttons": [_button(b) for b in reply.buttons],
    }


def _button(button: Button) -> dict[str, Any]:
    return {
        k: v
        for k, v in {
            "title": button.title,
            "payload": button.payload,
            "url": button.url,
            "phone": button.phone,
        }.items()
        if v is not None
    }
