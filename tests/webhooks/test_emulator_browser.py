"""The web emulator in a real headless Chromium (Debian's package, driven by Playwright).

`make test` installs Chromium when it is missing; CHROMIUM names another binary. A screenshot of the
conversation is kept in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, async_playwright
from redis.asyncio import Redis

from app.factory import create_app
from app.settings import Settings

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Without the background-networking flags Chromium keeps trying to reach Google, which this machine refuses.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = pytest.mark.slow


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail(
            "Chromium is not installed: `make test` installs Debian's chromium, or set CHROMIUM=/path"
        )
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def page(
    browser: Browser, aiohttp_server: ServerFactory, settings: Settings, redis: Redis
) -> AsyncIterator[Page]:
    server = await aiohttp_server(create_app(settings))
    page = await browser.new_page(viewport={"width": 720, "height": 760})
    await page.goto(str(server.make_url("/emulator")))
    yield page
    await page.close()


async def as_user(page: Page, user: str) -> None:
    await page.fill("[data-testid=user]", user)
    await page.dispatch_event("[data-testid=user]", "change")


async def test_a_person_chats_with_the_bot_in_the_browser(page: Page) -> None:
    await as_user(page, "browser-1")

    # follow → the welcome, and the question for the phone
    await page.click("[data-testid=follow]")
    welcome = page.locator("li.bot").first
    await welcome.wait_for()
    assert "Demo Café" in await welcome.inner_text()
    await page.locator("li.bot", has_text="Chia sẻ số điện thoại").wait_for()

    # a typed phone number → saved, and the welcome voucher
    await page.fill("[data-testid=text]", "0912 345 678")
    await page.click("[data-testid=send]")
    await page.locator("li.me", has_text="0912 345 678").wait_for()
    await page.locator("li.bot", has_text="đã được lưu").wait_for()
    await page.locator("li.bot", has_text="Quà chào mừng").wait_for()

    # "diem" without diacritics → the points
    await page.fill("[data-testid=text]", "diem")
    await page.click("[data-testid=send]")
    await page.locator("li.bot", has_text="bạn có 0 điểm").wait_for()

    # something the bot does not know → the fallback, never silence
    await page.fill("[data-testid=text]", "hôm nay trời đẹp")
    await page.click("[data-testid=send]")
    await page.locator("li.bot", has_text="chưa hiểu").wait_for()

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "emulator-zalo.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


async def test_the_conversation_survives_a_reload(page: Page) -> None:
    await as_user(page, "browser-2")
    await page.click("[data-testid=follow]")
    await page.locator("li.bot").first.wait_for()

    await page.reload()

    # the same user (kept in localStorage) sees the history again
    assert await page.input_value("[data-testid=user]") == "browser-2"
    await page.locator("li.bot", has_text="Cảm ơn bạn đã quan tâm Demo Café").wait_for()


async def test_the_chosen_platform_is_used_and_kept(page: Page) -> None:
    await page.select_option("[data-testid=flavor]", "messenger")
    await as_user(page, "browser-3")
    await page.click("[data-testid=follow]")
    await page.locator("li.bot", has_text="Cảm ơn bạn đã quan tâm Demo Café").wait_for()

    await page.reload()

    assert await page.input_value("[data-testid=flavor]") == "messenger"
    await page.locator("li.bot", has_text="Cảm ơn bạn đã quan tâm Demo Café").wait_for()
