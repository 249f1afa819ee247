"""``loyalty chat``: chat with the bot from a terminal, through a running service's emulator API.

What you type goes to ``POST /emulator/api/events`` (the same queue and worker as real webhooks);
the bot's replies come from ``GET /emulator/api/messages``. Buttons are shown as numbered choices and
typing the number presses one. Commands simulate platform events:

    /follow  /unfollow  /share-phone 0912345678  /scan <ref>  /image  /location  /help  /quit
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
from collections.abc import Callable
from typing import Any, Final, TextIO

import aiohttp

HELP: Final = (
    "Gõ tin nhắn rồi Enter. Số (1, 2…) để bấm nút.  "
    "/follow  /unfollow  /share-phone 0912345678  /scan <ref>  /image  /location  /help  /quit"
)
EX_OK: Final = 0
EX_UNAVAILABLE: Final = 69


class ChatError(Exception):
    """The service cannot be reached, or its emulator is off."""


class TerminalChat:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        user_id: str,
        flavor: str,
        out: TextIO = sys.stdout,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.user_id = user_id
        self.flavor = flavor
        self.out = out
        self.options: list[dict[str, Any]] = []
        self.last_id = "0-0"
        self.last_activity = 0.0  # loop time of the last send or reply

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    async def check(self) -> None:
        """Fail early, with a clear reason, if there is nothing to chat with."""
        try:
            async with self.session.get(
                f"{self.base_url}/emulator/api/messages",
                params={"user_id": self.user_id, "flavor": self.flavor},
            ) as response:
                if response.status == 404:
                    raise ChatError(
                        f"the chat emulator is off at {self.base_url} "
                        "(set EMULATOR_ENABLED=true to turn it on)"
                    )
                if response.status != 200:
                    raise ChatError(f"{self.base_url} answered {response.status}")
                self.last_id = (await response.json())["last_id"]  # only what arrives from now on
        except aiohttp.ClientError as error:
            raise ChatError(f"no service at {self.base_url} ({error}): start it with `make run`") from None

    async def send(self, event: dict[str, Any]) -> None:
        self.last_activity = asyncio.get_running_loop().time()
        body = {"user_id": self.user_id, "flavor": self.flavor, "event_id": secrets.token_hex(12), **event}
        async with self.session.post(f"{self.base_url}/emulator/api/events", json=body) as response:
            if response.status != 202:
                problem = await response.json(content_type=None)
                self.say(f"! {problem.get('error', {}).get('message', response.status)}")

    async def handle_line(self, line: str) -> bool:
        """Act on one typed line; False to stop."""
        line = line.strip()
        if not line:
            return True
        command, _, argument = line.partition(" ")
        argument = argument.strip()
        actions: dict[str, Callable[[], dict[str, Any] | None]] = {
            "/follow": lambda: {"type": "follow"},
            "/unfollow": lambda: {"type": "unfollow"},
            "/share-phone": lambda: {"type": "contact", "phone": argument} if argument else None,
            "/scan": lambda: {"type": "referral", "ref": argument} if argument else None,
            "/image": lambda: {"type": "image"},
            "/location": lambda: {"type": "location"},
        }
        if command in ("/quit", "/exit"):
            return False
        if command == "/help":
            self.say(HELP)
            return True
        if command in actions:
            event = actions[command]()
            if event is None:
                self.say(f"! {command} cần một giá trị, ví dụ: {command} 0912345678")
            else:
                await self.send(event)
            return True
        if line.isdigit() and 1 <= int(line) <= len(self.options):
            choice = self.options[int(line) - 1]
            if "payload" in choice:
                await self.send({"type": "postback", "payload": choice["payload"], "title": choice["title"]})
            else:
                self.say(f"  → {choice.get('url') or choice.get('phone')}")
            return True
        await self.send({"type": "text", "text": line})
        return True

    def show(self, reply: dict[str, Any]) -> None:
        kind = reply.get("type")
        if kind in ("text", "numbered") or kind in ("buttons", "quick_replies"):
            self.say(f"bot> {reply['text']}")
        elif kind == "card":
            self.say(f"bot> ┌ {reply['title']}")
            if reply.get("subtitle"):
                self.say(f"     │ {reply['subtitle']}")
            if reply.get("image_url"):
                self.say(f"     │ [ảnh] {reply['image_url']}")
        elif kind == "image":
            self.say(
                f"bot> [ảnh] {reply.get('url') or '(ảnh đính kèm)'} {reply.get('caption') or ''}".rstrip()
            )
        elif kind == "request_phone":
            self.say(f"bot> {reply['text']}")
            self.say("     (gõ /share-phone 09xxxxxxxx để chia sẻ số điện thoại)")
        else:
            self.say(f"bot> {reply}")
        buttons = reply.get("buttons") or reply.get("options")
        if buttons:
            self.options = list(buttons)
            if kind != "numbered":  # numbered replies already list their options in the text
                for n, button in enumerate(buttons, start=1):
                    self.say(f"     [{n}] {button['title']}")

    async def settle(self, quiet: float = 2.0, longest: float = 15.0) -> None:
        """Before leaving (end of input): wait for the replies to what was sent, until ``quiet`` seconds
        pass without one, at most ``longest``."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        # polling two clocks (silence and a ceiling) reads simpler than an Event here
        while loop.time() - started < longest and loop.time() - self.last_activity < quiet:  # noqa: ASYNC110
            await asyncio.sleep(0.1)

    async def receive(self) -> None:
        while True:
            try:
                async with self.session.get(
                    f"{self.base_url}/emulator/api/messages",
                    params={
                        "user_id": self.user_id,
                        "flavor": self.flavor,
                        "after": self.last_id,
                        "wait": "15",
                    },
                    timeout=aiohttp.ClientTimeout(total=30),
                ) as response:
                    data = await response.json()
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(1)
                continue
            for message in data["messages"]:
                self.show(message["reply"])
                self.last_activity = asyncio.get_running_loop().time()
            self.last_id = data["last_id"]


async def run_chat(base_url: str, *, user_id: str | None, flavor: str, stdin: TextIO = sys.stdin) -> int:
    user = user_id or f"term-{secrets.token_hex(4)}"
    async with aiohttp.ClientSession() as session:
        chat = TerminalChat(session, base_url, user_id=user, flavor=flavor)
        try:
            await chat.check()
        except ChatError as error:
            print(f"loyalty chat: {error}", file=sys.stderr)  # noqa: T201
            return EX_UNAVAILABLE
        chat.say(f"Đang chat với {base_url} qua {flavor} với tư cách {user}. {HELP}")
        receiver = asyncio.create_task(chat.receive())
        loop = asyncio.get_running_loop()
        try:
            while True:
                line = await loop.run_in_executor(None, stdin.readline)
                if not line:  # end of input (Ctrl-D, or a closed pipe)
                    break
                if not await chat.handle_line(line):
                    break
            await chat.settle()
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
    return EX_OK
