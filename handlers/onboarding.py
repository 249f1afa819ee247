"""Follow → greeting by name → the program in one message → the phone number → the welcome voucher.

- **Follow** (Zalo ``follow``, Messenger's Get Started ``sl:get_started``, the emulator): greet by the
  profile's name, explain the program, ask for the phone the platform's way (:class:`RequestPhone`) and
  "or type your number". A customer who already has a phone is greeted back with their balance and
  gets no second welcome voucher.
- **The phone**: a shared contact (Zalo's info form, Messenger's phone quick reply) at any time, or a
  typed number in any common Vietnamese format while asked (or any text that is only a phone number).
  A wrong number gets a correction and the question again; after three, the menu. On success
  ``loyalty.verify_phone`` (merging with a customer who had the number: greeted back with the merged
  balance), the welcome voucher as a card, the referral reward, and whatever waited for the phone (a
  check-in kept from a QR, the points the customer asked for).
- **Unfollow** marks the customer as not following (campaigns only message followers).

FSM data: ``tries`` (wrong numbers), ``then`` (the question to answer once the phone is known:
``points``, ``vouchers``, ``rewards``, ``referral``, ``games``), ``checkin`` (a check-in token or short
code kept from a QR), ``welcome_shown`` (the welcome voucher code already shown in this conversation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Final

from bot import (
    ContactShared,
    Context,
    Follow,
    FSMContext,
    Message,
    Payload,
    Postback,
    RequestPhone,
    Router,
    Sender,
    State,
    StateFilter,
    StatesGroup,
    Text,
    Unfollow,
    invert,
)
from bot.i18n import Messages
from bot.replies import Reply
from bot.text import fold
from bot.types import BaseUpdate
from handlers import answers, refs
from handlers.common import GET_STARTED_PAYLOAD, Speaker, customer_of, identity_of, profile_name, speaker
from loyalty.core import Loyalty
from loyalty.customers import Customer, ProfileUpdate
from loyalty.errors import CustomerInactive, InvalidPhone, PhoneNotMobile
from loyalty.pii import mask_phone
from loyalty.program import Program
from loyalty.referral import ReferralAward

MAX_TRIES: Final = 3
PHONE_WORDS: Final = ("số điện thoại", "sđt", "sdt", "phone", "đăng ký", "dang ky", "register")
ESCAPE_WORDS: Final = frozenset(fold(w) for w in ("menu", "help", "trợ giúp", "?", "huỷ", "hủy", "cancel"))
# A text that is nothing but a phone number: digits, spaces, dots, dashes, brackets, a leading +.
_PHONE_LIKE: Final = re.compile(r"^\+?[\d\s.\-()]{9,20}$")
# A welcome voucher issued this recently was issued by this phone verification (else: long ago, on
# another channel, and the customer is greeted back instead of being shown it as new).
_FRESH: Final = timedelta(minutes=30)


class Signup(StatesGroup):
    phone = State()


def looks_like_phone(update: Any) -> bool:
    text = getattr(update, "text", None)
    if not isinstance(text, str):
        return False
    return bool(_PHONE_LIKE.fullmatch(text.strip())) and sum(c.isdigit() for c in text) >= 9


def ask_phone(say: Speaker, text: str) -> RequestPhone:
    return RequestPhone(text, title=say("ask_phone_title"), subtitle=text)


async def start_phone_capture(state: FSMContext, then: str | None = None) -> None:
    data = await state.get_data()
    await state.set_state(Signup.phone)
    await state.update_data(tries=0, then=then or data.get("then"))


async def greet(
    update: BaseUpdate,
    ref: str | None,
    *,
    ctx: Context,
    reply: Sender,
    state: FSMContext,
    copy: Messages,
    brand: str,
    loyalty: Loyalty,
    program: Program,
) -> None:
    name = await profile_name(ctx, update)
    customer = await customer_of(loyalty, update, name=name)
    customer = await loyalty.customers.set_following(identity_of(update), True)
    say = speaker(copy, brand, program, customer)
    arrival = (
        await refs.handle_ref(loyalty, say, customer, ref, channel=update.channel.value) if ref else None
    )
    if customer.phone is not None:
        out: list[Reply | str] = [say("welcome_again", name=customer.name or name, balance=customer.balance)]
        out += arrival.replies if arrival else [say.menu()]
        await reply(*out)
        return
    welcome = say("welcome", name=customer.name or name, vnd_per_point=program.earning.vnd_per_point)
    kept = arrival.replies if arrival else []
    await reply(welcome, *kept, ask_phone(say, say("ask_phone", welcome=program.welcome_voucher is not None)))
    await start_phone_capture(state)
    if arrival and arrival.data:
        await state.update_data(arrival.data)


async def finish_phone(
    update: BaseUpdate,
    raw_phone: str,
    *,
    customer: Customer,
    say: Speaker,
    state: FSMContext,
    loyalty: Loyalty,
    program: Program,
) -> tuple[list[Reply | str], str | None, ReferralAward | None]:
    """Verify the phone and build everything the customer is told, and the welcome voucher code shown; the
    FSM is updated by the caller after sending (see :mod:`handlers.common`). :class:`InvalidPhone` for a
    wrong number."""
    verified = await loyalty.verify_phone(customer.id, raw_phone, source=update.channel.value)
    survivor = verified.customer
    say = Speaker(say.copy, survivor.locale or say.locale, say.brand)
    data = await state.get_data()
    phone = mask_phone(survivor.phone or "")
    tier = program.tier(survivor.tier).name
    if verified.merged_from:
        key = "phone_merged"
    elif verified.already_known:
        key = "phone_already"
    else:
        key = "phone_saved"
    out: list[Reply | str] = [say(key, phone=phone, balance=survivor.balance, tier=tier)]
    voucher = await loyalty.welcome_voucher(survivor.id)
    shown = data.get("welcome_shown")
    if (
        voucher is not None
        and voucher.issued_at >= loyalty.clock.now() - _FRESH
        and data.get("welcome_shown") != voucher.code
    ):
        out += [say("voucher_gift"), say.voucher_card(voucher)]
        shown = voucher.code
    out += await answers.referral_award(loyalty, say, verified.referral)
    pending = data.get("checkin")
    then = data.get("then")
    if isinstance(pending, str):
        scanned, _ = await answers.checkin(loyalty, say, survivor, pending, channel=update.channel.value)
        out += scanned
    elif then in CONTINUATIONS:
        out += await CONTINUATIONS[then](loyalty, say, survivor)
    else:
        out.append(say.menu())
    return out, shown if isinstance(shown, str) else None, verified.referral


CONTINUATIONS: Final = {
    "points": answers.points,
    "vouchers": answers.vouchers,
    "rewards": answers.rewards,
    "referral": answers.referral_info,
    "games": answers.games,
}


async def take_phone(
    update: BaseUpdate,
    raw_phone: str,
    *,
    reply: Sender,
    state: FSMContext,
    copy: Messages,
    brand: str,
    loyalty: Loyalty,
    program: Program,
    name: str | None = None,
) -> None:
    customer = await customer_of(loyalty, update, name=name)
    say = speaker(copy, brand, program, customer)
    try:
        out, shown, award = await finish_phone(
            update, raw_phone, customer=customer, say=say, state=state, loyalty=loyalty, program=program
        )
    except (InvalidPhone, PhoneNotMobile) as error:
        await wrong_phone(raw_phone, error, say=say, reply=reply, state=state)
        return
    except CustomerInactive:
        await reply(say("phone_failed"))
        return
    if name and not customer.name:
        await loyalty.customers.update_profile(customer.id, ProfileUpdate(name=name[:80]))
    await reply(*out)
    await answers.notify_referrer(loyalty, reply, update, award, copy=copy, brand=brand, program=program)
    await state.set_state(None)
    await state.update_data(tries=0, then=None, checkin=None, welcome_shown=shown)


async def wrong_phone(
    raw_phone: str, error: Exception, *, say: Speaker, reply: Sender, state: FSMContext
) -> None:
    data = await state.get_data()
    tries = int(data.get("tries") or 0) + 1
    shown = raw_phone.strip()[:30]
    if tries >= MAX_TRIES:
        await reply(say("phone_give_up"), say.help())
        await state.set_state(None)
        await state.update_data(tries=0, then=None)
        return
    text = say(
        "phone_invalid", text=shown, not_mobile=isinstance(error, PhoneNotMobile), left=MAX_TRIES - tries
    )
    await reply(ask_phone(say, text))
    await state.set_state(Signup.phone)
    await state.update_data(tries=tries)


def is_escape(update: Any) -> bool:
    text = getattr(update, "text", None)
    return bool(text) and fold(text) in ESCAPE_WORDS


def build_router(flow_words: Sequence[str] = ()) -> Router:
    """:param flow_words: the keywords of the other flows ("điểm", "chơi game"...): while the phone is
    asked for, such a text goes on to its flow (which asks for the phone again where it needs it)
    instead of being taken for a wrong number."""
    router = Router(name="onboarding")
    not_a_flow = invert(Text(*flow_words)) if flow_words else (lambda update: True)

    @router.follow()
    async def on_follow(
        *,
        follow: Follow,
        ctx: Context,
        reply: Sender,
        state: FSMContext,
        copy: Messages,
        brand: str,
        loyalty: Loyalty,
        program: Program,
    ) -> None:
        await greet(
            follow, follow.ref, ctx=ctx, reply=reply, state=state, copy=copy, brand=brand,
            loyalty=loyalty, program=program,
        )  # fmt: skip

    @router.postback(Payload(GET_STARTED_PAYLOAD))
    async def on_get_started(
        *,
        postback: Postback,
        ctx: Context,
        reply: Sender,
        state: FSMContext,
        copy: Messages,
        brand: str,
        loyalty: Loyalty,
        program: Program,
    ) -> None:
        # A ref on Get Started also arrives as its own Referral update (webhooks.messenger), handled by
        # the check-in/referral flow right after this one: it is not handled twice here.
        await greet(
            postback, None, ctx=ctx, reply=reply, state=state, copy=copy, brand=brand,
            loyalty=loyalty, program=program,
        )  # fmt: skip

    @router.unfollow()
    async def on_unfollow(unfollow: Unfollow, state: FSMContext, loyalty: Loyalty) -> None:
        await loyalty.customers.set_following(identity_of(unfollow), False)
        await state.set_state(None)  # nothing can be sent to someone who left

    @router.contact()
    async def on_contact(
        *,
        contact: ContactShared,
        reply: Sender,
        state: FSMContext,
        copy: Messages,
        brand: str,
        loyalty: Loyalty,
        program: Program,
    ) -> None:
        await take_phone(
            contact, contact.phone, reply=reply, state=state, copy=copy, brand=brand, loyalty=loyalty,
            program=program, name=contact.name,
        )  # fmt: skip

    @router.message(StateFilter(Signup.phone), is_escape)
    async def leave_phone_capture(
        *, message: Message, reply: Sender, state: FSMContext, copy: Messages, brand: str, program: Program
    ) -> None:
        await reply(speaker(copy, brand, program).help())
        await state.set_state(None)
        await state.update_data(tries=0, then=None)

    async def typed_phone(
        *,
        message: Message,
        reply: Sender,
        state: FSMContext,
        copy: Messages,
        brand: str,
        loyalty: Loyalty,
        program: Program,
    ) -> None:
        await take_phone(
            message, message.text or "", reply=reply, state=state, copy=copy, brand=brand,
            loyalty=loyalty, program=program,
        )  # fmt: skip

    # A typed number is taken whenever the phone was asked for (any text but another flow's keyword,
    # so a wrong one gets its correction), and at any time when it looks like a phone number.
    router.message.register(
        typed_phone, StateFilter(Signup.phone), lambda update: bool(update.text), not_a_flow
    )
    router.message.register(typed_phone, looks_like_phone)

    @router.message(Text(*PHONE_WORDS))
    async def asked_to_register(
        *, message: Message, reply: Sender, state: FSMContext, copy: Messages, brand: str,
        loyalty: Loyalty, program: Program,
    ) -> None:  # fmt: skip
        customer = await customer_of(loyalty, message)
        say = speaker(copy, brand, program, customer)
        await reply(ask_phone(say, say("ask_phone", welcome=program.welcome_voucher is not None)))
        await start_phone_capture(state)

    return router


async def require_phone(
    update: BaseUpdate, then: str, *, customer: Customer, say: Speaker, reply: Sender, state: FSMContext
) -> bool:
    """For flows that need a known customer: ask for the phone (remembering ``then``) when it is
    missing; True when the flow may go on."""
    if customer.phone is not None:
        return True
    await reply(ask_phone(say, say("ask_phone_for", then=then)))
    await start_phone_capture(state, then)
    await state.update_data(then=then)
    return False
