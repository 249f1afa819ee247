"""Masking of personal data for logs and displays.

Phone numbers are personal data (Vietnam's Law 91/2025): they never appear whole in a log line, and a
customer sees their own number masked in the Mini App.
"""

from __future__ import annotations

import re
from typing import Final

# A Vietnamese mobile number as people and platforms write it: 0912345678, 0912 345 678, 0912.345.678,
# 84912345678, +84 912 345 678; or any other E.164 number (+ and 8 to 15 digits). The look-arounds keep
# longer digit runs (Zalo and Facebook user ids are 16 to 19 digits) untouched.
_PHONE: Final = re.compile(
    r"(?<![\w+])"
    r"(?:(?:\+|00)?84|0)(?:[ .\-]?\d){9}"
    r"(?![\w])"
    r"|(?<![\w+])\+\d{8,15}(?!\w)"
)
_VISIBLE_TAIL: Final = 3


def mask_phone(phone: str) -> str:
    """Keep the prefix and the last three digits, star the rest: ``+84912345678`` → ``+84912***678``.

    Separators are dropped. A value with fewer than 7 digits is starred entirely.
    """
    digits = "".join(ch for ch in phone if ch.isdigit())
    plus = "+" if phone.lstrip().startswith("+") else ""
    if len(digits) < 7:
        return "*" * len(digits)
    head = 5 if digits.startswith("84") else 3 if digits.startswith("0") else 4
    head = min(head, len(digits) - _VISIBLE_TAIL - 1)
    hidden = len(digits) - head - _VISIBLE_TAIL
    return f"{plus}{digits[:head]}{'*' * hidden}{digits[-_VISIBLE_TAIL:]}"


def redact_phones(text: str) -> str:
    """Mask every phone number found in free text (a log line, an error message)."""
    if not any(ch.isdigit() for ch in text):
        return text
    return _PHONE.sub(lambda match: mask_phone(match.group(0)), text)
