"""Routing: which handler takes an update, and how routers nest."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from bot import (
    ContactShared,
    Dispatcher,
    DispatchResult,
    Follow,
    Message,
    OptIn,
    Postback,
    Referral,
    RegistrationError,
    Router,
    Text,
    Unfollow,
    UpdateKind,
)

MakeUpdate = Callable[..., Any]

KIND_SAMPLES: list[tuple[UpdateKind, type, dict[str, Any]]] = [
    (UpdateKind.FOLLOW, Follow, {"ref": "qr-1"}),
    (UpdateKind.UNFOLLOW, Unfollow, {}),
    (UpdateKind.MESSAGE, Message, {"text": "hi"}),
    (UpdateKind.POSTBACK, Postback, {"payload": "menu"}),
    (UpdateKind.CONTACT, ContactShared, {"phone": "+84901234567"}),
    (UpdateKind.REFERRAL, Referral, {"ref": "store-1"}),
    (UpdateKind.OPTIN, OptIn, {"topic": "offers"}),
]


async def test_the_first_matching_handler_wins_in_registration_order(
    dp: Dispatcher, make: MakeUpdate
) -> None:
    calls: list[str] = []
    router = Router(name="r")

    @router.message(Text("hi"))
    async def first() -> None:
        calls.append("first")

    @router.message(Text("hi"))
    async def second() -> None:
        calls.append("second")

    dp.include_router(router)
    result = await dp.feed_update(make(text="hi"))

    assert calls == ["first"]
    assert result.handler is not None and result.handler.endswith("first")


async def test_a_later_handler_takes_what_earlier_ones_do_not_match(dp: Dispatcher, make: MakeUpdate) -> None:
    calls: list[str] = []

    @dp.message(Text("bye"))
    async def first() -> None:
        calls.append("first")

    @dp.message(Text("hi"))
    async def second() -> None:
        calls.append("second")

    await dp.feed_update(make(text="hi"))

    assert calls == ["second"]


async def test_a_routers_own_handlers_come_before_its_included_routers(
    dp: Dispatcher, make: MakeUpdate
) -> None:
    calls: list[str] = []
    parent, child = Router(name="parent"), Router(name="child")

    @child.message(Text("hi"))
    async def in_child() -> None:
        calls.append("child")

    # given the child included before the parent registers its own handler
    parent.include_router(child)

    @parent.message(Text("hi"))
    async def in_parent() -> None:
        calls.append("parent")

    dp.include_router(parent)
    await dp.feed_update(make(text="hi"))

    assert calls == ["parent"]


async def test_the_dispatchers_own_handlers_come_first(dp: Dispatcher, make: MakeUpdate) -> None:
    calls: list[str] = []
    router = Router(name="r")

    @router.message()
    async def in_router() -> None:
        calls.append("router")

    dp.include_router(router)

    @dp.message()
    async def in_dispatcher() -> None:
        calls.append("dispatcher")

    await dp.feed_update(make(text="hi"))

    assert calls == ["dispatcher"]


async def test_sibling_routers_are_tried_in_inclusion_order(dp: Dispatcher, make: MakeUpdate) -> None:
    calls: list[str] = []
    a, b = Router(name="a"), Router(name="b")

    @b.message()
    async def in_b() -> None:
        calls.append("b")

    @a.message()
    async def in_a() -> None:
        calls.append("a")

    dp.include_routers(a, b)
    await dp.feed_update(make(text="hi"))

    assert calls == ["a"]


async def test_nested_routers_are_reached(dp: Dispatcher, make: MakeUpdate) -> None:
    calls: list[str] = []
    a, b, c = Router(name="a"), Router(name="b"), Router(name="c")
    a.include_router(b)
    b.include_router(c)

    @c.message(Text("deep"))
    async def deepest() -> None:
        calls.append("c")

    dp.include_router(a)
    result = await dp.feed_update(make(text="deep"))

    assert calls == ["c"]
    assert result.handled
    assert dp.walk() == [dp, a, b, c]


async def test_depth_first_order_across_nested_routers(dp: Dispatcher, make: MakeUpdate) -> None:
    # given a(b) and c, each with a catch-all handler: b (inside a) comes before c
    calls: list[str] = []
    a, b, c = Router(name="a"), Router(name="b"), Router(name="c")
    a.include_router(b)

    @b.message()
    async def in_b() -> None:
        calls.append("b")

    @c.message()
    async def in_c() -> None:
        calls.append("c")

    dp.include_routers(a, c)
    await dp.feed_update(make(text="x"))

    assert calls == ["b"]


def test_including_a_router_twice_is_refused() -> None:
    parent, other, child = Router(name="parent"), Router(name="other"), Router(name="child")
    parent.include_router(child)

    with pytest.raises(RegistrationError, match="already included"):
        parent.include_router(child)
    with pytest.raises(RegistrationError, match="already included"):
        other.include_router(child)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_a_cycle_is_refused(depth: int) -> None:
    routers = [Router(name=f"r{n}") for n in range(depth)]
    for parent, child in itertools.pairwise(routers):
        parent.include_router(child)

    with pytest.raises(RegistrationError, match="cycle"):
        routers[-1].include_router(routers[0])

    assert routers[0].parent is None


async def test_a_handler_registered_after_dispatching_is_used(dp: Dispatcher, make: MakeUpdate) -> None:
    assert not (await dp.feed_update(make(text="late"))).handled

    @dp.message(Text("late"))
    async def late() -> None: ...

    assert (await dp.feed_update(make(text="late"))).handled


async def test_a_router_included_after_dispatching_is_used(dp: Dispatcher, make: MakeUpdate) -> None:
    await dp.feed_update(make(text="x"))
    router = Router(name="late")

    @router.message()
    async def late() -> None: ...

    dp.include_router(router)

    assert (await dp.feed_update(make(text="x"))).handled


@pytest.mark.parametrize(
    ("_case", "kind", "model", "fields"), [(k.value, k, m, f) for k, m, f in KIND_SAMPLES]
)
async def test_each_kind_goes_only_to_its_observer(
    dp: Dispatcher, make: MakeUpdate, _case: str, kind: UpdateKind, model: type, fields: dict[str, Any]
) -> None:
    # given a catch-all handler on every observer
    calls: list[str] = []
    for observer_kind in UpdateKind:

        async def handler(update: Any, _name: str = observer_kind.value) -> None:
            calls.append(_name)

        dp.observers[observer_kind.value].register(handler)

    result = await dp.feed_update(make(model, **fields))

    assert calls == [kind.value]
    assert result.handled


async def test_the_observers_are_attributes_named_after_the_kinds() -> None:
    router = Router()

    assert [router.observers[k.value] for k in UpdateKind] == [
        router.follow,
        router.unfollow,
        router.message,
        router.postback,
        router.contact,
        router.referral,
        router.optin,
    ]


async def test_an_unmatched_update_is_not_handled(dp: Dispatcher, make: MakeUpdate) -> None:
    @dp.message(Text("hi"))
    async def hello() -> None: ...

    result = await dp.feed_update(make(text="something else"))

    assert result == DispatchResult(handled=False)


async def test_an_update_with_no_handlers_at_all_is_not_handled(dp: Dispatcher, make: MakeUpdate) -> None:
    result = await dp.feed_update(make(Postback, payload="x"))

    assert result == DispatchResult(handled=False, handler=None, error=None, error_handled=False)


async def test_the_result_names_the_handler(dp: Dispatcher, make: MakeUpdate) -> None:
    router = Router(name="names")

    @router.message(Text("hi"))
    async def say_hello() -> None: ...

    dp.include_router(router)
    result = await dp.feed_update(make(text="hi"))

    assert result.handled
    assert result.handler == f"{say_hello.__module__}.{say_hello.__qualname__}"
    assert result.error is None


async def test_a_handler_without_filters_takes_every_update_of_its_kind(
    dp: Dispatcher, make: MakeUpdate
) -> None:
    @dp.message()
    async def anything() -> None: ...

    assert (await dp.feed_update(make(text=None))).handled
    assert (await dp.feed_update(make(text="x"))).handled
    assert not (await dp.feed_update(make(Follow))).handled


async def test_the_register_method_returns_the_handler_object(dp: Dispatcher) -> None:
    async def hello() -> None: ...

    handler = dp.message.register(hello, Text("hi"))

    assert handler.callback is hello
    assert handler.observer == "message"
    assert handler.router is dp
    assert len(handler.filters) == 1
