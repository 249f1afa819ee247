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


# ---------------------------------------------------------------- orders (loyalty/orders.py)
class OrderNotFound(NotFound):
    code = "order_not_found"


class OrderNotPending(LoyaltyError):
    """The order is not in a status that allows the operation (completing a cancelled order, say)."""

    code = "order_not_pending"


class UnknownProduct(LoyaltyError):
    """The product is not in the program's catalog, or is no longer on sale."""

    code = "unknown_product"


class InvalidQuantity(LoyaltyError):
    code = "invalid_quantity"


class OrderEmpty(LoyaltyError):
    """An order needs items (priced from the catalog) or, for POS and integrations, an amount."""

    code = "order_empty"


# ---------------------------------------------------------------- referral (loyalty/referral.py)
class ReferralDisabled(LoyaltyError):
    code = "referral_disabled"


class ReferralCodeUnknown(LoyaltyError):
    code = "referral_code_unknown"


class ReferralSelf(LoyaltyError):
    code = "referral_self"


class ReferralLoop(LoyaltyError):
    """The referrer was (directly or a few levels up) invited by this customer."""

    code = "referral_loop"


class ReferralAlreadySet(LoyaltyError):
    """The customer already has a referrer (or, under another account with the same phone, had one)."""

    code = "referral_already_set"


class ReferralTooLate(LoyaltyError):
    """A code must be entered before the customer's first completed order."""

    code = "referral_too_late"


# ---------------------------------------------------------------- QR check-in (loyalty/checkin.py)
class CheckinError(LoyaltyError):
    """Root of the check-in refusals: each one is shown to the customer with its own message."""

    code = "checkin_error"


class CheckinForged(CheckinError):
    """The token's signature does not match (a changed character), or no code has this short code."""

    code = "checkin_forged"


class CheckinMalformed(CheckinForged):
    """The input is not a check-in code at all (not text, too long): refused before any query."""

    code = "checkin_malformed"


class CheckinExpired(CheckinError):
    code = "checkin_expired"


class CheckinExhausted(CheckinError):
    """Every use of the code was taken (by other customers)."""

    code = "checkin_exhausted"


class CheckinAlreadyUsed(CheckinError):
    """This customer already scanned this code (a replay or a double tap)."""

    code = "checkin_already_used"


class CheckinDailyCap(CheckinError):
    """The customer reached the program's rewarded scans for today (Asia/Ho_Chi_Minh)."""

    code = "checkin_daily_cap"


class CheckinDisabled(CheckinError):
    """Staff revoked the code."""

    code = "checkin_disabled"


class CheckinNotFound(NotFound):
    code = "checkin_not_found"


class CheckinInvalid(LoyaltyError):
    """A check-in code cannot be created as asked (no reward, an unknown voucher template, past expiry)."""

    code = "checkin_invalid"


# -------------------------------------------------- vouchers and rewards (loyalty.vouchers, loyalty.rewards)
class VoucherNotFound(NotFound):
    """No voucher has this code (also for input that cannot be a code at all)."""

    code = "voucher_not_found"


class VoucherTemplateNotFound(NotFound):
    """The program has no voucher template with this id."""

    code = "voucher_template_not_found"


class VoucherExpired(LoyaltyError):
    code = "voucher_expired"


class VoucherUsed(LoyaltyError):
    """The voucher was already redeemed (a code redeems once)."""

    code = "voucher_used"


class VoucherNotYours(LoyaltyError):
    """The voucher belongs to another customer."""

    code = "voucher_not_yours"


class VoucherVoid(LoyaltyError):
    """Staff or a rolled-back reward cancelled the voucher."""

    code = "voucher_void"


class MinSpendNotMet(LoyaltyError):
    """The order total is below the voucher's minimum spend."""

    code = "min_spend_not_met"


class RewardNotFound(NotFound):
    code = "reward_not_found"


class RewardUnavailable(LoyaltyError):
    """The reward exists but is switched off in the program."""

    code = "reward_unavailable"


# ---------------------------------------------------------------- phone numbers (loyalty/phone.py)
class PhoneNotMobile(InvalidPhone):
    """A valid number that is not a mobile (a landline, toll-free): Zalo, ZNS and SMS cannot reach it.

    Its own code, so the customer is asked for a mobile number rather than told the number is wrong.
    """

    code = "phone_not_mobile"


# ---------------------------------------------------------------- personal data (loyalty/privacy.py)
class InvalidConsent(LoyaltyError):
    """A consent act with a purpose, channel, text version or source that is not a code."""

    code = "invalid_consent"


class InvalidErasure(LoyaltyError):
    """An erasure request whose ``requested_by`` or ``reason`` is free text instead of a code."""

    code = "invalid_erasure"


# ---------------------------------------------------------------- minigames (loyalty/games.py)
class GameError(LoyaltyError):
    """Root of the minigame refusals: each one is shown to the customer with its own message."""

    code = "game_error"


class GameNotFound(NotFound):
    code = "game_not_found"


class GameInvalid(GameError):
    """Malformed input (a key, a customer id, quiz answers that are not a mapping of ids to indexes) or
    an invalid campaign: refused before any query is built from it."""

    code = "game_invalid"


class GameNotStarted(GameError):
    code = "game_not_started"


class GameEnded(GameError):
    """The campaign is over (or switched off)."""

    code = "game_ended"


class GameNotEligible(GameError):
    """The campaign is for followers, verified phones or a tier this customer does not have."""

    code = "game_not_eligible"


class GameNoTurns(GameError):
    """No free turn left today, no granted turn, and turns cannot be bought with points."""

    code = "game_no_turns"


class GameDailyLimit(GameError):
    code = "game_daily_limit"


class GameLimitReached(GameError):
    """The customer played as many times as the campaign allows (a quiz: the attempts are used)."""

    code = "game_limit_reached"


class GameSoldOut(GameError):
    """Every prize that can be drawn is out of stock (or the budget is spent)."""

    code = "game_sold_out"


class GameRateLimited(GameError):
    """Too many play requests in a short time: try again in a few seconds."""

    code = "game_rate_limited"


class GameWrongKind(GameError):
    """A draw asked of a quiz, or quiz answers sent to a draw game."""

    code = "game_wrong_kind"


class GameSeedHidden(GameError):
    """The campaign's server seed is revealed only after it ended."""

    code = "game_seed_hidden"
