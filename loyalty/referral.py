"""Referral: a customer invites a friend with their short code; both are rewarded once.

**Applying a code.** A new customer enters (or arrives with) a referrer's code: :meth:`ReferralService.
apply_code` records one referral per referee (a unique index on the referee's active referral).
Refused: an unknown code, one's own code, a loop (the referrer was invited, up to
:data:`LOOP_DEPTH` levels up, by this customer), a second referrer, a customer who already completed an
order (``referral_too_late``: a code is for *new* customers), and a phone that was referred before
under another account. The same code entered twice is not an error: the existing referral is returned.

**Rewarding.** When the program's trigger happens (the referee verifies a phone, or completes a first
order: :meth:`on_phone_verified`, :meth:`on_first_order`), the referral goes ``pending → rewarding``
(one conditional update), then both sides are paid with keys derived from the referral id
(``referral:<id>:referrer`` and ``referral:<id>:referee``, for points and vouchers alike), then it goes
``rewarding → rewarded`` with what was paid. Every step is idempotent, so a crash mid-way is finished
by the next trigger, and concurrent triggers pay once. Referral points are not *qualifying*: tiers
measure purchases, and a bonus that fake accounts can farm must not lift a tier.

**The referrer's cap** (``max_rewarded_per_referrer``) is a counter document per referrer holding the
ids of the referrals that took a slot, taken with one conditional update (``count < max`` and this
referral not yet in it): exactly ``max`` referrals pay the referrer, whatever the concurrency, and a
retried referral never takes a second slot. Past the cap the friend is still rewarded (they were
promised it); the referrer is not (``referrer_capped``).

**Merges and re-use.** Referrals are keyed by the referral id, not by the customer, so moving them on a
merge (:meth:`ReferralRepository.reassign_customer`) never pays one twice: of two referred customers
merged into one, only one referral stays active (a rewarded one, else the survivor's), the other is
deactivated. Each referral also keeps a keyed hash of the referee's phone (HMAC-SHA256 with the app's
secret: a bare hash of a phone number is reversible by trying the billion numbers), unique among active
referrals, so a customer who is erased or merged away and comes back under a new account with the same
phone cannot be referred, and rewarded, again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from loyalty.clock import Clock
from loyalty.errors import (
    CustomerInactive,
    CustomerNotFound,
    LoyaltyError,
    ReferralAlreadySet,
    ReferralCodeUnknown,
    ReferralDisabled,
    ReferralLoop,
    ReferralSelf,
    ReferralTooLate,
)
from loyalty.ids import new_id
from loyalty.program import Program

log = logging.getLogger("loyalty.referral")

ReferralStatus = Literal["pending", "rewarding", "rewarded", "void"]

# How far up the referrer's own chain of referrers a loop is looked for (A→B→C→A is refused).
LOOP_DEPTH: Final = 5
_UNKEYED_HASH_SALT: Final = b"social-loyalty/referral-phone/v1"


class Referral(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    referrer_id: str
    referee_id: str
    code: str
    status: ReferralStatus = "pending"
    # Only active referrals count: one per referee, one per phone. A merge or a refusal deactivates.
    active: bool = True
    created_at: datetime
    phone_hash: str | None = None
    rewarded_at: datetime | None = None
    referrer_points: int = 0
    referee_points: int = 0
    referrer_voucher: str | None = None  # voucher codes issued
    referee_voucher: str | None = None
    referrer_capped: bool = False  # the referrer was not paid: max_rewarded_per_referrer reached, or erased
    void_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ReferralAward:
    """What a referral paid, so the chat can tell both sides. ``new``: paid by this call (tell them);
    False: it had been paid before (a retry, a second trigger; say nothing new)."""

    referral: Referral
    new: bool

    @property
    def referrer_id(self) -> str:
        return self.referral.referrer_id

    @property
    def referee_id(self) -> str:
        return self.referral.referee_id


@dataclass(frozen=True, slots=True)
class ReferralStats:
    invited: int  # customers who entered this customer's code (active referrals)
    rewarded: int  # of those, the ones that paid this customer


class ReferralRepository(Protocol):
    async def insert(self, referral: Referral) -> bool:
        """False when the referee already has an active referral."""
        ...

    async def get(self, referral_id: str) -> Referral | None: ...

    async def active_for_referee(self, referee_id: str) -> Referral | None: ...

    async def phone_hash_known(self, phone_hash: str) -> bool:
        """Whether any referral (active or not) was made for this phone."""
        ...

    async def bind_phone_hash(self, referral_id: str, phone_hash: str) -> bool:
        """Record the referee's phone on a referral that has none; False when another active referral
        holds this phone (the unique index refused it)."""
        ...

    async def transition(
        self,
        referral_id: str,
        from_status: ReferralStatus,
        to_status: ReferralStatus,
        fields: Mapping[str, Any],
    ) -> bool: ...

    async def deactivate(self, referral_id: str, reason: str) -> bool:
        """A pending (or rewarding) referral → void and inactive; True if this call did it."""
        ...

    async def take_slot(self, referrer_id: str, referral_id: str, limit: int) -> bool:
        """One of the referrer's ``limit`` rewarded slots for this referral (idempotent per referral)."""
        ...

    async def count_invited(self, referrer_id: str) -> int: ...

    async def count_rewarded(self, referrer_id: str) -> int: ...

    async def reassign_customer(self, from_id: str, into_id: str) -> int: ...


class _CustomerView(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def last_order_at(self) -> datetime | None: ...
    @property
    def referral_code(self) -> str: ...


class ReferralCustomers(Protocol):
    """The part of :class:`loyalty.customers.CustomerService` referral uses."""

    async def get(self, customer_id: str) -> _CustomerView: ...
    async def by_referral_code(self, code: str) -> _CustomerView | None: ...


class ReferralLedger(Protocol):
    async def earn(
        self,
        customer_id: str,
        points: int,
        *,
        key: str,
        reason: str,
        ref: Mapping[str, str] | None = None,
        qualifying: bool = True,
        expires_at: datetime | None = None,
    ) -> object: ...


class _IssuedVoucher(Protocol):
    @property
    def code(self) -> str: ...


class VoucherIssuer(Protocol):
    """The part of :class:`loyalty.vouchers.VoucherService` referral uses."""

    async def issue(self, customer_id: str, template_id: str, *, key: str, source: str) -> _IssuedVoucher: ...


class ReferralService:
    """Referral codes applied, both sides rewarded once. ``vouchers`` may be None (points only).

    :param phone_secret: the key of the phone hashes (the app's ``SECRET_KEY``). Changing it forgets
        which phones were referred before.
    """

    def __init__(  # noqa: PLR0917 - the composition root passes the collaborators in this order
        self,
        repo: ReferralRepository,
        customers: ReferralCustomers,
        ledger: ReferralLedger,
        vouchers: VoucherIssuer | None,
        program: Program,
        clock: Clock,
        *,
        phone_secret: str | bytes | None = None,
    ) -> None:
        self._repo = repo
        self._customers = customers
        self._ledger = ledger
        self._vouchers = vouchers
        self._program = program
        self._clock = clock
        if isinstance(phone_secret, str):
            phone_secret = phone_secret.encode()
        self._phone_key = phone_secret or _UNKEYED_HASH_SALT

    def phone_hash(self, phone: str) -> str:
        return hmac.new(self._phone_key, phone.encode(), hashlib.sha256).hexdigest()

    # ---------------------------------------------------------------- apply
    async def apply_code(self, customer_id: str, code: str) -> Referral:
        """Record that ``code``'s owner invited this customer. When the trigger already happened (the
        customer has a verified phone and the trigger is ``phone_verified``) both sides are rewarded at
        once and the returned referral is ``rewarded``."""
        referee, referrer, existing = await self._check_apply(customer_id, code)
        if existing is not None:
            return existing
        phone_hash = self.phone_hash(referee.phone) if referee.phone else None
        if phone_hash is not None and await self._repo.phone_hash_known(phone_hash):
            raise ReferralAlreadySet("this phone number was referred before")
        await self._check_loop(referrer.id, referee.id)
        referral = Referral(
            id=new_id(),
            referrer_id=referrer.id,
            referee_id=referee.id,
            code=referrer.referral_code,
            created_at=self._clock.now(),
        )
        if not await self._repo.insert(referral):
            existing = await self._repo.active_for_referee(referee.id)
            if existing is None:  # deactivated in between: the caller may simply try again
                raise ReferralAlreadySet("the customer's referral changed meanwhile")
            return _same_referrer(existing, referrer.id)
        try:
            # Again, now that ours is written: two customers entering each other's codes at the same
            # moment both passed the first check.
            await self._check_loop(referrer.id, referee.id)
        except ReferralLoop:
            await self._repo.deactivate(referral.id, "loop")
            raise
        if phone_hash is not None and not await self._repo.bind_phone_hash(referral.id, phone_hash):
            await self._repo.deactivate(referral.id, "phone_already_referred")
            raise ReferralAlreadySet("this phone number was referred before")
        log.info("referral %s: %s invited %s", referral.id, referrer.id, referee.id)
        if self._program.referral.trigger == "phone_verified" and referee.phone is not None:
            award = await self._reward(referral.id)
            if award is not None:
                return award.referral
        return await self._reload(referral.id)

    async def _check_apply(
        self, customer_id: str, code: str
    ) -> tuple[_CustomerView, _CustomerView, Referral | None]:
        """The referee and referrer of a code being applied, refused with a reason where it cannot be;
        the third item is the referral already recorded for this same code (a replay), else None."""
        if not self._program.referral.enabled:
            raise ReferralDisabled("the program has no referral rewards")
        referee = await self._customers.get(customer_id)
        if referee.status != "active":
            raise CustomerInactive(f"customer is {referee.status}")
        referrer = await self._customers.by_referral_code(code) if isinstance(code, str) else None
        if referrer is None or referrer.status != "active":
            raise ReferralCodeUnknown("no customer has this referral code")
        if referrer.id == referee.id:
            raise ReferralSelf("a customer cannot use their own code")
        existing = await self._repo.active_for_referee(referee.id)
        if existing is not None:
            return referee, referrer, _same_referrer(existing, referrer.id)
        if referee.last_order_at is not None:
            raise ReferralTooLate("a referral code is entered before the first order")
        return referee, referrer, None

    async def _check_loop(self, referrer_id: str, referee_id: str) -> None:
        current = referrer_id
        for _ in range(LOOP_DEPTH):
            above = await self._repo.active_for_referee(current)
            if above is None:
                return
            if above.referrer_id == referee_id:
                raise ReferralLoop("the referrer was invited by this customer")
            current = above.referrer_id

    # ---------------------------------------------------------------- triggers
    async def on_phone_verified(self, customer_id: str) -> ReferralAward | None:
        """Call after a phone was attached (and after the merge it may cause, with the survivor's id)."""
        return await self._on_trigger(customer_id, "phone_verified")

    async def on_first_order(self, customer_id: str) -> ReferralAward | None:
        """Call after an order was completed (``OrderService`` does when the trigger is first_order)."""
        return await self._on_trigger(customer_id, "first_order")

    async def _on_trigger(self, customer_id: str, trigger: str) -> ReferralAward | None:
        try:
            customer = await self._customers.get(customer_id)
        except CustomerNotFound:
            return None
        referral = await self._repo.active_for_referee(customer.id)
        if referral is None:
            return None
        if (
            customer.phone is not None
            and referral.phone_hash is None
            and not await self._repo.bind_phone_hash(referral.id, self.phone_hash(customer.phone))
        ):
            await self._repo.deactivate(referral.id, "phone_already_referred")
            log.info("referral %s refused: the phone was referred before", referral.id)
            return None
        if not self._program.referral.enabled or self._program.referral.trigger != trigger:
            return None
        if trigger == "phone_verified" and customer.phone is None:
            return None
        return await self._reward(referral.id)

    async def _reward(self, referral_id: str) -> ReferralAward | None:
        referral = await self._reload(referral_id)
        if referral.status == "pending":
            await self._repo.transition(referral.id, "pending", "rewarding", {})
            referral = await self._reload(referral_id)
        if referral.status == "rewarded":
            return ReferralAward(referral, new=False)
        if referral.status != "rewarding" or not referral.active:
            return None
        rules = self._program.referral
        referee = await self._customers.get(referral.referee_id)
        referrer = await self._active_or_none(referral.referrer_id)
        base = f"referral:{referral.id}"
        ref = {"referral_id": referral.id}
        capped = referrer is None
        if referrer is not None and rules.max_rewarded_per_referrer is not None:
            capped = not await self._repo.take_slot(referrer.id, referral.id, rules.max_rewarded_per_referrer)
        paid: dict[str, Any] = {"referrer_capped": capped}
        if referrer is not None and not capped:
            paid["referrer_points"] = await self._earn(
                referrer.id, rules.referrer_points, f"{base}:referrer", ref
            )
            paid["referrer_voucher"] = await self._issue(
                referrer.id, rules.referrer_voucher, f"{base}:referrer"
            )
        if referee.status == "active":
            paid["referee_points"] = await self._earn(
                referee.id, rules.referee_points, f"{base}:referee", ref
            )
            paid["referee_voucher"] = await self._issue(referee.id, rules.referee_voucher, f"{base}:referee")
        paid["rewarded_at"] = self._clock.now()
        new = await self._repo.transition(referral.id, "rewarding", "rewarded", paid)
        if new:
            log.info("referral %s rewarded (referrer capped: %s)", referral.id, capped)
        return ReferralAward(await self._reload(referral_id), new=new)

    async def _active_or_none(self, customer_id: str) -> _CustomerView | None:
        try:
            customer = await self._customers.get(customer_id)
        except CustomerNotFound:
            return None
        return customer if customer.status == "active" else None

    async def _earn(self, customer_id: str, points: int, key: str, ref: Mapping[str, str]) -> int:
        if points <= 0:
            return 0
        await self._ledger.earn(customer_id, points, key=key, reason="referral", ref=ref, qualifying=False)
        return points

    async def _issue(self, customer_id: str, template_id: str | None, key: str) -> str | None:
        if template_id is None or self._vouchers is None:
            return None
        try:
            voucher = await self._vouchers.issue(customer_id, template_id, key=key, source="referral")
        except LoyaltyError as error:  # a template limit reached: the points still stand
            log.warning("referral voucher %s not issued to %s: %s", template_id, customer_id, error.code)
            return None
        return voucher.code

    # ---------------------------------------------------------------- look-ups
    async def referral_of(self, customer_id: str) -> Referral | None:
        """The customer's active referral (who invited them), if any."""
        customer = await self._customers.get(customer_id)
        return await self._repo.active_for_referee(customer.id)

    async def stats(self, customer_id: str) -> ReferralStats:
        customer = await self._customers.get(customer_id)
        return ReferralStats(
            invited=await self._repo.count_invited(customer.id),
            rewarded=await self._repo.count_rewarded(customer.id),
        )

    async def reassign_customer(self, from_id: str, into_id: str) -> int:
        return await self._repo.reassign_customer(from_id, into_id)

    async def _reload(self, referral_id: str) -> Referral:
        referral = await self._repo.get(referral_id)
        if referral is None:
            raise LoyaltyError(f"referral {referral_id} vanished")
        return referral


def _same_referrer(existing: Referral, referrer_id: str) -> Referral:
    """Entering the same code again is a replay (a chat retry): the referral stands. Another is refused."""
    if existing.referrer_id == referrer_id:
        return existing
    raise ReferralAlreadySet("the customer already has a referrer")
