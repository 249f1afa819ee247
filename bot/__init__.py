"""A channel-agnostic chat framework (updates, replies, routing, FSM). It knows nothing of loyalty.

Handlers are written as in aiogram 3::

    from bot import Dispatcher, Router, Text, Message, Sender

    router = Router(name="hello")

    @router.message(Text("xin chào", "hello"))
    async def hello(message: Message, reply: Sender) -> None:
        await reply("Chào bạn!")

See ``docs/writing-handlers.md``.
"""

from magic_filter import F

from bot.context import Context, Sender
from bot.dispatcher import Dispatcher, DispatchResult, UnknownDependencyError
from bot.filters import ErrorType, Filter, Payload, Regex, StateFilter, Text, and_, invert, or_
from bot.fsm import FSMContext, State, StatesGroup
from bot.fsm.memory import MemoryIsolation, MemoryStorage
from bot.fsm.storage import NoIsolation, StorageKey
from bot.replies import Button, Buttons, Card, Image, QuickReplies, QuickReply, Reply, RequestPhone
from bot.replies import Text as TextReply
from bot.router import RegistrationError, Router
from bot.types import (
    UPDATE_ADAPTER,
    Attachment,
    AttachmentType,
    BaseUpdate,
    Channel,
    ContactShared,
    Follow,
    Message,
    OptIn,
    Postback,
    Referral,
    Unfollow,
    Update,
    UpdateKind,
)

__all__ = [
    "UPDATE_ADAPTER",
    "Attachment",
    "AttachmentType",
    "BaseUpdate",
    "Button",
    "Buttons",
    "Card",
    "Channel",
    "ContactShared",
    "Context",
    "DispatchResult",
    "Dispatcher",
    "ErrorType",
    "F",
    "FSMContext",
    "Filter",
    "Follow",
    "Image",
    "MemoryIsolation",
    "MemoryStorage",
    "Message",
    "NoIsolation",
    "OptIn",
    "Payload",
    "Postback",
    "QuickReplies",
    "QuickReply",
    "Referral",
    "Regex",
    "RegistrationError",
    "Reply",
    "RequestPhone",
    "Router",
    "Sender",
    "State",
    "StateFilter",
    "StatesGroup",
    "StorageKey",
    "Text",
    "TextReply",
    "Unfollow",
    "UnknownDependencyError",
    "Update",
    "UpdateKind",
    "and_",
    "invert",
    "or_",
]
