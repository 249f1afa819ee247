"""The Mini App API's operations, under ``/api/miniapp/v1``. Each handler only translates: it calls the
loyalty core (``loyalty.Loyalty``) and shapes the answer; every rule lives in ``loyalty/``."""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from loyalty import privacy as consent
from loyalty.core import Loyalty
from loyalty.customers import Customer, Identity, ProfileUpdate
from loyalty.errors import OrderNotFound
from loyalty.games import PlayResult
from loyalty.orders import Order, OrderItemIn
from loyalty.vouchers import Voucher
from miniapp_api import schemas as s
from miniapp_api.errors import ApiError
from miniapp_api.http import Call, Endpoint
from miniapp_api.ports import GraphPhoneRefused, GraphTokenInvalid, GraphUnavailable, ZaloUser

PREFIX: Final = "/api/miniapp/v1"
EXPIRING_WITHIN_DAYS: Final = 30
MARKETING: Final = (consent.MARKETING_ZALO, consent.MARKETING_MESSENGER, consent.MARKETING_ZNS)
_CHANNEL: Final = "miniapp"
_ORDER_ID: Final = re.compile(r"^[0-9a-f]{24}$")
T = TypeVar("T")


# ------------------------------------------------------------------------------------------ helpers
async def _zalo(step: Awaitable[T]) -> T:
    """A Graph API call, its refusals as API errors."""
    try:
        return await step
    except GraphTokenInvalid as error:
        raise ApiError(401, "invalid_token", f"Zalo refused the access token (error {error.code})") from None
    except GraphPhoneRefused as error:
        raise ApiError(
            422, "zalo_phone_refused", f"Zalo refused the phone code (error {error.code}): ask again"
        ) from None
    except GraphUnavailable:
        raise ApiError(503, "zalo_unavailable", "Zalo cannot be reached right now: try again") from None


def voucher_out(voucher: Voucher) -> s.VoucherOut:
    return s.VoucherOut(
        code=voucher.display_code,
        name=voucher.name,
        kind=voucher.kind,
        value=voucher.value,
        max_discount=voucher.max_discount,
        min_spend=voucher.min_spend,
        status=voucher.status,
        issued_at=voucher.issued_at,
        expires_at=voucher.expires_at,
        redeemed_at=voucher.redeemed_at,
        source=voucher.source,
    )


def order_out(order: Order) -> s.OrderOut:
    return s.OrderOut(
        id=order.id,
        status=order.status,
        source=order.source,
        items=[s.OrderItemOut.model_validate(item.model_dump()) for item in order.items],
        subtotal=order.subtotal,
        discount=order.discount,
        total=order.total,
        voucher_code=order.voucher_code,
        note=order.note,
        store=order.store,
        points=order.points,
        created_at=order.created_at,
        completed_at=order.completed_at,
        cancelled_at=order.cancelled_at,
    )


async def profile(loyalty: Loyalty, customer: Customer, avatar: str | None) -> s.Profile:
    status = await loyalty.tiers.status(customer.id)
    wallet = await loyalty.ledger.wallet(customer.id)
    soon = loyalty.clock.now() + timedelta(days=EXPIRING_WITHIN_DAYS)
    states = await loyalty.privacy.current(customer.id)
    nxt = status.next_tier
    return s.Profile(
        id=customer.id,
        name=customer.name,
        avatar=avatar,
        phone=customer.masked_phone,
        phone_verified=customer.phone is not None,
        birthday=customer.birthday,
        gender=customer.gender,
        points=wallet.balance,
        tier=s.Tier(id=status.tier.id, name=status.tier.name, threshold=status.tier.threshold),
        next_tier=s.Tier(id=nxt.id, name=nxt.name, threshold=nxt.threshold) if nxt else None,
        points_to_next_tier=status.points_to_next,
        points_expiring_soon=wallet.expiring_before(soon),
        expiring_within_days=EXPIRING_WITHIN_DAYS,
        referral_code=customer.referral_code,
        marketing={p: p in states and states[p].given for p in MARKETING},
    )


def _session_out(call: Call, customer_id: str, user: str, avatar: str | None) -> dict[str, Any]:
    tokens = call.services.signer.issue(customer_id, user, avatar)
    return {
        "access_token": tokens.access_token,
        "expires_at": datetime.fromtimestamp(tokens.access_expires_at, UTC),
        "refresh_token": tokens.refresh_token,
        "refresh_expires_at": datetime.fromtimestamp(tokens.refresh_expires_at, UTC),
    }


def _encode_cursor(parts: list[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).rstrip(b"=").decode()


def _decode_cursor(cursor: str, size: int) -> list[str]:
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise ApiError(400, "invalid_cursor", "the page cursor is not valid") from None
    if not isinstance(parts, list) or len(parts) != size or not all(isinstance(p, str) for p in parts):
        raise ApiError(400, "invalid_cursor", "the page cursor is not valid")
    return parts


# ------------------------------------------------------------------------------------------ auth
async def login(call: Call) -> tuple[int, s.Session]:
    body: s.LoginRequest = call.body
    user: ZaloUser = await _zalo(call.services.graph.me(body.access_token))
    customer, created = await call.loyalty.customers.get_or_create(
        Identity(channel=_CHANNEL, user_id=user.id), name=user.name
    )
    if customer.status != "active":
        raise ApiError(403, "customer_inactive", "this account is closed")
    if customer.name is None and user.name:
        customer = await call.loyalty.customers.update_profile(
            customer.id, ProfileUpdate(name=user.name[:80])
        )
    await call.loyalty.customers.touch(customer.id, _CHANNEL)
    tokens = _session_out(call, customer.id, user.id, user.avatar)
    me = await profile(call.loyalty, customer, user.avatar)
    return 200, s.Session(**tokens, customer=me, new_customer=created)


async def refresh(call: Call) -> s.Session:
    body: s.RefreshRequest = call.body
    signer = call.services.signer
    session = signer.verify(body.refresh_token, "r")
    remaining = max(1, session.expires_at - int(call.loyalty.clock.now().timestamp()))
    if not await call.services.idempotency.use_once(f"refresh:{session.jti}", ttl_seconds=remaining):
        raise ApiError(401, "invalid_token", "this refresh token was used already: log in again")
    customer = await call.loyalty.customers.get_active(session.customer_id)
    tokens = _session_out(call, customer.id, session.zalo_user_id, session.avatar)
    return s.Session(**tokens, customer=await profile(call.loyalty, customer, session.avatar))


# ------------------------------------------------------------------------------------------ me
async def get_me(call: Call) -> s.Profile:
    assert call.session is not None
    return await profile(call.loyalty, await call.customer(), call.session.avatar)


async def patch_me(call: Call) -> s.Profile:
    assert call.session is not None
    body: s.ProfilePatch = call.body
    customer = await call.customer()
    fields = body.model_dump(exclude_none=True, include={"name", "birthday", "gender"})
    if fields:
        customer = await call.loyalty.customers.update_profile(customer.id, ProfileUpdate(**fields))
    if body.marketing_consent is not None:
        await _set_consent(
            call, customer.id, consent.MARKETING_ZALO, body.marketing_consent, body.consent_text_version
        )
    return await profile(call.loyalty, customer, call.session.avatar)


async def _set_consent(
    call: Call, customer_id: str, purpose: str, given: bool, text_version: str | None
) -> None:
    if given:
        if text_version is None:
            raise ApiError(422, "validation_error", "giving a consent needs the text_version that was shown")
        await call.loyalty.privacy.give(
            customer_id, purpose, channel=_CHANNEL, text_version=text_version, source="miniapp_settings"
        )
    else:
        await call.loyalty.privacy.withdraw(customer_id, purpose, channel=_CHANNEL, source="miniapp_settings")


async def attach_phone(call: Call) -> s.PhoneResult:
    assert call.session is not None
    body: s.PhoneRequest = call.body
    customer = await call.customer()
    graph = call.services.graph
    user = await _zalo(graph.me(body.access_token))
    if user.id != call.session.zalo_user_id:
        raise ApiError(403, "zalo_user_mismatch", "the access token belongs to another Zalo user")
    number = await _zalo(graph.phone_number(body.access_token, body.code))
    verified = await call.loyalty.verify_phone(customer.id, number, source="miniapp")
    welcome = await call.loyalty.welcome_voucher(verified.customer.id)
    return s.PhoneResult(
        customer=await profile(call.loyalty, verified.customer, call.session.avatar),
        merged=bool(verified.merged_from),
        welcome_voucher=voucher_out(welcome) if welcome is not None else None,
    )


async def points(call: Call) -> s.PointsPage:
    query: s.PageQuery = call.query
    customer = await call.customer()
    before = None
    if query.cursor is not None:
        at, key = _decode_cursor(query.cursor, 2)
        try:
            before = (datetime.fromisoformat(at), key)
        except ValueError:
            raise ApiError(400, "invalid_cursor", "the page cursor is not valid") from None
        if before[0].tzinfo is None:
            raise ApiError(400, "invalid_cursor", "the page cursor is not valid")
    entries = await call.loyalty.ledger.history(customer.id, limit=query.limit, before=before)
    last = entries[-1] if len(entries) == query.limit else None
    return s.PointsPage(
        balance=await call.loyalty.ledger.balance(customer.id),
        items=[
            s.PointsEntry(
                kind=e.kind,
                points=e.points,
                reason=e.reason,
                ref=e.ref,
                created_at=e.created_at,
                expires_at=e.expires_at,
            )
            for e in entries
        ],
        next_cursor=_encode_cursor([last.created_at.isoformat(), last.key]) if last else None,
    )


async def vouchers(call: Call) -> s.VoucherList:
    query: s.VoucherQuery = call.query
    customer = await call.customer()
    found = await call.loyalty.vouchers.list_for(customer.id, query.status)
    return s.VoucherList(items=[voucher_out(v) for v in found])


# ------------------------------------------------------------------------------------------ rewards
async def rewards(call: Call) -> s.RewardList:
    customer = await call.customer()
    offers = await call.loyalty.rewards.catalog(customer.id)
    return s.RewardList(
        items=[
            s.RewardOut(
                id=o.reward.id,
                name=o.reward.name,
                description=o.reward.description,
                image=o.reward.image,
                points_cost=o.reward.points_cost,
                remaining=o.remaining,
                affordable=o.affordable,
                points_missing=o.points_missing,
            )
            for o in offers
        ]
    )


async def redeem_reward(call: Call) -> tuple[int, s.RedemptionOut]:
    customer = await call.customer()
    client_key = call.idempotency_key or secrets.token_hex(16)
    redemption = await call.loyalty.rewards.redeem(
        customer.id, call.path["reward_id"], key=f"ma-{customer.id}-{client_key}"
    )
    return 201, s.RedemptionOut(
        reward_id=redemption.reward_id,
        points_spent=redemption.points_spent,
        voucher=voucher_out(redemption.voucher),
        balance=await call.loyalty.ledger.balance(customer.id),
    )


# ------------------------------------------------------------------------------------------ orders
async def products(call: Call) -> s.ProductList:
    return s.ProductList(
        items=[
            s.ProductOut(
                id=p.id,
                name=p.name,
                price=p.price,
                category=p.category,
                image=p.image,
                description=p.description,
            )
            for p in call.loyalty.program.products
            if p.active
        ]
    )


async def create_order(call: Call) -> tuple[int, s.OrderOut]:
    body: s.OrderRequest = call.body
    customer = await call.customer()
    order = await call.loyalty.orders.create(
        customer.id,
        source="miniapp",
        items=[OrderItemIn(product_id=line.product_id, qty=line.qty) for line in body.items],
        voucher_code=body.voucher_code,
        note=body.note,
        store=body.store,
        external_id=f"miniapp:{customer.id}:{call.idempotency_key}" if call.idempotency_key else None,
        by="miniapp",
    )
    return 201, order_out(order)


async def list_orders(call: Call) -> s.OrderList:
    query: s.PageQuery = call.query
    customer = await call.customer()
    before = None
    if query.cursor is not None:
        before = query.cursor
        if not _ORDER_ID.match(before):
            raise ApiError(400, "invalid_cursor", "the page cursor is not valid")
    try:
        found = await call.loyalty.orders.list_for(customer.id, limit=query.limit, before=before)
    except OrderNotFound:
        raise ApiError(400, "invalid_cursor", "the page cursor is not valid") from None
    return s.OrderList(
        items=[order_out(o) for o in found],
        next_cursor=found[-1].id if len(found) == query.limit else None,
    )


async def get_order(call: Call) -> s.OrderOut:
    customer = await call.customer()
    order = await call.loyalty.orders.get(call.path["order_id"])
    owner = await call.loyalty.customers.get(order.customer_id)
    if owner.id != customer.id:
        raise OrderNotFound("no such order")  # another customer's order is not even confirmed to exist
    return order_out(order)


# ------------------------------------------------------------------------------------------ check-in
async def checkin(call: Call) -> tuple[int, s.CheckinOut]:
    body: s.CheckinRequest = call.body
    customer = await call.customer()
    result = await call.loyalty.scan_checkin(customer.id, body.code, channel=_CHANNEL)
    voucher = result.voucher if isinstance(result.voucher, Voucher) else None
    return 201, s.CheckinOut(
        points_awarded=result.points_awarded,
        balance=result.balance,
        voucher=voucher_out(voucher) if voucher else None,
        store=result.code.store,
    )


# ------------------------------------------------------------------------------------------ referral
async def get_referral(call: Call) -> s.ReferralOut:
    customer = await call.customer()
    return await _referral_out(call.loyalty, customer)


async def apply_referral(call: Call) -> s.ReferralOut:
    body: s.ReferralRequest = call.body
    customer = await call.customer()
    await call.loyalty.referral.apply_code(customer.id, body.code)
    return await _referral_out(call.loyalty, await call.loyalty.customers.get(customer.id))


async def _referral_out(loyalty: Loyalty, customer: Customer) -> s.ReferralOut:
    stats = await loyalty.referral.stats(customer.id)
    mine = await loyalty.referral.referral_of(customer.id)
    rules = loyalty.program.referral
    return s.ReferralOut(
        code=customer.referral_code,
        invited=stats.invited,
        rewarded=stats.rewarded,
        referred_by=s.ReferredBy(status=mine.status, created_at=mine.created_at, points=mine.referee_points)
        if mine is not None
        else None,
        referrer_points=rules.referrer_points,
        referee_points=rules.referee_points,
        enabled=rules.enabled,
    )


# ------------------------------------------------------------------------------------------ privacy
async def get_consents(call: Call) -> s.ConsentList:
    customer = await call.customer()
    return await _consents_out(call.loyalty, customer.id)


async def put_consents(call: Call) -> s.ConsentList:
    body: s.ConsentsUpdate = call.body
    customer = await call.customer()
    wanted = body.model_dump(exclude_none=True, exclude={"text_version"})
    if any(wanted.values()) and body.text_version is None:
        raise ApiError(422, "validation_error", "giving a consent needs the text_version that was shown")
    for purpose, given in wanted.items():
        await _set_consent(call, customer.id, purpose, given, body.text_version)
    return await _consents_out(call.loyalty, customer.id)


async def _consents_out(loyalty: Loyalty, customer_id: str) -> s.ConsentList:
    states = await loyalty.privacy.current(customer_id)
    items = []
    for purpose in consent.PURPOSES:
        state = states.get(purpose)
        items.append(
            s.ConsentOut(
                purpose=purpose,
                status=state.status if state else "never",
                at=state.at if state else None,
                channel=state.channel if state else None,
                text_version=state.text_version if state else None,
            )
        )
    return s.ConsentList(items=items)


async def export(call: Call) -> dict[str, Any]:
    customer = await call.customer()
    return await call.loyalty.privacy.export(customer.id)


async def erase(call: Call) -> s.ErasureOut:
    customer = await call.customer()
    record = await call.loyalty.privacy.erase(customer.id, requested_by="customer", reason="customer_request")
    return s.ErasureOut(erased=record.done, requested_at=record.requested_at, finished_at=record.finished_at)


# ------------------------------------------------------------------------------------------ games
async def games(call: Call) -> s.GameList:
    customer = await call.customer()
    service = call.loyalty.games
    items = []
    for campaign in await service.live_campaigns():
        status = await service.status(customer.id, campaign.id)
        odds = await service.odds(campaign.id)
        questions = await service.quiz(campaign.id) if campaign.kind == "quiz" else ()
        items.append(
            s.GameOut(
                id=campaign.id,
                kind=campaign.kind,
                name=campaign.name,
                description=campaign.description,
                starts_at=campaign.starts_at,
                ends_at=campaign.ends_at,
                commitment=await service.commitment(campaign.id),
                odds=[
                    s.GamePrizeOdds(
                        prize_id=o.prize_id,
                        name=o.name,
                        reward=o.reward,
                        probability=o.probability,
                        remaining=o.remaining,
                    )
                    for o in odds
                ],
                questions=[
                    s.QuizQuestionOut(id=q.id, text=q.text, choices=list(q.choices)) for q in questions
                ],
                status=s.GameStatusOut(
                    free_turns_left=status.free_turns_left,
                    bonus_turns=status.bonus_turns,
                    plays_today=status.plays_today,
                    plays_total=status.plays_total,
                    points_per_play=status.points_per_play,
                    can_play=status.can_play,
                    reason=status.reason,
                ),
            )
        )
    return s.GameList(items=items)


async def _play_out(call: Call, result: PlayResult) -> s.PlayOut:
    prize = result.prize
    return s.PlayOut(
        play_id=result.play_id,
        game_id=result.campaign_id,
        won=result.won,
        prize=s.PrizeOut(id=prize.id, name=prize.name, reward=prize.reward, points=prize.points)
        if prize
        else None,
        points_awarded=result.points_awarded,
        points_spent=result.points_spent,
        voucher=voucher_out(result.voucher) if result.voucher is not None else None,
        paid_with=result.paid,
        score=result.score,
        questions=result.questions,
        correct_answers=result.correct_answers,
        balance=await call.loyalty.ledger.balance(result.customer_id),
    )


async def play_game(call: Call) -> tuple[int, s.PlayOut]:
    customer = await call.customer()
    key = call.idempotency_key or secrets.token_hex(16)
    result = await call.loyalty.games.play(customer.id, call.path["game_id"], key=key)
    return 201, await _play_out(call, result)


async def answer_quiz(call: Call) -> tuple[int, s.PlayOut]:
    body: s.QuizAnswers = call.body
    customer = await call.customer()
    key = call.idempotency_key or secrets.token_hex(16)
    result = await call.loyalty.games.answer_quiz(
        customer.id, call.path["game_id"], dict(body.answers), key=key
    )
    return 201, await _play_out(call, result)


# ------------------------------------------------------------------------------------------ table
_AUTH_ERRORS: Final = (401, 403, 429)
ENDPOINTS: Final[list[Endpoint]] = [
    Endpoint(
        "POST",
        "/auth/login",
        login,
        "Log in with a Zalo access token",
        "auth",
        auth="none",
        body=s.LoginRequest,
        response=s.Session,
        errors=(400, 401, 403, 413, 415, 422, 429, 503),
        description="Verifies the token with Zalo's Graph API, gets or creates the customer of the "
        "identity (miniapp, zalo user id) and returns our session tokens and the profile.",
    ),
    Endpoint(
        "POST",
        "/auth/refresh",
        refresh,
        "Exchange a refresh token for new tokens",
        "auth",
        auth="none",
        body=s.RefreshRequest,
        response=s.Session,
        errors=(400, 401, 403, 413, 415, 422, 429),
        description="A refresh token works once; the answer carries a new one.",
    ),
    Endpoint(
        "GET",
        "/me",
        get_me,
        "The customer's profile, points and tier",
        "me",
        response=s.Profile,
        errors=_AUTH_ERRORS,
    ),
    Endpoint(
        "PATCH",
        "/me",
        patch_me,
        "Change name, birthday, gender, marketing consent",
        "me",
        body=s.ProfilePatch,
        response=s.Profile,
        errors=(*_AUTH_ERRORS, 400, 413, 415, 422),
    ),
    Endpoint(
        "DELETE",
        "/me",
        erase,
        "Erase the customer's personal data",
        "privacy",
        response=s.ErasureOut,
        errors=_AUTH_ERRORS,
    ),
    Endpoint(
        "POST",
        "/me/phone",
        attach_phone,
        "Attach the phone shared in Zalo (getPhoneNumber)",
        "me",
        body=s.PhoneRequest,
        response=s.PhoneResult,
        errors=(*_AUTH_ERRORS, 400, 409, 413, 415, 422, 503),
        description="Exchanges the code with Zalo, normalises the number and attaches it; a chat "
        "customer with the same phone becomes the same customer.",
    ),
    Endpoint(
        "GET",
        "/me/points",
        points,
        "Points history, newest first",
        "me",
        query=s.PageQuery,
        response=s.PointsPage,
        errors=(*_AUTH_ERRORS, 400, 422),
    ),
    Endpoint(
        "GET",
        "/me/vouchers",
        vouchers,
        "The customer's vouchers",
        "vouchers",
        query=s.VoucherQuery,
        response=s.VoucherList,
        errors=(*_AUTH_ERRORS, 422),
    ),
    Endpoint(
        "GET",
        "/rewards",
        rewards,
        "Rewards to buy with points",
        "rewards",
        response=s.RewardList,
        errors=_AUTH_ERRORS,
    ),
    Endpoint(
        "POST",
        "/rewards/{reward_id}/redeem",
        redeem_reward,
        "Redeem a reward for a voucher",
        "rewards",
        response=s.RedemptionOut,
        status=201,
        idempotent=True,
        errors=(*_AUTH_ERRORS, 400, 404, 409, 422),
    ),
    Endpoint(
        "GET",
        "/products",
        products,
        "The product catalog",
        "orders",
        response=s.ProductList,
        errors=_AUTH_ERRORS,
    ),
    Endpoint(
        "POST",
        "/orders",
        create_order,
        "Place an order (priced by the server)",
        "orders",
        body=s.OrderRequest,
        response=s.OrderOut,
        status=201,
        idempotent=True,
        errors=(*_AUTH_ERRORS, 400, 404, 409, 413, 415, 422),
    ),
    Endpoint(
        "GET",
        "/orders",
        list_orders,
        "The customer's orders, newest first",
        "orders",
        query=s.PageQuery,
        response=s.OrderList,
        errors=(*_AUTH_ERRORS, 400, 422),
    ),
    Endpoint(
        "GET",
        "/orders/{order_id}",
        get_order,
        "One of the customer's orders",
        "orders",
        response=s.OrderOut,
        errors=(*_AUTH_ERRORS, 404),
    ),
    Endpoint(
        "POST",
        "/checkins",
        checkin,
        "Check in with a QR code",
        "checkin",
        body=s.CheckinRequest,
        response=s.CheckinOut,
        status=201,
        idempotent=True,
        errors=(*_AUTH_ERRORS, 400, 404, 409, 413, 415, 422),
    ),
    Endpoint(
        "GET",
        "/me/referral",
        get_referral,
        "The customer's referral code and friends",
        "referral",
        response=s.ReferralOut,
        errors=_AUTH_ERRORS,
    ),
    Endpoint(
        "POST",
        "/me/referral",
        apply_referral,
        "Enter a friend's referral code",
        "referral",
        body=s.ReferralRequest,
        response=s.ReferralOut,
        idempotent=True,
        errors=(*_AUTH_ERRORS, 400, 409, 413, 415, 422),
    ),
    Endpoint(
        "GET",
        "/me/consents",
        get_consents,
        "Consents per purpose",
        "privacy",
        response=s.ConsentList,
        errors=_AUTH_ERRORS,
    ),
    Endpoint(
        "PUT",
        "/me/consents",
        put_consents,
        "Give or withdraw consents",
        "privacy",
        body=s.ConsentsUpdate,
        response=s.ConsentList,
        errors=(*_AUTH_ERRORS, 400, 413, 415, 422),
    ),
    Endpoint(
        "GET", "/me/export", export, "Every personal data held, as JSON", "privacy", errors=_AUTH_ERRORS
    ),
    Endpoint(
        "GET",
        "/games",
        games,
        "The live games, their odds and the customer's turns",
        "games",
        response=s.GameList,
        errors=_AUTH_ERRORS,
    ),
    Endpoint(
        "POST",
        "/games/{game_id}/plays",
        play_game,
        "Play an instant-win game once (the same Idempotency-Key plays once)",
        "games",
        response=s.PlayOut,
        status=201,
        idempotent=True,
        errors=(*_AUTH_ERRORS, 400, 404, 409, 422),
    ),
    Endpoint(
        "POST",
        "/games/{game_id}/quiz-answers",
        answer_quiz,
        "Answer a quiz: checked on the server, the score picks the prize",
        "games",
        body=s.QuizAnswers,
        response=s.PlayOut,
        status=201,
        idempotent=True,
        errors=(*_AUTH_ERRORS, 400, 404, 409, 413, 415, 422),
    ),
]
