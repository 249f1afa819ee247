"""The domain's errors: one root, each with a stable ``code`` that entry points show to clients.

The Mini App API answers ``{"error": {"code": ..., "message": ...}}`` with these codes; chat handlers
pick the customer's message by code. A code never changes once released.
"""

from __future__ import annotations

from typing import ClassVar


class LoyaltyError(Exception):
    """Root of every domain error. ``code`` is stable; ``message`` is for people (English)."""

    code: ClassVar[str] = "loyalty_error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.code.replace("_", " "))

    @property
    def message(self) -> str:
        return str(self.args[0])


class NotFound(LoyaltyError):
    code = "not_found"


class CustomerNotFound(NotFound):
    code = "customer_not_found"


class CustomerInactive(LoyaltyError):
    """The customer was merged into another one or erased: operations go to the survivor."""

    code = "customer_inactive"


class InvalidPhone(LoyaltyError):
    code = "invalid_phone"


class InsufficientPoints(LoyaltyError):
    code = "insufficient_points"


class InvalidAmount(LoyaltyError):
    code = "invalid_amount"


class IdempotencyConflict(LoyaltyError):
    """The idempotency key was already used for a different operation (other customer or amount)."""

    code = "idempotency_conflict"


class SoldOut(LoyaltyError):
    code = "sold_out"


class LimitReached(LoyaltyError):
    code = "limit_reached"
