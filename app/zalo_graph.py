"""The Zalo Graph API calls of the Mini App login (``shared/platforms/zalo.md`` §6), on the process's
shared httpx client. It implements ``miniapp_api.ports.ZaloGraph``: the Mini App API declares what it
needs and stays free of an HTTP client library; this module, in the composition root, makes the calls.

- ``GET {ZALO_GRAPH_BASE}/v2.0/me?fields=id,name,picture`` with headers ``access_token`` and
  ``appsecret_proof = hex(HMAC-SHA256(key=ZALO_APP_SECRET, msg=access_token))``; the answer is flat.
- ``GET {ZALO_GRAPH_BASE}/v2.0/me/info`` with headers ``access_token``, ``code`` (from getPhoneNumber)
  and ``secret_key`` (the raw app secret: the asymmetry is Zalo's).

Failures come with HTTP 200 and a non-zero ``error``: the ``error`` field decides, never the status.
Tokens, codes and the secret are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from typing import Any, Final

import httpx

from miniapp_api.ports import GraphPhoneRefused, GraphTokenInvalid, GraphUnavailable, ZaloUser

log = logging.getLogger("loyalty.zalo_graph")

_USER_ID: Final = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
_TIMEOUT: Final = httpx.Timeout(8.0, connect=4.0)


def appsecret_proof(app_secret: str, access_token: str) -> str:
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


class HttpZaloGraph:
    def __init__(self, http: httpx.AsyncClient, base_url: str, app_secret: str | None) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._secret = app_secret

    async def _get(self, path: str, headers: dict[str, str], params: dict[str, str] | None = None) -> Any:
        try:
            response = await self._http.get(
                self._base + path, headers=headers, params=params, timeout=_TIMEOUT
            )
        except httpx.HTTPError as error:
            log.warning("Zalo Graph %s unreachable: %s", path, type(error).__name__)
            raise GraphUnavailable(type(error).__name__) from None
        if response.status_code >= 500:
            log.warning("Zalo Graph %s answered HTTP %d", path, response.status_code)
            raise GraphUnavailable(f"HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise GraphUnavailable("not JSON") from None
        if not isinstance(data, dict):
            raise GraphUnavailable("not a JSON object")
        return data

    def _secret_or_fail(self) -> str:
        if not self._secret:
            log.error("the Mini App login needs ZALO_APP_SECRET")
            raise GraphUnavailable("ZALO_APP_SECRET is not set")
        return self._secret

    async def me(self, access_token: str) -> ZaloUser:
        secret = self._secret_or_fail()
        data = await self._get(
            "/v2.0/me",
            {"access_token": access_token, "appsecret_proof": appsecret_proof(secret, access_token)},
            {"fields": "id,name,picture"},
        )
        code = _error_code(data)
        user_id = data.get("id")
        if code != 0 or not isinstance(user_id, str | int) or not _USER_ID.match(str(user_id)):
            log.info("Zalo refused a Mini App access token (error %s)", code)
            raise GraphTokenInvalid(code or -1, str(data.get("message", "")))
        # Without scope.userInfo only the id comes back (zmp-sdk >= 2.35): name and avatar are optional.
        name = data.get("name") if isinstance(data.get("name"), str) else None
        picture = data.get("picture")
        avatar = None
        if isinstance(picture, dict) and isinstance(picture.get("data"), dict):
            url = picture["data"].get("url")
            avatar = url if isinstance(url, str) and url.startswith("https://") and len(url) <= 500 else None
        return ZaloUser(id=str(user_id), name=(name or "").strip()[:80] or None, avatar=avatar)

    async def phone_number(self, access_token: str, code: str) -> str:
        secret = self._secret_or_fail()
        data = await self._get(
            "/v2.0/me/info", {"access_token": access_token, "code": code, "secret_key": secret}
        )
        error = _error_code(data)
        payload = data.get("data")
        number = payload.get("number") if isinstance(payload, dict) else None
        if error != 0 or not isinstance(number, str | int) or not str(number).strip():
            log.info("Zalo refused a phone code (error %s)", error)
            raise GraphPhoneRefused(error or -1, str(data.get("message", "")))
        return str(number)


def _error_code(data: dict[str, Any]) -> int:
    code = data.get("error", 0)
    if isinstance(code, bool):
        return -1
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.lstrip("-").isdigit():
        return int(code)
    return -1
