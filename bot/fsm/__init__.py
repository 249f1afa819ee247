"""Finite-state machines for conversations: states, the per-user context, storages and isolation."""

from bot.fsm.context import FSMContext
from bot.fsm.state import ANY_STATE, State, StatesGroup
from bot.fsm.storage import BaseStorage, EventIsolation, StorageKey

__all__ = ["ANY_STATE", "BaseStorage", "EventIsolation", "FSMContext", "State", "StatesGroup", "StorageKey"]
