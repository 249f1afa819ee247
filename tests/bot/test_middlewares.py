"""Middlewares: inner ones around matched handlers, outer ones around every update."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot import Context, Dispatcher, Postback, RegistrationError, Router, Text, UnknownDependencyError

MakeUpdate = Callable[..., Any]


def tracing(log: list[str], name: str) -> Callable[..., Any]:
    """A middleware that notes when it enters and leaves."""

    async def middleware(handler: Any, update: Any, ctx: Context) -> Any:
        log.append(f"{name} in")
        result = await handler(update, ctx)
        log.append(f"{name} out")
        return result

    return middleware


async def test_an_inner_middleware_wraps_only_matched_handlers(dp: Dispatcher, make: MakeUpdate) -> None:
    log: list[str] = []
    dp.message.middleware(tracing(log, "mw"))

    @dp.message(Text("hi"))
    async def hello() -> None:
        log.append("handler")

    await dp.feed_update(make(text="nothing matches"))
    assert log == []

    await dp.feed_update(make(text="hi"))
    assert log == ["mw in", "handler", "mw out"]


async def test_an_observer_middleware_wraps_only_its_kind(dp: Dispatcher, make: MakeUpdate) -> None:
    log: list[str] = []
    dp.message.middleware(tracing(log, "mw"))

    @dp.postback()
    async def pressed() -> None:
        log.append("postback")

    await dp.feed_update(make(Postback, payload="x"))

    assert log == ["postback"]


async def test_a_router_middleware_wraps_every_kind(dp: Dispatcher, make: MakeUpdate) -> None:
    log: list[str] = []
    router = Router(name="r")
    router.middleware(tracing(log, "mw"))

    @router.message()
    async def on_message() -> None:
        log.append("message")

    @router.postback()
    async def on_postback() -> None:
        log.append("postback")

    dp.include_router(router)
    await dp.feed_update(make(text="x"))
    await dp.feed_update(make(Postback, payload="x"))

    assert log == ["mw in", "message", "mw out", "mw in", "postback", "mw out"]


async def test_inner_middlewares_run_ancestors_first(dp: Dispatcher, make: MakeUpdate) -> None:
    log: list[str] = []
    parent, child = Router(name="parent"), Router(name="child")
    dp.middleware(tracing(log, "dispatcher"))
    parent.middleware(tracing(log, "parent"))
    parent.message.middleware(tracing(log, "parent.message"))
    child.message.middleware(tracing(log, "child.message"))

    @child.message()
    async def handler() -> None:
        log.append("handler")

    parent.include_router(child)
    dp.include_router(parent)
    await dp.feed_update(make(text="x"))

    assert log == [
        "dispatcher in",
        "parent in",
        "parent.message in",
        "child.message in",
        "handler",
        "child.message out",
        "parent.message out",
        "parent out",
        "dispatcher out",
    ]


async def test_a_routers_middleware_does_not_wrap_a_siblings_handlers(
    dp: Dispatcher, make: MakeUpdate
) -> None:
    log: list[str] = []
    a, b = Router(name="a"), Router(name="b")
    a.middleware(tracing(log, "a"))

    @b.message()
    async def in_b() -> None:
        log.append("b")

    dp.include_routers(a, b)
    await dp.feed_update(make(text="x"))

    assert log == ["b"]


async def test_a_middleware_added_after_dispatching_is_used(dp: Dispatcher, make: MakeUpdate) -> None:
    log: list[str] = []

    @dp.message()
    async def handler() -> None:
        log.append("handler")

    await dp.feed_update(make(text="x"))
    dp.message.middleware(tracing(log, "late"))
    await dp.feed_update(make(text="x"))

    assert log == ["handler", "late in", "handler", "late out"]


async def test_outer_middlewares_run_for_every_update_even_unmatched(
    dp: Dispatcher, make: MakeUpdate
) -> None:
    log: list[str] = []
    dp.outer_middleware(tracing(log, "global"))
    dp.message.outer_middleware(tracing(log, "message"))

    result = await dp.feed_update(make(text="nothing matches"))

    assert not result.handled
    assert log == ["global in", "message in", "message out", "global out"]


async def test_a_kinds_outer_middleware_runs_only_for_that_kind(dp: Dispatcher, make: MakeUpdate) -> None:
    log: list[str] = []
    dp.outer_middleware(tracing(log, "global"))
    dp.message.outer_middleware(tracing(log, "message"))

    await dp.feed_update(make(Postback, payload="x"))

    assert log == ["global in", "global out"]


async def test_outer_middlewares_run_before_filters_and_inner_ones(dp: Dispatcher, make: MakeUpdate) -> None:
    log: list[str] = []
    dp.outer_middleware(tracing(log, "outer"))
    dp.message.middleware(tracing(log, "inner"))

    def noting_filter(update: Any) -> bool:
        log.append("filter")
        return True

    @dp.message(noting_filter)
    async def handler() -> None:
        log.append("handler")

    result = await dp.feed_update(make(text="x"))

    assert log == ["outer in", "filter", "inner in", "handler", "inner out", "outer out"]
    assert result.handled and result.handler is not None and result.handler.endswith("handler")


async def test_an_inner_middleware_can_short_circuit(dp: Dispatcher, make: MakeUpdate) -> None:
    calls: list[str] = []

    async def block(handler: Any, update: Any, ctx: Context) -> None:
        calls.append("blocked")

    dp.message.middleware(block)

    @dp.message()
    async def handler() -> None:
        calls.append("handler")

    await dp.feed_update(make(text="x"))

    assert calls == ["blocked"]


async def test_an_outer_middleware_can_short_circuit(dp: Dispatcher, make: MakeUpdate) -> None:
    calls: list[str] = []

    async def block(handler: Any, update: Any, ctx: Context) -> None:
        calls.append("blocked")

    dp.outer_middleware(block)

    @dp.message()
    async def handler() -> None:
        calls.append("handler")

    result = await dp.feed_update(make(text="x"))

    assert calls == ["blocked"]
    assert not result.handled


async def test_an_outer_middleware_that_does_not_return_still_reports_the_handler(
    dp: Dispatcher, make: MakeUpdate
) -> None:
    async def log_only(handler: Any, update: Any, ctx: Context) -> None:
        await handler(update, ctx)

    dp.outer_middleware(log_only)

    @dp.message()
    async def handler() -> None: ...

    result = await dp.feed_update(make(text="x"))

    assert result.handled


async def test_a_middleware_providing_a_value_makes_it_injectable(dp: Dispatcher, make: MakeUpdate) -> None:
    got: list[Any] = []

    async def load_customer(handler: Any, update: Any, ctx: Context) -> Any:
        ctx.data["customer"] = {"name": "Lan", "user": update.user_id}
        return await handler(update, ctx)

    load_customer.provides = ("customer",)  # type: ignore[attr-defined]
    router = Router(name="profile")
    router.middleware(load_customer)

    @router.message(Text("tôi là ai"))
    async def whoami(customer: dict[str, str]) -> None:
        got.append(customer)

    dp.include_router(router)
    await dp.feed_update(make(text="toi la ai", user="u9"))

    assert got == [{"name": "Lan", "user": "u9"}]


async def test_an_outer_middleware_providing_a_value(dp: Dispatcher, make: MakeUpdate) -> None:
    got: list[Any] = []

    async def load_customer(handler: Any, update: Any, ctx: Context) -> Any:
        ctx.data["customer"] = "Lan"
        return await handler(update, ctx)

    load_customer.provides = ("customer",)  # type: ignore[attr-defined]
    dp.outer_middleware(load_customer)

    @dp.message()
    async def whoami(customer: str) -> None:
        got.append(customer)

    await dp.feed_update(make(text="x"))

    assert got == ["Lan"]


def test_a_value_no_middleware_declares_is_refused(dp: Dispatcher) -> None:
    async def load_customer(handler: Any, update: Any, ctx: Context) -> Any:
        ctx.data["customer"] = "Lan"
        return await handler(update, ctx)

    dp.outer_middleware(load_customer)  # without `provides`

    with pytest.raises(UnknownDependencyError, match="'customer'"):

        @dp.message()
        async def whoami(customer: str) -> None: ...


def test_an_outer_middleware_on_a_router_is_refused_when_included(dp: Dispatcher) -> None:
    router = Router(name="sub")
    router.message.outer_middleware(tracing([], "outer"))

    with pytest.raises(RegistrationError, match="outer middlewares belong on the Dispatcher"):
        dp.include_router(router)

    assert router.parent is None


def test_an_outer_middleware_deep_in_a_tree_is_refused_when_included(dp: Dispatcher) -> None:
    parent, child = Router(name="parent"), Router(name="child")
    child.postback.outer_middleware(tracing([], "outer"))
    parent.include_router(child)

    with pytest.raises(RegistrationError, match="child"):
        dp.include_router(parent)


async def test_an_outer_middleware_on_an_included_router_is_refused_at_registration(
    dp: Dispatcher, make: MakeUpdate
) -> None:
    router = Router(name="sub")
    dp.include_router(router)

    with pytest.raises(RegistrationError):
        router.message.outer_middleware(tracing([], "outer"))

    # and dispatching still works
    assert (await dp.feed_update(make(text="x"))) is not None
