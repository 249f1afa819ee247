"""Zalo OA re-authorization: OAuth v4 with PKCE (``shared/platforms/zalo.md`` section 3).

When Zalo refuses the stored refresh token (``ReauthorizationRequired``), an OA admin must consent again:

1. ``loyalty zalo authorize`` (:func:`start_authorization`) makes a PKCE verifier and challenge (S256)
   and a random ``state``, keeps the verifier under the state in Redis for :data:`STATE_TTL`, and prints
   the consent link ``{ZALO_OAUTH_BASE}/v4/oa/permission?app_id&redirect_uri&code_challenge&state``;
2. the admin opens it and consents; Zalo sends the browser to :data:`CALLBACK_PATH` on
   ``PUBLIC_BASE_URL`` with ``code``, ``state`` and ``oa_id``;
3. :func:`callback` takes the state (once: a replay finds nothing), checks the OA, exchanges the code
   with the verifier at ``POST {ZALO_OAUTH_BASE}/v4/oa/access_token`` and stores the new pair as the
   next version of the OA's tokens before answering (every worker picks it up from the store).

A bad, expired or replayed state is a 400 and nothing is stored; so is a code Zalo refuses.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
from datetime import timedelta
from typing import Final

from aiohttp import web
from pydantic import SecretStr
from redis.asyncio import Redis

from app import keys
from app.settings import Settings
from bot.channels.base import ChannelError
from bot.channels.zalo import AuthorizationRefused, ZaloTokens, consent_url, pkce_pair
from storage.platform_tokens import MongoTokenStore, OAuthStateStore

log = logging.getLogger("loyalty.zalo.oauth")

CALLBACK_PATH: Final = "/oauth/zalo/callback"
#: How long a consent link works: time for an admin to open it and log in to Zalo (the code Zalo then
#: issues is valid for 10 minutes on its own).
STATE_TTL: Final = timedelta(minutes=30)
# What a code looks like is unconfirmed: printable ASCII without spaces, bounded, is all we require.
_CODE: Final = re.compile(r"[\x21-\x7e]{1,2048}")


def configured(settings: Settings) -> bool:
    """The flow needs the app (id and secret: the token call) and the OA it authorizes."""
    return bool(settings.zalo_app_id and settings.zalo_app_secret is not None and settings.zalo_oa_id)


def redirect_uri(settings: Settings) -> str:
    """The callback URL; register exactly this in the Zalo app's settings (official account callback)."""
    return f"{settings.base_url}{CALLBACK_PATH}"


async def start_authorization(settings: Settings, redis: Redis) -> str:
    """Keep a new state and PKCE verifier in Redis and return the consent link for an OA admin."""
    assert settings.zalo_app_id is not None and settings.zalo_oa_id is not None
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(32)
    data = {"verifier": verifier, "app_id": settings.zalo_app_id, "oa_id": settings.zalo_oa_id}
    await OAuthStateStore(redis).put(state, data, ttl=STATE_TTL.total_seconds())
    return consent_url(
        str(settings.zalo_oauth_base),
        app_id=settings.zalo_app_id,
        redirect_uri=redirect_uri(settings),
        code_challenge=challenge,
        state=state,
    )


def register(app: web.Application) -> None:
    app.router.add_get(CALLBACK_PATH, callback, allow_head=False)


async def callback(request: web.Request) -> web.Response:
    """``GET /oauth/zalo/callback?code=...&state=...&oa_id=...``: where Zalo sends the admin's browser."""
    settings = request.app[keys.SETTINGS]
    resources = request.app[keys.RESOURCES]
    state, code = request.query.get("state", ""), request.query.get("code", "")
    if not state or not code:
        # An admin who refuses consent comes back without a code (the parameters Zalo then sends are
        # unconfirmed); the state, if any, is left to expire.
        return _page(400, "Chưa cấp quyền", "Zalo did not send an authorization code: nothing was changed.")
    data = await OAuthStateStore(resources.redis).take(state)
    if data is None or data.get("app_id") != settings.zalo_app_id or "verifier" not in data:
        log.warning("Zalo OAuth callback with an unknown, expired or used state: refused")
        return _page(
            400,
            "Liên kết không hợp lệ",
            "This authorization link is invalid, expired or already used. "
            "Run `loyalty zalo authorize` for a new one.",
        )
    oa_id = request.query.get("oa_id")
    if oa_id is not None and oa_id != data.get("oa_id"):
        log.warning("Zalo OAuth callback for OA %r, not the configured one: refused", oa_id[:64])
        return _page(
            400,
            "Sai Official Account",
            f"The app was authorized for another OA; authorize it for OA {data.get('oa_id')}.",
        )
    if not _CODE.fullmatch(code):
        return _page(400, "Mã không hợp lệ", "The authorization code is malformed: nothing was changed.")
    assert settings.zalo_app_id is not None and settings.zalo_app_secret is not None
    tokens = ZaloTokens(
        resources.http,
        MongoTokenStore(resources.db, resources.redis),
        oauth_base=str(settings.zalo_oauth_base),
        app_id=settings.zalo_app_id,
        app_secret=settings.zalo_app_secret.get_secret_value(),
        account_id=data["oa_id"],
        seed_access_token=_secret(settings.zalo_oa_access_token),
        seed_refresh_token=_secret(settings.zalo_oa_refresh_token),
    )
    try:
        saved = await tokens.authorize(code, data["verifier"])
    except AuthorizationRefused:
        return _page(
            400,
            "Zalo từ chối mã",
            "Zalo refused the authorization code (used or expired). Run `loyalty zalo authorize` again.",
        )
    except ChannelError as error:
        log.error("Zalo OAuth code exchange failed: %s", error)
        return _page(
            502, "Thử lại", "Zalo could not be reached to finish: run `loyalty zalo authorize` again."
        )
    return _page(
        200,
        "Đã cấp quyền",
        f"Zalo OA {data['oa_id']} is authorized again (tokens version {saved.version}). "
        "You can close this window.",
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _page(status: int, title: str, text: str) -> web.Response:
    body = (
        "<!doctype html><html lang=vi><meta charset=utf-8><title>social-loyalty</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></html>"
    )
    # The URL carried a one-time code: keep it out of caches and of any next page's Referer.
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return web.Response(status=status, text=body, content_type="text/html", headers=headers)
