"""What every flow shares: who the customer is, which language to answer in, the main menu, card copy.

Handlers follow two rules that make a retried event (a worker that died before acknowledging) safe:

- the domain calls they make are idempotent (keys derived from the platform's event id or FSM data);
- each handler sends its answer in **one** ``reply(...)`` call, after its domain work, and writes FSM
  data that records "this was shown" only after that call. The outbox remembers a sent step, so a
  retried event does the work again (which does nothing the second time) and sends nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from bot import Context, QuickReplies, QuickReply
from bot.i18n import Messages
from bot.replies import Card, Reply
from bot.types import BaseUpdate, Channel
from loyalty.clock import LOCAL_TZ
from loyalty.core import Loyalty
from loyalty.customers import Customer, Identity
from loyalty.program import Program
from loyalty.vouchers import Voucher

log = logging.getLogger("loyalty.handlers")

# Payloads of our buttons (Zalo sends them back as texts with a prefix, bot.channels.zalo_payload).
HELP_PAYLOAD: Final = "sl:help"
GET_STARTED_PAYLOAD: Final = "sl:get_started"
POINTS_PAYLOAD: Final = "sl:points"
VOUCHERS_PAYLOAD: Final = "sl:vouchers"
REWARDS_PAYLOAD: Final = "sl:rewards"
REFERRAL_PAYLOAD: Final = "sl:referral"
CHECKIN_PAYLOAD: Final = "sl:checkin"
REWARD_PAYLOAD: Final = "sl:reward"  # sl:reward:<reward id>: show the confirm step
REDEEM_PAYLOAD: Final = "sl:redeem"  # sl:redeem:<reward id>:<nonce>: confirmed
CANCEL_PAYLOAD: Final = "sl:cancel"
GAMES_PAYLOAD: Final = "sl:games"  # the list of live games (also the Messenger persistent menu's entry)
GAME_PAYLOAD: Final = "sl:game"  # sl:game:<campaign id>: the play screen (a quiz: its first question)
PLAY_PAYLOAD: Final = "sl:play"  # sl:play:<campaign id>:<nonce>:<choice>: play (the nonce is the key)
QUIZ_PAYLOAD: Final = "sl:quiz"  # sl:quiz:<campaign id>:<nonce>:<question index>:<choice index>

# The main menu: (copy key of the title, payload). Five entries: Zalo shows five buttons at most and
# Messenger thirteen quick replies, so the menu is never degraded to numbered text.
MAIN_MENU: Final = (
    ("menu_points", POINTS_PAYLOAD),
    ("menu_vouchers", VOUCHERS_PAYLOAD),
    ("menu_rewards", REWARDS_PAYLOAD),
    ("menu_referral", REFERRAL_PAYLOAD),
    ("menu_checkin", CHECKIN_PAYLOAD),
)
MAX_CARDS: Final = 5


def identity_of(update: BaseUpdate) -> Identity:
    """The customer identity of the update's sender. The emulator's users are per flavor (account)."""
    if update.channel is Channel.EMULATOR:
        return Identity(channel="emulator", user_id=f"{update.account_id}:{update.user_id}"[:128])
    return Identity(channel=update.channel.value, user_id=update.user_id)


async def customer_of(loyalty: Loyalty, update: BaseUpdate, *, name: str | None = None) -> Customer:
    customer, _ = await loyalty.customers.get_or_create(identity_of(update), name=name)
    return customer


def locale_of(customer: Customer | None, program: Program) -> str:
    return (customer.locale if customer is not None and customer.locale else None) or program.brand.locale


@dataclass(frozen=True, slots=True)
class Speaker:
    """The copy in one customer's language, with the brand filled in."""

    copy: Messages
    locale: str
    brand: str

    def __call__(self, key: str, **values: Any) -> str:
        return self.copy(key, self.locale, brand=self.brand, **values)

    def menu(self, text: str | None = None) -> QuickReplies:
        """``text`` (the menu prompt by default) with the main menu under it."""
        options = tuple(QuickReply(self(title), payload) for title, payload in MAIN_MENU)
        return QuickReplies(text or self("menu_prompt"), options)

    def help(self) -> QuickReplies:
        commands = [line for line in self("help_commands").splitlines() if line.strip()]
        return self.menu(self("help", commands=commands))

    def voucher_card(self, voucher: Voucher) -> Card:
        return Card(
            title=self("voucher_title", name=voucher.name),
            subtitle=self(
                "voucher_subtitle",
                code=voucher.display_code,
                kind=voucher.kind,
                value=voucher.value,
                max_discount=voucher.max_discount,
                min_spend=voucher.min_spend,
                expires=voucher.expires_at.astimezone(LOCAL_TZ).strftime("%d/%m/%Y"),
            ),
        )


def speaker(copy: Messages, brand: str, program: Program, customer: Customer | None = None) -> Speaker:
    return Speaker(copy, locale_of(customer, program), brand)


async def profile_name(ctx: Context, update: BaseUpdate) -> str | None:
    """The sender's name from the platform's profile, when the channel client can look it up (Zalo's user
    detail, Messenger's user profile); ``None`` otherwise. Never fails the conversation."""
    try:
        client = ctx.dispatcher.channel_client(update.channel.value)
    except LookupError:
        return None
    lookup = getattr(client, "profile", None)
    if lookup is None:
        return None
    try:
        profile = await lookup(update.user_id)
    except Exception as error:  # noqa: BLE001 - a greeting without a name is fine
        log.info("no profile for %s on %s: %s", update.user_id, update.channel.value, type(error).__name__)
        return None
    if not isinstance(profile, dict):
        return None
    for field in ("display_name", "first_name", "name"):
        value = profile.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip()[:80]
    return None


def replies(*items: Reply | str | None) -> tuple[Reply | str, ...]:
    """The non-empty items, to build one ``reply(...)`` call from optional parts."""
    return tuple(item for item in items if item)
