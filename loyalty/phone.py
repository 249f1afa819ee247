"""Phone numbers, normalised to E.164 (``+84912345678``) with ``phonenumbers``.

A customer may type ``0912 345 678``, ``84912345678``, ``+84 912.345.678``, ``(+84) 912-345-678`` or
``0084 912345678``; all become ``+84912345678``. Vietnam (``VN``) is the default region for numbers
written without a country code; a foreign number needs its ``+`` (or ``00``). Where a mobile number is
required (Zalo, ZNS and SMS reach only mobiles), a landline such as ``024 3825 1234`` is refused with
:class:`~loyalty.errors.PhoneNotMobile`.

Only digits, spaces, ``.``, ``-``, ``/``, parentheses and one leading ``+`` are accepted. ``phonenumbers``
itself is lenient: it reads letters as a keypad would (``0912ABC678`` becomes ``+84912222678``) and
drops leading words and trailing junk. A phone number joins customer accounts, so a typo must be
refused, never turned into somebody else's number.
"""

from __future__ import annotations

import re
from typing import Final

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from loyalty.errors import InvalidPhone, PhoneNotMobile

DEFAULT_REGION: Final = "VN"
_MOBILE_TYPES: Final = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_MAX_INPUT: Final = 40
# `\d` matches every Unicode decimal digit (full-width ０９１２ too, which phonenumbers reads).
_WRITTEN: Final = re.compile(r"^\(?\+?[\d\s.\-/()]+$")


def normalize_phone(raw: str, *, mobile_only: bool = True, region: str = DEFAULT_REGION) -> str:
    """The E.164 form of ``raw``, or :class:`InvalidPhone` with a reason.

    :param mobile_only: refuse numbers that are not mobiles (landlines, toll-free, premium) with
        :class:`PhoneNotMobile`.
    """
    text = raw.strip() if isinstance(raw, str) else ""
    if not text or len(text) > _MAX_INPUT or not _WRITTEN.match(text):
        raise InvalidPhone("not a phone number")
    # 84912345678 (no plus, as Zalo writes it) is read as an international number.
    if text.isdigit() and text.startswith("84") and len(text) == 11:
        text = "+" + text
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as error:
        raise InvalidPhone("not a phone number") from error
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("not a valid phone number")
    if mobile_only and phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise PhoneNotMobile("not a mobile number")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def zalo_phone(e164: str) -> str:
    """The form Zalo's ZNS API wants: ``84912345678`` (country code, no plus)."""
    return e164.removeprefix("+")
