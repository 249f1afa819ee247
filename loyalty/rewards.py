"""Rewards: points bought into a voucher from the program's catalog, with optional limited stock.

A redemption is three effects on three documents: a unit of stock taken (``reward_stock``), the points
spent (the ledger, key ``reward:<key>``) and a voucher issued (key ``reward:<key>``). Without transactions
they are made *together or not at all* by a redemption record (``reward_redemptions``, ``_id`` = the
client's key) that moves once, by one conditional update, from ``pending`` to ``completed`` or
``rolled_back``:

1. The record is inserted ``pending`` (a duplicate key: the key was used before; resume that record).
2. Every effect is idempotent on the key: the stock unit is taken with ``remaining > 0`` and
   ``keys != key`` in the filter (pushing the key, so the key's unit is taken once however often it is
   retried), the spend and the voucher carry their own keys.
3. All three done: ``pending → completed``. One refused (sold out, not enough points, a voucher limit):
   ``pending → rolled_back`` with the refusal's code, then the compensations: the voucher voided, the
   spend reversed (``reward:<key>:reverse``), the stock unit given back (``$inc`` and ``$pull`` in one
   update conditional on the key holding it). Each compensation is itself idempotent.

Whoever loses the transition follows the winner; a retry with the same key after a crash resumes the
record where it stands (completing a pending one, finishing the compensations of a rolled-back one), and
:meth:`RewardService.resume_pending` does the same for records no client came back for. The same key
therefore always answers the same :class:`Redemption` (or the same refusal) and charges at most once.

Stock is taken before the points are touched: when a reward sells out, the customers who came too late
get ``sold_out`` without any ledger write, and their balance never moves.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from loyalty.clock import Clock
from loyalty.errors import (
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    LoyaltyError,
    RewardNotFound,
    RewardUnavailable,
    SoldOut,
)
from loyalty.ledger import LedgerService
from loyalty.program import Program, Reward
from loyalty.vouchers import Take, Voucher, VoucherService, require_text

log = logging.getLogger("loyalty.rewards")

# Client keys are embedded in ledger and voucher keys (``reward:<key>``, ``reward:<key>:reverse``): no
# colon, so one client key can never produce another one's derived keys.
_KEY: Final = re.compile(r"^[A-Za-z0-9_-]{1,100}$")

RedemptionState = Literal["pending", "completed", "rolled_back"]


class RedemptionRecord(BaseModel):
    """The stored state of one redemption, keyed by the client's key."""

    model_config = ConfigDict(frozen=True)

    key: str
    customer_id: str
    reward_id: str
    points_cost: int  # the price when it started: a program change mid-way never changes the charge
    voucher_template: str
    state: RedemptionState = "pending"
    created_at: datetime
    finished_at: datetime | None = None
    voucher_code: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def spend_key(self) -> str:
        return f"reward:{self.key}"

    @property
    def voucher_key(self) -> str:
        return f"reward:{self.key}"


class Redemption(BaseModel):
    """A completed redemption: the voucher the customer got for ``points_spent`` points."""

    model_config = ConfigDict(frozen=True)

    key: str
    customer_id: str
    reward_id: str
    voucher: Voucher
    points_spent: int
    created_at: datetime


class RewardOffer(BaseModel):
    """A catalog line for one customer."""

    model_config = ConfigDict(frozen=True)

    reward: Reward
    remaining: int | None  # units left; None: unlimited
    affordable: bool
    points_missing: int  # how many more points the customer needs (0 when affordable)


class RewardRepository(Protocol):
    """The storage rewards need (``storage.rewards.MongoRewardRepository``)."""

    async def create(self, record: RedemptionRecord) -> RedemptionRecord:
        """Insert ``record``; if its key exists, the stored record instead."""
        ...

    async def get(self, key: str) -> RedemptionRecord | None: ...

    async def finish(
        self,
        key: str,
        state: Literal["completed", "rolled_back"],
        *,
        at: datetime,
        voucher_code: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        """``pending → state``; True if this call made the transition."""
        ...

    async def pending(self, *, older_than: datetime, limit: int) -> list[RedemptionRecord]: ...

    async def take_stock(self, reward_id: str, key: str, *, stock: int) -> Take:
        """Take one unit for ``key`` (seeding the counter with ``stock`` on first use)."""
        ...

    async def give_back_stock(self, reward_id: str, key: str) -> None:
        """Give back the unit ``key`` holds (nothing if it holds none)."""
        ...

    async def remaining(self, reward_ids: list[str]) -> dict[str, int]:
        """Units left of the rewards whose stock was used; rewards never taken from are absent."""
        ...

    async def sync_stock(self, reward_id: str, stock: int) -> bool:
        """Apply a changed configured stock to the counter (``remaining`` moves by the difference)."""
        ...

    async def reassign_customer(self, from_id: str, into_id: str) -> int: ...


def refusal(code: str | None, message: str | None) -> LoyaltyError:
    """The domain error with this stable ``code`` (a recorded refusal, raised again on a replay)."""
    pending: list[type[LoyaltyError]] = [LoyaltyError]
    while pending:
        kind = pending.pop()
        if kind.code == code:
            return kind(message)
        pending.extend(kind.__subclasses__())
    return LoyaltyError(message)


class RewardService:
    def __init__(
        self,
        vouchers: VoucherService,
        ledger: LedgerService,
        repo: RewardRepository,
        program: Program,
        clock: Clock,
    ) -> None:
        self.vouchers = vouchers
        self.ledger = ledger
        self.repo = repo
        self.program = program
        self.clock = clock

    async def catalog(self, customer_id: str) -> list[RewardOffer]:
        """The active rewards with stock left, in program order, and whether the customer can afford each."""
        require_text(customer_id, "a customer id")
        balance = await self.ledger.balance(customer_id)
        active = [reward for reward in self.program.rewards if reward.active]
        left = await self.repo.remaining([reward.id for reward in active if reward.stock is not None])
        offers: list[RewardOffer] = []
        for reward in active:
            remaining = None if reward.stock is None else max(0, left.get(reward.id, reward.stock))
            if remaining == 0:
                continue
            offers.append(
                RewardOffer(
                    reward=reward,
                    remaining=remaining,
                    affordable=balance >= reward.points_cost,
                    points_missing=max(0, reward.points_cost - balance),
                )
            )
        return offers

    async def redeem(self, customer_id: str, reward_id: str, *, key: str) -> Redemption:
        """Spend the reward's points for its voucher, taking a unit of stock; idempotent on ``key``.

        Raises reward_not_found, reward_unavailable, insufficient_points, sold_out, limit_reached (the
        voucher template's issue limits), idempotency_conflict (the key was used for another customer or
        reward) and invalid_amount (a malformed key). A refusal leaves the customer's points, the stock
        and the vouchers as they were; the same key then gets the same refusal.
        """
        if not isinstance(key, str) or not _KEY.match(key):
            raise InvalidAmount("a redemption key is 1 to 100 letters, digits, '-' or '_'")
        require_text(customer_id, "a customer id")
        record = await self.repo.get(key)
        if record is None:
            reward = self._offered(reward_id)
            # Cheap early refusal: no record, no stock taken for a customer who cannot pay anyway.
            if await self.ledger.balance(customer_id) < reward.points_cost:
                raise InsufficientPoints(f"the reward costs {reward.points_cost} points")
            record = await self.repo.create(
                RedemptionRecord(
                    key=key,
                    customer_id=customer_id,
                    reward_id=reward.id,
                    points_cost=reward.points_cost,
                    voucher_template=reward.voucher_template,
                    created_at=self.clock.now(),
                )
            )
        if record.customer_id != customer_id or record.reward_id != reward_id:
            raise IdempotencyConflict(f"redemption key {key!r} was used for another customer or reward")
        return await self._drive(record)

    async def resume_pending(self, *, older_than: timedelta = timedelta(minutes=5), batch: int = 100) -> int:
        """Complete or roll back redemptions left pending by a crash that no client retried (a job)."""
        records = await self.repo.pending(older_than=self.clock.now() - older_than, limit=batch)
        for record in records:
            log.warning("resuming reward redemption %s left pending", record.key)
            try:
                await self._drive(record)
            except LoyaltyError as error:
                log.info("reward redemption %s rolled back: %s", record.key, error.code)
        return len(records)

    async def sync_stock(self) -> int:
        """Apply the program's configured stock to the counters (start-up, after the file changed)."""
        changed = 0
        for reward in self.program.rewards:
            if reward.stock is not None and await self.repo.sync_stock(reward.id, reward.stock):
                changed += 1
        return changed

    # ------------------------------------------------------------------------------------------ protocol
    def _offered(self, reward_id: str) -> Reward:
        reward = self.program.reward(reward_id) if isinstance(reward_id, str) else None
        if reward is None:
            raise RewardNotFound(f"no reward {reward_id!r}")
        if not reward.active:
            raise RewardUnavailable(f"the reward {reward_id!r} is not offered now")
        return reward

    async def _drive(self, record: RedemptionRecord) -> Redemption:
        """Take the record from where it stands to ``completed``, or to ``rolled_back`` and compensated."""
        if record.state == "completed":
            return await self._result(record)
        if record.state == "rolled_back":
            await self._compensate(record)
            raise refusal(record.error_code, record.error_message)
        try:
            voucher = await self._effects(record)
        except LoyaltyError as error:
            won = await self.repo.finish(
                record.key,
                "rolled_back",
                at=self.clock.now(),
                error_code=error.code,
                error_message=error.message,
            )
            decided = await self._reload(record.key)
            if decided.state == "completed":  # a concurrent attempt with the key got there first
                return await self._result(decided)
            await self._compensate(decided)
            if won:
                raise
            raise refusal(decided.error_code, decided.error_message) from error
        await self.repo.finish(record.key, "completed", at=self.clock.now(), voucher_code=voucher.code)
        decided = await self._reload(record.key)
        if decided.state == "rolled_back":  # a concurrent attempt with the key was refused first
            await self._compensate(decided)
            raise refusal(decided.error_code, decided.error_message)
        return await self._result(decided)

    async def _effects(self, record: RedemptionRecord) -> Voucher:
        reward = self.program.reward(record.reward_id)
        if reward is None:
            raise RewardNotFound(f"the reward {record.reward_id!r} left the program")
        if reward.stock is not None:
            taken = await self.repo.take_stock(reward.id, record.key, stock=reward.stock)
            if taken is Take.FULL:
                raise SoldOut(f"the reward {reward.id!r} is sold out")
        await self.ledger.spend(
            record.customer_id,
            record.points_cost,
            key=record.spend_key,
            reason="reward",
            ref={"reward_id": record.reward_id, "redemption": record.key},
        )
        return await self.vouchers.issue(
            record.customer_id, record.voucher_template, key=record.voucher_key, source="reward"
        )

    async def _compensate(self, record: RedemptionRecord) -> None:
        """Undo whatever effects the key had (each undo is idempotent and a no-op if there is none)."""
        voucher = await self.vouchers.by_key(record.voucher_key)
        if voucher is not None and voucher.status == "issued":
            await self.vouchers.void(voucher.code, reason="reward_rolled_back", by="system")
        await self.ledger.reverse(
            record.spend_key, key=f"{record.spend_key}:reverse", reason="reward_rolled_back"
        )
        await self.repo.give_back_stock(record.reward_id, record.key)

    async def _reload(self, key: str) -> RedemptionRecord:
        record = await self.repo.get(key)
        if record is None:  # pragma: no cover - records are never deleted
            raise RuntimeError(f"reward redemption {key} disappeared")
        return record

    async def _result(self, record: RedemptionRecord) -> Redemption:
        voucher = await self.vouchers.by_key(record.voucher_key)
        if voucher is None:  # pragma: no cover - completed means the voucher exists
            raise RuntimeError(f"reward redemption {record.key} completed without its voucher")
        return Redemption(
            key=record.key,
            customer_id=record.customer_id,
            reward_id=record.reward_id,
            voucher=voucher,
            points_spent=record.points_cost,
            created_at=record.created_at,
        )
