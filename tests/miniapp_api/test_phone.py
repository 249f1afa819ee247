"""POST /me/phone: the getPhoneNumber code is exchanged with Zalo, and a chat customer with the same
phone becomes the same customer as the Mini App one."""

from __future__ import annotations

from datetime import timedelta

from loyalty.clock import FrozenClock
from loyalty.customers import Identity
from tests.fakes.zalo_graph import FakeZaloGraph
from tests.miniapp_api.conftest import API, TOKEN, USER, Client, bearer, login, loyalty_of


async def test_the_phone_code_is_exchanged_and_the_number_attached(
    api: Client, graph: tuple[FakeZaloGraph, str]
) -> None:
    fake, _ = graph
    session = await login(api)
    fake.add_phone_code("phone-code-1", TOKEN, "84912345678")

    response = await api.post(
        f"{API}/me/phone", json={"code": "phone-code-1", "access_token": TOKEN}, headers=bearer(session)
    )

    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["customer"]["phone"] == "+84912***678"
    assert body["customer"]["phone_verified"] is True
    assert body["merged"] is False
    assert body["welcome_voucher"]["status"] == "issued"  # the demo program's welcome voucher
    sent = fake.requests[-1]["headers"]
    assert sent["code"] == "phone-code-1" and sent["secret_key"] == fake.app_secret
    customer = await loyalty_of(api).customers.get(session["customer"]["id"])
    assert customer.phone == "+84912345678"

    # the code is single use: Zalo refuses it the second time
    again = await api.post(
        f"{API}/me/phone", json={"code": "phone-code-1", "access_token": TOKEN}, headers=bearer(session)
    )
    assert again.status == 422 and (await again.json())["error"]["code"] == "zalo_phone_refused"


async def test_a_chat_customer_with_the_same_phone_becomes_the_same_customer(
    api: Client, graph: tuple[FakeZaloGraph, str], clock: FrozenClock
) -> None:
    fake, _ = graph
    loyalty = loyalty_of(api)
    # a customer who chatted with the OA first, shared the phone there and earned points
    chat, _ = await loyalty.customers.get_or_create(Identity(channel="zalo", user_id="6618469916374226710"))
    await loyalty.verify_phone(chat.id, "0912 345 678", source="chat")
    await loyalty.ledger.earn(chat.id, 120, key="test:chat-points", reason="order")
    clock.advance(timedelta(days=3))  # the Mini App login comes later: the chat customer is the older

    session = await login(api)
    assert session["customer"]["id"] != chat.id
    fake.add_phone_code("phone-code-2", TOKEN, "84912345678")
    response = await api.post(
        f"{API}/me/phone", json={"code": "phone-code-2", "access_token": TOKEN}, headers=bearer(session)
    )

    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["merged"] is True
    assert body["customer"]["id"] == chat.id  # the older customer survives
    assert body["customer"]["points"] == 120
    # both identities now reach the one customer, and the old session follows the merge
    mini = await loyalty.customers.by_identity(Identity(channel="miniapp", user_id=USER))
    zalo = await loyalty.customers.by_identity(Identity(channel="zalo", user_id="6618469916374226710"))
    assert mini is not None and zalo is not None and mini.id == zalo.id == chat.id
    me = await (await api.get(f"{API}/me", headers=bearer(session))).json()
    assert me["id"] == chat.id and me["points"] == 120
    assert body["welcome_voucher"] is None or body["welcome_voucher"]["status"] == "issued"


async def test_the_access_token_must_be_the_session_users(
    api: Client, graph: tuple[FakeZaloGraph, str]
) -> None:
    fake, _ = graph
    fake.add_user("someone-else", "111222333")
    fake.add_phone_code("phone-code-3", "someone-else", "84987654321")
    session = await login(api)
    response = await api.post(
        f"{API}/me/phone",
        json={"code": "phone-code-3", "access_token": "someone-else"},
        headers=bearer(session),
    )
    assert response.status == 403 and (await response.json())["error"]["code"] == "zalo_user_mismatch"
    assert (await loyalty_of(api).customers.get(session["customer"]["id"])).phone is None


async def test_a_landline_from_zalo_is_refused_with_the_domain_code(
    api: Client, graph: tuple[FakeZaloGraph, str]
) -> None:
    fake, _ = graph
    fake.add_phone_code("phone-code-4", TOKEN, "842438251234")
    session = await login(api)
    response = await api.post(
        f"{API}/me/phone", json={"code": "phone-code-4", "access_token": TOKEN}, headers=bearer(session)
    )
    assert response.status == 422 and (await response.json())["error"]["code"] == "phone_not_mobile"
