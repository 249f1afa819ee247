"""Dependency injection: handlers get what they ask for by parameter name, checked at registration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot import (
    Context,
    Dispatcher,
    FSMContext,
    Message,
    Payload,
    Postback,
    Regex,
    RegistrationError,
    Router,
    Sender,
    StorageKey,
    Text,
    TextReply,
    UnknownDependencyError,
)
from tests.bot.helpers import Recorder

MakeUpdate = Callable[..., Any]


async def test_the_update_under_its_generic_and_its_kind_name(dp: Dispatcher, make: MakeUpdate) -> None:
    got: dict[str, Any] = {}

    @dp.message()
    async def on_message(update: Message, message: Message) -> None:
        got.update(update=update, message=message)

    @dp.postback()
    async def on_postback(update: Postback, postback: Postback) -> None:
        got.update(update=update, postback=postback)

    sent = make(text="hi")
    await dp.feed_update(sent)
    assert got == {"update": sent, "message": sent}

    pressed = make(Postback, payload="x")
    await dp.feed_update(pressed)
    assert got["update"] is pressed and got["postback"] is pressed


async def test_state_reply_and_ctx(dp: Dispatcher, make: MakeUpdate, recorder: Recorder) -> None:
    got: dict[str, Any] = {}

    @dp.message()
    async def handler(state: FSMContext, reply: Sender, ctx: Context) -> None:
        got.update(state=state, reply=reply, ctx=ctx)
        await reply("ok")

    update = make(text="hi", user="u7", account="oa2")
    await dp.feed_update(update)

    assert isinstance(got["state"], FSMContext)
    assert got["state"].key == StorageKey("emulator", "oa2", "u7")
    assert isinstance(got["reply"], Sender)
    assert isinstance(got["ctx"], Context)
    assert got["ctx"].update is update
    assert got["ctx"].dispatcher is dp
    assert recorder.sent[0].to.user_id == "u7" and recorder.sent[0].to.account_id == "oa2"
    assert recorder.sent[0].in_reply_to is update


async def test_reply_sends_strings_as_text_in_order(
    dp: Dispatcher, make: MakeUpdate, recorder: Recorder
) -> None:
    @dp.message()
    async def handler(reply: Sender) -> None:
        await reply("một", TextReply("hai"))
        await reply.text("ba")
        await reply()  # nothing to send

    await dp.feed_update(make(text="hi"))

    assert recorder.replies == [TextReply("một"), TextReply("hai"), TextReply("ba")]
    assert len(recorder.sent) == 2


async def test_services_from_the_constructor_and_by_item(make: MakeUpdate) -> None:
    dp = Dispatcher(services={"brand": "Demo Café"})
    dp["clock"] = "a clock"
    got: dict[str, Any] = {}

    @dp.message()
    async def handler(brand: str, clock: str) -> None:
        got.update(brand=brand, clock=clock)

    await dp.feed_update(make(text="hi"))

    assert got == {"brand": "Demo Café", "clock": "a clock"}
    assert dp["brand"] == "Demo Café"


async def test_a_service_replaced_after_dispatching_is_seen(dp: Dispatcher, make: MakeUpdate) -> None:
    dp["brand"] = "old"
    got: list[str] = []

    @dp.message()
    async def handler(brand: str) -> None:
        got.append(brand)

    await dp.feed_update(make(text="hi"))
    dp["brand"] = "new"
    await dp.feed_update(make(text="hi"))

    assert got == ["old", "new"]


async def test_names_provided_by_filters(dp: Dispatcher, make: MakeUpdate) -> None:
    got: dict[str, Any] = {}

    @dp.message(Text.startswith("đổi"), Regex(r"(\d+)"))
    async def on_message(text: str, match: Any) -> None:
        got.update(text=text, number=match.group(1))

    @dp.postback(Payload("checkin"))
    async def on_postback(args: tuple[str, ...], payload: str) -> None:
        got.update(args=args, payload=payload)

    await dp.feed_update(make(text="Đổi 50 điểm"))
    await dp.feed_update(make(Postback, payload="checkin:abc"))

    assert got == {"text": "Đổi 50 điểm", "number": "50", "args": ("abc",), "payload": "checkin:abc"}


async def test_an_or_branch_that_did_not_match_leaves_the_default(dp: Dispatcher, make: MakeUpdate) -> None:
    got: dict[str, Any] = {}

    @dp.message(Text("điểm") | Regex(r"\d+"))
    async def handler(text: str | None = None, match: Any = None) -> None:
        got.update(text=text, match=match)

    await dp.feed_update(make(text="42"))

    assert got["text"] is None
    assert got["match"].group(0) == "42"


def test_an_unknown_name_is_refused_when_the_router_is_included(dp: Dispatcher) -> None:
    router = Router(name="typo")

    @router.message(Text("x"))
    async def broken(mesage: Message) -> None: ...

    with pytest.raises(UnknownDependencyError) as caught:
        dp.include_router(router)

    message = str(caught.value)
    assert "broken" in message
    assert "'mesage'" in message
    # the refused router is not left half-included
    assert router.parent is None
    assert router not in dp.sub_routers


def test_an_unknown_name_is_refused_when_registered_on_an_included_router(dp: Dispatcher) -> None:
    router = Router(name="included")
    dp.include_router(router)

    async def broken(customer: Any) -> None: ...

    with pytest.raises(UnknownDependencyError) as caught:
        router.message.register(broken)

    assert "broken" in str(caught.value)
    assert "'customer'" in str(caught.value)
    assert router.message.handlers == []  # a refused handler leaves nothing behind


def test_an_unknown_name_is_refused_on_the_dispatcher_itself(dp: Dispatcher) -> None:
    with pytest.raises(UnknownDependencyError, match="'nobody'"):

        @dp.message()
        async def broken(nobody: Any) -> None: ...


def test_a_plain_router_accepts_anything_until_it_is_included() -> None:
    router = Router(name="plain")

    @router.message()
    async def later(customer: Any) -> None: ...

    assert len(router.message.handlers) == 1


def test_the_error_name_is_only_for_errors_handlers(dp: Dispatcher) -> None:
    @dp.errors()
    async def on_error(error: Exception) -> None: ...

    with pytest.raises(UnknownDependencyError, match="'error'"):

        @dp.message()
        async def not_an_errors_handler(error: Exception) -> None: ...


def test_services_must_be_registered_before_the_router_that_needs_them(dp: Dispatcher) -> None:
    router = Router(name="needs-brand")

    @router.message()
    async def handler(brand: str) -> None: ...

    with pytest.raises(UnknownDependencyError):
        dp.include_router(router)

    dp["brand"] = "Demo"
    dp.include_router(router)

    assert router.parent is dp


async def test_an_unknown_name_with_a_default_is_allowed(dp: Dispatcher, make: MakeUpdate) -> None:
    got: list[Any] = []

    @dp.message()
    async def handler(missing: int = 7) -> None:
        got.append(missing)

    await dp.feed_update(make(text="hi"))

    assert got == [7]


async def test_a_value_from_a_filter_that_did_not_declare_it_reaches_a_defaulted_parameter(
    dp: Dispatcher, make: MakeUpdate
) -> None:
    got: list[Any] = []

    @dp.message(lambda update: {"amount": 5})
    async def handler(amount: int = 0) -> None:
        got.append(amount)

    await dp.feed_update(make(text="hi"))

    assert got == [5]


async def test_a_kwargs_handler_gets_everything(dp: Dispatcher, make: MakeUpdate) -> None:
    dp["brand"] = "Demo"
    got: dict[str, Any] = {}

    async def load(handler: Any, update: Any, ctx: Context) -> Any:
        ctx.data["customer"] = "Lan"
        return await handler(update, ctx)

    load.provides = ("customer",)  # type: ignore[attr-defined]
    dp.message.middleware(load)

    @dp.message(Text("hi"))
    async def handler(**kwargs: Any) -> None:
        got.update(kwargs)

    update = make(text="hi")
    await dp.feed_update(update)

    assert got["update"] is update
    assert got["message"] is update
    assert isinstance(got["ctx"], Context)
    assert got["brand"] == "Demo"
    assert got["text"] == "hi"
    assert got["customer"] == "Lan"


async def test_a_kwargs_handler_gets_state_and_reply(dp: Dispatcher, make: MakeUpdate) -> None:
    got: dict[str, Any] = {}

    @dp.message()
    async def handler(**kwargs: Any) -> None:
        got.update(kwargs)

    await dp.feed_update(make(text="hi"))

    assert isinstance(got.get("state"), FSMContext)
    assert isinstance(got.get("reply"), Sender)


async def test_a_kwargs_handler_with_named_parameters_too(dp: Dispatcher, make: MakeUpdate) -> None:
    got: dict[str, Any] = {}

    @dp.message()
    async def handler(state: FSMContext, unknown: int = 3, **kwargs: Any) -> None:
        got.update(state=state, unknown=unknown, kwargs=kwargs)

    await dp.feed_update(make(text="hi"))

    assert isinstance(got["state"], FSMContext)
    assert got["unknown"] == 3
    assert "message" in got["kwargs"]


def test_a_kwargs_handler_may_ask_for_unknown_names(dp: Dispatcher) -> None:
    @dp.message()
    async def handler(whatever: Any, **kwargs: Any) -> None: ...

    assert len(dp.message.handlers) == 1


def test_a_synchronous_handler_is_refused() -> None:
    router = Router()

    def not_async() -> None: ...

    with pytest.raises(RegistrationError, match="async def"):
        router.message.register(not_async)  # type: ignore[arg-type]


def test_positional_only_parameters_are_refused() -> None:
    router = Router()

    async def handler(message: Any, /) -> None: ...

    with pytest.raises(RegistrationError, match="positional-only"):
        router.message.register(handler)


def test_a_filter_that_is_not_callable_is_refused() -> None:
    router = Router()

    async def handler() -> None: ...

    with pytest.raises(RegistrationError, match="must be callable"):
        router.message.register(handler, "hi")


@pytest.mark.parametrize(
    "name", ["update", "state", "reply", "ctx", "error", "message", "postback", "follow", "optin"]
)
def test_reserved_service_names_are_refused(dp: Dispatcher, name: str) -> None:
    with pytest.raises(RegistrationError, match="reserved"):
        dp[name] = object()
    with pytest.raises(RegistrationError, match="reserved"):
        Dispatcher(services={name: object()})


@pytest.mark.parametrize(("_case", "name"), [("dash", "my-service"), ("space", "a b"), ("digit", "1st")])
def test_service_names_must_be_identifiers(dp: Dispatcher, _case: str, name: str) -> None:
    with pytest.raises(RegistrationError, match="not a valid parameter name"):
        dp[name] = object()


async def test_a_reply_without_a_channel_client_is_an_error(make: MakeUpdate) -> None:
    dp = Dispatcher()

    @dp.message()
    async def handler(reply: Sender) -> None:
        await reply("hello")

    result = await dp.feed_update(make(text="hi"))

    assert isinstance(result.error, LookupError)
    assert "emulator" in str(result.error)
