"""Login with a Zalo access token (valid, invalid, expired), our session tokens, refresh, bad input."""

from __future__ import annotations

from datetime import timedelta

from loyalty.clock import FrozenClock
from loyalty.customers import Identity
from tests.fakes.zalo_graph import FakeZaloGraph
from tests.miniapp_api.conftest import API, TOKEN, USER, Client, bearer, login, loyalty_of


async def test_login_verifies_the_token_with_zalo_and_creates_the_customer(
    api: Client, graph: tuple[FakeZaloGraph, str]
) -> None:
    fake, _ = graph
    session = await login(api)

    assert session["token_type"] == "Bearer"
    assert session["new_customer"] is True
    me = session["customer"]
    assert me["name"] == "Nguyễn Văn An"
    assert me["avatar"] == "https://s120-ava-talk.zadn.vn/a/b.jpg"
    assert me["points"] == 0 and me["tier"]["id"] == "member" and me["phone"] is None
    customer = await loyalty_of(api).customers.by_identity(Identity(channel="miniapp", user_id=USER))
    assert customer is not None and customer.id == me["id"]
    # the proof was sent, computed with the app secret (the fake refuses otherwise)
    sent = fake.requests[-1]["headers"]
    assert sent["access_token"] == TOKEN and len(sent["appsecret_proof"]) == 64

    again = await login(api)
    assert again["new_customer"] is False and again["customer"]["id"] == me["id"]


async def test_a_user_without_the_profile_permission_logs_in_with_the_id_only(
    api: Client, graph: tuple[FakeZaloGraph, str]
) -> None:
    fake, _ = graph
    fake.add_user("bare-token", "999000111")
    session = await login(api, "bare-token")
    assert session["customer"]["name"] is None and session["customer"]["avatar"] is None


async def test_an_invalid_or_expired_zalo_token_is_refused(
    api: Client, graph: tuple[FakeZaloGraph, str]
) -> None:
    fake, _ = graph
    unknown = await api.post(f"{API}/auth/login", json={"access_token": "not-a-real-token"})
    assert unknown.status == 401
    assert (await unknown.json())["error"]["code"] == "invalid_token"

    fake.expire(TOKEN)
    expired = await api.post(f"{API}/auth/login", json={"access_token": TOKEN})
    assert expired.status == 401
    body = await expired.json()
    assert body["error"]["code"] == "invalid_token" and "-124" in body["error"]["message"]
    assert await loyalty_of(api).customers.by_identity(Identity(channel="miniapp", user_id=USER)) is None


async def test_a_wrong_app_secret_is_refused_by_zalo_and_reported_as_invalid_token(
    api: Client, graph: tuple[FakeZaloGraph, str]
) -> None:
    fake, _ = graph
    fake.app_secret = "another-secret"
    response = await api.post(f"{API}/auth/login", json={"access_token": TOKEN})
    assert response.status == 401
    assert "-242" in (await response.json())["error"]["message"]


async def test_zalo_down_is_a_503_not_a_500(api: Client, graph: tuple[FakeZaloGraph, str]) -> None:
    fake, _ = graph
    fake.down = True
    response = await api.post(f"{API}/auth/login", json={"access_token": TOKEN})
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "zalo_unavailable"


async def test_every_other_endpoint_needs_a_valid_unexpired_session(api: Client, clock: FrozenClock) -> None:
    missing = await api.get(f"{API}/me")
    assert missing.status == 401 and (await missing.json())["error"]["code"] == "unauthorized"
    session = await login(api)
    assert (await api.get(f"{API}/me", headers=bearer(session))).status == 200

    forged = session["access_token"][:-2] + ("AA" if not session["access_token"].endswith("AA") else "BB")
    bad = await api.get(f"{API}/me", headers={"Authorization": f"Bearer {forged}"})
    assert bad.status == 401 and (await bad.json())["error"]["code"] == "invalid_token"
    # a refresh token is not an access token
    wrong_kind = await api.get(f"{API}/me", headers={"Authorization": f"Bearer {session['refresh_token']}"})
    assert wrong_kind.status == 401

    clock.advance(timedelta(hours=1, seconds=1))
    expired = await api.get(f"{API}/me", headers=bearer(session))
    assert expired.status == 401 and (await expired.json())["error"]["code"] == "token_expired"


async def test_a_refresh_token_gives_new_tokens_once(api: Client, clock: FrozenClock) -> None:
    session = await login(api)
    clock.advance(timedelta(hours=2))
    refreshed = await api.post(f"{API}/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert refreshed.status == 200
    fresh = await refreshed.json()
    assert fresh["customer"]["id"] == session["customer"]["id"]
    assert (await api.get(f"{API}/me", headers=bearer(fresh))).status == 200

    replay = await api.post(f"{API}/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert replay.status == 401 and (await replay.json())["error"]["code"] == "invalid_token"
    access_as_refresh = await api.post(f"{API}/auth/refresh", json={"refresh_token": fresh["access_token"]})
    assert access_as_refresh.status == 401


async def test_bad_bodies_are_refused_clearly_and_nothing_is_stored(
    api: Client, graph: tuple[FakeZaloGraph, str]
) -> None:
    fake, _ = graph
    cases = [
        ({"json": {"access_token": {"$ne": ""}}}, 422, "validation_error"),
        ({"json": {"access_token": ["x"]}}, 422, "validation_error"),
        ({"json": {"access_token": TOKEN, "admin": True}}, 422, "validation_error"),
        ({"json": {}}, 422, "validation_error"),
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
        (
            {"data": b"access_token=x", "headers": {"Content-Type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ({"json": {"access_token": "x" * 20_000}}, 413, "payload_too_large"),
    ]
    for kwargs, status, code in cases:
        response = await api.post(f"{API}/auth/login", **kwargs)  # type: ignore[arg-type]
        body = await response.json()
        assert (response.status, body["error"]["code"]) == (status, code), kwargs
        assert set(body["error"]) >= {"code", "message"}
    assert fake.requests == []  # nothing reached Zalo
    assert await loyalty_of(api).customers.by_identity(Identity(channel="miniapp", user_id=USER)) is None


async def test_an_operator_in_a_query_parameter_or_path_is_refused(api: Client) -> None:
    session = await login(api)
    limit = await api.get(f"{API}/me/points", params={"limit": '{"$gt": 0}'}, headers=bearer(session))
    assert limit.status == 422
    order = await api.get(f"{API}/orders/%7B%22%24ne%22%3A1%7D", headers=bearer(session))
    assert order.status == 404 and (await order.json())["error"]["code"] == "not_found"
