"""Helpers of the conversation end-to-end tests: one app with the Zalo OA, the Messenger Page and the
emulator all configured against fake platform servers, and the platforms' webhook deliveries, signed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from tests.fakes.graph import FakeGraph
from tests.fakes.zalo import FakeZalo

OA_SECRET_KEY = "oa-secret-key-conversations"
APP_SECRET = "messenger-app-secret-conversations"
_ids = itertools.count(1)


class Zalo:
    """Posts Zalo OA webhook deliveries (shapes of webhooks/zalo/fixtures) for one follower."""

    def __init__(self, client: TestClient[Any, Any], fake: FakeZalo, user: str) -> None:
        self.client, self.fake, self.user = client, fake, user

    async def post(self, event: dict[str, Any], *, times: int = 1) -> None:
        timestamp = str(int(time.time() * 1000) + next(_ids))
        body = json.dumps(
            {"app_id": self.fake.app_id, "timestamp": timestamp, **event},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        mac = hashlib.sha256(
            self.fake.app_id.encode() + body + timestamp.encode() + OA_SECRET_KEY.encode()
        ).hexdigest()
        headers = {"Content-Type": "application/json", "X-ZEvent-Signature": f"mac={mac}"}
        for _ in range(times):
            answer = await self.client.post("/webhooks/zalo", data=body, headers=headers)
            assert answer.status == 200, await answer.text()

    async def follow(self, *, times: int = 1) -> None:
        await self.post(
            {
                "oa_id": self.fake.oa_id,
                "follower": {"id": self.user},
                "event_name": "follow",
                "source": "oa_profile",
            },
            times=times,
        )

    async def unfollow(self) -> None:
        await self.post({"oa_id": self.fake.oa_id, "follower": {"id": self.user}, "event_name": "unfollow"})

    async def text(self, text: str, *, times: int = 1) -> None:
        await self.post(
            {
                "sender": {"id": self.user},
                "recipient": {"id": self.fake.oa_id},
                "event_name": "user_send_text",
                "message": {"text": text, "msg_id": f"zmsg-{next(_ids)}"},
            },
            times=times,
        )

    async def share_phone(self, phone: str, name: str = "Nguyễn Văn An", *, times: int = 1) -> None:
        await self.post(
            {
                "sender": {"id": self.user},
                "recipient": {"id": self.fake.oa_id},
                "event_name": "user_submit_info",
                "info": {"name": name, "phone": phone, "address": "12 Lê Lợi", "city": "Hồ Chí Minh"},
            },
            times=times,
        )

    async def sticker(self) -> None:
        await self.post(
            {
                "sender": {"id": self.user},
                "recipient": {"id": self.fake.oa_id},
                "event_name": "user_send_sticker",
                "message": {
                    "msg_id": f"zmsg-{next(_ids)}",
                    "attachments": [
                        {"type": "sticker", "payload": {"id": "bfe4", "url": "https://zalo.me/s/1"}}
                    ],
                },
            }
        )


class Messenger:
    """Posts Messenger webhook deliveries (shapes of webhooks/messenger/fixtures) for one PSID."""

    def __init__(self, client: TestClient[Any, Any], fake: FakeGraph, psid: str) -> None:
        self.client, self.fake, self.psid = client, fake, psid

    async def post(self, item: dict[str, Any], *, times: int = 1) -> None:
        now = int(time.time() * 1000) + next(_ids)
        body = json.dumps(
            {
                "object": "page",
                "entry": [
                    {
                        "id": self.fake.page_id,
                        "time": now,
                        "messaging": [
                            {
                                "sender": {"id": self.psid},
                                "recipient": {"id": self.fake.page_id},
                                "timestamp": now,
                                **item,
                            }
                        ],
                    }
                ],
            },
            ensure_ascii=False,
        ).encode()
        signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
        for _ in range(times):
            answer = await self.client.post("/webhooks/messenger", data=body, headers=headers)
            assert answer.status == 200, await answer.text()

    async def get_started(self, ref: str | None = None, *, times: int = 1) -> None:
        postback: dict[str, Any] = {
            "title": "Bắt đầu",
            "payload": "sl:get_started",
            "mid": f"m_pb_{next(_ids)}",
        }
        if ref is not None:
            postback["referral"] = {"ref": ref, "source": "SHORTLINK", "type": "OPEN_THREAD"}
        await self.post({"postback": postback}, times=times)

    async def referral(self, ref: str) -> None:
        await self.post({"referral": {"ref": ref, "source": "SHORTLINK", "type": "OPEN_THREAD"}})

    async def text(self, text: str, *, times: int = 1) -> None:
        await self.post({"message": {"mid": f"m_{next(_ids)}", "text": text}}, times=times)

    async def press(self, payload: str, title: str = "") -> None:
        await self.post(
            {"postback": {"title": title or payload, "payload": payload, "mid": f"m_pb_{next(_ids)}"}}
        )

    async def share_phone(self, phone: str, *, times: int = 1) -> None:
        await self.post(
            {"message": {"mid": f"m_{next(_ids)}", "text": phone, "quick_reply": {"payload": phone}}},
            times=times,
        )


class Emulator:
    def __init__(self, client: TestClient[Any, Any], user: str, flavor: str = "zalo") -> None:
        self.client, self.user, self.flavor = client, user, flavor
        self.after = "0-0"

    async def send(self, event: dict[str, Any], *, times: int = 1) -> None:
        body = {"user_id": self.user, "flavor": self.flavor, "event_id": f"emu-{uuid.uuid4().hex}", **event}
        for _ in range(times):
            answer = await self.client.post("/emulator/api/events", json=body)
            assert answer.status == 202, await answer.text()

    async def replies(self, count: int, within: float = 15.0) -> list[dict[str, Any]]:
        """The next ``count`` replies (waiting for them), and nothing after them for a short while."""
        got: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(got) < count and loop.time() < deadline:
            response = await self.client.get(
                "/emulator/api/messages",
                params={"user_id": self.user, "flavor": self.flavor, "after": self.after, "wait": "1"},
            )
            body = await response.json()
            got += [m["reply"] for m in body["messages"]]
            self.after = body["last_id"]
        return got


async def wait_for(predicate: Any, within: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate() and loop.time() < deadline:  # noqa: ASYNC110 - polling a fake
        await asyncio.sleep(0.05)


def message_text(message: dict[str, Any]) -> str:
    """The visible text of one sent message (Zalo ``message`` or Messenger ``message`` object)."""
    parts = [message.get("text") or ""]
    payload = (message.get("attachment") or {}).get("payload") or {}
    parts += [payload.get("text") or ""]
    for element in payload.get("elements") or []:
        parts += [element.get("title") or "", element.get("subtitle") or ""]
    return " | ".join(p for p in parts if p)
