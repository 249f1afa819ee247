"""Tiers: computed from *qualifying* points, the points earned in the qualification window.

The spendable balance never decides a tier: spending a reward does not cost a Gold customer their Gold.
The rules (basis, window, anchor, downgrade rule, review schedule) are the program's ``tiers`` section
and carry a ``version`` that every history record keeps.

- **Upgrades** happen at once, after an earn (:meth:`TierService.after_earn`).
- **Downgrades and yearly resets** happen at a review (:meth:`TierService.review`, run by the scheduler
  or ``loyalty tiers review``), at most once per customer per review period.
- **Tier vouchers** are issued once per tier per qualification period: the voucher's idempotency key is
  ``tier:<customer>:<tier>:<period>``, so re-reaching a tier in the same period gives nothing twice.

A tier change and the work it implies (a history record, vouchers) are written together: the change
pushes a *pending* item onto the customer in the same update that sets the tier, and the item is
removed only after its history record and vouchers exist (each idempotent). A crash in between is
finished by :meth:`TierService.repair` (and by the next change of that customer).

Qualifying points are kept per local month, so windows are whole months: "rolling 12 months" is the
current month and the 11 before it; "calendar year" starts on the first day of the anchor month.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from loyalty.clock import LOCAL_TZ, Clock
from loyalty.customers import CustomerService
from loyalty.errors import LoyaltyError
from loyalty.ledger import LedgerService, Wallet
from loyalty.program import Program, TierLevel

log = logging.getLogger("loyalty.tiers")

ChangeReason = Literal["earned", "review"]
_BATCH: Final = 200


class TierChange(BaseModel):
    """One change of a customer's tier, as the history keeps it."""

    model_config = ConfigDict(frozen=True)

    id: str
    customer_id: str
    from_tier: str
    to_tier: str
    at: datetime
    reason: ChangeReason
    qualifying_points: int
    period: str
    policy_version: int
    vouchers: tuple[tuple[str, str], ...] = ()  # (tier, voucher template) to issue


@dataclass(frozen=True, slots=True)
class TierStatus:
    tier: TierLevel
    qualifying_points: int
    next_tier: TierLevel | None
    points_to_next: int | None
    window_months: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReviewReport:
    period: str
    reviewed: int = 0
    downgraded: int = 0
    changes: list[TierChange] = field(default_factory=list)


class VoucherIssuer(Protocol):
    async def issue(self, customer_id: str, template_id: str, *, key: str, source: str) -> Any: ...


class TierRepository(Protocol):
    async def change_tier(self, change: TierChange, *, expected: str, review_period: str | None) -> bool:
        """Set the tier if it is still ``expected`` (and, for a review, the customer was not reviewed in
        ``review_period``), pushing ``change`` as pending in the same update."""
        ...

    async def pending_changes(self, limit: int) -> list[TierChange]: ...
    async def record(self, change: TierChange) -> None:
        """Insert the history record (idempotent on ``change.id``)."""
        ...

    async def done(self, change: TierChange) -> None:
        """Remove the pending item from the customer."""
        ...

    async def history(self, customer_id: str) -> list[TierChange]: ...
    async def customers_in_tiers(
        self, tiers: list[str], after: str | None, limit: int
    ) -> list[tuple[str, str]]: ...

    async def review_completed(self, period: str) -> bool: ...
    async def complete_review(self, period: str, report: dict[str, int], at: datetime) -> None: ...


class TierService:
    def __init__(
        self,
        *,
        repo: TierRepository,
        customers: CustomerService,
        ledger: LedgerService,
        program: Program,
        clock: Clock,
        vouchers: VoucherIssuer | None = None,
    ) -> None:
        self._repo = repo
        self._customers = customers
        self._ledger = ledger
        self._program = program
        self._clock = clock
        self._vouchers = vouchers

    def set_voucher_issuer(self, vouchers: VoucherIssuer) -> None:
        self._vouchers = vouchers

    def multiplier(self, tier_id: str) -> Decimal:
        return self._program.tier(tier_id).multiplier

    # ---------------------------------------------------------------- windows
    def window_months(self, now: datetime | None = None) -> tuple[str, ...]:
        """The local months (``YYYY-MM``) whose earned points qualify at ``now``."""
        local = (now or self._clock.now()).astimezone(LOCAL_TZ)
        window = self._program.tiers.window
        if window.kind == "rolling_months":
            count = window.months
        else:
            count = (local.month - window.start_month) % 12 + 1
        index = local.year * 12 + local.month - 1
        return tuple(f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - count + 1, index + 1))

    def period(self, now: datetime | None = None) -> str:
        """The qualification period at ``now``: the year a calendar-year window started (``2026``),
        or for a rolling window the review period (the local month, or year when reviews are yearly)."""
        local = (now or self._clock.now()).astimezone(LOCAL_TZ)
        window = self._program.tiers.window
        if window.kind == "calendar_year":
            start_year = local.year if local.month >= window.start_month else local.year - 1
            return (
                f"{start_year:04d}"
                if window.start_month == 1
                else f"{start_year:04d}-{window.start_month:02d}"
            )
        return self.review_period(now)

    def review_period(self, now: datetime | None = None) -> str:
        local = (now or self._clock.now()).astimezone(LOCAL_TZ)
        if self._program.tiers.review == "yearly":
            start = self._program.tiers.window.start_month
            year = local.year if local.month >= start else local.year - 1
            return f"review-{year:04d}"
        return f"review-{local.year:04d}-{local.month:02d}"

    def qualifying_points(self, wallet: Wallet, now: datetime | None = None) -> int:
        months = self.window_months(now)
        return max(0, sum(wallet.qualifying_by_month.get(month, 0) for month in months))

    async def status(self, customer_id: str) -> TierStatus:
        customer = await self._customers.get(customer_id)
        wallet = await self._ledger.wallet(customer.id)
        points = self.qualifying_points(wallet)
        tier = self._program.tier(customer.tier)
        upcoming = self._program.next_tier(tier.id)
        return TierStatus(
            tier=tier,
            qualifying_points=points,
            next_tier=upcoming,
            points_to_next=max(0, upcoming.threshold - points) if upcoming else None,
            window_months=self.window_months(),
        )

    # ---------------------------------------------------------------- changes
    async def after_earn(self, customer_id: str) -> TierChange | None:
        """Upgrade at once when the qualifying points reach a higher tier; returns the change."""
        customer = await self._customers.get(customer_id)
        wallet = await self._ledger.wallet(customer.id)
        now = self._clock.now()
        points = self.qualifying_points(wallet, now)
        current = self._program.tier(customer.tier)
        target = self._program.tier_for(points)
        if self._program.tier_rank(target.id) <= self._program.tier_rank(current.id):
            return None
        levels = self._program.tiers.levels
        reached = levels[self._program.tier_rank(current.id) + 1 : self._program.tier_rank(target.id) + 1]
        change = self._change(customer.id, (current.id, target.id), now, "earned", points)
        change = change.model_copy(
            update={"vouchers": tuple((lvl.id, lvl.voucher) for lvl in reached if lvl.voucher)}
        )
        if not await self._repo.change_tier(change, expected=customer.tier, review_period=None):
            return None  # someone else changed the tier meanwhile: they finish their change
        await self._finish(change)
        log.info(
            "customer %s: tier %s -> %s (%d qualifying points)", customer.id, current.id, target.id, points
        )
        return change

    async def review(self, *, force: bool = False) -> ReviewReport:
        """Downgrade (or reset) every customer whose qualifying points no longer hold their tier,
        per the program's downgrade rule; at most once per customer per review period.

        The jobs call it every cycle: it does the work once per review period (``force`` runs it
        again, which changes only customers not reviewed yet in this period).
        """
        policy = self._program.tiers
        period = self.review_period()
        report = ReviewReport(period=period)
        if policy.downgrade == "never" or (not force and await self._repo.review_completed(period)):
            return report
        now = self._clock.now()
        above = [level.id for level in policy.levels[1:]]
        known = {level.id for level in policy.levels}
        after: str | None = None
        reviewed = downgraded = 0
        while batch := await self._repo.customers_in_tiers(above, after, _BATCH):
            for customer_id, tier_id in batch:
                reviewed += 1
                wallet = await self._ledger.wallet(customer_id)
                points = self.qualifying_points(wallet, now)
                rank = self._program.tier_rank(tier_id) if tier_id in known else 0
                target_rank = self._program.tier_rank(self._program.tier_for(points).id)
                if policy.downgrade == "one_level":
                    target_rank = max(target_rank, rank - 1)
                if target_rank >= rank:
                    continue
                target = policy.levels[target_rank].id
                change = self._change(customer_id, (tier_id, target), now, "review", points)
                if await self._repo.change_tier(change, expected=tier_id, review_period=period):
                    await self._finish(change)
                    downgraded += 1
                    report.changes.append(change)
            after = batch[-1][0]
        await self._repo.complete_review(period, {"reviewed": reviewed, "downgraded": downgraded}, now)
        return ReviewReport(period, reviewed, downgraded, report.changes)

    async def repair(self) -> int:
        """Finish tier changes a crash left pending (history record, vouchers)."""
        pending = await self._repo.pending_changes(_BATCH)
        for change in pending:
            await self._finish(change)
        return len(pending)

    async def history(self, customer_id: str) -> list[TierChange]:
        customer = await self._customers.get(customer_id)
        return await self._repo.history(customer.id)

    def _change(
        self, customer_id: str, tiers: tuple[str, str], now: datetime, reason: ChangeReason, points: int
    ) -> TierChange:
        from_tier, to_tier = tiers
        return TierChange(
            id=f"{customer_id}:{from_tier}>{to_tier}:{now.isoformat()}",
            customer_id=customer_id,
            from_tier=from_tier,
            to_tier=to_tier,
            at=now,
            reason=reason,
            qualifying_points=points,
            period=self.period(now),
            policy_version=self._program.tiers.version,
        )

    async def _finish(self, change: TierChange) -> None:
        await self._repo.record(change)
        for tier_id, template in change.vouchers:
            if self._vouchers is None:
                raise LoyaltyError("tier vouchers are configured but no voucher service is wired")
            try:
                await self._vouchers.issue(
                    change.customer_id,
                    template,
                    key=f"tier:{change.customer_id}:{tier_id}:{change.period}",
                    source="tier",
                )
            except LoyaltyError as error:  # the template's own limits said no: nothing to retry
                log.warning("tier voucher %s for %s not issued: %s", template, change.customer_id, error.code)
        await self._repo.done(change)
