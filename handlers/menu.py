"""The main menu, help and the fallback: "menu", "help", "?" (and the Menu button) show the menu; text that
matches nothing gets a short help with a Menu button (never silence, never an error); stickers, images
and locations get a friendly reply. Included last: everything else is tried first."""

from __future__ import annotations

from typing import Final

from bot import Button, Buttons, Message, Payload, Router, Sender, Text
from bot.i18n import Messages
from bot.types import BaseUpdate
from handlers.common import HELP_PAYLOAD, speaker
from loyalty.program import Program

HELP_WORDS: Final = (
    "trợ giúp",
    "help",
    "menu",
    "hướng dẫn",
    "?",
    "bắt đầu",
    "start",
    "xin chào",
    "chào",
    "hi",
)


def build_router() -> Router:
    router = Router(name="menu")

    async def show_menu(
        update: BaseUpdate, reply: Sender, copy: Messages, brand: str, program: Program
    ) -> None:
        await reply(speaker(copy, brand, program).help())

    router.message.register(show_menu, Text(*HELP_WORDS))
    router.postback.register(show_menu, Payload(HELP_PAYLOAD))

    # an image with a caption gets the attachment reply below, not "I did not understand <the caption>"
    @router.message(lambda update: bool(update.text) and not update.attachments)
    async def fallback_text(
        message: Message, reply: Sender, copy: Messages, brand: str, program: Program
    ) -> None:
        say = speaker(copy, brand, program)
        text = " ".join((message.text or "").split())
        shown = text if len(text) <= 60 else text[:57] + "..."
        await reply(
            Buttons(say("fallback", text=shown), (Button.postback(say("help_button"), HELP_PAYLOAD),))
        )

    @router.message()
    async def fallback_attachment(
        message: Message, reply: Sender, copy: Messages, brand: str, program: Program
    ) -> None:
        say = speaker(copy, brand, program)
        kind = message.attachments[0].type.value if message.attachments else "message"
        await reply(say.menu(say("unsupported_attachment", kind=kind)))

    @router.postback()
    async def unknown_button(
        postback: BaseUpdate, reply: Sender, copy: Messages, brand: str, program: Program
    ) -> None:
        # an old button (a flow that changed since) or a payload from the Page's persistent menu
        await reply(speaker(copy, brand, program).help())

    return router
