"""The answers of the flows, as replies built from the loyalty core: points, vouchers, rewards, check-in,
referral, the list of games. Routers send them; onboarding sends them too, when a question waited for the
phone number."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from datetime import timedelta
from typing import Any

from bot import Button, Buttons, Sender
from bot.channels.base import Recipient
from bot.i18n import Messages
from bot.replies import Card, Reply
from bot.types import BaseUpdate
from handlers.common import GAME_PAYLOAD, MAX_CARDS, REDEEM_PAYLOAD, REWARD_PAYLOAD, Speaker, speaker
from loyalty.clock import LOCAL_TZ
from loyalty.core import Loyalty
from loyalty.customers import Customer
from loyalty.errors import CheckinError, LoyaltyError
from loyalty.games import PlayerStatus
from loyalty.program import GameCampaign, Program
from loyalty.referral import ReferralAward

log = logging.getLogger("loyalty.handlers")


async def points(loyalty: Loyalty, say: Speaker, customer: Customer) -> list[Reply | str]:
    """Balance, tier, points to the next tier, points expiring in 30 days, the last three movements."""
    wallet = await loyalty.ledger.wallet(customer.id)
    status = await loyalty.tiers.status(customer.id)
    expiring = wallet.expiring_before(loyalty.clock.now() + timedelta(days=30))
    movements: list[dict[str, Any]] = [
        {
            "day": entry.created_at.astimezone(LOCAL_TZ).strftime("%d/%m"),
            "points": entry.points,
            "reason": entry.reason,
        }
        for entry in await loyalty.ledger.history(customer.id, limit=3)
    ]
    text = say(
        "points",
        balance=wallet.balance,
        tier=status.tier.name,
        next_tier=status.next_tier.name if status.next_tier else None,
        to_next=status.points_to_next or 0,
        expiring=expiring,
        movements=movements,
    )
    return [say.menu(text)]


async def vouchers(loyalty: Loyalty, say: Speaker, customer: Customer) -> list[Reply | str]:
    now = loyalty.clock.now()
    usable = [v for v in await loyalty.vouchers.list_for(customer.id, status="issued") if v.expires_at > now]
    if not usable:
        return [say.menu(say("vouchers_none"))]
    shown = usable[:MAX_CARDS]
    return [
        say("vouchers_intro", count=len(usable), shown=len(shown)),
        *(say.voucher_card(v) for v in shown),
        say.menu(),
    ]


async def rewards(loyalty: Loyalty, say: Speaker, customer: Customer) -> list[Reply | str]:
    """The rewards the customer can afford, as cards with a button to the confirm step."""
    offers = await loyalty.rewards.catalog(customer.id)
    balance = await loyalty.ledger.balance(customer.id)
    affordable = [offer for offer in offers if offer.affordable][:MAX_CARDS]
    if not affordable:
        cheapest = min(offers, key=lambda offer: offer.reward.points_cost, default=None)
        text = say(
            "rewards_none",
            balance=balance,
            cheapest=cheapest.reward.name if cheapest else None,
            missing=cheapest.points_missing if cheapest else 0,
        )
        return [say.menu(text)]
    cards = [
        Card(
            title=offer.reward.name,
            subtitle=say(
                "reward_subtitle",
                cost=offer.reward.points_cost,
                remaining=offer.remaining,
                description=offer.reward.description,
            ),
            image_url=offer.reward.image,
            buttons=(Button.postback(say("button_redeem"), f"{REWARD_PAYLOAD}:{offer.reward.id}"),),
        )
        for offer in affordable
    ]
    return [say("rewards_intro", balance=balance), *cards]


def confirm_reward(
    say: Speaker, *, reward_id: str, name: str, cost: int, balance: int, event_id: str
) -> Buttons:
    """The confirm step. Its nonce (from the event that showed it) is the redemption's key: pressing
    "confirm" twice, or a retried delivery, redeems once."""
    nonce = hashlib.sha256(event_id.encode()).hexdigest()[:24]
    return Buttons(
        say("reward_confirm", name=name, cost=cost, balance=balance),
        (
            Button.postback(say("button_confirm"), f"{REDEEM_PAYLOAD}:{reward_id}:{nonce}"),
            Button.postback(say("button_cancel"), "sl:cancel"),
        ),
    )


async def checkin(
    loyalty: Loyalty, say: Speaker, customer: Customer, code: str, *, channel: str
) -> tuple[list[Reply | str], str | None]:
    """Scan a token (from a QR ref) or a typed short code; the replies, and the refusal's code if any.
    Through the core's ``scan_checkin``, so live games grant their turns per check-in."""
    try:
        result = await loyalty.scan_checkin(customer.id, code, channel=channel)
    except CheckinError as error:
        return [say.menu(say("checkin_refused", code=error.code))], error.code
    except LoyaltyError as error:  # a voucher or ledger refusal passed through
        log.info("check-in of %s refused: %s", customer.id, error.code)
        return [say.menu(say("checkin_refused", code=error.code))], error.code
    out: list[Reply | str] = [
        say("checkin_done", points=result.points_awarded, balance=result.balance, store=result.code.store)
    ]
    voucher = result.voucher
    if voucher is not None and hasattr(voucher, "display_code"):
        out += [say("checkin_voucher"), say.voucher_card(voucher)]
    out.append(say.menu())
    return out, None


async def referral_info(loyalty: Loyalty, say: Speaker, customer: Customer) -> list[Reply | str]:
    program = loyalty.program
    rules = program.referral
    brand = program.brand
    code = customer.referral_code
    stats = await loyalty.referral.stats(customer.id)
    messenger = f"{brand.messenger_link.rstrip('/')}?ref=ref.{code}" if brand.messenger_link else None
    text = say(
        "referral_info",
        code=code,
        zalo_link=brand.zalo_oa_link,
        messenger_link=messenger,
        referrer_points=rules.referrer_points,
        referee_points=rules.referee_points,
        referee_voucher=rules.referee_voucher,
        invited=stats.invited,
        rewarded=stats.rewarded,
    )
    if messenger:
        return [Buttons(text, (Button.link(say("referral_share"), messenger),)), say.menu()]
    return [say.menu(text)]


async def referral_award(loyalty: Loyalty, say: Speaker, award: ReferralAward | None) -> list[Reply | str]:
    """What the referee is told when the referral paid *now* (``award.new``); nothing for a replay."""
    if award is None or not award.new:
        return []
    referral = award.referral
    out: list[Reply | str] = [
        say("referral_rewarded", points=referral.referee_points, voucher=referral.referee_voucher)
    ]
    if referral.referee_voucher:
        with contextlib.suppress(LoyaltyError):  # voided since: the text says enough
            out.append(say.voucher_card(await loyalty.vouchers.get(referral.referee_voucher)))
    return out


async def notify_referrer(
    loyalty: Loyalty,
    reply: Sender,
    update: BaseUpdate,
    award: ReferralAward | None,
    *,
    copy: Messages,
    brand: str,
    program: Program,
) -> bool:
    """Tell the referrer that the friend's referral just paid them, when they chat with the brand on
    the same channel (the same OA, Page or emulator flavor: the only recipients this update's channel
    can reach). Best effort: outside the referrer's messaging window the platform refuses, and the
    referrer still sees the points in "điểm" and "giới thiệu". ``True`` when a message went out."""
    if award is None or not award.new or award.referral.referrer_capped:
        return False
    referral = award.referral
    try:
        referrer = await loyalty.customers.get(referral.referrer_id)
    except LoyaltyError:
        return False
    channel = update.channel.value
    for identity in referrer.identities:
        if identity.channel != channel:
            continue
        user_id = identity.user_id
        if channel == "emulator":  # the emulator's identities are "<flavor>:<user>"
            account, _, user_id = identity.user_id.partition(":")
            if account != update.account_id:
                continue
        say = speaker(copy, brand, program, referrer)
        text = say(
            "referral_friend_joined", points=referral.referrer_points, voucher=referral.referrer_voucher
        )
        return await reply.notify(Recipient(channel, update.account_id, user_id), text)
    return False


def next_turn(status: PlayerStatus) -> str | None:
    """What the customer's next play uses, as the engine takes turns: a free turn of the day, then a
    granted one, then one bought with points; ``None`` when none is left."""
    if status.free_turns_left > 0:
        return "free"
    if status.bonus_turns > 0:
        return "bonus"
    return "points" if status.points_per_play > 0 else None


def game_facts(campaign: GameCampaign, status: PlayerStatus, customer: Customer) -> dict[str, Any]:
    """The values the game templates show: turns left, the price of a turn, why it cannot be played."""
    return {
        "name": campaign.name,
        "kind": campaign.kind,
        "description": campaign.description,
        "free_left": status.free_turns_left,
        "bonus": status.bonus_turns,
        "cost": status.points_per_play,
        "next_turn": next_turn(status),
        "reason": status.reason,
        "needs_phone": campaign.eligibility.phone_verified and customer.phone is None,
        "questions": len(campaign.questions),
    }


async def games(loyalty: Loyalty, say: Speaker, customer: Customer) -> list[Reply | str]:
    """The live games as cards (the turns left or the price of a turn, or why it cannot be played now),
    each with a button to its play screen."""
    campaigns = await loyalty.games.live_campaigns()
    if not campaigns:
        return [say.menu(say("game_none"))]
    cards: list[Reply | str] = []
    for campaign in campaigns[:MAX_CARDS]:
        status = await loyalty.games.status(customer.id, campaign.id)
        cards.append(
            Card(
                title=campaign.name,
                subtitle=say("game_card", **game_facts(campaign, status, customer)),
                buttons=(Button.postback(say("game_button_open"), f"{GAME_PAYLOAD}:{campaign.id}"),),
            )
        )
    return [say("game_list_intro", count=len(campaigns)), *cards]
