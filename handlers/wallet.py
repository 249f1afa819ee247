"""My vouchers (active ones, as cards) and rewards (the affordable ones; redeem with a confirm step, the
voucher arrives in the chat).

The confirm button carries a nonce made from the event that showed it (``sl:redeem:<reward>:<nonce>``):
it is the redemption's idempotency key, so pressing "confirm" twice, or a retried delivery, redeems once
(the second press shows the same voucher).
"""

from __future__ import annotations

import re
from typing import Final

from bot import FSMContext, Payload, Postback, Router, Sender, Text
from bot.i18n import Messages
from bot.types import BaseUpdate
from handlers import answers
from handlers.common import (
    CANCEL_PAYLOAD,
    REDEEM_PAYLOAD,
    REWARD_PAYLOAD,
    REWARDS_PAYLOAD,
    VOUCHERS_PAYLOAD,
    customer_of,
    speaker,
)
from handlers.onboarding import require_phone
from loyalty.core import Loyalty
from loyalty.errors import LoyaltyError
from loyalty.program import Program

VOUCHER_WORDS: Final = (
    "ưu đãi",
    "voucher",
    "vouchers",
    "mã giảm giá",
    "ưu đãi của tôi",
    "my vouchers",
    "khuyến mãi",
)
REWARD_WORDS: Final = ("đổi quà", "đổi điểm", "quà", "rewards", "reward", "gifts")
_NONCE: Final = re.compile(r"^[0-9a-f]{8,40}$")


def build_router() -> Router:
    router = Router(name="wallet")

    async def show_vouchers(
        *, update: BaseUpdate, reply: Sender, state: FSMContext, copy: Messages, brand: str,
        loyalty: Loyalty, program: Program,
    ) -> None:  # fmt: skip
        customer = await customer_of(loyalty, update)
        say = speaker(copy, brand, program, customer)
        if await require_phone(update, "vouchers", customer=customer, say=say, reply=reply, state=state):
            await reply(*await answers.vouchers(loyalty, say, customer))

    async def show_rewards(
        *, update: BaseUpdate, reply: Sender, state: FSMContext, copy: Messages, brand: str,
        loyalty: Loyalty, program: Program,
    ) -> None:  # fmt: skip
        customer = await customer_of(loyalty, update)
        say = speaker(copy, brand, program, customer)
        if await require_phone(update, "rewards", customer=customer, say=say, reply=reply, state=state):
            await reply(*await answers.rewards(loyalty, say, customer))

    router.message.register(show_vouchers, Text(*VOUCHER_WORDS))
    router.postback.register(show_vouchers, Payload(VOUCHERS_PAYLOAD))
    router.message.register(show_rewards, Text(*REWARD_WORDS))
    router.postback.register(show_rewards, Payload(REWARDS_PAYLOAD))

    @router.postback(Payload(REWARD_PAYLOAD))
    async def confirm(
        *, postback: Postback, args: tuple[str, ...], reply: Sender, copy: Messages, brand: str,
        loyalty: Loyalty, program: Program,
    ) -> None:  # fmt: skip
        customer = await customer_of(loyalty, postback)
        say = speaker(copy, brand, program, customer)
        reward = next((r for r in program.rewards if args and r.id == args[0] and r.active), None)
        if reward is None or customer.phone is None:
            await reply(say.menu(say("reward_refused", code="reward_not_found", balance=customer.balance)))
            return
        balance = await loyalty.ledger.balance(customer.id)
        if balance < reward.points_cost:
            await reply(say.menu(say("reward_refused", code="insufficient_points", balance=balance)))
            return
        await reply(
            answers.confirm_reward(
                say, reward_id=reward.id, name=reward.name, cost=reward.points_cost, balance=balance,
                event_id=postback.event_id,
            )
        )  # fmt: skip

    @router.postback(Payload(REDEEM_PAYLOAD))
    async def redeem(
        *, postback: Postback, args: tuple[str, ...], reply: Sender, copy: Messages, brand: str,
        loyalty: Loyalty, program: Program,
    ) -> None:  # fmt: skip
        customer = await customer_of(loyalty, postback)
        say = speaker(copy, brand, program, customer)
        if len(args) != 2 or not _NONCE.fullmatch(args[1]):
            await reply(say.menu(say("reward_refused", code="reward_not_found", balance=customer.balance)))
            return
        reward_id, nonce = args
        try:
            redemption = await loyalty.rewards.redeem(customer.id, reward_id, key=f"chat-{nonce}")
        except LoyaltyError as error:
            balance = await loyalty.ledger.balance(customer.id)
            await reply(say.menu(say("reward_refused", code=error.code, balance=balance)))
            return
        balance = await loyalty.ledger.balance(customer.id)
        await reply(say("reward_done", balance=balance), say.voucher_card(redemption.voucher), say.menu())

    @router.postback(Payload(CANCEL_PAYLOAD))
    async def cancel(postback: Postback, reply: Sender, copy: Messages, brand: str, program: Program) -> None:
        say = speaker(copy, brand, program)
        await reply(say.menu(say("reward_cancelled")))

    return router
