"""Filters: text folding, the built-in filters, magic filters, custom functions and their logic."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot import (
    Context,
    Dispatcher,
    F,
    Filter,
    Message,
    Payload,
    Postback,
    Regex,
    Text,
    and_,
    invert,
    or_,
)
from bot.text import fold
from tests.bot.helpers import make_update

Probe = Callable[[Any, Any], Awaitable[tuple[bool, dict[str, Any]]]]


@pytest.fixture
def probe() -> Probe:
    """Dispatch ``update`` to one handler guarded by ``filter_``: (handled, what the handler got)."""

    async def run(filter_: Any, update: Any) -> tuple[bool, dict[str, Any]]:
        dp = Dispatcher()
        received: dict[str, Any] = {}

        async def handler(**kwargs: Any) -> None:
            received.update(kwargs)

        dp.observers[update.kind.value].register(handler, filter_)
        result = await dp.feed_update(update)
        assert result.error is None
        return result.handled, received

    return run


def message(text: str | None) -> Message:
    return make_update(Message, text=text)


def postback(payload: str, title: str | None = None) -> Postback:
    return make_update(Postback, payload=payload, title=title)


# --------------------------------------------------------------------------- folding and Text


@pytest.mark.parametrize(
    ("_case", "text"),
    [
        ("plain", "diem"),
        ("diacritics", "điểm"),
        ("upper case", "ĐIỂM"),
        ("padded", "  Điểm  "),
        ("mixed", "DiỂm"),
    ],
)
def test_fold_ignores_case_spacing_and_diacritics(_case: str, text: str) -> None:
    assert fold(text) == "diem"


def test_fold_collapses_inner_whitespace() -> None:
    assert fold("  Ưu   đãi\tcủa  tôi ") == "uu dai cua toi"


@pytest.mark.parametrize(
    ("_case", "text"),
    [("plain", "diem"), ("diacritics", "điểm"), ("upper case", "ĐIỂM"), ("padded", "  Điểm  ")],
)
async def test_text_matches_exactly_whatever_the_spelling(probe: Probe, _case: str, text: str) -> None:
    handled, received = await probe(Text("điểm"), message(text))

    assert handled
    assert received["text"] == text  # the original text, not the folded one


async def test_text_exact_does_not_match_a_longer_text(probe: Probe) -> None:
    handled, _ = await probe(Text("điểm"), message("điểm của tôi"))

    assert not handled


@pytest.mark.parametrize(
    ("_case", "text", "expected"),
    [("first", "xin chào", True), ("second", "Hello", True), ("third", "HI", True), ("none", "bye", False)],
)
async def test_text_matches_any_of_its_values(probe: Probe, _case: str, text: str, expected: bool) -> None:
    handled, _ = await probe(Text("xin chào", "hello", "hi"), message(text))

    assert handled is expected


@pytest.mark.parametrize(
    ("_case", "text", "expected"),
    [
        ("prefix", "Điểm của tôi", True),
        ("whole", "diem", True),
        ("second value", "points please", True),
        ("inside", "xem điểm", False),
    ],
)
async def test_text_startswith(probe: Probe, _case: str, text: str, expected: bool) -> None:
    handled, _ = await probe(Text.startswith("điểm", "points"), message(text))

    assert handled is expected


@pytest.mark.parametrize(
    ("_case", "text", "expected"),
    [("inside", "cho tôi xem ĐIỂM nhé", True), ("prefix", "điểm", True), ("absent", "ưu đãi", False)],
)
async def test_text_contains(probe: Probe, _case: str, text: str, expected: bool) -> None:
    handled, _ = await probe(Text.contains("điểm"), message(text))

    assert handled is expected


@pytest.mark.parametrize(("_case", "text"), [("none", None), ("empty", "")])
async def test_text_does_not_match_a_message_without_text(probe: Probe, _case: str, text: str | None) -> None:
    handled, _ = await probe(Text("điểm"), message(text))

    assert not handled


async def test_text_does_not_match_an_update_without_text(probe: Probe) -> None:
    handled, _ = await probe(Text("checkin"), postback("checkin"))

    assert not handled


async def test_text_leaves_postbacks_to_payload_filters(probe: Probe) -> None:
    # a button's title is what it showed, not what it means: postbacks are matched on their payload
    handled, _ = await probe(Text("điểm của tôi"), postback("menu:points", title="Điểm của tôi"))

    assert not handled


def test_text_needs_a_value_and_a_known_mode() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        Text()
    with pytest.raises(ValueError, match="unknown Text mode"):
        Text("a", mode="endswith")


# --------------------------------------------------------------------------- Regex and Payload


async def test_regex_provides_the_match(probe: Probe) -> None:
    handled, received = await probe(Regex(r"đổi (\d+) điểm"), message("ĐỔI 100 ĐIỂM nhé"))

    assert handled
    assert isinstance(received["match"], re.Match)
    assert received["match"].group(1) == "100"


async def test_regex_accepts_a_compiled_pattern(probe: Probe) -> None:
    handled, _ = await probe(Regex(re.compile(r"^\d+$")), message("abc"))

    assert not handled


@pytest.mark.parametrize(
    ("_case", "payload", "expected_args"),
    [
        ("one argument", "checkin:abc", ("abc",)),
        ("no argument", "checkin", ()),
        ("two arguments", "checkin:abc:42", ("abc", "42")),
    ],
)
async def test_payload_matches_its_prefix_and_provides_the_arguments(
    probe: Probe, _case: str, payload: str, expected_args: tuple[str, ...]
) -> None:
    handled, received = await probe(Payload("checkin"), postback(payload))

    assert handled
    assert received["args"] == expected_args
    assert received["payload"] == payload


@pytest.mark.parametrize(
    ("_case", "payload"),
    [("longer word", "checkinx"), ("longer word with args", "checkinx:abc"), ("other", "menu")],
)
async def test_payload_does_not_match_another_prefix(probe: Probe, _case: str, payload: str) -> None:
    handled, _ = await probe(Payload("checkin"), postback(payload))

    assert not handled


@pytest.mark.parametrize(("_case", "payload"), [("first", "menu:points"), ("second", "points")])
async def test_payload_matches_any_of_several_prefixes(probe: Probe, _case: str, payload: str) -> None:
    handled, _ = await probe(Payload("menu", "points"), postback(payload))

    assert handled


async def test_payload_with_another_separator(probe: Probe) -> None:
    handled, received = await probe(Payload("game", separator="|"), postback("game|spin|3"))

    assert handled
    assert received["args"] == ("spin", "3")


async def test_payload_does_not_match_a_message(probe: Probe) -> None:
    handled, _ = await probe(Payload("checkin"), message("checkin"))

    assert not handled


def test_payload_needs_a_prefix() -> None:
    with pytest.raises(ValueError, match="at least one prefix"):
        Payload()


# --------------------------------------------------------------------------- magic filters


@pytest.mark.parametrize(
    ("_case", "text", "expected"), [("equal", "x", True), ("different", "y", False), ("no text", None, False)]
)
async def test_magic_filter_equality(probe: Probe, _case: str, text: str | None, expected: bool) -> None:
    handled, _ = await probe(F.text == "x", message(text))

    assert handled is expected


@pytest.mark.parametrize(
    ("_case", "text", "expected"),
    [("prefix", "#sale", True), ("other", "sale", False), ("no text", None, False)],
)
async def test_magic_filter_startswith(probe: Probe, _case: str, text: str | None, expected: bool) -> None:
    handled, _ = await probe(F.text.startswith("#"), message(text))

    assert handled is expected


async def test_magic_filter_on_an_update_without_the_attribute_does_not_match(probe: Probe) -> None:
    handled, _ = await probe(F.text == "x", postback("x"))

    assert not handled


# --------------------------------------------------------------------------- custom functions


def _sync_one(update: Any) -> bool:
    return update.text == "go"


def _sync_two(update: Any, ctx: Context) -> bool:
    assert isinstance(ctx, Context) and ctx.update is update
    return update.text == "go"


async def _async_one(update: Any) -> bool:
    return update.text == "go"


async def _async_two(update: Any, ctx: Context) -> bool:
    assert isinstance(ctx, Context) and ctx.update is update
    return update.text == "go"


class _AsyncCallable:
    async def __call__(self, update: Any, ctx: Context) -> bool:
        assert isinstance(ctx, Context)
        return update.text == "go"


@pytest.mark.parametrize(
    ("_case", "filter_"),
    [
        ("sync, update", _sync_one),
        ("sync, update and ctx", _sync_two),
        ("async, update", _async_one),
        ("async, update and ctx", _async_two),
        ("async callable object", _AsyncCallable()),
        ("lambda", lambda update: update.text == "go"),
    ],
)
@pytest.mark.parametrize(("text", "expected"), [("go", True), ("stop", False)])
async def test_custom_filter_functions(
    probe: Probe, _case: str, filter_: Any, text: str, expected: bool
) -> None:
    handled, _ = await probe(filter_, message(text))

    assert handled is expected


async def test_a_filter_returning_a_dict_passes_its_values_to_the_handler(probe: Probe) -> None:
    async def amount(update: Any) -> dict[str, Any] | bool:
        return {"amount": int(update.text)} if update.text.isdigit() else False

    amount.provides = ("amount",)  # type: ignore[attr-defined]

    handled, received = await probe(amount, message("120"))

    assert handled
    assert received["amount"] == 120


async def test_a_filter_subclass_providing_values(probe: Probe) -> None:
    class Word(Filter):
        provides = frozenset({"word"})

        def __call__(self, update: Any, ctx: Context) -> Any:
            return {"word": update.text.split()[0]} if update.text else False

    handled, received = await probe(Word(), message("hello world"))

    assert handled
    assert received["word"] == "hello"


async def test_a_filter_returning_an_empty_dict_does_not_match(probe: Probe) -> None:
    handled, _ = await probe(lambda update: {}, message("x"))

    assert not handled


# --------------------------------------------------------------------------- logic


async def _async_yes(update: Any) -> bool:
    return True


async def _async_no(update: Any) -> bool:
    return False


@pytest.mark.parametrize(
    ("_case", "filter_", "expected"),
    [
        ("and: both", and_(Text("go"), _async_yes), True),
        ("and: async fails", and_(Text("go"), _async_no), False),
        ("and: sync fails", and_(_async_yes, Text("stop")), False),
        ("or: async then sync", or_(_async_no, Text("go")), True),
        ("or: none", or_(_async_no, Text("stop")), False),
        ("or: first", or_(_async_yes, Text("stop")), True),
        ("invert async false", invert(_async_no), True),
        ("invert async true", invert(_async_yes), False),
        ("invert sync", invert(Text("stop")), True),
        ("nested", and_(or_(_async_no, Text("go")), invert(Text("stop"))), True),
        ("magic inside", and_(F.text == "go", _async_yes), True),
    ],
)
async def test_logic_functions(probe: Probe, _case: str, filter_: Any, expected: bool) -> None:
    handled, _ = await probe(filter_, message("go"))

    assert handled is expected


@pytest.mark.parametrize(
    ("_case", "filter_", "expected"),
    [
        ("and", Text.startswith("đổi") & Regex(r"\d+"), True),
        ("and fails", Text.startswith("đổi") & Regex(r"^x"), False),
        ("or", Text("no") | Regex(r"\d+"), True),
        ("or fails", Text("no") | Text("nope"), False),
        ("invert", ~Text("no"), True),
        ("invert fails", ~Regex(r"\d+"), False),
        ("with a function", Text.startswith("doi") & (lambda update: "100" in update.text), True),
        ("with async", Text.contains("điểm") | _async_no, True),
    ],
)
async def test_operators_on_filter_objects(probe: Probe, _case: str, filter_: Any, expected: bool) -> None:
    handled, _ = await probe(filter_, message("Đổi 100 điểm"))

    assert handled is expected


async def test_and_merges_the_values_of_its_parts(probe: Probe) -> None:
    handled, received = await probe(Text.startswith("đổi") & Regex(r"(\d+)"), message("Đổi 100 điểm"))

    assert handled
    assert received["text"] == "Đổi 100 điểm"
    assert received["match"].group(1) == "100"


async def test_or_passes_the_values_of_the_branch_that_matched(probe: Probe) -> None:
    handled, received = await probe(Text("no") | Regex(r"(\d+)"), message("Đổi 100 điểm"))

    assert handled
    assert received["match"].group(1) == "100"
    assert "text" not in received


async def test_invert_of_a_text_filter_matches_a_message_without_text(probe: Probe) -> None:
    handled, _ = await probe(~Text("x"), message(None))

    assert handled


def test_logic_filters_declare_what_their_parts_provide() -> None:
    assert (Text("a") & Regex("b")).provides == {"text", "match"}
    assert (Text("a") | Payload("b")).provides == {"text", "args", "payload"}
    assert (~Text("a")).provides == frozenset()


@pytest.mark.parametrize(
    ("_case", "payload", "args"),
    [
        ("exact multi-segment prefix", "sl:help", ()),
        ("multi-segment prefix with args", "sl:help:faq:2", ("faq", "2")),
        ("longer prefix wins", "sl:help:x", ("x",)),
    ],
)
async def test_payload_prefixes_may_span_segments(
    _case: str, payload: str, args: tuple[str, ...], probe: Probe
) -> None:
    handled, received = await probe(Payload("sl", "sl:help"), postback(payload))

    assert handled
    assert received["args"] == args


async def test_a_multi_segment_prefix_does_not_match_a_longer_word(probe: Probe) -> None:
    handled, _ = await probe(Payload("sl:help"), postback("sl:helpdesk"))

    assert not handled
