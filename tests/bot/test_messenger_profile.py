"""Setting the Page's Messenger profile (Get Started, greeting, persistent menu) against a fake Graph."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.platform_cli import messenger_profile
from app.settings import Settings
from bot.channels.errors import TokenError
from bot.channels.messenger import MessengerClient, MessengerProfile
from handlers.common import GET_STARTED_PAYLOAD, HELP_PAYLOAD
from tests.fakes.graph import FakeGraph

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

MENU = [("Điểm của tôi", "sl:points"), ("Trợ giúp", "sl:help")]


@pytest.fixture
def graph() -> FakeGraph:
    return FakeGraph()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2.0) as client:
        yield client


@pytest.fixture
async def graph_base(aiohttp_server: ServerFactory, graph: FakeGraph) -> str:
    server = await aiohttp_server(graph.app())
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def make_client(graph_base: str, graph: FakeGraph, http: httpx.AsyncClient) -> Callable[..., MessengerClient]:
    def make(token: str = graph.token) -> MessengerClient:
        return MessengerClient(
            http,
            graph_base=graph_base,
            graph_version=graph.version,
            page_id=graph.page_id,
            page_access_token=token,
            sleep=_no_sleep,
        )

    return make


async def _no_sleep(_: float) -> None:
    return None


async def test_the_profile_is_set_in_one_call_shaped_as_the_graph_api_wants(
    make_client: Callable[..., MessengerClient], graph: FakeGraph
) -> None:
    profile = MessengerProfile(
        get_started_payload="sl:get_started",
        greetings={"en_US": "Hi {{user_first_name}}!", "default": "Chào {{user_first_name}}!"},
        menus={"default": MENU, "en_US": [("My points", "sl:points"), ("Help", "sl:help")]},
    )

    await make_client().set_profile(profile)

    (request,) = graph.requests
    assert (request.method, request.path) == ("POST", f"/{graph.version}/me/messenger_profile")
    assert request.query == {"access_token": graph.token}
    assert graph.messenger_profile == {
        "get_started": {"payload": "sl:get_started"},
        "greeting": [
            {"locale": "default", "text": "Chào {{user_first_name}}!"},
            {"locale": "en_US", "text": "Hi {{user_first_name}}!"},
        ],
        "persistent_menu": [
            {
                "locale": "default",
                "composer_input_disabled": False,
                "call_to_actions": [
                    {"type": "postback", "title": "Điểm của tôi", "payload": "sl:points"},
                    {"type": "postback", "title": "Trợ giúp", "payload": "sl:help"},
                ],
            },
            {
                "locale": "en_US",
                "composer_input_disabled": False,
                "call_to_actions": [
                    {"type": "postback", "title": "My points", "payload": "sl:points"},
                    {"type": "postback", "title": "Help", "payload": "sl:help"},
                ],
            },
        ],
    }


async def test_a_wrong_page_token_is_a_token_error(make_client: Callable[..., MessengerClient]) -> None:
    profile = MessengerProfile(get_started_payload="sl:get_started")

    with pytest.raises(TokenError):
        await make_client(token="EAA-wrong").set_profile(profile)


async def test_a_server_error_is_retried_then_the_profile_is_set(
    make_client: Callable[..., MessengerClient], graph: FakeGraph
) -> None:
    graph.fail_next(1, "5xx")

    await make_client().set_profile(MessengerProfile(get_started_payload="sl:get_started"))

    assert graph.messenger_profile == {"get_started": {"payload": "sl:get_started"}}
    assert len(graph.requests) == 2


@pytest.mark.parametrize(
    ("_case", "options"),
    [
        ("no default greeting", {"greetings": {"en_US": "Hi"}}),
        ("greeting too long", {"greetings": {"default": "x" * 161}}),
        ("no default menu", {"menus": {"en_US": MENU}}),
        ("menu title too long", {"menus": {"default": [("x" * 31, "sl:points")]}}),
        ("too many menu items", {"menus": {"default": [("Item", "sl:x")] * 21}}),
        ("empty payload", {"menus": {"default": [("Item", "")]}}),
    ],
)
def test_a_profile_beyond_messenger_limits_is_refused_before_any_call(
    _case: str, options: dict[str, object]
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message names the limit
        MessengerProfile(get_started_payload="sl:get_started", **options)  # type: ignore[arg-type]


async def test_the_fake_refuses_what_graph_refuses(
    graph_base: str, graph: FakeGraph, http: httpx.AsyncClient
) -> None:
    # a menu without Get Started in the same call (the fake asks for both: the real API needs the button)
    body = {"persistent_menu": [{"locale": "default", "call_to_actions": []}]}
    response = await http.post(
        f"{graph_base}/{graph.version}/me/messenger_profile", params={"access_token": graph.token}, json=body
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100
    assert graph.messenger_profile == {}


def test_the_deployment_profile_uses_our_payloads_and_the_message_templates(settings: Settings) -> None:
    profile = messenger_profile(settings)

    body = profile.body()
    assert body["get_started"] == {"payload": GET_STARTED_PAYLOAD}
    assert [g["locale"] for g in body["greeting"]] == ["default", "en_US"]
    assert settings.brand_name in body["greeting"][0]["text"]
    (default_menu, english_menu) = body["persistent_menu"]
    payloads = [action["payload"] for action in default_menu["call_to_actions"]]
    assert payloads == ["sl:points", "sl:vouchers", "sl:rewards", "sl:games", HELP_PAYLOAD]
    assert [a["payload"] for a in english_menu["call_to_actions"]] == payloads
    assert default_menu["call_to_actions"][0]["title"] == "Điểm của tôi"
    assert english_menu["call_to_actions"][0]["title"] == "My points"
