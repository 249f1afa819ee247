from __future__ import annotations

import pytest

from loyalty.pii import mask_phone, redact_phones


@pytest.mark.parametrize(
    ("_case", "phone", "masked"),
    [
        ("e164", "+84912345678", "+84912***678"),
        ("national", "0912345678", "091****678"),
        ("country code without plus", "84912345678", "84912***678"),
        ("with separators", "+84 912.345.678", "+84912***678"),
        ("foreign e164", "+6591234567", "+6591***567"),
        ("too short to keep anything", "12345", "*****"),
    ],
)
def test_mask_phone(_case: str, phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


@pytest.mark.parametrize(
    ("_case", "text", "expected"),
    [
        ("plain national", "phone 0912345678 attached", "phone 091****678 attached"),
        ("spaced national", "gõ 0912 345 678 nhé", "gõ 091****678 nhé"),
        ("dotted e164", "sđt +84 912.345.678", "sđt +84912***678"),
        ("in json", '{"phone": "84912345678"}', '{"phone": "84912***678"}'),
        ("two numbers", "0912345678,0987654321", "091****678,098****321"),
    ],
)
def test_redact_phones_masks_every_number(_case: str, text: str, expected: str) -> None:
    assert redact_phones(text) == expected


@pytest.mark.parametrize(
    ("_case", "text"),
    [
        ("zalo user id", "user 8915461934851234567 followed"),
        ("facebook psid", "psid=24861234567890123"),
        ("amount", "order total 1250000 VND"),
        ("timestamp ms", "ts 1795433018926"),
        ("no digits", "xin chào"),
    ],
)
def test_redact_phones_leaves_other_numbers_alone(_case: str, text: str) -> None:
    assert redact_phones(text) == text
