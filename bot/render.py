"""What each platform can show, and how a reply degrades when it asks for more.

Channels render replies within their platform's limits; when a reply does not fit (more buttons than
the platform shows, quick replies on a platform without them) it degrades to text with numbered
options, and the numbers map back to the payloads (:class:`NumberedOptions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from bot.replies import Button, Buttons, Card, QuickReplies, QuickReply, Reply, reply_to_json


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    name: str
    max_buttons: int
    max_quick_replies: int  # 0: the platform has none
    max_card_buttons: int
    max_button_title: int


# Zalo: the SDK builders cap a message at 5 buttons (exact v3 limits unconfirmed: see
# shared/platforms/zalo.md); Zalo has no quick replies.
ZALO: Final = ChannelLimits(
    "zalo", max_buttons=5, max_quick_replies=0, max_card_buttons=5, max_button_title=100
)
# Messenger: button template 1–3 buttons; quick replies ≤ 13, titles ≤ 20 characters.
MESSENGER: Final = ChannelLimits(
    "messenger", max_buttons=3, max_quick_replies=13, max_card_buttons=3, max_button_title=20
)
LIMITS: Final = {"zalo": ZALO, "messenger": MESSENGER}


@dataclass(frozen=True, slots=True)
class NumberedOptions:
    """Text followed by ``1. …``, ``2. …`` lines; replying with a number chooses that option."""

    text: str
    options: tuple[Button, ...]

    def rendered_text(self) -> str:
        lines = [self.text, *(f"{n}. {b.title}" for n, b in enumerate(self.options, start=1))]
        return "\n".join(lines)


def shorten(title: str, limit: int) -> str:
    """A button title within ``limit`` characters, cut at a word when possible, with an ellipsis."""
    if len(title) <= limit:
        return title
    cut = title[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"


def _short_buttons(buttons: tuple[Button, ...], limit: int) -> tuple[Button, ...]:
    return tuple(
        b if len(b.title) <= limit else Button(shorten(b.title, limit), b.payload, b.url, b.phone)
        for b in buttons
    )


def fit(reply: Reply, limits: ChannelLimits) -> Reply | NumberedOptions:
    """``reply`` as it can be shown under ``limits`` (numbered text keeps full titles)."""
    fitted = _fit_count(reply, limits)
    limit = limits.max_button_title
    titles = [b.title for b in getattr(fitted, "buttons", ())] + [
        o.title for o in getattr(fitted, "options", ())
    ]
    if isinstance(fitted, NumberedOptions) or all(len(title) <= limit for title in titles):
        return fitted  # unchanged replies come back as the same object
    if isinstance(fitted, Buttons):
        return Buttons(fitted.text, _short_buttons(fitted.buttons, limit))
    if isinstance(fitted, Card):
        return Card(fitted.title, fitted.subtitle, fitted.image_url, _short_buttons(fitted.buttons, limit))
    if isinstance(fitted, QuickReplies):
        options = tuple(
            o if len(o.title) <= limit else QuickReply(shorten(o.title, limit), o.payload)
            for o in fitted.options
        )
        return QuickReplies(fitted.text, options)
    return fitted


def _fit_count(reply: Reply, limits: ChannelLimits) -> Reply | NumberedOptions:
    if isinstance(reply, Buttons) and len(reply.buttons) > limits.max_buttons:
        return NumberedOptions(reply.text, reply.buttons)
    if isinstance(reply, QuickReplies) and len(reply.options) > limits.max_quick_replies:
        if limits.max_quick_replies == 0 and len(reply.options) <= limits.max_buttons:
            return Buttons(reply.text, tuple(Button.postback(o.title, o.payload) for o in reply.options))
        return NumberedOptions(reply.text, tuple(Button.postback(o.title, o.payload) for o in reply.options))
    if isinstance(reply, Card) and len(reply.buttons) > limits.max_card_buttons:
        return Card(reply.title, reply.subtitle, reply.image_url, reply.buttons[: limits.max_card_buttons])
    return reply


def fitted_to_json(reply: Reply | NumberedOptions) -> dict[str, Any]:
    if isinstance(reply, NumberedOptions):
        return {
            "type": "numbered",
            "text": reply.rendered_text(),
            "options": [reply_to_json(Buttons("", (b,)))["buttons"][0] for b in reply.options],
        }
    return reply_to_json(reply)
