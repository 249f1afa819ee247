"""QR check-in from the chat.

- Messenger: the QR opens the chat with ``ref=checkin.<token>``; it arrives as a :class:`Referral`
  (``messaging_referrals``, or beside the Get Started postback). The emulator's "scan" is the same.
- Zalo: a follow carries no ref, so the customer sends the short code printed under the QR
  (``#K7P2MXRT``). Typed codes are a shared secret, not a signature: they are rate-limited per user
  (:data:`MAX_TYPED_CODES` within :data:`TYPED_CODE_WINDOW`, counted in FSM data, which the per-user lock
  serialises).

Expired, used, forged, disabled, exhausted codes and the daily cap each get their own message. A
customer without a phone yet keeps the code in FSM data and is rewarded right after the phone is
verified (:mod:`handlers.onboarding`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from bot import FSMContext, Message, Payload, Referral, Router, Sender, Text
from bot.i18n import Messages
from handlers import answers, refs
from handlers.common import CHECKIN_PAYLOAD, customer_of, speaker
from handlers.onboarding import Signup, ask_phone, start_phone_capture
from loyalty.checkin import normalize_short_code
from loyalty.core import Loyalty
from loyalty.program import Program

MAX_TYPED_CODES: Final = 5
TYPED_CODE_WINDOW: Final = timedelta(minutes=10)
CHECKIN_WORDS: Final = ("check-in", "check in", "checkin", "điểm danh", "quét mã")


def typed_code(update: Any) -> dict[str, str] | bool:
    text = getattr(update, "text", None)
    if not text or not text.strip().startswith("#"):
        return False
    code = normalize_short_code(text)
    return {"code": code} if code is not None else {"code": text.strip()[:40]}


typed_code.provides = ("code",)  # type: ignore[attr-defined]


def build_router() -> Router:
    router = Router(name="checkin")

    @router.referral()
    async def arrived_with_ref(
        *, referral: Referral, reply: Sender, state: FSMContext, copy: Messages, brand: str,
        loyalty: Loyalty, program: Program,
    ) -> None:  # fmt: skip
        customer = await customer_of(loyalty, referral)
        say = speaker(copy, brand, program, customer)
        outcome = await refs.handle_ref(loyalty, say, customer, referral.ref, channel=referral.channel.value)
        if outcome is None:  # a ref we do not know: an ad or a plain link into the chat
            await reply(say.menu())
            return
        asking = await state.get_state() == Signup.phone.state
        if outcome.needs_phone and not asking:
            await reply(*outcome.replies, ask_phone(say, say("ask_phone_for", then=outcome.needs_phone)))
            await start_phone_capture(state)
        else:
            await reply(*outcome.replies)
        await answers.notify_referrer(
            loyalty, reply, referral, outcome.award, copy=copy, brand=brand, program=program
        )
        if outcome.data:
            await state.update_data(outcome.data)

    @router.message(typed_code)
    async def typed(
        *, message: Message, code: str, reply: Sender, state: FSMContext, copy: Messages, brand: str,
        loyalty: Loyalty, program: Program,
    ) -> None:  # fmt: skip
        customer = await customer_of(loyalty, message)
        say = speaker(copy, brand, program, customer)
        now = loyalty.clock.now().timestamp()
        window = TYPED_CODE_WINDOW.total_seconds()
        data = await state.get_data()
        recent = [t for t in data.get("typed_codes") or [] if isinstance(t, int | float) and now - t < window]
        if len(recent) >= MAX_TYPED_CODES:
            minutes = max(1, int((window - (now - min(recent))) // 60) + 1)
            await reply(say.menu(say("checkin_slow_down", minutes=minutes)))
            return
        if customer.phone is None:
            await reply(ask_phone(say, say("ask_phone_for", then="checkin")))
            await start_phone_capture(state)
            await state.update_data(checkin=code, typed_codes=[*recent, now])
            return
        out, _ = await answers.checkin(loyalty, say, customer, code, channel=message.channel.value)
        await reply(*out)
        await state.update_data(typed_codes=[*recent, now])

    async def how_to(
        *, update: Any, reply: Sender, copy: Messages, brand: str, loyalty: Loyalty, program: Program
    ) -> None:
        say = speaker(copy, brand, program)
        await reply(say.menu(say("checkin_help", zalo=update.channel.value in ("zalo", "emulator"))))

    router.message.register(how_to, Text(*CHECKIN_WORDS))
    router.postback.register(how_to, Payload(CHECKIN_PAYLOAD))
    return router
