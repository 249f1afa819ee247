"""Errors: nothing a handler raises escapes feed_update; errors handlers and logging."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from bot import Context, Dispatcher, ErrorType, Message, Router, Sender, Text, TextReply
from tests.bot.helpers import Recorder

MakeUpdate = Callable[..., Any]


async def test_a_handler_error_is_returned_not_raised(dp: Dispatcher, make: MakeUpdate) -> None:
    @dp.message()
    async def boom() -> None:
        raise ValueError("something broke")

    result = await dp.feed_update(make(text="x"))

    assert isinstance(result.error, ValueError)
    assert str(result.error) == "something broke"
    assert not result.handled
    assert not result.error_handled


async def test_a_handler_error_is_logged_with_the_update_id(
    dp: Dispatcher, make: MakeUpdate, caplog: pytest.LogCaptureFixture
) -> None:
    @dp.message()
    async def boom() -> None:
        raise ValueError("something broke")

    update = make(text="x")
    with caplog.at_level(logging.ERROR, logger="loyalty.bot"):
        await dp.feed_update(update)

    (record,) = [r for r in caplog.records if r.name == "loyalty.bot"]
    assert record.levelno == logging.ERROR
    assert update.event_id in record.getMessage()
    assert "ValueError" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[1] is not None


async def test_an_error_in_a_filter_is_handled_the_same_way(dp: Dispatcher, make: MakeUpdate) -> None:
    def broken_filter(update: Any) -> bool:
        raise KeyError("oops")

    @dp.message(broken_filter)
    async def never() -> None: ...

    result = await dp.feed_update(make(text="x"))

    assert isinstance(result.error, KeyError)


async def test_an_errors_handler_gets_the_error_and_the_update(
    dp: Dispatcher, make: MakeUpdate, recorder: Recorder
) -> None:
    got: dict[str, Any] = {}
    router = Router(name="fragile")

    @router.message(Text("boom"))
    async def boom() -> None:
        raise ValueError("something broke")

    @router.errors()
    async def apologise(error: Exception, update: Message, reply: Sender) -> None:
        got.update(error=error, update=update)
        await reply("Xin lỗi")

    dp.include_router(router)
    update = make(text="boom")
    result = await dp.feed_update(update)

    assert isinstance(got["error"], ValueError)
    assert got["update"] is update
    assert result.error is got["error"]
    assert result.error_handled
    assert not result.handled
    assert recorder.replies == [TextReply("Xin lỗi")]


async def test_error_type_picks_the_errors_handler(dp: Dispatcher, make: MakeUpdate) -> None:
    calls: list[str] = []

    @dp.message(Text("value"))
    async def value_error() -> None:
        raise ValueError

    @dp.message(Text("lookup"))
    async def lookup_error() -> None:
        raise KeyError("k")

    @dp.errors(ErrorType(KeyError))
    async def on_key_error(error: Exception) -> None:
        calls.append(f"key: {type(error).__name__}")

    @dp.errors(ErrorType(ValueError, TypeError))
    async def on_value_error(error: Exception) -> None:
        calls.append(f"value: {type(error).__name__}")

    await dp.feed_update(make(text="value"))
    await dp.feed_update(make(text="lookup"))

    assert calls == ["value: ValueError", "key: KeyError"]


async def test_error_type_matches_subclasses(dp: Dispatcher, make: MakeUpdate) -> None:
    calls: list[str] = []

    @dp.message()
    async def boom() -> None:
        raise KeyError("k")

    @dp.errors(ErrorType(LookupError))
    async def on_lookup(error: Exception) -> None:
        calls.append("lookup")

    result = await dp.feed_update(make(text="x"))

    assert calls == ["lookup"]
    assert result.error_handled


async def test_an_error_no_errors_handler_matches_is_not_handled(dp: Dispatcher, make: MakeUpdate) -> None:
    @dp.message()
    async def boom() -> None:
        raise RuntimeError("x")

    @dp.errors(ErrorType(ValueError))
    async def on_value() -> None: ...

    result = await dp.feed_update(make(text="x"))

    assert isinstance(result.error, RuntimeError)
    assert not result.error_handled


async def test_errors_handlers_of_included_routers_are_used(dp: Dispatcher, make: MakeUpdate) -> None:
    calls: list[str] = []
    router = Router(name="errors")

    @router.errors()
    async def anything(error: Exception, ctx: Context) -> None:
        calls.append(ctx.update.event_id)

    dp.include_router(router)

    @dp.message()
    async def boom() -> None:
        raise ValueError

    update = make(text="x")
    result = await dp.feed_update(update)

    assert calls == [update.event_id]
    assert result.error_handled


async def test_an_errors_handler_that_raises_is_logged_and_does_not_escape(
    dp: Dispatcher, make: MakeUpdate, caplog: pytest.LogCaptureFixture
) -> None:
    @dp.message()
    async def boom() -> None:
        raise ValueError("first")

    @dp.errors()
    async def broken(error: Exception) -> None:
        raise RuntimeError("second")

    update = make(text="x")
    with caplog.at_level(logging.ERROR, logger="loyalty.bot"):
        result = await dp.feed_update(update)

    assert isinstance(result.error, ValueError)
    assert not result.error_handled
    messages = [r.getMessage() for r in caplog.records if r.name == "loyalty.bot"]
    assert len(messages) == 2
    assert all(update.event_id in m for m in messages)
    assert "failed too" in messages[1]
    assert isinstance(caplog.records[-1].exc_info[1], RuntimeError)  # type: ignore[index]


async def test_the_next_update_is_dispatched_normally_after_an_error(
    dp: Dispatcher, make: MakeUpdate
) -> None:
    @dp.message(Text("boom"))
    async def boom() -> None:
        raise ValueError

    @dp.message(Text("ok"))
    async def fine() -> None: ...

    await dp.feed_update(make(text="boom"))
    result = await dp.feed_update(make(text="ok"))

    assert result.handled and result.error is None
