"""Filters decide whether a handler takes an update.

A filter is a callable returning ``bool`` or a ``dict`` (a match whose items are passed to the handler
by name), or an awaitable of one. It takes the update, and optionally the dispatch context:
``f(update)`` or ``f(update, ctx)``. Magic filters (``F.text == "hi"``, from the ``magic-filter``
package) work as they are.

Every filter is compiled once, when its handler is registered (:func:`compile_filter`), into a call
of one shape with a flag saying whether to await it: no thread-pool hops, no signature inspection
while dispatching. The built-in filters are synchronous except :class:`StateFilter`, which may have
to read the user's state from storage.

Filters that add values for the handler declare their names in ``provides``, so a handler asking for
them is accepted at registration.
"""

from __future__ import annotations

import abc
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Union

from magic_filter import MagicFilter

from bot.fsm.state import ANY_STATE, State, StatesGroup
from bot.text import fold

if TYPE_CHECKING:
    from bot.context import Context

FilterResult = Union[bool, dict[str, Any]]  # noqa: UP007 - used at runtime in isinstance-free code
CompiledFilter = Callable[[Any, "Context"], Any]


class Filter(abc.ABC):
    """Base class for filters: gives ``&``, ``|`` and ``~``, and the ``provides`` declaration."""

    provides: ClassVar[frozenset[str]] = frozenset()
    is_async: ClassVar[bool] = False

    @abc.abstractmethod
    def __call__(self, update: Any, ctx: Context) -> FilterResult | Awaitable[FilterResult]:
        """``True``/``False``, or a dict of values for the handler (or an awaitable of one)."""

    def __and__(self, other: Any) -> Filter:
        return and_(self, other)

    def __or__(self, other: Any) -> Filter:
        return or_(self, other)

    def __invert__(self) -> Filter:
        return invert(self)


@dataclass(frozen=True, slots=True)
class Compiled:
    call: CompiledFilter
    is_async: bool
    provides: frozenset[str]


def compile_filter(candidate: Any) -> Compiled:
    """Turn any supported filter into a uniform ``(update, ctx)`` call, once, at registration."""
    if isinstance(candidate, Compiled):
        return candidate
    if isinstance(candidate, MagicFilter):
        magic = candidate
        return Compiled(lambda update, ctx: _magic_result(magic.resolve(update)), False, frozenset())
    if isinstance(candidate, Filter):
        return Compiled(candidate.__call__, candidate.is_async, candidate.provides)
    if not callable(candidate):
        raise TypeError(f"a filter must be callable, a Filter or a magic filter, not {candidate!r}")
    is_async = inspect.iscoroutinefunction(candidate) or inspect.iscoroutinefunction(
        getattr(candidate, "__call__", None)  # noqa: B004 - async callable objects
    )
    provides = frozenset(getattr(candidate, "provides", ()))
    try:
        positional = [
            p
            for p in inspect.signature(candidate).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):  # builtins without signatures
        positional = [None]  # type: ignore[list-item]
    if len(positional) >= 2:
        return Compiled(candidate, is_async, provides)
    function = candidate
    return Compiled(lambda update, ctx: function(update), is_async, provides)


def _magic_result(value: Any) -> FilterResult:
    if isinstance(value, dict):
        return value
    return bool(value)


# --------------------------------------------------------------------------- text


class Text(Filter):
    """Match a message's text, ignoring case, spacing and diacritics (postbacks: use :class:`Payload`).

    ``Text("điểm")`` matches "diem", "ĐIỂM" and " Điểm ". Give several values for any-of. Modes:
    ``exact`` (default), ``startswith``, ``contains``. Provides ``text`` (the original text).
    """

    provides = frozenset({"text"})
    __slots__ = ("_mode", "_values")

    def __init__(self, *values: str, mode: str = "exact") -> None:
        if not values:
            raise ValueError("Text needs at least one value")
        if mode not in ("exact", "startswith", "contains"):
            raise ValueError(f"unknown Text mode {mode!r}")
        self._values = tuple(fold(value) for value in values)
        self._mode = mode

    @classmethod
    def startswith(cls, *values: str) -> Text:
        return cls(*values, mode="startswith")

    @classmethod
    def contains(cls, *values: str) -> Text:
        return cls(*values, mode="contains")

    def __call__(self, update: Any, ctx: Context) -> FilterResult:
        text = getattr(update, "text", None)
        if not text:
            return False
        folded = fold(text)
        if self._mode == "exact":
            matched = folded in self._values
        elif self._mode == "startswith":
            matched = folded.startswith(self._values)
        else:
            matched = any(value in folded for value in self._values)
        return {"text": text} if matched else False


class Regex(Filter):
    """Match a message's text against a regular expression (on the original text). Provides ``match``."""

    provides = frozenset({"match"})
    __slots__ = ("_pattern",)

    def __init__(self, pattern: str | re.Pattern[str], flags: int = re.IGNORECASE) -> None:
        self._pattern = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, flags)

    def __call__(self, update: Any, ctx: Context) -> FilterResult:
        text = getattr(update, "text", None)
        if not text:
            return False
        match = self._pattern.search(text)
        return {"match": match} if match else False


class Payload(Filter):
    """Match a postback payload ``<prefix>[:<arg>[:<arg>...]]``. Provides ``args`` (a tuple of strings).

    ``Payload("checkin")`` matches ``checkin:abc123`` with ``args == ("abc123",)``, and plain
    ``checkin`` with ``args == ()``. A prefix may span segments (``Payload("sl:help")``), and
    ``Payload("menu", "points")`` matches any of several prefixes (the longest that fits wins).
    """

    provides = frozenset({"args", "payload"})
    __slots__ = ("_prefixes", "_separator")

    def __init__(self, *prefixes: str, separator: str = ":") -> None:
        if not prefixes:
            raise ValueError("Payload needs at least one prefix")
        self._prefixes = tuple(sorted(prefixes, key=len, reverse=True))
        self._separator = separator

    def __call__(self, update: Any, ctx: Context) -> FilterResult:
        payload = getattr(update, "payload", None)
        if payload is None:
            return False
        for prefix in self._prefixes:
            if payload == prefix:
                return {"args": (), "payload": payload}
            if (
                payload.startswith(prefix)
                and payload[len(prefix) : len(prefix) + len(self._separator)] == self._separator
            ):
                rest = payload[len(prefix) + len(self._separator) :]
                return {"args": tuple(rest.split(self._separator)), "payload": payload}
        return False


class StateFilter(Filter):
    """Match the user's current FSM state: states, groups, state names, ``None`` (no state), ``"*"`` (any)."""

    is_async = True
    __slots__ = ("_any", "_groups", "_names")

    def __init__(self, *states: State | type[StatesGroup] | str | None) -> None:
        if not states:
            raise ValueError("StateFilter needs at least one state (None means 'no state')")
        self._any = ANY_STATE in states
        self._groups = tuple(s for s in states if isinstance(s, type) and issubclass(s, StatesGroup))
        self._names = frozenset(
            s.state if isinstance(s, State) else s for s in states if not isinstance(s, type)
        )

    async def __call__(self, update: Any, ctx: Context) -> FilterResult:
        if self._any:
            return True
        current = await ctx.raw_state()
        if current in self._names:
            return True
        return any(current in group for group in self._groups)


class ErrorType(Filter):
    """For ``errors`` handlers: match the exception's type. ``@router.errors(ErrorType(ValueError))``."""

    __slots__ = ("_types",)

    def __init__(self, *types: type[BaseException]) -> None:
        self._types = types

    def __call__(self, update: Any, ctx: Context) -> FilterResult:
        return isinstance(ctx.data.get("error"), self._types)


# --------------------------------------------------------------------------- logic


class _Combined(Filter):
    """Base of the logic filters: awaits only the parts that are asynchronous."""

    is_async = True

    def __init__(self, filters: Iterable[Any]) -> None:
        self._filters = tuple(compile_filter(f) for f in filters)
        # What `or_` provides depends on the branch that matched: a handler should give those
        # parameters a default. Both are checked at registration like any other name.
        self.provides = frozenset().union(*(f.provides for f in self._filters))  # type: ignore[misc]


class _And(_Combined):
    async def __call__(self, update: Any, ctx: Context) -> FilterResult:
        merged: dict[str, Any] = {}
        for item in self._filters:
            result = item.call(update, ctx)
            if item.is_async:
                result = await result
            if not result:
                return False
            if isinstance(result, dict):
                merged.update(result)
        return merged or True


class _Or(_Combined):
    async def __call__(self, update: Any, ctx: Context) -> FilterResult:
        for item in self._filters:
            result = item.call(update, ctx)
            if item.is_async:
                result = await result
            if result:
                return result  # type: ignore[no-any-return]
        return False


class _Not(_Combined):
    async def __call__(self, update: Any, ctx: Context) -> FilterResult:
        (item,) = self._filters
        result = item.call(update, ctx)
        if item.is_async:
            result = await result
        return not result


def and_(*filters: Any) -> Filter:
    """All must match; their dicts are merged."""
    return _And(filters)


def or_(*filters: Any) -> Filter:
    """The first that matches wins; its dict is passed on."""
    return _Or(filters)


def invert(inner: Any) -> Filter:
    """Matches when ``inner`` does not."""
    negated = _Not((inner,))
    negated.provides = frozenset()  # type: ignore[misc]
    return negated
