"""Builds the loyalty core on MongoDB: every repository, every service, wired once.

This is the only place that knows which repository implements which interface. The merge of two
customers moves what every ``CustomerOwned`` repository holds; an erasure reaches every personal data
holder; both lists are written here, next to each other, so a new collection is not forgotten in one.
"""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from loyalty.checkin import CheckinService
from loyalty.clock import Clock
from loyalty.core import Loyalty
from loyalty.customers import CustomerService
from loyalty.games import GameService
from loyalty.ledger import LedgerService
from loyalty.orders import OrderService
from loyalty.privacy import PrivacyService
from loyalty.program import Program
from loyalty.referral import ReferralService
from loyalty.rewards import RewardService
from loyalty.tiers import TierService
from loyalty.vouchers import VoucherService
from storage.checkins import MongoCheckinRepository
from storage.clients import Document
from storage.consents import MongoConsentRepository
from storage.customers import MongoCustomerRepository
from storage.games import MongoGameRepository, RedisRateLimiter
from storage.ledger import MongoLedgerRepository
from storage.orders import MongoOrderRepository
from storage.referrals import MongoReferralRepository
from storage.rewards import MongoRewardRepository
from storage.tiers import MongoTierRepository
from storage.vouchers import MongoVoucherRepository


def build_loyalty(
    db: AsyncDatabase[Document],
    program: Program,
    clock: Clock,
    *,
    secret_key: str,
    redis: Redis | None = None,
) -> Loyalty:
    """The services of one process. ``secret_key`` signs QR tokens and keys phone hashes; ``redis``
    rate-limits game plays (without it, as in offline commands, plays are not rate-limited)."""
    secret = secret_key.encode("utf-8")
    customer_repo = MongoCustomerRepository(db)
    ledger_repo = MongoLedgerRepository(db)
    tier_repo = MongoTierRepository(db)
    voucher_repo = MongoVoucherRepository(db)
    reward_repo = MongoRewardRepository(db)
    order_repo = MongoOrderRepository(db)
    referral_repo = MongoReferralRepository(db)
    checkin_repo = MongoCheckinRepository(db)
    consent_repo = MongoConsentRepository(db)
    game_repo = MongoGameRepository(db)

    customers = CustomerService(
        customer_repo,
        program,
        clock,
        ledger_owner=ledger_repo,
        owned=(
            tier_repo,
            voucher_repo,
            reward_repo,
            order_repo,
            referral_repo,
            checkin_repo,
            consent_repo,
            game_repo,
        ),
    )
    ledger = LedgerService(ledger_repo, program, clock)
    vouchers = VoucherService(voucher_repo, program, clock)
    tiers = TierService(
        repo=tier_repo, customers=customers, ledger=ledger, program=program, clock=clock, vouchers=vouchers
    )
    rewards = RewardService(vouchers, ledger, reward_repo, program, clock)
    referral = ReferralService(
        referral_repo, customers, ledger, vouchers, program, clock, phone_secret=secret
    )
    orders = OrderService(order_repo, ledger, tiers, vouchers, customers, program, clock, referral=referral)
    checkin = CheckinService(checkin_repo, ledger, vouchers, program, clock, secret, tiers=tiers)
    privacy = PrivacyService(
        consent_repo,
        [
            customer_repo,
            ledger_repo,
            voucher_repo,
            reward_repo,
            order_repo,
            referral_repo,
            checkin_repo,
            game_repo,
        ],
        clock,
    )
    limiter = RedisRateLimiter(redis) if redis is not None else None
    games = GameService(game_repo, ledger, vouchers, customers, program, clock, limiter=limiter)
    return Loyalty(
        program=program,
        clock=clock,
        customers=customers,
        ledger=ledger,
        tiers=tiers,
        vouchers=vouchers,
        rewards=rewards,
        orders=orders,
        referral=referral,
        checkin=checkin,
        privacy=privacy,
        games=games,
        secret=secret,
    )
