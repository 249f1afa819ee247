"""Referral: "giới thiệu" → the customer's code and share links (the m.me link with ``ref=ref.<code>``,
the Zalo OA link with "send GT <code>"). A new customer arriving through the m.me link (a
:class:`Referral`, see :mod:`handlers.checkin`) or typing "GT <code>" is recorded through
``loyalty.referral``; the core pays both sides when the phone is verified, and the new customer is told.

The referrer is told when the referral pays them (``answers.notify_referrer``, through
``reply.notify``): when they chat with the brand on the same channel (the same OA, Page or emulator
flavor), and only if the platform accepts the message (outside the referrer's messaging window,
Messenger's 24 h or Zalo's consultation window, it refuses, and that is logged, not raised). They also
see the points in their balance and in "giới thiệu" (invited / rewarded counts).
"""

from __future__ import annotations

import re
from typing import Any, Final

from bot import FSMContext, Message, Payload, Router, Sender, Text
from bot.i18n import Messages
from bot.text import fold
from bot.types import BaseUpdate
from handlers import answers, refs
from handlers.common import REFERRAL_PAYLOAD, customer_of, speaker
from handlers.onboarding import Signup, ask_phone, start_phone_capture
from loyalty.core import Loyalty
from loyalty.program import Program

REFERRAL_WORDS: Final = ("giới thiệu", "giới thiệu bạn bè", "mã giới thiệu", "invite", "referral", "refer")
_TYPED: Final = re.compile(r"^(?:ma )?(?:gioi thieu|gt|ref|referral|code|ma gt)\s*[:\-]?\s*([a-z0-9]{6,9})$")


def typed_referral(update: Any) -> dict[str, str] | bool:
    text = getattr(update, "text", None)
    if not text or len(text) > 60:
        return False
    match = _TYPED.fullmatch(fold(text))
    return {"referral_code": match.group(1).upper()} if match else False


typed_referral.provides = ("referral_code",)  # type: ignore[attr-defined]


def build_router() -> Router:
    router = Router(name="referral")

    @router.message(typed_referral)
    async def typed(
        *, message: Message, referral_code: str, reply: Sender, state: FSMContext, copy: Messages,
        brand: str, loyalty: Loyalty, program: Program,
    ) -> None:  # fmt: skip
        customer = await customer_of(loyalty, message)
        say = speaker(copy, brand, program, customer)
        outcome = await refs.apply_referral(loyalty, say, customer, referral_code)
        if outcome.needs_phone and await state.get_state() != Signup.phone.state:
            await reply(*outcome.replies, ask_phone(say, say("ask_phone_for", then="referral")))
            await start_phone_capture(state)
        else:
            await reply(*outcome.replies)
        await answers.notify_referrer(
            loyalty, reply, message, outcome.award, copy=copy, brand=brand, program=program
        )

    async def show(
        *, update: BaseUpdate, reply: Sender, copy: Messages, brand: str, loyalty: Loyalty, program: Program
    ) -> None:
        customer = await customer_of(loyalty, update)
        say = speaker(copy, brand, program, customer)
        await reply(*await answers.referral_info(loyalty, say, customer))

    router.message.register(show, Text(*REFERRAL_WORDS))
    router.postback.register(show, Payload(REFERRAL_PAYLOAD))
    return router
