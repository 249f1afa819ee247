"""A fake Facebook Graph API (Send API and user profile) that checks requests like the real one.

It follows ``shared/platforms/messenger.md`` Part A: a request the real API would refuse gets the real
error shape (code 100, HTTP 400; 190 for a missing or wrong token), so a client bug shows up as the same
typed error it would cause in production. Accepted sends are kept in :attr:`FakeGraph.sent`; every
request, refused or not, in :attr:`FakeGraph.requests`. :meth:`FakeGraph.fail_next` makes the next calls
fail the way the platform does.

Run it with pytest-aiohttp: ``server = await aiohttp_server(graph.app())``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from aiohttp import web

FailureKind = Literal["timeout", "5xx", "rate_limited", "outside_window", "blocked", "token"]

MESSAGING_TYPES: Final = frozenset({"RESPONSE", "UPDATE", "MESSAGE_TAG"})
MESSAGE_TAGS: Final = frozenset(
    {"ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "CUSTOMER_FEEDBACK", "HUMAN_AGENT", "POST_PURCHASE_UPDATE"}
)
SENDER_ACTIONS: Final = frozenset({"typing_on", "typing_off", "mark_seen"})
ATTACHMENT_TYPES: Final = frozenset({"audio", "file", "image", "template", "video"})
QUICK_REPLY_TYPES: Final = frozenset({"text", "user_phone_number", "user_email"})
BUTTON_TYPES: Final = frozenset({"web_url", "postback", "phone_number"})
PROFILE_FIELDS: Final = frozenset(
    {"id", "name", "first_name", "last_name", "profile_pic", "locale", "timezone", "gender"}
)


def graph_error(
    message: str, code: int, subcode: int | None = None, *, type_: str = "OAuthException", **extra: Any
) -> dict[str, Any]:
    """The Graph error body (messenger.md A.3 "Error shape")."""
    error: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = "AbCdEfGhIjK"
    error.update(extra)
    return {"error": error}


# The failures :meth:`FakeGraph.fail_next` can inject, as the real API answers them.
FAILURES: Final[dict[str, tuple[int, dict[str, Any]]]] = {
    "5xx": (
        500,
        graph_error(
            "An unexpected error has occurred. Please retry your request later.", 2, is_transient=True
        ),
    ),
    "rate_limited": (
        400,
        graph_error("(#613) Calls to this api have exceeded the rate limit.", 613, 2534040),
    ),
    "outside_window": (
        400,
        graph_error("(#10) This message is sent outside of allowed window.", 10, 2018278),
    ),
    "blocked": (400, graph_error("(#551) This person isn't available right now.", 551, 1545041)),
    "token": (400, graph_error("Invalid OAuth access token - Cannot parse access token", 190)),
}


class Invalid(Exception):
    """A request the real API would refuse with ``(#100)``."""


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class FakeGraph:
    """The fake's state: configuration, what it received, and the failures queued for the next calls."""

    version: str = "v25.0"
    page_id: str = "1000000000001"
    token: str = "EAAtest-page-token-0123456789"
    #: how long a "timeout" failure keeps the request open; longer than the client's timeout
    hang_seconds: float = 2.0
    #: profiles by PSID; a PSID not here gets ``{}`` (the API's answer when it cannot read the profile)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: fields the app may read; asking for another fails the call (100/2018247, A.4)
    granted_fields: set[str] = field(
        default_factory=lambda: {"id", "name", "first_name", "last_name", "profile_pic"}
    )
    sent: list[dict[str, Any]] = field(default_factory=list)
    #: the Messenger profile as set so far (``POST /me/messenger_profile`` merges its properties in)
    messenger_profile: dict[str, Any] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    _failures: deque[str] = field(default_factory=deque)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, n: int = 1, kind: FailureKind = "5xx", *, after: int = 0) -> None:
        """Fail the ``n`` calls that follow the next ``after`` ones (well-formed or not) with ``kind``."""
        if kind != "timeout" and kind not in FAILURES:
            raise ValueError(f"unknown failure kind {kind!r}")
        self._failures.extend(["ok"] * after + [kind] * n)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The ``message`` objects of the accepted sends (sender actions left out)."""
        return [body["message"] for body in self.sent if "message" in body]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(f"/{self.version}/{{node}}/messages", self._messages)
        app.router.add_post(f"/{self.version}/me/messenger_profile", self._profile)
        app.router.add_get(f"/{self.version}/{{node}}", self._node)
        return app

    # ------------------------------------------------------------------ handlers

    async def _messages(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.requests.append(Recorded(request.method, request.path, dict(request.query), body))
        if (refused := self._check_token(request)) is not None:
            return refused
        if request.match_info["node"] not in {"me", self.page_id}:
            return _invalid(f"(#100) Unsupported post request. Object with ID '{request.match_info['node']}'")
        if request.content_type != "application/json" or not isinstance(body, dict):
            return _invalid("(#100) The parameter recipient is required")
        try:
            _check_send(body)
        except Invalid as error:
            return _invalid(str(error))
        if (failed := await self._injected()) is not None:
            return failed
        self.sent.append(body)
        answer: dict[str, Any] = {"recipient_id": body["recipient"]["id"]}
        if "message" in body:
            answer["message_id"] = f"m_fake{next(self._ids)}"
        return web.json_response(answer)

    async def _profile(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.requests.append(Recorded(request.method, request.path, dict(request.query), body))
        if (refused := self._check_token(request)) is not None:
            return refused
        if request.content_type != "application/json" or not isinstance(body, dict) or not body:
            return _invalid("(#100) Requires one of the params: get_started, greeting, persistent_menu, ...")
        try:
            _check_profile(body)
        except Invalid as error:
            return _invalid(str(error))
        if (failed := await self._injected()) is not None:
            return failed
        self.messenger_profile.update(body)
        return web.json_response({"result": "success"})

    async def _node(self, request: web.Request) -> web.Response:
        self.requests.append(Recorded(request.method, request.path, dict(request.query), None))
        if (refused := self._check_token(request)) is not None:
            return refused
        fields = [f for f in request.query.get("fields", "").split(",") if f]
        if unknown := [f for f in fields if f not in PROFILE_FIELDS]:
            return _invalid(f"(#100) Tried accessing nonexisting field ({unknown[0]}) on node type (User)")
        if any(f not in self.granted_fields for f in fields):
            return _invalid("(#100) Insufficient permission to access user profile.", subcode=2018247)
        if (failed := await self._injected()) is not None:
            return failed
        profile = self.profiles.get(request.match_info["node"])
        if profile is None:
            return web.json_response({})
        return web.json_response({k: v for k, v in profile.items() if k in fields or k == "id"})

    def _check_token(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token")
        if token is None:
            status, body = 400, graph_error("An active access token must be used to query information.", 190)
            return web.json_response(body, status=status)
        if token != self.token:
            status, body = FAILURES["token"]
            return web.json_response(body, status=status)
        return None

    async def _injected(self) -> web.Response | None:
        if not self._failures:
            return None
        kind = self._failures.popleft()
        if kind == "ok":
            return None
        if kind == "timeout":
            await asyncio.sleep(self.hang_seconds)
            # The client gave up long ago; whether Meta delivered it is unknowable to the client, the
            # fake does not deliver.
            return web.json_response(FAILURES["5xx"][1], status=500)
        status, body = FAILURES[kind]
        return web.json_response(body, status=status)


def _invalid(message: str, *, subcode: int | None = None) -> web.Response:
    return web.json_response(graph_error(message, 100, subcode), status=400)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise Invalid(message)


def _text(value: Any, limit: int, name: str, *, required: bool = True) -> None:
    if value is None and not required:
        return
    _require(isinstance(value, str) and value != "", f"(#100) The parameter {name} is required")
    _require(len(value) <= limit, f"(#100) Param {name} must be at most {limit} characters long")


def _check_send(body: dict[str, Any]) -> None:
    recipient = body.get("recipient")
    _require(
        isinstance(recipient, dict) and bool(recipient.get("id")),
        "(#100) The parameter recipient is required",
    )
    has_message, has_action = "message" in body, "sender_action" in body
    _require(
        has_message != has_action, "(#100) Exactly one of message or sender_action must be set in the request"
    )
    if has_action:
        _require(body["sender_action"] in SENDER_ACTIONS, "(#100) Param sender_action must be one of ...")
        return
    messaging_type = body.get("messaging_type")
    _require(
        messaging_type in MESSAGING_TYPES, "(#100) Param messaging_type must be one of RESPONSE, UPDATE, ..."
    )
    if messaging_type == "MESSAGE_TAG":
        _require(body.get("tag") in MESSAGE_TAGS, "(#100) Param tag must be a valid message tag")
    else:
        _require("tag" not in body, "(#100) A tag can only be sent with messaging_type MESSAGE_TAG")
    _check_message(body["message"])


def _check_message(message: Any) -> None:
    _require(isinstance(message, dict), "(#100) Param message must be an object")
    _require(
        ("text" in message) != ("attachment" in message), "(#100) Message must contain text or attachment"
    )
    if "text" in message:
        _text(message["text"], 2000, "message[text]")
    else:
        _check_attachment(message["attachment"])
    if "quick_replies" in message:
        replies = message["quick_replies"]
        _require(isinstance(replies, list) and 1 <= len(replies) <= 13, "(#100) Param quick_replies: 1 to 13")
        for reply in replies:
            _require(
                reply.get("content_type") in QUICK_REPLY_TYPES, "(#100) Invalid quick reply content_type"
            )
            if reply["content_type"] == "text":
                _text(reply.get("title"), 20, "quick_replies[title]")
                _text(reply.get("payload"), 1000, "quick_replies[payload]")


def _check_attachment(attachment: Any) -> None:
    _require(isinstance(attachment, dict), "(#100) Param attachment must be an object")
    _require(attachment.get("type") in ATTACHMENT_TYPES, "(#100) Invalid attachment type")
    payload = attachment.get("payload")
    _require(isinstance(payload, dict), "(#100) The parameter attachment[payload] is required")
    if attachment["type"] != "template":
        _require(bool(payload.get("url") or payload.get("attachment_id")), "(#100) Attachment needs a url")
        return
    kind = payload.get("template_type")
    if kind == "button":
        _text(payload.get("text"), 640, "payload[text]")
        buttons = payload.get("buttons")
        _require(
            isinstance(buttons, list) and 1 <= len(buttons) <= 3, "(#100) Button template: 1 to 3 buttons"
        )
        for button in buttons:
            _check_button(button)
    elif kind == "generic":
        elements = payload.get("elements")
        _require(isinstance(elements, list) and 1 <= len(elements) <= 10, "(#100) Generic template: 1 to 10")
        for element in elements:
            _text(element.get("title"), 80, "elements[title]")
            _text(element.get("subtitle"), 80, "elements[subtitle]", required=False)
            buttons = element.get("buttons", [])
            _require(
                isinstance(buttons, list) and len(buttons) <= 3, "(#100) Generic element: at most 3 buttons"
            )
            for button in buttons:
                _check_button(button)
    else:
        raise Invalid("(#100) Invalid template_type")


def _check_button(button: Any) -> None:
    _require(isinstance(button, dict) and button.get("type") in BUTTON_TYPES, "(#100) Invalid button type")
    _text(button.get("title"), 20, "buttons[title]")
    if button["type"] == "web_url":
        _require(str(button.get("url", "")).startswith(("http://", "https://")), "(#100) Invalid button url")
    elif button["type"] == "postback":
        _text(button.get("payload"), 1000, "buttons[payload]")
    else:
        _require(str(button.get("payload", "")).startswith("+"), "(#100) Phone number must start with +")


PROFILE_PROPERTIES: Final = frozenset(
    {
        "get_started",
        "greeting",
        "ice_breakers",
        "persistent_menu",
        "whitelisted_domains",
        "account_linking_url",
    }
)
MENU_BUTTON_TYPES: Final = frozenset({"postback", "web_url"})


def _check_profile(body: dict[str, Any]) -> None:
    """The Messenger Profile API's rules (Meta's reference: get_started, greeting, persistent_menu)."""
    unknown = set(body) - PROFILE_PROPERTIES
    _require(not unknown, f"(#100) Param {sorted(unknown)[0] if unknown else ''} is not a profile property")
    if "get_started" in body:
        started = body["get_started"]
        _require(isinstance(started, dict), "(#100) Param get_started must be an object")
        _text(started.get("payload"), 1000, "get_started[payload]")
    if "greeting" in body:
        greetings = body["greeting"]
        _require(isinstance(greetings, list) and bool(greetings), "(#100) Param greeting must be an array")
        locales = []
        for greeting in greetings:
            _require(isinstance(greeting, dict), "(#100) Param greeting[] must be an object")
            _text(greeting.get("locale"), 10, "greeting[locale]")
            _text(greeting.get("text"), 160, "greeting[text]")
            locales.append(greeting["locale"])
        _require("default" in locales, "(#100) greeting must have a default locale")
        _require(len(set(locales)) == len(locales), "(#100) greeting locales must be unique")
    if "persistent_menu" in body:
        _check_persistent_menu(body["persistent_menu"], has_get_started="get_started" in body)


def _check_persistent_menu(menus: Any, *, has_get_started: bool) -> None:
    # The menu needs a Get Started button on the Page; the fake only sees this request, so it asks for
    # both in one call (as our client sends them).
    _require(has_get_started, "(#100) You must set a Get Started button to use the persistent menu")
    _require(isinstance(menus, list) and bool(menus), "(#100) Param persistent_menu must be an array")
    locales = []
    for menu in menus:
        _require(isinstance(menu, dict), "(#100) Param persistent_menu[] must be an object")
        _text(menu.get("locale"), 10, "persistent_menu[locale]")
        locales.append(menu["locale"])
        _require(
            isinstance(menu.get("composer_input_disabled", False), bool),
            "(#100) Param composer_input_disabled must be a boolean",
        )
        actions = menu.get("call_to_actions")
        _require(
            isinstance(actions, list) and 1 <= len(actions) <= 20,
            "(#100) Param call_to_actions: 1 to 20 buttons",
        )
        for action in actions:
            _require(
                isinstance(action, dict) and action.get("type") in MENU_BUTTON_TYPES,
                "(#100) Invalid call_to_actions type",
            )
            _text(action.get("title"), 30, "call_to_actions[title]")
            if action["type"] == "postback":
                _text(action.get("payload"), 1000, "call_to_actions[payload]")
            else:
                _require(str(action.get("url", "")).startswith("https://"), "(#100) Invalid url")
    _require("default" in locales, "(#100) persistent_menu must have a default locale")
    _require(len(set(locales)) == len(locales), "(#100) persistent_menu locales must be unique")
