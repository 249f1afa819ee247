"""The server-to-server API under ``/api/integrations/v1``: a POS or a shop system reports orders, and
completes or cancels them, so points are earned or reversed. Callers authenticate with an API key
(``Authorization: Bearer slk_...``, made by ``loyalty apikey create``)."""

from __future__ import annotations

from typing import Final

from loyalty.customers import Customer
from loyalty.errors import CustomerNotFound
from loyalty.orders import Order, OrderItemIn
from miniapp_api import schemas as s
from miniapp_api.errors import ApiError
from miniapp_api.http import Call, Endpoint
from miniapp_api.routes import order_out

PREFIX: Final = "/api/integrations/v1"


def _by(call: Call) -> str:
    assert call.api_key is not None
    return f"integration:{call.api_key.id}"


async def _customer(call: Call, who: s.IntegrationCustomer) -> Customer:
    if (who.phone is None) == (who.customer_id is None):
        raise ApiError(422, "validation_error", "customer: give exactly one of phone or customer_id")
    if who.customer_id is not None:
        return await call.loyalty.customers.get_active(who.customer_id)
    assert who.phone is not None
    found = await call.loyalty.customers.by_phone(who.phone)
    if found is None:
        raise CustomerNotFound("no customer has this phone number (they join through the chat or Mini App)")
    return await call.loyalty.customers.get_active(found.id)


async def _answer(call: Call, order: Order) -> s.IntegrationOrderOut:
    owner = await call.loyalty.customers.get(order.customer_id)
    return s.IntegrationOrderOut(
        order=order_out(order),
        customer_id=owner.id,
        points_balance=await call.loyalty.ledger.balance(owner.id),
    )


async def report_order(call: Call) -> tuple[int, s.IntegrationOrderOut]:
    body: s.IntegrationOrderRequest = call.body
    customer = await _customer(call, body.customer)
    order = await call.loyalty.orders.create(
        customer.id,
        source="integration",
        amount=body.amount,
        items=[OrderItemIn(product_id=i.product_id, qty=i.qty) for i in body.items] if body.items else None,
        external_id=body.external_id,
        note=body.note,
        store=body.store,
        by=_by(call),
    )
    if body.complete and order.status == "pending":
        order = await call.loyalty.complete_order(order.id, by=_by(call))
    return 201, await _answer(call, order)


async def complete_order(call: Call) -> s.IntegrationOrderOut:
    order = await call.loyalty.complete_order(call.path["order_id"], by=_by(call))
    return await _answer(call, order)


async def cancel_order(call: Call) -> s.IntegrationOrderOut:
    body: s.IntegrationCancelRequest = call.body
    order = await call.loyalty.orders.cancel(
        call.path["order_id"], refund=body.refund, by=_by(call), reason=body.reason
    )
    return await _answer(call, order)


_ERRORS: Final = (400, 401, 404, 409, 413, 415, 422, 429)
ENDPOINTS: Final[list[Endpoint]] = [
    Endpoint(
        "POST",
        "/orders",
        report_order,
        "Report an order (the same external_id twice is one order)",
        "integrations",
        auth="apikey",
        body=s.IntegrationOrderRequest,
        response=s.IntegrationOrderOut,
        status=201,
        idempotent=True,
        errors=_ERRORS,
    ),
    Endpoint(
        "POST",
        "/orders/{order_id}/complete",
        complete_order,
        "Complete an order: the customer earns its points (once)",
        "integrations",
        auth="apikey",
        response=s.IntegrationOrderOut,
        errors=_ERRORS,
    ),
    Endpoint(
        "POST",
        "/orders/{order_id}/cancel",
        cancel_order,
        "Cancel a pending order, or refund a completed one (points reversed)",
        "integrations",
        auth="apikey",
        body=s.IntegrationCancelRequest,
        response=s.IntegrationOrderOut,
        errors=_ERRORS,
    ),
]
