"""Fixtures of the bot framework's tests: updates, a recording channel client, a dispatcher."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot import Dispatcher
from tests.bot.helpers import Recorder, make_update


@pytest.fixture
def make() -> Callable[..., Any]:
    """``make(Postback, payload="x", user="u2")``: an update with a fresh event id (default: a Message)."""
    return make_update


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def dp(recorder: Recorder) -> Dispatcher:
    """A dispatcher with the default in-memory storage and isolation, replying into ``recorder``."""
    return Dispatcher(channels={"emulator": recorder})
