"""Greeting, help, and the fallback for what nothing else understood.

Copy comes from ``static/templates/messages/<locale>/`` (the ``copy`` service), so a brand edits words,
not code. ``brand`` is the brand's display name (a service).
"""

from __future__ import annotations

from bot import (
    Button,
    Buttons,
    Message,
    Payload,
    Postback,
    Router,
    Sender,
    Text,
)
from bot.i18n import Messages

HELP_PAYLOAD = "sl:help"
# The payload of the Page's Get Started button (set it in the Page's Messenger profile): Messenger has
# no follow event, so pressing Get Started is how a conversation starts there.
GET_STARTED_PAYLOAD = "sl:get_started"
HELP_WORDS = ("trợ giúp", "help", "menu", "hướng dẫn", "?")
# What a customer can type today; grows as flows land.
COMMANDS = ("trợ giúp: xem hướng dẫn",)


def build_router() -> Router:
    router = Router(name="basics")

    async def welcome(reply: Sender, copy: Messages, brand: str) -> None:
        await reply(
            Buttons(
                copy("welcome", name=None, brand=brand),
                (Button.postback(copy("help_button"), HELP_PAYLOAD),),
            )
        )

    router.follow.register(welcome)
    router.postback.register(welcome, Payload(GET_STARTED_PAYLOAD))

    @router.message(Text(*HELP_WORDS))
    async def help_by_text(message: Message, reply: Sender, copy: Messages, brand: str) -> None:
        await reply(copy("help", brand=brand, commands=COMMANDS))

    @router.postback(Payload(HELP_PAYLOAD))
    async def help_by_button(postback: Postback, reply: Sender, copy: Messages, brand: str) -> None:
        await reply(copy("help", brand=brand, commands=COMMANDS))

    @router.message(lambda update: bool(update.text))
    async def fallback_text(message: Message, reply: Sender, copy: Messages) -> None:
        text = message.text or ""
        shown = text if len(text) <= 60 else text[:57] + "..."
        await reply(
            Buttons(copy("fallback", text=shown), (Button.postback(copy("help_button"), HELP_PAYLOAD),))
        )

    @router.message()
    async def fallback_attachment(message: Message, reply: Sender, copy: Messages) -> None:
        kinds = {attachment.type.value for attachment in message.attachments}
        what = {"image": "hình ảnh", "sticker": "sticker", "location": "vị trí"}.get(
            next(iter(kinds), ""), "tin nhắn"
        )
        await reply(copy("unsupported_attachment", what=what))

    return router
