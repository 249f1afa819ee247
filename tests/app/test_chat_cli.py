"""`loyalty chat` as a person uses it: a process reading lines, against a running service."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from app.factory import create_app
from app.settings import Settings

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

pytestmark = pytest.mark.slow


@pytest.fixture
async def service(aiohttp_server: ServerFactory, settings: Settings, redis: Redis) -> str:
    server = await aiohttp_server(create_app(settings))
    return str(server.make_url("")).rstrip("/")


class Terminal:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.screen = ""

    async def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def expect(self, text: str, within: float = 10.0) -> None:
        assert self.process.stdout is not None
        deadline = asyncio.get_running_loop().time() + within
        while text not in self.screen:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                pytest.fail(f"{text!r} not shown within {within}s; screen:\n{self.screen}")
            try:
                chunk = await asyncio.wait_for(self.process.stdout.read(4096), remaining)
            except TimeoutError:
                continue
            self.screen += chunk.decode()


async def test_chatting_from_the_terminal(service: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "chat", "--url", service, "--user", "term-1",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    terminal = Terminal(process)
    try:
        await terminal.expect("term-1")
        # /follow simulates the platform event; the welcome asks for the phone number
        await terminal.type("/follow")
        await terminal.expect("Cảm ơn bạn đã quan tâm Demo Café")
        await terminal.type("menu")
        await terminal.expect("[1] Điểm của tôi")
        # typing the number presses the button: points need the phone first
        await terminal.type("1")
        await terminal.expect("Để xem điểm")
        await terminal.type("0912 345 678")
        await terminal.expect("bạn có 0 điểm")
        await terminal.type("tôi muốn đổi quà")
        await terminal.expect('chưa hiểu "tôi muốn đổi quà"')
        await terminal.type("/quit")
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_chat_without_a_service_says_how_to_start_one() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "chat", "--url", "http://127.0.0.1:1",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 69
    assert "start it with `make run`" in err.decode()
