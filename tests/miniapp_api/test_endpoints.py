"""Every Mini App endpoint through HTTP, against the real loyalty core."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from loyalty.clock import FrozenClock
from loyalty.customers import Identity
from tests.fakes.zalo_graph import FakeZaloGraph
from tests.miniapp_api.conftest import API, Client, bearer, login, loyalty_of


async def test_me_shows_points_tier_next_tier_expiring_points_and_referral_code(api: Client) -> None:
    session = await login(api)
    loyalty = loyalty_of(api)
    cid = session["customer"]["id"]
    await loyalty.ledger.earn(
        cid, 40, key="test:soon", reason="order", expires_at=loyalty.clock.now() + timedelta(days=10)
    )
    await loyalty.ledger.earn(cid, 60, key="test:later", reason="order")

    me = await (await api.get(f"{API}/me", headers=bearer(session))).json()

    assert me["points"] == 100
    assert me["tier"] == {"id": "member", "name": "Member", "threshold": 0}
    assert me["next_tier"]["id"] == "silver" and me["points_to_next_tier"] == 400
    assert me["points_expiring_soon"] == 40 and me["expiring_within_days"] == 30
    assert len(me["referral_code"]) >= 6
    assert me["marketing"] == {"marketing_zalo": False, "marketing_messenger": False, "marketing_zns": False}


async def test_patch_me_changes_the_profile_and_the_marketing_consent(api: Client) -> None:
    session = await login(api)
    response = await api.patch(
        f"{API}/me",
        json={
            "name": "Trần Thị Bình",
            "birthday": "1995-04-30",
            "gender": "female",
            "marketing_consent": True,
            "consent_text_version": "2026-01",
        },
        headers=bearer(session),
    )
    assert response.status == 200, await response.text()
    me = await response.json()
    assert (me["name"], me["birthday"], me["gender"]) == ("Trần Thị Bình", "1995-04-30", "female")
    assert me["marketing"]["marketing_zalo"] is True
    assert await loyalty_of(api).privacy.has_consent(me["id"], "marketing_zalo")

    no_version = await api.patch(f"{API}/me", json={"marketing_consent": True}, headers=bearer(session))
    assert no_version.status == 422
    bad = await api.patch(f"{API}/me", json={"birthday": "yesterday", "gender": "x"}, headers=bearer(session))
    assert bad.status == 422 and (await bad.json())["error"]["code"] == "validation_error"
    withdrawn = await api.patch(f"{API}/me", json={"marketing_consent": False}, headers=bearer(session))
    assert (await withdrawn.json())["marketing"]["marketing_zalo"] is False


async def test_points_history_is_newest_first_with_a_cursor(api: Client, clock: FrozenClock) -> None:
    session = await login(api)
    loyalty = loyalty_of(api)
    cid = session["customer"]["id"]
    for i in range(5):
        await loyalty.ledger.earn(cid, 10 + i, key=f"test:e{i}", reason="order")
        clock.advance(timedelta(minutes=1))

    first = await (await api.get(f"{API}/me/points", params={"limit": "2"}, headers=bearer(session))).json()
    assert [e["points"] for e in first["items"]] == [14, 13] and first["balance"] == 60
    second = await (
        await api.get(
            f"{API}/me/points", params={"limit": "2", "cursor": first["next_cursor"]}, headers=bearer(session)
        )
    ).json()
    assert [e["points"] for e in second["items"]] == [12, 11]
    third = await (
        await api.get(
            f"{API}/me/points",
            params={"limit": "2", "cursor": second["next_cursor"]},
            headers=bearer(session),
        )
    ).json()
    assert [e["points"] for e in third["items"]] == [10] and third["next_cursor"] is None

    for cursor in ("garbage", "W10", "WyJhIiwiYiJd"):
        bad = await api.get(f"{API}/me/points", params={"cursor": cursor}, headers=bearer(session))
        assert bad.status == 400 and (await bad.json())["error"]["code"] == "invalid_cursor"


async def test_rewards_are_redeemed_once_per_idempotency_key(api: Client) -> None:
    session = await login(api)
    loyalty = loyalty_of(api)
    cid = session["customer"]["id"]
    listed = await (await api.get(f"{API}/rewards", headers=bearer(session))).json()
    free_drink = next(r for r in listed["items"] if r["id"] == "free-drink")
    assert free_drink["affordable"] is False and free_drink["points_missing"] == 50

    poor = await api.post(f"{API}/rewards/free-drink/redeem", headers=bearer(session))
    assert poor.status == 409 and (await poor.json())["error"]["code"] == "insufficient_points"

    await loyalty.ledger.earn(cid, 120, key="test:rich", reason="order")
    headers = {**bearer(session), "Idempotency-Key": "redeem-1"}
    first = await api.post(f"{API}/rewards/free-drink/redeem", headers=headers)
    assert first.status == 201, await first.text()
    body = await first.json()
    assert body["points_spent"] == 50 and body["balance"] == 70 and body["voucher"]["status"] == "issued"
    replay = await api.post(f"{API}/rewards/free-drink/redeem", headers=headers)
    assert replay.status == 201 and replay.headers["Idempotency-Replayed"] == "true"
    assert await replay.json() == body
    assert await loyalty.ledger.balance(cid) == 70  # charged once

    other = await api.post(f"{API}/rewards/discount-50k/redeem", headers=headers)
    assert other.status == 422 and (await other.json())["error"]["code"] == "idempotency_key_reused"
    bad_key = await api.post(
        f"{API}/rewards/free-drink/redeem", headers={**bearer(session), "Idempotency-Key": "a b"}
    )
    assert bad_key.status == 400 and (await bad_key.json())["error"]["code"] == "invalid_idempotency_key"
    unknown = await api.post(f"{API}/rewards/no-such-reward/redeem", headers=bearer(session))
    assert unknown.status == 404 and (await unknown.json())["error"]["code"] == "reward_not_found"

    vouchers = await (
        await api.get(f"{API}/me/vouchers", params={"status": "issued"}, headers=bearer(session))
    ).json()
    assert [v["code"] for v in vouchers["items"]] == [body["voucher"]["code"]]
    none_used = await (
        await api.get(f"{API}/me/vouchers", params={"status": "redeemed"}, headers=bearer(session))
    ).json()
    assert none_used["items"] == []
    wrong = await api.get(f"{API}/me/vouchers", params={"status": "lost"}, headers=bearer(session))
    assert wrong.status == 422


async def test_orders_are_priced_by_the_server_with_a_voucher_and_idempotency(
    api: Client, clock: FrozenClock
) -> None:
    session = await login(api)
    loyalty = loyalty_of(api)
    cid = session["customer"]["id"]
    products = await (await api.get(f"{API}/products", headers=bearer(session))).json()
    assert {"id": "tra-dao", "name": "Trà đào cam sả", "price": 45000}.items() <= next(
        p for p in products["items"] if p["id"] == "tra-dao"
    ).items()
    voucher = await loyalty.vouchers.issue(cid, "welcome_20k", key="test:welcome", source="welcome")

    headers = {**bearer(session), "Idempotency-Key": "order-1"}
    payload = {
        "items": [{"product_id": "tra-dao", "qty": 2}],
        "voucher_code": voucher.display_code,
        "note": "ít đá",
    }
    created = await api.post(f"{API}/orders", json=payload, headers=headers)
    assert created.status == 201, await created.text()
    order = await created.json()
    assert (order["subtotal"], order["discount"], order["total"], order["status"]) == (
        90000,
        20000,
        70000,
        "pending",
    )
    again = await api.post(f"{API}/orders", json=payload, headers=headers)
    assert (await again.json())["id"] == order["id"]
    assert len(await loyalty.orders.list_for(cid)) == 1

    used = await api.post(f"{API}/orders", json=payload, headers=bearer(session))
    assert used.status == 409 and (await used.json())["error"]["code"] == "voucher_used"
    for bad, code in (
        ({"items": [{"product_id": "unknown", "qty": 1}]}, "unknown_product"),
        ({"items": [{"product_id": "tra-dao", "qty": 0}]}, "validation_error"),
        ({"items": [{"product_id": "tra-dao", "qty": "2"}]}, "validation_error"),
        ({"items": [{"product_id": {"$gt": ""}, "qty": 1}]}, "validation_error"),
        ({"items": [{"product_id": "tra-dao", "qty": 1, "unit_price": 1}]}, "validation_error"),
        ({"items": []}, "validation_error"),
    ):
        response = await api.post(f"{API}/orders", json=bad, headers=bearer(session))
        assert response.status == 422 and (await response.json())["error"]["code"] == code, bad
    assert len(await loyalty.orders.list_for(cid)) == 1

    clock.advance(timedelta(minutes=5))  # a later order: newest first is decided by time
    await api.post(
        f"{API}/orders", json={"items": [{"product_id": "banh-mi", "qty": 1}]}, headers=bearer(session)
    )
    page = await (await api.get(f"{API}/orders", params={"limit": "1"}, headers=bearer(session))).json()
    assert page["items"][0]["items"][0]["product_id"] == "banh-mi" and page["next_cursor"]
    rest = await (
        await api.get(
            f"{API}/orders", params={"limit": "1", "cursor": page["next_cursor"]}, headers=bearer(session)
        )
    ).json()
    assert rest["items"][0]["id"] == order["id"]
    one = await (await api.get(f"{API}/orders/{order['id']}", headers=bearer(session))).json()
    assert one["note"] == "ít đá" and one["voucher_code"] == voucher.code


async def test_another_customers_order_is_not_found(api: Client, graph: tuple[FakeZaloGraph, str]) -> None:
    fake, _ = graph
    fake.add_user("token-b", "777888999")
    first, second = await login(api), await login(api, "token-b")
    created = await api.post(
        f"{API}/orders", json={"items": [{"product_id": "bac-xiu", "qty": 1}]}, headers=bearer(first)
    )
    order_id = (await created.json())["id"]
    response = await api.get(f"{API}/orders/{order_id}", headers=bearer(second))
    assert response.status == 404 and (await response.json())["error"]["code"] == "order_not_found"


async def test_a_qr_check_in_earns_once(api: Client) -> None:
    session = await login(api)
    loyalty = loyalty_of(api)
    issued = await loyalty.checkin.create_code(
        points=10,
        voucher_template=None,
        max_uses=100,
        expires_at=loyalty.clock.now() + timedelta(days=7),
        store="q1",
        created_by="staff:s1",
    )
    scanned = await api.post(f"{API}/checkins", json={"code": issued.token}, headers=bearer(session))
    assert scanned.status == 201, await scanned.text()
    assert await scanned.json() == {"points_awarded": 10, "balance": 10, "voucher": None, "store": "q1"}
    again = await api.post(f"{API}/checkins", json={"code": issued.token}, headers=bearer(session))
    assert again.status == 409 and (await again.json())["error"]["code"] == "checkin_already_used"
    forged = await api.post(
        f"{API}/checkins", json={"code": issued.token[:-3] + "AAA"}, headers=bearer(session)
    )
    assert forged.status == 422 and (await forged.json())["error"]["code"] == "checkin_forged"


async def test_referral_code_entered_once(api: Client, graph: tuple[FakeZaloGraph, str]) -> None:
    fake, _ = graph
    fake.add_user("friend-token", "123123123")
    inviter = await login(api, "friend-token")
    session = await login(api)
    mine = await (await api.get(f"{API}/me/referral", headers=bearer(session))).json()
    assert (
        mine["referred_by"] is None
        and mine["invited"] == 0
        and mine["code"] == session["customer"]["referral_code"]
    )

    applied = await api.post(
        f"{API}/me/referral", json={"code": inviter["customer"]["referral_code"]}, headers=bearer(session)
    )
    assert applied.status == 200, await applied.text()
    assert (await applied.json())["referred_by"]["status"] == "pending"
    friend = await (await api.get(f"{API}/me/referral", headers=bearer(inviter))).json()
    assert friend["invited"] == 1

    own = await api.post(
        f"{API}/me/referral", json={"code": inviter["customer"]["referral_code"]}, headers=bearer(inviter)
    )
    assert own.status == 409 and (await own.json())["error"]["code"] == "referral_self"
    unknown = await api.post(f"{API}/me/referral", json={"code": "ZZZZZZ"}, headers=bearer(inviter))
    assert (await unknown.json())["error"]["code"] in ("referral_code_unknown", "referral_loop")


async def test_consents_export_and_erasure(api: Client) -> None:
    session = await login(api)
    loyalty = loyalty_of(api)
    cid = session["customer"]["id"]
    initial = await (await api.get(f"{API}/me/consents", headers=bearer(session))).json()
    assert {c["purpose"]: c["status"] for c in initial["items"]} == {
        "terms": "never",
        "marketing_zalo": "never",
        "marketing_messenger": "never",
        "marketing_zns": "never",
    }
    no_version = await api.put(f"{API}/me/consents", json={"marketing_zns": True}, headers=bearer(session))
    assert no_version.status == 422
    updated = await api.put(
        f"{API}/me/consents",
        json={"terms": True, "marketing_zns": True, "text_version": "2026-01"},
        headers=bearer(session),
    )
    states = {c["purpose"]: c for c in (await updated.json())["items"]}
    assert states["marketing_zns"]["status"] == "given" and states["marketing_zns"]["channel"] == "miniapp"
    withdrawn = await api.put(f"{API}/me/consents", json={"marketing_zns": False}, headers=bearer(session))
    assert {c["purpose"]: c["status"] for c in (await withdrawn.json())["items"]}[
        "marketing_zns"
    ] == "withdrawn"

    export = await (await api.get(f"{API}/me/export", headers=bearer(session))).json()
    assert export["customer_id"] == cid and export["format"] == "social-loyalty/personal-data-export"
    assert "customers" in export["data"]

    erased = await api.delete(f"{API}/me", headers=bearer(session))
    assert erased.status == 200 and (await erased.json())["erased"] is True
    after = await api.get(f"{API}/me", headers=bearer(session))
    assert after.status == 403 and (await after.json())["error"]["code"] == "customer_inactive"
    customer = await loyalty.customers.get(cid)
    assert customer.status == "erased" and customer.name is None
    # logging in again is a new customer: the identity went with the personal data
    again = await login(api)
    assert again["new_customer"] is True and again["customer"]["id"] != cid
    assert (
        await loyalty.customers.by_identity(Identity(channel="miniapp", user_id="5521772797175877"))
        is not None
    )


async def test_concurrent_requests_with_one_idempotency_key_make_one_order(api: Client) -> None:
    session = await login(api)
    headers = {**bearer(session), "Idempotency-Key": "double-tap"}
    payload = {"items": [{"product_id": "ca-phe-sua-da", "qty": 1}]}

    answers = await asyncio.gather(
        *(api.post(f"{API}/orders", json=payload, headers=headers) for _ in range(5))
    )

    statuses = sorted(a.status for a in answers)
    assert set(statuses) <= {201, 409} and statuses.count(201) >= 1
    for answer in answers:
        if answer.status == 409:
            assert (await answer.json())["error"]["code"] == "idempotency_in_progress"
            assert answer.headers["Retry-After"] == "1"
    ids = {(await a.json())["id"] for a in answers if a.status == 201}
    assert len(ids) == 1
    assert len(await loyalty_of(api).orders.list_for(session["customer"]["id"])) == 1
