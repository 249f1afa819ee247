"""A fake Zalo: OA OpenAPI v3, OAuth v4 tokens and ZNS, checking requests the way the real API does.

One aiohttp application serves (the prefixes let a test check that each client uses its own base URL):

- ``/v3.0/oa/message/cs`` and ``/v3.0/oa/user/detail`` (OA API base: the server root);
- ``/oauth/v4/oa/access_token`` (OAuth base: ``<root>/oauth``);
- ``/zns/message/template`` (ZNS base: ``<root>/zns``).

As the real API (``shared/platforms/zalo.md``): the token is a bare ``access_token`` header and must be
the current one, else ``{"error": -216}`` (ZNS: ``-124``) with HTTP 200; failures are HTTP 200 with a
non-zero ``error``; refresh tokens are single-use and a refresh makes the previous access token invalid
(the stricter reading of an unconfirmed point). Tests make it fail on purpose with :meth:`FakeZalo.fail`
and :meth:`FakeZalo.expire_access_token`, and watch each request with :attr:`FakeZalo.observers`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web
from yarl import URL

OAUTH_PREFIX: Final = "/oauth"
ZNS_PREFIX: Final = "/zns"

MAX_TEXT: Final = 2000
MAX_BUTTONS: Final = 5
QUERY_BUTTONS: Final = frozenset({"oa.query.hide", "oa.query.show"})
BUTTON_TYPES: Final = QUERY_BUTTONS | {"oa.open.url", "oa.open.phone", "oa.open.sms"}
ZNS_PHONE: Final = re.compile(r"84\d{9,10}")

# The token endpoint's error bodies are unconfirmed (zalo.md section 3); these follow its example.
INVALID_REFRESH_TOKEN: Final = {"error": -14014, "error_name": "Invalid refresh token"}
INVALID_SECRET_KEY: Final = {"error": -14003, "error_name": "Invalid secret key"}
INVALID_APP_ID: Final = {"error": -14002, "error_name": "Invalid app id"}
INVALID_GRANT: Final = {"error": -14001, "error_name": "Invalid grant type"}
INVALID_CODE: Final = {"error": -14019, "error_name": "Invalid authorization code"}
INVALID_VERIFIER: Final = {"error": -14020, "error_name": "Invalid code verifier"}

Observer = Callable[[str, web.Request], Awaitable[None]]


@dataclass
class Failure:
    """One injected failure: an HTTP ``status``, a Zalo ``error`` code (HTTP 200), or a ``hang``."""

    status: int = 200
    error: int | None = None
    message: str = ""
    hang: bool = False


@dataclass
class FakeZalo:
    """The fake's state: tokens, what it received, and the failures it was told to answer."""

    app_id: str = "1234567890"
    app_secret: str = "app-secret-fake"
    oa_id: str = "388613280878808645"
    access_token: str | None = "at-initial-fake-0001"
    refresh_token: str = "rt-initial-fake-0001"
    #: seconds a refresh takes (widens the window in which concurrent senders race)
    refresh_delay: float = 0.0
    #: seconds a "hang" failure waits before answering (the client's timeout should be shorter)
    hang_seconds: float = 5.0
    used_refresh_tokens: set[str] = field(default_factory=set)
    refresh_calls: int = 0
    refresh_failures: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    message_attempts: int = 0
    zns: list[dict[str, Any]] = field(default_factory=list)
    zns_attempts: int = 0
    #: the access_token header of every OA and ZNS request, in order (None: no header)
    tokens_seen: list[str | None] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_following: set[str] = field(default_factory=set)
    zns_remaining: int = 500
    observers: list[Observer] = field(default_factory=list)
    failures: dict[str, deque[Failure]] = field(default_factory=dict)
    #: authorization codes issued by :meth:`consent` and not yet exchanged: code → PKCE challenge
    codes: dict[str, str] = field(default_factory=dict)
    #: every consent page request's query (what the admin's browser opened)
    consents: list[dict[str, str]] = field(default_factory=list)
    _minted: int = 0

    # ------------------------------------------------------------------------------------ controls

    def fail(
        self,
        route: str,
        *,
        status: int = 200,
        error: int | None = None,
        message: str = "",
        hang: bool = False,
        times: int = 1,
    ) -> None:
        """The next ``times`` requests to ``route`` (``message``, ``user``, ``oauth``, ``zns``) fail."""
        queue = self.failures.setdefault(route, deque())
        for _ in range(times):
            queue.append(Failure(status=status, error=error, message=message, hang=hang))

    def expire_access_token(self) -> None:
        """The current access token stops working now (Zalo answers ``-216`` / ``-124``)."""
        self.access_token = None

    def revoke_refresh_token(self) -> None:
        """The current refresh token becomes invalid (as if used elsewhere or revoked)."""
        self.used_refresh_tokens.add(self.refresh_token)

    def mint(self) -> tuple[str, str]:
        """A new token pair, as an admin's authorization would give (the previous refresh token dies)."""
        self._minted += 1
        self.used_refresh_tokens.add(self.refresh_token)
        self.access_token = f"at-{self._minted:04d}-{secrets.token_hex(8)}"
        self.refresh_token = f"rt-{self._minted:04d}-{secrets.token_hex(8)}"
        return self.access_token, self.refresh_token

    def consent(self, code_challenge: str) -> str:
        """An OA admin consents: a single-use authorization code bound to ``code_challenge``."""
        code = f"code-{secrets.token_hex(8)}"
        self.codes[code] = code_challenge
        return code

    # ----------------------------------------------------------------------------------------- app

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v3.0/oa/message/cs", self._message)
        app.router.add_get("/v3.0/oa/user/detail", self._user_detail)
        app.router.add_post(f"{OAUTH_PREFIX}/v4/oa/access_token", self._oauth)
        app.router.add_get(f"{OAUTH_PREFIX}/v4/oa/permission", self._permission)
        app.router.add_post(f"{ZNS_PREFIX}/message/template", self._zns)
        return app

    async def _prelude(self, route: str, request: web.Request) -> web.Response | None:
        for observer in list(self.observers):
            await observer(route, request)
        queue = self.failures.get(route)
        if not queue:
            return None
        failure = queue.popleft()
        if failure.hang:
            await asyncio.sleep(self.hang_seconds)
            return web.json_response({"error": 0, "message": "too late"})
        if failure.status != 200:
            return web.Response(status=failure.status, text="upstream error")
        return _error(failure.error or -1, failure.message or f"injected error {failure.error}")

    def _token_ok(self, request: web.Request) -> bool:
        token = request.headers.get("access_token")
        self.tokens_seen.append(token)
        return self.access_token is not None and token == self.access_token

    # ------------------------------------------------------------------------------------ handlers

    async def _message(self, request: web.Request) -> web.Response:
        self.message_attempts += 1
        if (early := await self._prelude("message", request)) is not None:
            return early
        if not self._token_ok(request):
            return _error(-216, "Access token is invalid")
        if request.content_type != "application/json":
            return _error(-201, "Content-Type must be application/json")
        try:
            body = await request.json()
        except ValueError:
            return _error(-201, "body is not JSON")
        problem = _check_message_body(body)
        if problem:
            return _error(-201, problem)
        user_id = body["recipient"]["user_id"]
        if user_id in self.not_following:
            return _error(-213, "User has not followed OA")
        self.messages.append(body)
        return web.json_response(
            {
                "error": 0,
                "message": "Success",
                "data": {
                    "message_id": secrets.token_hex(10),
                    "user_id": user_id,
                    "sent_time": "1626926349402",
                    "quota": {"quota_type": "reply", "remain": "8", "total": "8"},
                },
            }
        )

    async def _user_detail(self, request: web.Request) -> web.Response:
        if (early := await self._prelude("user", request)) is not None:
            return early
        if not self._token_ok(request):
            return _error(-216, "Access token is invalid")
        try:
            query = json.loads(request.query.get("data", ""))
        except ValueError:
            return _error(-201, "data is not JSON")
        user_id = query.get("user_id") if isinstance(query, dict) else None
        if not isinstance(user_id, str) or user_id not in self.users or user_id in self.not_following:
            return _error(-213, "User has not followed OA")
        return web.json_response({"error": 0, "message": "Success", "data": self.users[user_id]})

    async def _oauth(self, request: web.Request) -> web.Response:
        self.refresh_calls += 1
        if (early := await self._prelude("oauth", request)) is not None:
            return early
        await asyncio.sleep(self.refresh_delay)
        form = await request.post()
        if request.headers.get("secret_key") != self.app_secret:
            self.refresh_failures += 1
            return web.json_response(INVALID_SECRET_KEY)
        if request.content_type != "application/x-www-form-urlencoded" or form.get("app_id") != self.app_id:
            self.refresh_failures += 1
            return web.json_response(INVALID_APP_ID)
        if form.get("grant_type") == "authorization_code":
            return self._exchange_code(form)
        if form.get("grant_type") != "refresh_token":
            self.refresh_failures += 1
            return web.json_response(INVALID_GRANT)
        token = form.get("refresh_token")
        if token != self.refresh_token or token in self.used_refresh_tokens:
            self.refresh_failures += 1
            return web.json_response(INVALID_REFRESH_TOKEN)
        access, refresh = self.mint()
        return web.json_response({"access_token": access, "refresh_token": refresh, "expires_in": "90000"})

    def _exchange_code(self, form: Any) -> web.Response:
        """``grant_type=authorization_code``: the code must be one we issued, unused, and the verifier's
        S256 must be its challenge (section 3). A code is spent by any attempt, as single-use codes are."""
        challenge = self.codes.pop(str(form.get("code", "")), None)
        if challenge is None:
            return web.json_response(INVALID_CODE)
        verifier = str(form.get("code_verifier", ""))
        digest = hashlib.sha256(verifier.encode()).digest()
        if not verifier or base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != challenge:
            return web.json_response(INVALID_VERIFIER)
        access, refresh = self.mint()
        return web.json_response({"access_token": access, "refresh_token": refresh, "expires_in": "90000"})

    async def _permission(self, request: web.Request) -> web.Response:
        """The consent page: with the documented parameters, the admin consents and is redirected to
        ``redirect_uri?code=...&oa_id=...&state=...``."""
        query = dict(request.query)
        self.consents.append(query)
        required = ("app_id", "redirect_uri", "code_challenge", "state")
        if any(not query.get(name) for name in required) or query["app_id"] != self.app_id:
            return web.Response(status=400, text="invalid consent request")
        code = self.consent(query["code_challenge"])
        target = URL(query["redirect_uri"]).update_query(code=code, oa_id=self.oa_id, state=query["state"])
        raise web.HTTPFound(str(target))

    async def _zns(self, request: web.Request) -> web.Response:
        self.zns_attempts += 1
        if (early := await self._prelude("zns", request)) is not None:
            return early
        if not self._token_ok(request):
            return _error(-124, "Access token is invalid")
        try:
            body = await request.json()
        except ValueError:
            return _error(-201, "body is not JSON")
        if not isinstance(body, dict):
            return _error(-201, "body is not an object")
        phone = body.get("phone")
        if not isinstance(phone, str) or not ZNS_PHONE.fullmatch(phone):
            return _error(-108, "Phone number is invalid")
        template_id = body.get("template_id")
        if not isinstance(template_id, str) or not template_id:
            return _error(-109, "Template ID is invalid")
        data = body.get("template_data")
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            return _error(-1124, "Template data is invalid")
        tracking_id = body.get("tracking_id")
        if not isinstance(tracking_id, str) or not 0 < len(tracking_id) <= 48:
            return _error(-201, "tracking_id is invalid")
        if self.zns_remaining <= 0:
            return _error(-144, "OA has exceeded the daily quota")
        self.zns_remaining -= 1
        self.zns.append(body)
        return web.json_response(
            {
                "error": 0,
                "message": "Success",
                "data": {
                    "msg_id": secrets.token_hex(10),
                    "sent_time": "1626926349402",
                    "sending_mode": "1",
                    "quota": {"dailyQuota": "500", "remainingQuota": str(self.zns_remaining)},
                },
            }
        )


def _error(code: int, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message})


def _check_button(button: Any) -> str | None:
    if not isinstance(button, dict):
        return "a button is not an object"
    title, kind, payload = button.get("title"), button.get("type"), button.get("payload")
    if not isinstance(title, str) or not title:
        return "a button needs a title"
    if kind not in BUTTON_TYPES:
        return f"unknown button type {kind!r}"
    if kind in QUERY_BUTTONS:
        return None if isinstance(payload, str) and payload else "a query button needs a string payload"
    if kind == "oa.open.url":
        ok = isinstance(payload, dict) and isinstance(payload.get("url"), str)
        return None if ok else "oa.open.url needs payload.url"
    ok = isinstance(payload, dict) and isinstance(payload.get("phone_code"), str)
    return None if ok else f"{kind} needs payload.phone_code"


def _check_buttons(buttons: Any, *, required: bool) -> str | None:
    if not isinstance(buttons, list) or (required and not buttons):
        return "buttons must be a non-empty list" if required else "buttons must be a list"
    if len(buttons) > MAX_BUTTONS:
        return f"at most {MAX_BUTTONS} buttons"
    for button in buttons:
        if problem := _check_button(button):
            return problem
    return None


def _check_message_body(body: Any) -> str | None:
    """What the real API would refuse in a ``/message/cs`` body (``-201``), or ``None``."""
    if not isinstance(body, dict):
        return "body is not an object"
    recipient = body.get("recipient")
    if not isinstance(recipient, dict) or not isinstance(recipient.get("user_id"), str):
        return "recipient.user_id is required"
    message = body.get("message")
    if not isinstance(message, dict) or not ({"text", "attachment"} & message.keys()):
        return "message needs text or an attachment"
    if "text" in message:
        text = message["text"]
        if not isinstance(text, str) or not text or len(text) > MAX_TEXT:
            return f"text must have 1 to {MAX_TEXT} characters"
    if "attachment" not in message:
        return None
    attachment = message["attachment"]
    if not isinstance(attachment, dict) or attachment.get("type") != "template":
        return "attachment.type must be template"
    payload = attachment.get("payload")
    if not isinstance(payload, dict):
        return "attachment.payload is required"
    if payload.get("template_type") is None:
        if "text" not in message:
            return "a button message needs text"
        return _check_buttons(payload.get("buttons"), required=True)
    return _check_template(payload)


def _check_template(payload: dict[str, Any]) -> str | None:
    kind = payload.get("template_type")
    elements = payload.get("elements")
    if not isinstance(elements, list) or not elements or not all(isinstance(e, dict) for e in elements):
        return "elements must be a non-empty list of objects"
    if kind == "media":
        element = elements[0]
        if (
            len(elements) != 1
            or element.get("media_type") != "image"
            or not isinstance(element.get("url"), str)
        ):
            return "media needs one image element with a url"
        return None
    if kind == "list":
        if len(elements) > 5 or not all(isinstance(e.get("title"), str) and e["title"] for e in elements):
            return "list elements need a title (at most 5)"
        return _check_buttons(payload.get("buttons", []), required=False)
    if kind == "request_user_info":
        if len(elements) != 1 or not isinstance(elements[0].get("title"), str):
            return "request_user_info needs one element with a title"
        return None
    return f"unknown template_type {kind!r}"
