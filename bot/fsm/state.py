"""States and groups of states, as in aiogram: ``class Signup(StatesGroup): phone = State()``."""

from __future__ import annotations

from typing import Any, Final

ANY_STATE: Final = "*"


class State:
    """One state. Its name (``"Signup:phone"``) is what storages keep; set when its group class is made."""

    def __init__(self, name: str | None = None) -> None:
        self._name = name
        self.group: type[StatesGroup] | None = None

    @property
    def state(self) -> str:
        if self._name is None:
            raise RuntimeError("a State must be declared inside a StatesGroup (or given a name)")
        return self._name

    def __set_name__(self, owner: type, attribute: str) -> None:
        if self._name is None:
            self._name = f"{owner.__name__}:{attribute}"

    def __str__(self) -> str:
        return self.state

    def __repr__(self) -> str:
        return f"<State {self._name!r}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, State):
            return self._name == other._name
        if isinstance(other, str):
            return self._name == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._name)


class _StatesGroupMeta(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> _StatesGroupMeta:
        cls = super().__new__(mcs, name, bases, namespace)
        states = tuple(value for value in namespace.values() if isinstance(value, State))
        for state in states:
            state.group = cls  # type: ignore[assignment]
        cls.__states__ = states  # type: ignore[attr-defined]
        return cls

    def __contains__(cls, item: object) -> bool:
        states: tuple[State, ...] = cls.__states__  # type: ignore[attr-defined]
        return any(state == item for state in states)


class StatesGroup(metaclass=_StatesGroupMeta):
    """A named set of states; ``state in Group`` tells whether a state belongs to it."""

    __states__: tuple[State, ...] = ()
