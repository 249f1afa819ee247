"""Points lookup: "điểm", "diem", "tích điểm", "points", the menu button → balance, tier, points to the next
tier, points expiring within 30 days, the last three movements. Asks for the phone first when unknown,
then answers (``then="points"``)."""

from __future__ import annotations

from typing import Final

from bot import FSMContext, Payload, Router, Sender, Text
from bot.i18n import Messages
from bot.types import BaseUpdate
from handlers import answers
from handlers.common import POINTS_PAYLOAD, customer_of, speaker
from handlers.onboarding import require_phone
from loyalty.core import Loyalty
from loyalty.program import Program

POINTS_WORDS: Final = (
    "điểm", "tích điểm", "điểm của tôi", "xem điểm", "bao nhiêu điểm", "points", "my points", "balance",
)  # fmt: skip


def build_router() -> Router:
    router = Router(name="points")

    async def show_points(
        *, update: BaseUpdate, reply: Sender, state: FSMContext, copy: Messages, brand: str,
        loyalty: Loyalty, program: Program,
    ) -> None:  # fmt: skip
        customer = await customer_of(loyalty, update)
        say = speaker(copy, brand, program, customer)
        if await require_phone(update, "points", customer=customer, say=say, reply=reply, state=state):
            await reply(*await answers.points(loyalty, say, customer))

    router.message.register(show_points, Text(*POINTS_WORDS))
    router.postback.register(show_points, Payload(POINTS_PAYLOAD))
    return router
