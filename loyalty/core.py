"""The loyalty core as one object: every service, and the few flows that span several of them.

Entry points (chat handlers, the Mini App API, the staff console, the CLI) receive a :class:`Loyalty`
and call its services; "verify a phone" or "run the jobs" is written once, here, whichever door the
request came through. ``app.loyalty.build_loyalty`` builds it on MongoDB.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from loyalty.checkin import CheckinResult, CheckinService, claim_key
from loyalty.clock import Clock
from loyalty.customers import Customer, CustomerService
from loyalty.errors import LoyaltyError
from loyalty.games import GameService
from loyalty.ledger import LedgerService, ReconcileReport
from loyalty.orders import Order, OrderService
from loyalty.privacy import PrivacyService
from loyalty.program import Program
from loyalty.referral import ReferralAward, ReferralService
from loyalty.rewards import RewardService
from loyalty.tiers import ReviewReport, TierChange, TierService
from loyalty.vouchers import Voucher, VoucherService

log = logging.getLogger("loyalty.core")


@dataclass(frozen=True, slots=True)
class PhoneVerified:
    """What verifying a phone did: the customer (the survivor, after a merge), the customers merged
    into it, the tier change the merged points caused, and the referral rewards it triggered."""

    customer: Customer
    merged_from: tuple[str, ...]
    already_known: bool
    tier_change: TierChange | None
    referral: ReferralAward | None


@dataclass(frozen=True, slots=True)
class Loyalty:
    program: Program
    clock: Clock
    customers: CustomerService
    ledger: LedgerService
    tiers: TierService
    vouchers: VoucherService
    rewards: RewardService
    orders: OrderService
    referral: ReferralService
    checkin: CheckinService
    privacy: PrivacyService
    games: GameService
    secret: bytes

    async def verify_phone(self, customer_id: str, raw_phone: str, *, source: str) -> PhoneVerified:
        """Attach a phone the customer shared or typed (merging with a customer who has it), then do
        what a verified phone unlocks: the tier the merged points reach, the referral rewards."""
        attached = await self.customers.attach_phone(customer_id, raw_phone, source=source)
        survivor = attached.customer
        change = await self.tiers.after_earn(survivor.id) if attached.merged_from else None
        award = None
        if self.program.referral.trigger == "phone_verified":
            award = await self.referral.on_phone_verified(survivor.id)
        return PhoneVerified(
            customer=await self.customers.get(survivor.id),
            merged_from=attached.merged_from,
            already_known=attached.already_known,
            tier_change=change,
            referral=award,
        )

    async def welcome_voucher(self, customer_id: str) -> Voucher | None:
        """The customer's welcome voucher, issued at most once per customer *and* per phone number (a
        customer who erased their data and came back with the same phone gets no second one). Calling
        it again returns the same voucher, so a retried chat step can still show it.

        ``None`` when the program has none, the customer has no phone yet, or another customer with
        this phone had it.
        """
        template = self.program.welcome_voucher
        customer = await self.customers.get(customer_id)
        if template is None or customer.phone is None:
            return None
        phone_key = hmac.new(self.secret, customer.phone.encode(), hashlib.sha256).hexdigest()[:32]
        existing = await self.vouchers.by_key(f"welcome:{phone_key}")
        if existing is not None:
            return existing if existing.customer_id == customer.id else None
        try:
            return await self.vouchers.issue(
                customer.id, template, key=f"welcome:{phone_key}", source="welcome"
            )
        except LoyaltyError as error:  # the template's limits: the customer had theirs
            log.info("no welcome voucher for %s: %s", customer.id, error.code)
            return None

    async def run_jobs(self) -> dict[str, Any]:
        """The periodic work, each step idempotent (safe to run on several processes, or twice):
        finish interrupted merges, erasures, tier changes and redemptions; expire points and vouchers;
        review tiers when a review period started."""
        report: dict[str, Any] = {
            "merges_resumed": await self.customers.resume_merges(),
            "erasures_resumed": await self.privacy.resume_erasures(),
            "ledger": await self.ledger.maintain(),
            "vouchers_expired": await self.vouchers.expire_due(),
            "redemptions_resumed": await self.rewards.resume_pending(),
            "tier_changes_repaired": await self.tiers.repair(),
            "game_plays_resumed": await self.games.resume_pending(),
            "game_seeds_created": await self.games.prepare(),
        }
        review: ReviewReport = await self.tiers.review()
        report["tiers_downgraded"] = review.downgraded
        return report

    async def complete_order(self, order_id: str, *, by: str) -> Order:
        """Complete an order (points, tier, referral: ``OrderService.complete``), then grant the game
        turns live campaigns give per completed order (once per order)."""
        order = await self.orders.complete(order_id, by=by)
        if order.status == "completed":
            await self.games.on_order_completed(order.customer_id, order.id)
        return order

    async def scan_checkin(
        self, customer_id: str, token_or_short_code: str, *, channel: str
    ) -> CheckinResult:
        """A QR check-in (``CheckinService.scan``), then the game turns live campaigns give per check-in."""
        result = await self.checkin.scan(customer_id, token_or_short_code, channel=channel)
        await self.games.on_checkin(customer_id, claim_key(result.code.id, customer_id))
        return result

    async def reconcile(self, *, fix: bool = False) -> ReconcileReport:
        """Finish interrupted merges first (their points are in flight), then prove the ledger."""
        await self.customers.resume_merges()
        return await self.ledger.reconcile(fix=fix)
