"""Orders: what a customer bought, and the points it earns once it is completed.

An order comes from the Mini App (items priced here, from the program's catalog: a client never sets a
price), from the counter's POS or from an integration (which report a total amount). Statuses::

    pending ──complete──► completed ──cancel(refund=True)──► refunded
       └──────cancel────► cancelled

**Every transition is one conditional update** on the order (``status`` in the filter, checked through
``modified_count``), so of any number of concurrent ``complete`` calls exactly one flips the status.

**Side effects are re-runnable.** Completing an order earns points (ledger key ``order:<id>``), records
the customer's last order, re-evaluates the tier and, when the program says so, triggers the referral
reward. The points are fixed at the flip (written with it, from the tier the customer had then); the
effects run after it and are marked done on the order at the end. A process that dies in between
leaves a completed order without ``effects_done``: the next ``complete`` of that order (a retry, the
staff pressing the button again) runs them again, and every one of them is idempotent (the ledger key,
"last order" as a set, the tier's once-per-period voucher, the referral's keys). Concurrent callers
that lose the flip run them too, for the same reason: it is cheaper than a lease and just as correct.

**Refund after a half-finished complete.** ``cancel(refund=True)`` flips completed → refunded, then
reverses ``order:<id>``. If the earn had not happened yet, the reversal finds nothing; the completing
call re-reads the order after its earn and reverses it itself when it sees ``refunded``. Each of the
two orders of events therefore ends with the points reversed.

**Vouchers.** A voucher code given at creation is quoted against the subtotal, the order is written
(pending, with the discount), then the voucher is redeemed for this order id. If the redemption is
refused (someone else used it a moment earlier), the pending order is deleted and the voucher's error
raised, so the caller can retry without it. A crash between the write and the redemption leaves a
pending order with ``voucher_redeemed`` unset: ``complete`` redeems it first (a redemption repeated by
the same order returns the first one, so this is safe either way). Cancelling a pending order releases
the voucher. A refund
of a *completed* order does not: the discount was given on a purchase that happened, the voucher may
have expired since, and giving it back would let "buy, refund, buy again" use one voucher twice; staff
who want to make a customer whole issue a new voucher.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from loyalty.clock import Clock
from loyalty.errors import (
    CustomerInactive,
    IdempotencyConflict,
    InvalidAmount,
    InvalidQuantity,
    LoyaltyError,
    OrderEmpty,
    OrderNotFound,
    OrderNotPending,
    UnknownProduct,
)
from loyalty.ids import new_id
from loyalty.program import Program

log = logging.getLogger("loyalty.orders")

OrderSource = Literal["miniapp", "pos", "integration"]
OrderStatus = Literal["pending", "completed", "cancelled", "refunded"]

MAX_QTY: Final = 99
MAX_LINES: Final = 50
MAX_AMOUNT: Final = 10_000_000_000  # VND, the program's ceiling for money
LIST_LIMIT_MAX: Final = 100
_EXTERNAL_ID_MAX: Final = 128


class OrderItemIn(BaseModel):
    """A line as a client sends it: which product, how many. The price is looked up on the server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product_id: str = Field(min_length=1, max_length=64)
    qty: int


class OrderItem(BaseModel):
    """A priced line, as it was at the time of the order (the catalog may change later)."""

    model_config = ConfigDict(frozen=True)

    product_id: str
    name: str
    unit_price: int
    qty: int
    line_total: int


class Order(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    customer_id: str
    source: OrderSource
    external_id: str | None = None
    status: OrderStatus = "pending"
    items: tuple[OrderItem, ...] = ()
    subtotal: int
    discount: int = 0
    total: int
    voucher_code: str | None = None
    voucher_redeemed: bool = False
    note: str | None = None
    store: str | None = None
    created_at: datetime
    created_by: str
    completed_at: datetime | None = None
    completed_by: str | None = None
    points: int | None = None  # fixed when the order is completed
    effects_done: bool = False  # earn, last order, tier, referral ran to the end
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None
    cancel_reason: str | None = None
    refunded_at: datetime | None = None
    reversal_done: bool = False


# ------------------------------------------------------------------------ what the service needs
class OrderRepository(Protocol):
    async def insert(self, order: Order) -> Order:
        """Insert ``order``; when (source, external_id) exists already, return that order instead."""
        ...

    async def get(self, order_id: str) -> Order | None: ...

    async def by_external_id(self, source: str, external_id: str) -> Order | None: ...

    async def transition(
        self, order_id: str, from_status: OrderStatus, to_status: OrderStatus, fields: Mapping[str, Any]
    ) -> bool:
        """Set ``status`` (and ``fields``) only if the order is in ``from_status``; True if it was."""
        ...

    async def set_fields(self, order_id: str, fields: Mapping[str, Any]) -> None: ...

    async def delete_pending(self, order_id: str) -> bool:
        """Delete a pending order whose voucher was not redeemed (a failed creation)."""
        ...

    async def list_for(
        self, customer_id: str, *, limit: int, before: tuple[datetime, str] | None
    ) -> list[Order]:
        """The customer's orders, newest first, strictly older than ``before`` (created_at, id)."""
        ...

    async def reassign_customer(self, from_id: str, into_id: str) -> int: ...


class _CustomerView(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def tier(self) -> str: ...


class OrderCustomers(Protocol):
    """The part of :class:`loyalty.customers.CustomerService` orders use."""

    async def get(self, customer_id: str) -> _CustomerView: ...
    async def record_order(self, customer_id: str, at: datetime) -> None: ...


class OrderLedger(Protocol):
    """The part of :class:`loyalty.ledger.LedgerService` orders use."""

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

    async def reverse(self, original_key: str, *, key: str, reason: str) -> object | None: ...


class OrderTiers(Protocol):
    """:class:`loyalty.tiers.TierService`: an upgrade at once after an earn (what it returns is not used)."""

    async def after_earn(self, customer_id: str) -> object: ...


class _VoucherView(Protocol):
    @property
    def code(self) -> str: ...


class _Quote(Protocol):
    @property
    def voucher(self) -> _VoucherView: ...
    @property
    def discount(self) -> int: ...


class OrderVouchers(Protocol):
    """The part of :class:`loyalty.vouchers.VoucherService` orders use."""

    async def quote(self, code: str, *, customer_id: str, order_total: int) -> _Quote: ...

    async def redeem(
        self, code: str, *, customer_id: str | None, order_total: int, order_id: str | None, by: str
    ) -> object: ...

    async def release(self, code: str, *, order_id: str) -> object: ...


class FirstOrderListener(Protocol):
    """:class:`loyalty.referral.ReferralService`: a referee's first completed order may pay the referral."""

    async def on_first_order(self, customer_id: str) -> object: ...


# ------------------------------------------------------------------------ the service
class OrderService:
    """Create, complete, cancel and refund orders. ``vouchers`` and ``referral`` are optional."""

    def __init__(  # noqa: PLR0917 - the composition root passes the collaborators in this order
        self,
        repo: OrderRepository,
        ledger: OrderLedger,
        tiers: OrderTiers,
        vouchers: OrderVouchers | None,
        customers: OrderCustomers,
        program: Program,
        clock: Clock,
        *,
        referral: FirstOrderListener | None = None,
    ) -> None:
        self._repo = repo
        self._ledger = ledger
        self._tiers = tiers
        self._vouchers = vouchers
        self._customers = customers
        self._program = program
        self._clock = clock
        self._referral = referral

    def set_referral(self, referral: FirstOrderListener) -> None:
        """Wire the referral service after construction (it is built from services built here too)."""
        self._referral = referral

    # ---------------------------------------------------------------- create
    async def create(
        self,
        customer_id: str,
        *,
        source: OrderSource,
        items: Sequence[OrderItemIn] | None = None,
        amount: int | None = None,
        external_id: str | None = None,
        voucher_code: str | None = None,
        note: str | None = None,
        store: str | None = None,
        by: str | None = None,
    ) -> Order:
        """A new pending order (or, for a known ``(source, external_id)``, the existing one).

        Mini App orders must give ``items``; POS and integrations may give a total ``amount`` instead.
        """
        if source not in ("miniapp", "pos", "integration"):
            raise LoyaltyError(f"unknown order source {source!r}")
        customer = await self._customers.get(customer_id)
        if external_id is not None:
            external_id = _clean_external_id(external_id)
            existing = await self._repo.by_external_id(source, external_id)
            if existing is not None:
                return await self._replayed(existing, customer.id)
        priced, subtotal = self._price(source, items, amount)
        if customer.status != "active":
            raise CustomerInactive(f"customer is {customer.status}")
        discount = 0
        if voucher_code is not None:
            if self._vouchers is None:
                raise LoyaltyError("vouchers are not available")
            quote = await self._vouchers.quote(voucher_code, customer_id=customer.id, order_total=subtotal)
            discount = max(0, min(int(quote.discount), subtotal))
            voucher_code = quote.voucher.code  # as stored (typed loosely by people)
        order = Order(
            id=new_id(),
            customer_id=customer.id,
            source=source,
            external_id=external_id,
            items=priced,
            subtotal=subtotal,
            discount=discount,
            total=subtotal - discount,
            voucher_code=voucher_code,
            note=(note or "").strip()[:500] or None,
            store=(store or "").strip()[:64] or None,
            created_at=self._clock.now(),
            created_by=by or source,
        )
        stored = await self._repo.insert(order)
        if stored.id != order.id:  # the same external id, created concurrently: that one stands
            return await self._replayed(stored, customer.id)
        if voucher_code is not None:
            await self._redeem_voucher(order, delete_on_failure=True)
            order = order.model_copy(update={"voucher_redeemed": True})
        log.info("order %s created (%s, %d VND) for %s", order.id, source, order.total, order.customer_id)
        return order

    async def _replayed(self, existing: Order, customer_id: str) -> Order:
        """The order already created with this external id, if it is this customer's (the id of a
        merged customer resolves to the survivor); another customer's is an idempotency conflict."""
        owner = await self._customers.get(existing.customer_id)
        if owner.id != customer_id:
            raise IdempotencyConflict("this external id belongs to another customer's order")
        return existing

    def _price(
        self, source: OrderSource, items: Sequence[OrderItemIn] | None, amount: int | None
    ) -> tuple[tuple[OrderItem, ...], int]:
        if items and amount is not None:
            raise InvalidAmount("give items or an amount, not both")
        if items:
            lines = _price_items(self._program, items)
            return lines, sum(line.line_total for line in lines)
        if amount is None:
            raise OrderEmpty("an order needs items or an amount")
        if source == "miniapp":
            raise InvalidAmount("Mini App orders are priced from the catalog: send items")
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
            raise InvalidAmount("the amount must be a whole number of VND above 0")
        return (), amount

    async def _redeem_voucher(self, order: Order, *, delete_on_failure: bool) -> None:
        """Redeem the order's voucher for it. At creation a refusal deletes the order (the caller may
        retry without the voucher); when ``complete`` finishes a crashed creation it only raises."""
        if self._vouchers is None or order.voucher_code is None:
            raise LoyaltyError("vouchers are not available")
        try:
            await self._vouchers.redeem(
                order.voucher_code,
                customer_id=order.customer_id,
                order_total=order.subtotal,
                order_id=order.id,
                by=order.source,
            )
        except LoyaltyError:
            if delete_on_failure:
                await self._repo.delete_pending(order.id)
            raise
        await self._repo.set_fields(order.id, {"voucher_redeemed": True})

    # ---------------------------------------------------------------- complete
    async def complete(self, order_id: str, *, by: str) -> Order:
        """pending → completed, exactly once; earns the points. Safe to call again (see the module doc)."""
        order = await self._get(order_id)
        if order.status == "pending":
            if order.voucher_code is not None and not order.voucher_redeemed:
                # The process died between writing the order and redeeming its voucher: finish that first.
                await self._redeem_voucher(order, delete_on_failure=False)
            customer = await self._customers.get(order.customer_id)
            points = self._program.points_for(order.total, customer.tier)
            now = self._clock.now()
            fields = {"completed_at": now, "completed_by": by, "points": points}
            if not await self._repo.transition(order.id, "pending", "completed", fields):
                order = await self._get(order_id)
                if order.status != "completed":
                    raise OrderNotPending(f"order is {order.status}")
            else:
                order = order.model_copy(update={"status": "completed", **fields})
                log.info("order %s completed by %s: %d points", order.id, by, points)
        elif order.status != "completed":
            raise OrderNotPending(f"order is {order.status}")
        if not order.effects_done:
            order = await self._completion_effects(order)
        return order

    async def _completion_effects(self, order: Order) -> Order:
        assert order.completed_at is not None and order.points is not None
        customer = await self._customers.get(order.customer_id)
        key = _earn_key(order.id)
        if order.points > 0:
            await self._ledger.earn(
                customer.id, order.points, key=key, reason="order", ref={"order_id": order.id}
            )
        await self._customers.record_order(customer.id, order.completed_at)
        if order.points > 0:
            await self._tiers.after_earn(customer.id)
        if self._referral is not None and self._program.referral.trigger == "first_order":
            await self._referral.on_first_order(customer.id)
        current = await self._get(order.id)
        if current.status == "refunded":
            # A refund flipped the order while we were earning: its reversal may have run before our earn.
            await self._reverse_points(current)
            return await self._get(order.id)
        await self._repo.set_fields(order.id, {"effects_done": True})
        return current.model_copy(update={"effects_done": True})

    # ---------------------------------------------------------------- cancel / refund
    async def cancel(self, order_id: str, *, refund: bool = False, by: str, reason: str) -> Order:
        """A pending order → cancelled (its voucher released); with ``refund``, a completed order →
        refunded (its points reversed, its voucher kept used). Idempotent: cancelling a cancelled
        order, or refunding a refunded one, finishes what a crash may have left and returns it."""
        order = await self._get(order_id)
        now = self._clock.now()
        reason = (reason or "").strip()[:200] or "cancelled"
        if order.status == "pending":
            fields = {"cancelled_at": now, "cancelled_by": by, "cancel_reason": reason}
            if await self._repo.transition(order.id, "pending", "cancelled", fields):
                log.info("order %s cancelled by %s: %s", order.id, by, reason)
            order = await self._get(order_id)
        if order.status == "completed":
            if not refund:
                raise OrderNotPending("the order is completed: refund it instead")
            fields = {"refunded_at": now, "cancelled_by": by, "cancel_reason": reason}
            if await self._repo.transition(order.id, "completed", "refunded", fields):
                log.info("order %s refunded by %s: %s", order.id, by, reason)
            order = await self._get(order_id)
        if order.status == "cancelled":
            if order.voucher_code is not None and self._vouchers is not None:
                await self._vouchers.release(order.voucher_code, order_id=order.id)
            return order
        if order.status == "refunded":
            if not order.reversal_done:
                await self._reverse_points(order)
                order = await self._get(order_id)
            return order
        raise OrderNotPending(f"order is {order.status}")  # pragma: no cover - completed is handled above

    async def _reverse_points(self, order: Order) -> None:
        await self._ledger.reverse(
            _earn_key(order.id), key=f"{_earn_key(order.id)}:reverse", reason="order_refunded"
        )
        await self._repo.set_fields(order.id, {"reversal_done": True})

    # ---------------------------------------------------------------- look-ups
    async def get(self, order_id: str) -> Order:
        return await self._get(order_id)

    async def by_external_id(self, source: OrderSource, external_id: str) -> Order | None:
        return await self._repo.by_external_id(source, _clean_external_id(external_id))

    async def list_for(self, customer_id: str, *, limit: int = 20, before: str | None = None) -> list[Order]:
        """The customer's orders, newest first. ``before`` is the id of the last order of the previous
        page (a cursor that stays right while new orders arrive)."""
        limit = max(1, min(int(limit), LIST_LIMIT_MAX))
        customer = await self._customers.get(customer_id)
        cursor: tuple[datetime, str] | None = None
        if before is not None:
            anchor = await self._repo.get(before) if isinstance(before, str) else None
            if anchor is None or anchor.customer_id != customer.id:
                raise OrderNotFound("unknown page cursor")
            cursor = (anchor.created_at, anchor.id)
        return await self._repo.list_for(customer.id, limit=limit, before=cursor)

    async def reassign_customer(self, from_id: str, into_id: str) -> int:
        return await self._repo.reassign_customer(from_id, into_id)

    async def _get(self, order_id: str) -> Order:
        if not isinstance(order_id, str) or not order_id:
            raise OrderNotFound("no such order")
        order = await self._repo.get(order_id)
        if order is None:
            raise OrderNotFound("no such order")
        return order


def _earn_key(order_id: str) -> str:
    return f"order:{order_id}"


def _clean_external_id(external_id: str) -> str:
    if not isinstance(external_id, str) or not external_id.strip():
        raise LoyaltyError("external_id must be a non-empty string")
    cleaned = external_id.strip()
    if len(cleaned) > _EXTERNAL_ID_MAX:
        raise LoyaltyError(f"external_id is longer than {_EXTERNAL_ID_MAX} characters")
    return cleaned


def _price_items(program: Program, items: Sequence[OrderItemIn]) -> tuple[OrderItem, ...]:
    """Price lines from the catalog; one line per product (repeated products are added up)."""
    quantities: dict[str, int] = {}
    for item in items:
        qty = item.qty
        if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= MAX_QTY:
            raise InvalidQuantity(f"quantity must be 1 to {MAX_QTY}")
        quantities[item.product_id] = quantities.get(item.product_id, 0) + qty
    if len(quantities) > MAX_LINES:
        raise InvalidQuantity(f"at most {MAX_LINES} different products per order")
    lines: list[OrderItem] = []
    for product_id, qty in quantities.items():
        if qty > MAX_QTY:
            raise InvalidQuantity(f"quantity must be 1 to {MAX_QTY}")
        product = program.product(product_id)
        if product is None or not product.active:
            raise UnknownProduct(f"no product {product_id!r} on sale")
        lines.append(
            OrderItem(
                product_id=product.id,
                name=product.name,
                unit_price=product.price,
                qty=qty,
                line_total=product.price * qty,
            )
        )
    return tuple(lines)
