"""A fake Zalo Graph API for the Mini App login (``shared/platforms/zalo.md`` §6) that checks requests
the way the real one does: ``GET /v2.0/me`` needs the ``access_token`` header and an ``appsecret_proof``
computed with the app secret (else ``-242``); ``GET /v2.0/me/info`` needs ``access_token``, ``code``
and the raw ``secret_key``. Failures come with HTTP 200 and a non-zero ``error``, as Zalo answers.

Register users with :meth:`FakeZaloGraph.add_user`, phone codes with :meth:`add_phone_code` (single use),
expire a token with :meth:`expire`. Every request is kept in :attr:`requests`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class GraphUser:
    id: str
    name: str | None = None
    avatar: str | None = None


@dataclass
class FakeZaloGraph:
    app_secret: str = "zalo-app-secret-for-tests"
    tokens: dict[str, GraphUser] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)
    phone_codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (token, number)
    requests: list[dict[str, Any]] = field(default_factory=list)
    down: bool = False

    def add_user(self, token: str, user_id: str, name: str | None = None, avatar: str | None = None) -> None:
        self.tokens[token] = GraphUser(user_id, name, avatar)

    def add_phone_code(self, code: str, token: str, number: str) -> None:
        self.phone_codes[code] = (token, number)

    def expire(self, token: str) -> None:
        self.expired.add(token)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v2.0/me", self._me)
        app.router.add_get("/v2.0/me/info", self._info)
        return app

    def _record(self, request: web.Request) -> None:
        self.requests.append(
            {"path": request.path, "query": dict(request.query), "headers": dict(request.headers)}
        )

    def _token_error(self, token: str | None) -> dict[str, Any] | None:
        if not token:
            return {"error": -501, "message": "access_token is missing"}
        if token in self.expired:
            return {"error": -124, "message": "Access token has expired"}
        if token not in self.tokens:
            return {"error": 452, "message": "Session key invalid"}
        return None

    async def _me(self, request: web.Request) -> web.Response:
        self._record(request)
        if self.down:
            return web.Response(status=502, text="bad gateway")
        token = request.headers.get("access_token")
        if request.query.get("fields") != "id,name,picture":
            return web.json_response({"error": -201, "message": "fields is invalid"})
        problem = self._token_error(token)
        if problem is not None:
            return web.json_response(problem)
        assert token is not None
        proof = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("appsecret_proof", ""), proof):
            return web.json_response({"error": -242, "message": "Invalid appsecret_proof"})
        user = self.tokens[token]
        body: dict[str, Any] = {"id": user.id, "error": 0, "message": "Success"}
        if user.name is not None:
            body["name"] = user.name
        if user.avatar is not None:
            body["picture"] = {"data": {"url": user.avatar}}
        return web.json_response(body)

    async def _info(self, request: web.Request) -> web.Response:
        self._record(request)
        if self.down:
            return web.Response(status=502, text="bad gateway")
        token = request.headers.get("access_token")
        problem = self._token_error(token)
        if problem is not None:
            return web.json_response(problem)
        if request.headers.get("secret_key") != self.app_secret:
            return web.json_response({"error": -14002, "message": "secret_key is invalid"})
        code = request.headers.get("code", "")
        entry = self.phone_codes.pop(code, None)  # single use
        if entry is None or entry[0] != token:
            return web.json_response({"error": -14003, "message": "code is invalid or expired"})
        return web.json_response({"data": {"number": entry[1]}, "error": 0, "message": "Success"})


def main(argv: list[str] | None = None) -> None:
    """Serve the fake on its own, so the Mini App API can be tried with curl against ``make run``:

    ``python -m tests.fakes.zalo_graph --port 8090 --user demo-token:5521772797175877:An
    --phone demo-phone-code:demo-token:84912345678`` (app secret: ``--secret``, default as in tests).
    """
    import argparse  # noqa: PLC0415 - only the command line needs it

    parser = argparse.ArgumentParser(prog="python -m tests.fakes.zalo_graph", description=main.__doc__)
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--secret", default=FakeZaloGraph.app_secret, help="the ZALO_APP_SECRET to expect")
    parser.add_argument("--user", action="append", default=[], metavar="TOKEN:ID[:NAME]")
    parser.add_argument("--phone", action="append", default=[], metavar="CODE:TOKEN:NUMBER")
    args = parser.parse_args(argv)
    fake = FakeZaloGraph(app_secret=args.secret)
    for spec in args.user:
        token, user_id, *name = spec.split(":", 2)
        fake.add_user(token, user_id, name[0] if name else None)
    for spec in args.phone:
        code, token, number = spec.split(":", 2)
        fake.add_phone_code(code, token, number)
    web.run_app(fake.app(), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
