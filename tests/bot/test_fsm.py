"""FSM: states and groups, the per-user FSMContext, and StateFilter in dispatch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot import (
    Context,
    Dispatcher,
    FSMContext,
    MemoryStorage,
    Message,
    State,
    StateFilter,
    StatesGroup,
    StorageKey,
    Text,
)

MakeUpdate = Callable[..., Any]
KEY = StorageKey("emulator", "oa", "u1")


class Signup(StatesGroup):
    phone = State()
    name = State()


class Feedback(StatesGroup):
    waiting = State()


# --------------------------------------------------------------------------- states and groups


def test_a_state_is_named_after_its_group_and_attribute() -> None:
    assert Signup.phone.state == "Signup:phone"
    assert str(Signup.name) == "Signup:name"
    assert Signup.phone.group is Signup
    assert Signup.__states__ == (Signup.phone, Signup.name)


def test_a_state_given_a_name_keeps_it() -> None:
    class Group(StatesGroup):
        custom = State("my-state")

    assert Group.custom.state == "my-state"


def test_a_state_outside_a_group_has_no_name() -> None:
    with pytest.raises(RuntimeError, match="StatesGroup"):
        _ = State().state


def test_a_state_equals_its_name() -> None:
    assert Signup.phone == "Signup:phone"
    assert Signup.phone == State("Signup:phone")
    assert Signup.phone != Signup.name
    assert hash(Signup.phone) == hash("Signup:phone")


@pytest.mark.parametrize(
    ("_case", "item", "expected"),
    [
        ("own state", Signup.phone, True),
        ("own state name", "Signup:name", True),
        ("other group's state", Feedback.waiting, False),
        ("other name", "Signup:other", False),
        ("no state", None, False),
    ],
)
def test_group_membership(_case: str, item: Any, expected: bool) -> None:
    assert (item in Signup) is expected


# --------------------------------------------------------------------------- FSMContext


@pytest.fixture
def fsm() -> FSMContext:
    return FSMContext(MemoryStorage(), KEY)


async def test_fsm_context_has_no_state_at_first(fsm: FSMContext) -> None:
    assert await fsm.get_state() is None
    assert await fsm.get_data() == {}


@pytest.mark.parametrize(("_case", "state"), [("state object", Signup.phone), ("name", "Signup:phone")])
async def test_fsm_context_set_state(fsm: FSMContext, _case: str, state: State | str) -> None:
    await fsm.set_state(state)

    assert await fsm.get_state() == "Signup:phone"


async def test_fsm_context_set_state_none_clears_the_state(fsm: FSMContext) -> None:
    await fsm.set_state(Signup.phone)
    await fsm.set_state(None)

    assert await fsm.get_state() is None


async def test_fsm_context_data(fsm: FSMContext) -> None:
    await fsm.set_data({"phone": "0901234567"})
    merged = await fsm.update_data({"name": "Lan"}, step=2)

    assert merged == {"phone": "0901234567", "name": "Lan", "step": 2}
    assert await fsm.get_data() == merged

    await fsm.set_data({"only": True})
    assert await fsm.get_data() == {"only": True}


async def test_fsm_context_clear(fsm: FSMContext) -> None:
    await fsm.set_state(Signup.name)
    await fsm.update_data(name="Lan")

    await fsm.clear()

    assert await fsm.get_state() is None
    assert await fsm.get_data() == {}


async def test_fsm_context_tells_who_listens_about_state_changes() -> None:
    seen: list[str | None] = []
    fsm = FSMContext(MemoryStorage(), KEY, seen.append)

    await fsm.set_state(Signup.phone)
    await fsm.set_state("x")
    await fsm.clear()

    assert seen == ["Signup:phone", "x", None]


# --------------------------------------------------------------------------- StateFilter


@pytest.mark.parametrize(
    ("_case", "filter_", "stored", "expected"),
    [
        ("state, in it", StateFilter(Signup.phone), "Signup:phone", True),
        ("state, in another", StateFilter(Signup.phone), "Signup:name", False),
        ("state, none stored", StateFilter(Signup.phone), None, False),
        ("several states", StateFilter(Signup.name, Feedback.waiting), "Feedback:waiting", True),
        ("group, own state", StateFilter(Signup), "Signup:name", True),
        ("group, other state", StateFilter(Feedback), "Signup:name", False),
        ("group, none stored", StateFilter(Signup), None, False),
        ("name", StateFilter("Signup:phone"), "Signup:phone", True),
        ("name, other", StateFilter("Signup:phone"), "Feedback:waiting", False),
        ("none, no state", StateFilter(None), None, True),
        ("none, a state", StateFilter(None), "Signup:phone", False),
        ("any, a state", StateFilter("*"), "Signup:phone", True),
        ("any, no state", StateFilter("*"), None, True),
        ("none or group", StateFilter(None, Signup), "Signup:phone", True),
    ],
)
async def test_state_filter(
    dp: Dispatcher, make: MakeUpdate, _case: str, filter_: StateFilter, stored: str | None, expected: bool
) -> None:
    await dp.storage.set_state(KEY, stored)

    @dp.message(filter_)
    async def handler() -> None: ...

    result = await dp.feed_update(make(text="x"))

    assert result.handled is expected


def test_state_filter_needs_a_state() -> None:
    with pytest.raises(ValueError, match="None means"):
        StateFilter()


async def test_a_state_set_by_one_update_is_seen_by_the_next(dp: Dispatcher, make: MakeUpdate) -> None:
    answers: list[str] = []

    @dp.message(StateFilter(Signup.phone))
    async def take_phone(message: Message, state: FSMContext) -> None:
        await state.update_data(phone=message.text)
        await state.set_state(Signup.name)
        answers.append("phone")

    @dp.message(StateFilter(Signup.name))
    async def take_name(message: Message, state: FSMContext) -> None:
        data = await state.update_data(name=message.text)
        await state.clear()
        answers.append(f"done {data['phone']} {data['name']}")

    @dp.message(Text("đăng ký"))
    async def start(state: FSMContext) -> None:
        await state.set_state(Signup.phone)
        answers.append("start")

    for text in ["Dang ky", "0901234567", "Lan", "dang ky"]:
        await dp.feed_update(make(text=text))

    assert answers == ["start", "phone", "done 0901234567 Lan", "start"]


async def test_state_belongs_to_the_user_and_the_account(dp: Dispatcher, make: MakeUpdate) -> None:
    @dp.message(StateFilter(Signup.phone))
    async def in_signup() -> None: ...

    await dp.storage.set_state(StorageKey("emulator", "oa", "u1"), Signup.phone.state)

    assert (await dp.feed_update(make(text="x", user="u1", account="oa"))).handled
    assert not (await dp.feed_update(make(text="x", user="u2", account="oa"))).handled
    assert not (await dp.feed_update(make(text="x", user="u1", account="oa2"))).handled


async def test_a_state_set_by_an_outer_middleware_is_seen_by_the_filters_of_the_same_update(
    dp: Dispatcher, make: MakeUpdate
) -> None:
    async def start_signup(handler: Any, update: Any, ctx: Context) -> Any:
        assert await ctx.raw_state() is None  # read (and cached) before the change
        await ctx.fsm.set_state(Signup.phone)
        return await handler(update, ctx)

    dp.outer_middleware(start_signup)

    @dp.message(StateFilter(Signup.phone))
    async def in_signup() -> None: ...

    result = await dp.feed_update(make(text="x"))

    assert result.handled


async def test_a_state_set_by_a_failing_handler_is_seen_by_the_errors_handlers(
    dp: Dispatcher, make: MakeUpdate
) -> None:
    @dp.message(StateFilter(None))
    async def fails_halfway(state: FSMContext) -> None:
        await state.set_state(Feedback.waiting)
        raise ValueError

    @dp.errors(StateFilter(Feedback.waiting))
    async def in_feedback() -> None: ...

    result = await dp.feed_update(make(text="x"))

    assert result.error_handled


async def test_a_state_cleared_in_a_handler_is_seen_by_the_errors_handlers(
    dp: Dispatcher, make: MakeUpdate
) -> None:
    await dp.storage.set_state(KEY, Signup.phone.state)

    @dp.message(StateFilter(Signup))
    async def clears_then_fails(state: FSMContext) -> None:
        await state.clear()
        raise ValueError

    @dp.errors(StateFilter(None))
    async def without_state() -> None: ...

    result = await dp.feed_update(make(text="x"))

    assert result.error_handled
    assert await dp.storage.get_state(KEY) is None
