"""What a link or QR code carried into the chat (a Messenger ``ref``, the emulator's scan): a check-in
token (``checkin.<token>``) or a friend's referral code (``ref.<code>``).

A customer without a phone number yet keeps the check-in in FSM data (``checkin``) until the phone is
verified, and is then rewarded: the ref is never lost. A referral code is recorded at once (pending);
the core pays both sides when the phone is verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from bot.replies import Reply
from handlers import answers
from handlers.common import Speaker
from loyalty.checkin import token_from_ref
from loyalty.core import Loyalty
from loyalty.customers import Customer
from loyalty.errors import LoyaltyError
from loyalty.referral import ReferralAward

REFERRAL_REF_PREFIX: Final = "ref."
# A referral that paid this recently was paid by this very call (apply_code returns the referral, not
# whether this call paid it); an older one is a replay of the same link.
_JUST_NOW: Final = timedelta(minutes=2)


@dataclass(slots=True)
class RefOutcome:
    """The replies for a ref, and the FSM data to write once they are sent."""

    replies: list[Reply | str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    needs_phone: str | None = None  # what waits for the phone: "checkin" | "referral"
    award: ReferralAward | None = None  # a referral this ref paid now: the referrer is told (after)


def referral_code_from_ref(ref: str | None) -> str | None:
    if not ref or not ref.startswith(REFERRAL_REF_PREFIX):
        return None
    code = ref.removeprefix(REFERRAL_REF_PREFIX).strip()
    return code if 1 <= len(code) <= 16 and code.isalnum() else None


def is_known_ref(ref: str | None) -> bool:
    return token_from_ref(ref) is not None or referral_code_from_ref(ref) is not None


async def handle_ref(
    loyalty: Loyalty, say: Speaker, customer: Customer, ref: str, *, channel: str
) -> RefOutcome | None:
    """``None`` for a ref we do not know (an ad, a campaign): the caller greets as usual."""
    token = token_from_ref(ref)
    if token is not None:
        if customer.phone is None:
            return RefOutcome([say("checkin_kept")], {"checkin": token}, needs_phone="checkin")
        replies, _ = await answers.checkin(loyalty, say, customer, token, channel=channel)
        return RefOutcome(replies)
    code = referral_code_from_ref(ref)
    if code is None:
        return None
    return await apply_referral(loyalty, say, customer, code)


async def apply_referral(loyalty: Loyalty, say: Speaker, customer: Customer, code: str) -> RefOutcome:
    try:
        referral = await loyalty.referral.apply_code(customer.id, code)
    except LoyaltyError as error:
        return RefOutcome([say.menu(say("referral_refused", code=error.code, entered=code))])
    if referral.status == "rewarded":
        paid_now = (
            referral.rewarded_at is not None and referral.rewarded_at >= loyalty.clock.now() - _JUST_NOW
        )
        if paid_now and referral.referee_id == customer.id:
            out: list[Reply | str] = [
                say("referral_rewarded", points=referral.referee_points, voucher=referral.referee_voucher)
            ]
            if referral.referee_voucher:
                out.append(say.voucher_card(await loyalty.vouchers.get(referral.referee_voucher)))
            out.append(say.menu())
            return RefOutcome(out, award=ReferralAward(referral, new=True))
        return RefOutcome([say.menu(say("referral_noted", code=referral.code))])
    if customer.phone is None:
        return RefOutcome([say("referral_noted", code=referral.code)], needs_phone="referral")
    return RefOutcome([say.menu(say("referral_noted", code=referral.code))])
