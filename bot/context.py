"""The per-update dispatch context, and the ``reply`` sender handlers get."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.channels.base import ChannelClient, ChannelError, Recipient
from bot.fsm.context import FSMContext
from bot.fsm.storage import StorageKey
from bot.outbox import Claim, Outbox, OutboxBusyError
from bot.replies import Reply, Text, as_reply

if TYPE_CHECKING:
    from bot.dispatcher import Dispatcher
    from bot.types import BaseUpdate

_UNSET: Any = object()
log = logging.getLogger("loyalty.bot")


class Sender:
    """Sends replies to the user an update came from: ``await reply("Xin chào!")``,
    ``await reply(Text(...), Buttons(...))``. Replies of one call are delivered in order.

    Each call is one *step* of handling the update. With an outbox on the dispatcher, a step already
    sent while handling this same update before (the event was delivered again) is not sent again.
    """

    __slots__ = ("_dispatcher", "_step", "_update", "sent", "skipped")

    def __init__(self, dispatcher: Dispatcher, update: BaseUpdate) -> None:
        self._dispatcher = dispatcher
        self._update = update
        self._step = 0
        self.sent = 0
        self.skipped = 0

    async def __call__(self, *replies: Reply | str) -> None:
        if not replies:
            return
        update = self._update
        step, self._step = self._step, self._step + 1
        client = self._dispatcher.channel_client(update.channel.value)
        recipient = Recipient(update.channel.value, update.account_id, update.user_id)
        rendered = [as_reply(r) for r in replies]
        outbox = self._dispatcher.outbox
        if outbox is None:
            await client.send(recipient, rendered, in_reply_to=update)
        elif await self._send_once(outbox, client, recipient, rendered, step):
            return
        self.sent += len(replies)

    async def _send_once(
        self,
        outbox: Outbox,
        client: ChannelClient,
        recipient: Recipient,
        rendered: list[Reply],
        step: int,
        *,
        in_reply_to: BaseUpdate | None = _UNSET,
    ) -> bool:
        """Send a step through the outbox; True when it had been sent already (nothing was sent now).

        :param in_reply_to: what the platform is told this answers (default: the update; ``None`` for a
            message to someone else)."""
        update = self._update
        answering = update if in_reply_to is _UNSET else in_reply_to
        key = f"{recipient.channel}:{recipient.account_id}:{recipient.user_id}:{update.event_id}:{step}"
        claim = await outbox.claim(key)
        if claim is Claim.SENT:
            self.skipped += len(rendered)
            log.info("step %d of update %s was already sent: not sending it again", step, update.event_id)
            return True
        if claim is Claim.BUSY:
            raise OutboxBusyError(f"step {step} of update {update.event_id} is being sent by another attempt")
        # A channel whose destination shares the outbox's Redis (the emulator) commits the reply and its
        # "sent" mark in one transaction: exactly once. Others send, then mark (a crash in between
        # may send the step again after the lease, never lose it).
        send_and_mark = getattr(client, "send_and_mark", None)
        mark_sent = getattr(outbox, "mark_sent", None)
        try:
            if send_and_mark is not None and mark_sent is not None:
                await send_and_mark(
                    recipient, rendered, in_reply_to=answering, mark=lambda pipe: mark_sent(pipe, key)
                )
            else:
                await client.send(recipient, rendered, in_reply_to=answering)
                await outbox.sent(key)
        except BaseException:
            await outbox.release(key)
            raise
        return False

    async def text(self, text: str) -> None:
        await self(Text(text))

    async def notify(self, to: Recipient, *replies: Reply | str) -> bool:
        """Send to *another* user of the same channel as one step of handling this update (a referrer
        told that a friend joined). Through the outbox like any step, so a redelivered update does not
        notify twice. Best effort: a platform that refuses (its messaging window with that user is
        closed, the user blocked the OA) is logged and answered ``False``, never raised, because the
        user being answered must not lose their own reply over it."""
        if not replies:
            return False
        step, self._step = self._step, self._step + 1
        client = self._dispatcher.channel_client(to.channel)
        rendered = [as_reply(r) for r in replies]
        outbox = self._dispatcher.outbox
        try:
            if outbox is None:
                await client.send(to, rendered)
            else:
                await self._send_once(outbox, client, to, rendered, step, in_reply_to=None)
        except ChannelError as error:
            log.info("notification to %s:%s not delivered: %s", to.channel, to.user_id, type(error).__name__)
            return False
        return True


class Context:
    """Everything known about one update while it is dispatched. Handlers may ask for it as ``ctx``."""

    __slots__ = ("_fsm", "_raw_state", "_reply", "data", "dispatcher", "extras", "handler", "key", "update")

    def __init__(self, dispatcher: Dispatcher, update: BaseUpdate, key: StorageKey) -> None:
        self.dispatcher = dispatcher
        self.update = update
        self.key = key
        self.extras: dict[str, Any] | None = None  # what the matching filters returned
        self.data: dict[str, Any] = {}  # what middlewares added
        self.handler: str | None = None  # the handler that took the update
        self._raw_state: Any = _UNSET
        self._fsm: FSMContext | None = None
        self._reply: Sender | None = None

    async def raw_state(self) -> str | None:
        """The user's FSM state, read from storage once per update (kept in step by ``state.set_state``)."""
        if self._raw_state is _UNSET:
            self._raw_state = await self.dispatcher.storage.get_state(self.key)
        state: str | None = self._raw_state
        return state

    def _state_changed(self, state: str | None) -> None:
        self._raw_state = state

    @property
    def fsm(self) -> FSMContext:
        if self._fsm is None:
            self._fsm = FSMContext(self.dispatcher.storage, self.key, self._state_changed)
        return self._fsm

    @property
    def reply(self) -> Sender:
        if self._reply is None:
            self._reply = Sender(self.dispatcher, self.update)
        return self._reply
