"""Phone numbers: every way a Vietnamese customer writes a mobile becomes one E.164 number; landlines,
garbage and look-alikes are refused, never turned into somebody else's number."""

from __future__ import annotations

from typing import Any

import pytest

from loyalty.errors import InvalidPhone, PhoneNotMobile
from loyalty.phone import normalize_phone, zalo_phone


@pytest.mark.parametrize(
    "written",
    [
        "0912 345 678",
        "0912345678",
        "0912.345.678",
        "0912-345-678",
        "84912345678",  # as Zalo returns it: country code, no plus
        "+84912345678",
        "+84 912.345.678",
        "(+84) 912-345-678",
        "+84 (0) 912 345 678",
        "0084 912345678",
        "0084912345678",
        "  0912 345 678\n",
        "０９１２３４５６７８",  # full-width digits, as some phone keyboards type them
    ],
)
def test_the_ways_people_write_one_mobile(written: str) -> None:
    assert normalize_phone(written) == "+84912345678"


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        # the prefixes of 2018's renumbering and the newer networks (Viettel, Vinaphone, MobiFone,
        # Vietnamobile, Gmobile, iTel, Reddi)
        ("0321234567", "+84321234567"),
        ("0389876543", "+84389876543"),
        ("0523123456", "+84523123456"),
        ("0561234567", "+84561234567"),
        ("0581234567", "+84581234567"),
        ("0591234567", "+84591234567"),
        ("0701234567", "+84701234567"),
        ("0761234567", "+84761234567"),
        ("0771234567", "+84771234567"),
        ("0791234567", "+84791234567"),
        ("0812345678", "+84812345678"),
        ("0851234567", "+84851234567"),
        ("0861234567", "+84861234567"),
        ("0881234567", "+84881234567"),
        ("0896123456", "+84896123456"),
        ("0961234567", "+84961234567"),
        ("0971234567", "+84971234567"),
        ("0981234567", "+84981234567"),
        ("0991234567", "+84991234567"),
    ],
)
def test_vietnamese_mobile_prefixes(written: str, e164: str) -> None:
    assert normalize_phone(written) == e164


@pytest.mark.parametrize(
    "landline", ["024 3825 1234", "(028) 3822 1234", "+84 24 3825 1234", "0236 3821 234"]
)
def test_a_landline_is_refused_where_a_mobile_is_required(landline: str) -> None:
    with pytest.raises(PhoneNotMobile) as caught:
        normalize_phone(landline)

    assert caught.value.code == "phone_not_mobile"
    assert isinstance(caught.value, InvalidPhone)  # callers that only know InvalidPhone still refuse it


def test_a_landline_is_accepted_when_any_number_will_do() -> None:
    assert normalize_phone("024 3825 1234", mobile_only=False) == "+842438251234"
    assert normalize_phone("(028) 3822 1234", mobile_only=False) == "+842838221234"


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("+44 7911 123456", "+447911123456"),
        ("+65 9123 4567", "+6591234567"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("+1 650 253 0000", "+16502530000"),  # the US does not tell mobiles from landlines
        ("0044 7911 123456", "+447911123456"),
    ],
)
def test_foreign_mobiles_with_their_country_code(written: str, e164: str) -> None:
    assert normalize_phone(written) == e164


def test_a_foreign_number_without_its_country_code_is_read_as_vietnamese_and_refused() -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone("07911 123456")  # a British mobile, written the British way


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "   ",
        "abc",
        "0912",  # too short
        "091234567",  # one digit short
        "09123456789",  # one digit long
        "0912345678901234",
        "1" * 41,  # too long to even parse
        "0912 345 678 0987 654 321",  # two numbers
        "01234567890",  # an 11-digit mobile of before 2018: no longer valid
        "0891234567",  # 089 is only allocated from 0896
        "0912ABC678",  # a keypad would read ABC as 222: that is not what the customer meant
        "zero912345678",
        "0912345678x",
        "+84 912 345 678 ext 1",
        "tel:+84912345678",
        "12+34567890",
        "+84 912 345 678 #",
        "0000000000",
    ],
)
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalize_phone(garbage)

    assert caught.value.code == "invalid_phone"


@pytest.mark.parametrize("not_text", [None, 912345678, b"0912345678", ["0912345678"]])
def test_a_value_that_is_not_text_is_refused(not_text: Any) -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone(not_text)


def test_zalo_wants_the_number_without_the_plus() -> None:
    assert zalo_phone(normalize_phone("0912 345 678")) == "84912345678"
