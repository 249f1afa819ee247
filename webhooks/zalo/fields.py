"""Typed reads of a Zalo event's fields: every problem becomes a :class:`MalformedEvent` naming the field.

Zalo's payloads are only partly documented (see ``zalo.md``), so the readers are strict about types
(an id is a string of safe characters, never a number or an object such as ``{"$ne": ""}``) and
tolerant about presence wherever the contract is unconfirmed: optional fields come back as ``None``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

# Zalo ids (users, OAs, messages) are digit or hex strings, too large for a JSON number; they stay
# opaque strings here, limited to characters that are safe in keys and logs.
ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
EPOCH_MS_PATTERN: Final = re.compile(r"[0-9]{1,15}")
# the last millisecond a datetime can hold (9999-12-31T23:59:59.999Z)
MAX_EPOCH_MS: Final = 253_402_300_799_999
MAX_STRING_LENGTH: Final = 8192
_MISSING: Final = object()


class MalformedEvent(ValueError):
    """An event of a known type whose shape is wrong: the webhook answers 400 and queues nothing.

    :param event: the ``event_name``.
    :param field: the dotted path of the offending field (``sender.id``, ``message.attachments[0]``).
    :param problem: what is wrong with it.
    """

    def __init__(self, event: str, field: str, problem: str) -> None:
        super().__init__(f"{event}: {field}: {problem}")
        self.event = event
        self.field = field
        self.problem = problem


def parse_epoch_ms(value: object) -> int | None:
    """Epoch milliseconds from a JSON value: a string of digits (Zalo's form) or a non-negative integer.

    :return: the milliseconds, or ``None`` when ``value`` is neither (booleans and floats included).
    """
    if isinstance(value, str) and EPOCH_MS_PATTERN.fullmatch(value):
        ms = int(value)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        ms = value
    else:
        return None
    return ms if ms <= MAX_EPOCH_MS else None


class Fields:
    """Reads the fields of one event (or of one object inside it) by dotted path.

    :param event: the ``event_name``, for error messages.
    :param data: the object to read.
    :param prefix: the path of ``data`` inside the event, for error messages.
    """

    def __init__(self, event: str, data: Mapping[str, Any], prefix: str = "") -> None:
        self.event = event
        self.data = data
        self.prefix = prefix

    def fail(self, path: str, problem: str) -> MalformedEvent:
        return MalformedEvent(self.event, self._full(path), problem)

    def _full(self, path: str) -> str:
        return f"{self.prefix}.{path}" if self.prefix else path

    def _lookup(self, path: str) -> Any:
        node: Any = self.data
        walked: list[str] = []
        for part in path.split("."):
            if not isinstance(node, Mapping):
                raise self.fail(".".join(walked), "must be an object")
            walked.append(part)
            node = node.get(part, _MISSING)
            if node is _MISSING or node is None:
                return _MISSING
        return node

    def obj(self, path: str) -> Fields:
        """A required object, as a reader of its own fields."""
        value = self._lookup(path)
        if value is _MISSING:
            raise self.fail(path, "is missing")
        if not isinstance(value, Mapping):
            raise self.fail(path, "must be an object")
        return Fields(self.event, value, self._full(path))

    def id(self, path: str) -> str:
        """A required id: a string of 1 to 128 safe characters."""
        value = self._lookup(path)
        if value is _MISSING:
            raise self.fail(path, "is missing")
        if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
            raise self.fail(path, "must be an id: a string of 1 to 128 letters, digits, '_', '.' or '-'")
        return value

    def optional_id(self, path: str) -> str | None:
        """An id that may be absent (``None`` or missing); present, it must be valid."""
        if self._lookup(path) is _MISSING:
            return None
        return self.id(path)

    def text(self, path: str, *, required: bool = False, max_length: int = MAX_STRING_LENGTH) -> str | None:
        """A string (possibly empty); ``None`` when absent and not ``required``."""
        value = self._lookup(path)
        if value is _MISSING:
            if required:
                raise self.fail(path, "is missing")
            return None
        if not isinstance(value, str):
            raise self.fail(path, "must be a string")
        if len(value) > max_length:
            raise self.fail(path, f"must have at most {max_length} characters")
        return value

    def required_text(self, path: str, *, max_length: int = MAX_STRING_LENGTH) -> str:
        """A required string (possibly empty)."""
        value = self.text(path, required=True, max_length=max_length)
        if value is None:
            raise self.fail(path, "is missing")
        return value

    def text_or_number(self, path: str, *, max_length: int = 64) -> str | None:
        """A string, or an integer given as a JSON number, as a string; ``None`` when absent.

        Zalo sends some values (a shared phone number) either way.
        """
        value = self._lookup(path)
        if value is _MISSING:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise self.fail(path, "must be a string or an integer")
        if len(value) > max_length:
            raise self.fail(path, f"must have at most {max_length} characters")
        return value

    def objects(self, path: str) -> list[Fields]:
        """A required list of objects, each as a reader."""
        value = self._lookup(path)
        if value is _MISSING:
            raise self.fail(path, "is missing")
        if not isinstance(value, list):
            raise self.fail(path, "must be a list")
        readers: list[Fields] = []
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise self.fail(f"{path}[{index}]", "must be an object")
            readers.append(Fields(self.event, item, self._full(f"{path}[{index}]")))
        return readers

    def epoch_ms(self, path: str) -> tuple[int, str]:
        """A required epoch-milliseconds timestamp: its value, and its text as received."""
        value = self._lookup(path)
        ms = None if value is _MISSING else parse_epoch_ms(value)
        if ms is None:
            raise self.fail(path, "must be epoch milliseconds (a string of digits)")
        return ms, value if isinstance(value, str) else str(value)

    def optional_epoch_ms(self, path: str) -> int | None:
        if self._lookup(path) is _MISSING:
            return None
        return self.epoch_ms(path)[0]

    def coordinate(self, path: str, limit: float) -> float:
        """A required coordinate within ``±limit``; Zalo sends coordinates as strings."""
        value = self._lookup(path)
        if value is _MISSING:
            raise self.fail(path, "is missing")
        number: float | None = None
        if isinstance(value, str) and len(value) <= 32:
            try:
                number = float(value)
            except ValueError:
                number = None
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        if number is None or not math.isfinite(number) or abs(number) > limit:
            raise self.fail(path, f"must be a number between -{limit:g} and {limit:g}")
        return number
