"""Request and response models of the Mini App and integrations APIs (the OpenAPI document is made
from them). Requests are strict: no extra fields, no coercion (``"2"`` is not a quantity, an object is
not a string), bounded lengths; identifiers are plain codes, so an operator like ``{"$gt": ""}`` never
reaches a service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
ZaloToken = Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^[\x21-\x7e]+$")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Query(BaseModel):
    # query strings are text: numbers are parsed (lax), unknown parameters are ignored
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


# ============================================================================ errors
class ErrorDetail(_Response):
    code: str = Field(description="stable machine-readable code, e.g. insufficient_points")
    message: str = Field(description="for people (English)")
    details: Any = None
    request_id: str | None = None


class ErrorBody(_Response):
    error: ErrorDetail


# ============================================================================ auth
class LoginRequest(_Request):
    access_token: ZaloToken = Field(description="the Zalo user access token from zmp-sdk getAccessToken()")


class RefreshRequest(_Request):
    refresh_token: Annotated[str, Field(min_length=1, max_length=2048)]


class Tier(_Response):
    id: str
    name: str
    threshold: int


class Profile(_Response):
    id: str
    name: str | None
    avatar: str | None
    phone: str | None = Field(description="masked: +84912***678")
    phone_verified: bool
    birthday: date | None
    gender: Literal["male", "female", "other"] | None
    points: int
    tier: Tier
    next_tier: Tier | None
    points_to_next_tier: int | None
    points_expiring_soon: int = Field(description="points that expire within the next 30 days")
    expiring_within_days: int
    referral_code: str
    marketing: dict[str, bool] = Field(description="marketing consent per purpose (marketing_zalo...)")


class Session(_Response):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a scheme name
    expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    customer: Profile
    new_customer: bool = False


class PhoneRequest(_Request):
    code: ZaloToken = Field(description="the token from zmp-sdk getPhoneNumber()")
    access_token: ZaloToken


class VoucherOut(_Response):
    code: str = Field(description="as printed: ABCDE-FGHJK")
    name: str
    kind: Literal["fixed", "percent"]
    value: int
    max_discount: int | None
    min_spend: int
    status: Literal["pending", "issued", "redeemed", "expired", "void", "refused"]
    issued_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None
    source: str


class PhoneResult(_Response):
    customer: Profile
    merged: bool = Field(description="an account with this phone (the chatbot's) was joined to this one")
    welcome_voucher: VoucherOut | None


class ProfilePatch(_Request):
    name: Annotated[str, Field(min_length=1, max_length=80)] | None = None
    birthday: date | None = None
    gender: Literal["male", "female", "other"] | None = None
    marketing_consent: bool | None = Field(
        default=None, description="Zalo marketing messages (marketing_zalo); needs consent_text_version"
    )
    consent_text_version: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")] | None = None


# ============================================================================ points
class PointsEntry(_Response):
    kind: Literal["earn", "spend", "expire", "adjust", "reverse"]
    points: int
    reason: str
    ref: dict[str, str]
    created_at: datetime
    expires_at: datetime | None


class PointsPage(_Response):
    balance: int
    items: list[PointsEntry]
    next_cursor: str | None


class PageQuery(_Query):
    limit: int = Field(default=20, ge=1, le=100)
    cursor: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class VoucherQuery(_Query):
    status: Literal["issued", "redeemed", "expired", "void"] | None = None


class VoucherList(_Response):
    items: list[VoucherOut]


# ============================================================================ rewards
class RewardOut(_Response):
    id: str
    name: str
    description: str
    image: str | None
    points_cost: int
    remaining: int | None = Field(description="units left; null: unlimited")
    affordable: bool
    points_missing: int


class RewardList(_Response):
    items: list[RewardOut]


class RedemptionOut(_Response):
    reward_id: str
    points_spent: int
    voucher: VoucherOut
    balance: int


# ============================================================================ products and orders
class ProductOut(_Response):
    id: str
    name: str
    price: int
    category: str
    image: str | None
    description: str


class ProductList(_Response):
    items: list[ProductOut]


class OrderLine(_Request):
    product_id: Code
    qty: Annotated[int, Field(ge=1, le=99)]


class OrderRequest(_Request):
    items: Annotated[list[OrderLine], Field(min_length=1, max_length=50)]
    voucher_code: Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9 -]+$")] | None = (
        None
    )
    note: Annotated[str, Field(max_length=500)] | None = None
    store: Code | None = None


class OrderItemOut(_Response):
    product_id: str
    name: str
    unit_price: int
    qty: int
    line_total: int


class OrderOut(_Response):
    id: str
    status: Literal["pending", "completed", "cancelled", "refunded"]
    source: Literal["miniapp", "pos", "integration"]
    items: list[OrderItemOut]
    subtotal: int
    discount: int
    total: int
    voucher_code: str | None
    note: str | None
    store: str | None
    points: int | None = Field(description="points earned, once completed")
    created_at: datetime
    completed_at: datetime | None
    cancelled_at: datetime | None


class OrderList(_Response):
    items: list[OrderOut]
    next_cursor: str | None


# ============================================================================ check-in
class CheckinRequest(_Request):
    code: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="the QR token (from ?checkin=...) or the short code printed under the QR"
    )


class CheckinOut(_Response):
    points_awarded: int
    balance: int
    voucher: VoucherOut | None
    store: str | None


# ============================================================================ referral
class ReferralRequest(_Request):
    code: Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9 -]+$")]


class ReferredBy(_Response):
    status: Literal["pending", "rewarding", "rewarded", "void"]
    created_at: datetime
    points: int = Field(description="points this customer got for it")


class ReferralOut(_Response):
    code: str = Field(description="this customer's own code, to share")
    invited: int
    rewarded: int
    referred_by: ReferredBy | None
    referrer_points: int = Field(description="what the program gives the friend who invites")
    referee_points: int = Field(description="what the program gives the invited friend")
    enabled: bool


# ============================================================================ consents and privacy
class ConsentOut(_Response):
    purpose: str
    status: Literal["given", "withdrawn", "never"]
    at: datetime | None
    channel: str | None
    text_version: str | None


class ConsentList(_Response):
    items: list[ConsentOut]


class ConsentsUpdate(_Request):
    terms: bool | None = None
    marketing_zalo: bool | None = None
    marketing_messenger: bool | None = None
    marketing_zns: bool | None = None
    text_version: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")] | None = Field(
        default=None, description="the version of the consent text shown; required to give a consent"
    )


class ErasureOut(_Response):
    erased: bool
    requested_at: datetime
    finished_at: datetime | None


# ============================================================================ games
class GameStatusOut(_Response):
    free_turns_left: int
    bonus_turns: int
    plays_today: int
    plays_total: int
    points_per_play: int = Field(description="points a play costs once the free turns are used")
    can_play: bool
    reason: str | None = Field(description="why not, as a stable code (game_no_turns...)")


class GamePrizeOdds(_Response):
    prize_id: str
    name: str
    reward: Literal["points", "voucher", "nothing"]
    probability: float
    remaining: int | None


class QuizQuestionOut(_Response):
    id: str
    text: str
    choices: list[str]


class GameOut(_Response):
    id: str
    kind: str
    name: str
    description: str
    starts_at: datetime
    ends_at: datetime
    commitment: str = Field(description="SHA-256 of the server seed, published before the draws")
    odds: list[GamePrizeOdds]
    questions: list[QuizQuestionOut] = Field(description="quiz only: questions and choices, never answers")
    status: GameStatusOut


class GameList(_Response):
    items: list[GameOut]


class PrizeOut(_Response):
    id: str
    name: str
    reward: Literal["points", "voucher", "nothing"]
    points: int


class PlayOut(_Response):
    play_id: str
    game_id: str
    won: bool
    prize: PrizeOut | None
    points_awarded: int
    points_spent: int
    voucher: VoucherOut | None
    paid_with: str | None = Field(
        description="the turn used: free, bonus (granted by an order or a check-in) or points"
    )
    score: int | None
    questions: int | None
    correct_answers: dict[str, int] | None
    balance: int


class QuizAnswers(_Request):
    answers: Annotated[
        dict[
            Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
            Annotated[int, Field(ge=0, le=20)],
        ],
        Field(min_length=1, max_length=50),
    ]


# ============================================================================ integrations
class IntegrationCustomer(_Request):
    phone: Annotated[str, Field(min_length=8, max_length=20, pattern=r"^\+?[0-9 .-]+$")] | None = None
    customer_id: Annotated[str, Field(pattern=r"^[0-9a-f]{24}$")] | None = None


class IntegrationOrderRequest(_Request):
    external_id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
    customer: IntegrationCustomer
    amount: Annotated[int, Field(ge=0, le=10_000_000_000)] | None = None
    items: Annotated[list[OrderLine], Field(min_length=1, max_length=50)] | None = None
    store: Code | None = None
    note: Annotated[str, Field(max_length=500)] | None = None
    complete: bool = Field(default=False, description="complete it at once (earns the points)")


class IntegrationCancelRequest(_Request):
    reason: Code = "cancelled"
    refund: bool = Field(default=False, description="a completed order: refund it (points reversed)")


class IntegrationOrderOut(_Response):
    order: OrderOut
    customer_id: str
    points_balance: int
