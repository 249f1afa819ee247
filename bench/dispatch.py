"""The chat dispatcher against aiogram 3, and both against a plain-Python floor, on the same workload.

A router tree of 30 handlers (text keywords, postback payloads, three FSM flows and a catch-all) in 5
routers, FSM on memory storage, per-user isolation on in all three, fed N updates from M users in
batches, as a worker does (``asyncio.gather`` of 200). Each handler sends one reply through a client
that does no I/O: ours through a no-op channel client, aiogram's through a ``Bot`` whose session
builds the API result in process (nothing leaves), the floor awaits a no-op coroutine.

aiogram is written as a typical aiogram bot is: magic filters (``F.text == ...``,
``F.data.startswith(...)``), ``StateFilter``, ``message.answer``. The workload generator knows which
handler must take each update; every implementation's per-handler counts are checked against it, in
every round. With ``--yield`` each reply yields to the loop once, as a network send would: a user's
updates then queue on their lock, and a flow's answer is routed right only if isolation holds.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiogram
from aiogram import Bot as AgBot
from aiogram import Dispatcher as AgDispatcher
from aiogram import F as AgF
from aiogram import Router as AgRouter
from aiogram.client.session.base import BaseSession
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.filters import StateFilter as AgStateFilter
from aiogram.fsm.context import FSMContext as AgFSMContext
from aiogram.fsm.state import State as AgState
from aiogram.fsm.state import StatesGroup as AgStatesGroup
from aiogram.fsm.storage.memory import MemoryStorage as AgMemoryStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.methods import SendMessage, TelegramMethod
from aiogram.types import CallbackQuery
from aiogram.types import Message as AgMessage
from aiogram.types import Update as AgUpdate

from bot import (
    Dispatcher,
    F,
    FSMContext,
    MemoryIsolation,
    MemoryStorage,
    Message,
    Payload,
    Postback,
    Router,
    Sender,
    State,
    StateFilter,
    StatesGroup,
    Text,
)
from bot.types import BaseUpdate

BATCH = 200
WARMUP = 500
TOKEN = "123456789:AAHbenchbenchbenchbenchbenchbenchbe"

# --------------------------------------------------------------------------- the handler tree


@dataclass(frozen=True, slots=True)
class Spec:
    """One handler: ``kind`` is text | payload | start | finish | fallback."""

    label: str
    router: int
    kind: str
    keys: tuple[str, ...] = ()
    flow: str = ""
    magic: bool = False  # ours uses a magic filter (F.text.in_) instead of Text


# Handlers are tried in this order in all three implementations (first match wins): routers 1..5 of
# the tree, each router's own handlers in the order listed.
SPECS: tuple[Spec, ...] = (
    Spec("points", 1, "text", ("điểm", "points")),
    Spec("menu", 1, "text", ("menu",)),
    Spec("menu_pb", 1, "payload", ("menu",)),
    Spec("help", 1, "text", ("trợ giúp", "help"), magic=True),
    Spec("signup", 1, "start", ("đăng ký", "signup"), flow="signup"),
    Spec("hello", 1, "text", ("xin chào", "hello")),
    Spec("rewards", 2, "text", ("quà", "rewards")),
    Spec("reward_pb", 2, "payload", ("reward",)),
    Spec("vouchers", 2, "text", ("voucher", "vouchers")),
    Spec("voucher_pb", 2, "payload", ("voucher",)),
    Spec("history", 2, "text", ("lịch sử", "history")),
    Spec("redeem", 2, "start", ("đổi quà", "redeem"), flow="redeem"),
    Spec("stores", 3, "text", ("cửa hàng", "stores")),
    Spec("store_pb", 3, "payload", ("store",)),
    Spec("hours", 3, "text", ("giờ mở cửa", "hours"), magic=True),
    Spec("address", 3, "text", ("địa chỉ", "address")),
    Spec("checkin_pb", 3, "payload", ("checkin",)),
    Spec("feedback", 3, "start", ("góp ý", "feedback"), flow="feedback"),
    Spec("games", 4, "text", ("trò chơi", "games")),
    Spec("game_pb", 4, "payload", ("game",)),
    Spec("spin", 4, "text", ("quay", "spin")),
    Spec("rank", 4, "text", ("xếp hạng", "rank"), magic=True),
    Spec("spin_pb", 4, "payload", ("spin",)),
    Spec("invite", 4, "text", ("mời bạn", "invite")),
    Spec("lang_pb", 5, "payload", ("lang",)),
    Spec("language", 5, "text", ("ngôn ngữ", "language")),
    Spec("signup_done", 5, "finish", flow="signup"),
    Spec("redeem_done", 5, "finish", flow="redeem"),
    Spec("feedback_done", 5, "finish", flow="feedback"),
    Spec("fallback", 5, "fallback"),
)
ROUTERS = 5
# The tree: the dispatcher includes r1, r2 and r5; r2 includes r3 and r4 (depth first: r1..r5).
PARENT = {1: 0, 2: 0, 3: 2, 4: 2, 5: 0}

TEXTS = [s for s in SPECS if s.kind == "text"]
PAYLOADS = [s for s in SPECS if s.kind == "payload"]
STARTS = [s for s in SPECS if s.kind == "start"]
FINISH = {s.flow: s for s in SPECS if s.kind == "finish"}
STATE_NAMES = {"signup": "Signup:phone", "redeem": "Redeem:confirm", "feedback": "Feedback:text"}
SMALL_TALK = (
    "alo",
    "shop ơi",
    "còn hàng không",
    "cảm ơn",
    "ok shop",
    "bao nhiêu điểm vậy ạ",
    "thanks!",
    "👍",
    "có ai không",
    "mình muốn hỏi",
    "hôm nay có khuyến mãi gì",
    "giao hàng mất bao lâu",
    "hi",
    "good morning",
    "?",
    "chi nhánh gần nhất ở đâu",
)
REVIEWS = ("nhân viên dễ thương", "đồ uống hơi ngọt", "quán sạch sẽ", "chờ lâu quá", "rất hài lòng")

KIND_OF = {s.label: s.kind for s in SPECS}

assert len(SPECS) == 30 and {s.router for s in SPECS} == set(range(1, ROUTERS + 1))
_KEYWORDS = {key for s in SPECS if s.kind in ("text", "start") for key in s.keys}
assert not _KEYWORDS & {*SMALL_TALK, *REVIEWS, "có", "yes", "ok"}


# --------------------------------------------------------------------------- the workload


@dataclass(slots=True)
class Tally:
    """What one implementation did: updates handled, replies sent, updates taken by each handler."""

    counts: Counter[str] = field(default_factory=Counter)
    handled: int = 0
    replies: int = 0

    def reset(self) -> None:
        self.counts.clear()
        self.handled = self.replies = 0


@dataclass(frozen=True, slots=True)
class Item:
    """One update, framework-neutral: who, what kind, its text or payload, and who must take it."""

    n: int
    user: int
    kind: str  # message | postback
    content: str
    label: str


def workload(total: int, users: int, seed: int, first_user: int = 0) -> list[Item]:
    """~60% text (1 in 6 of it small talk for the catch-all), ~25% postbacks, ~15% an FSM flow.

    A user in the middle of a flow answers it with their next update (handled by the flow's state
    handler); starts are drawn so that starts plus answers are ~15% of all updates.
    """
    rng = random.Random(seed)
    pending: dict[int, str] = {}
    items: list[Item] = []
    for n in range(total):
        user = first_user + rng.randrange(users)
        flow = pending.pop(user, None)
        if flow is not None:
            if flow == "signup":
                content = f"09{rng.randrange(10**8):08d}"
            elif flow == "redeem":
                content = rng.choice(("có", "yes", "ok"))
            else:
                content = rng.choice(REVIEWS)
            items.append(Item(n, user, "message", content, FINISH[flow].label))
            continue
        roll = rng.random()
        if roll < 0.081:  # 0.075 of all updates once the ~7.5% answers are counted
            spec = rng.choice(STARTS)
            pending[user] = spec.flow
            items.append(Item(n, user, "message", rng.choice(spec.keys), spec.label))
        elif roll < 0.081 + 0.27:
            spec = rng.choice(PAYLOADS)
            items.append(Item(n, user, "postback", f"{spec.keys[0]}:{rng.randrange(100)}", spec.label))
        elif rng.random() < 1 / 6:
            items.append(Item(n, user, "message", rng.choice(SMALL_TALK), "fallback"))
        else:
            spec = rng.choice(TEXTS)
            items.append(Item(n, user, "message", rng.choice(spec.keys), spec.label))
    return items


async def drive(feed: Callable[[Any], Awaitable[Any]], updates: Sequence[Any], batch: int) -> float:
    """Feed ``updates`` in concurrent batches, as a worker does; return the seconds it took."""
    gather = asyncio.gather
    gc.collect()  # each run starts without the previous one's garbage (the collector stays on)
    started = time.perf_counter()
    for offset in range(0, len(updates), batch):
        await gather(*map(feed, updates[offset : offset + batch]))
    return time.perf_counter() - started


# --------------------------------------------------------------------------- ours


class Signup(StatesGroup):
    phone = State()


class Redeem(StatesGroup):
    confirm = State()


class Feedback(StatesGroup):
    text = State()


OUR_STATES = {"signup": Signup.phone, "redeem": Redeem.confirm, "feedback": Feedback.text}


class NoopChannel:
    """Delivers nothing (with ``--yield``: after one turn of the loop); counts the replies."""

    def __init__(self, tally: Tally, pause: bool) -> None:
        self.tally = tally
        self.pause = pause

    async def send(self, to: Any, replies: Sequence[Any], *, in_reply_to: Any = None) -> None:
        self.tally.replies += len(replies)
        if self.pause:
            await asyncio.sleep(0)


def _our_handler(spec: Spec, tally: Tally) -> Callable[..., Awaitable[None]]:
    label, answer = spec.label, f"{spec.label}: ok"
    if spec.kind == "start":
        target = OUR_STATES[spec.flow]

        async def start(message: Message, reply: Sender, state: FSMContext) -> None:
            tally.counts[label] += 1
            await reply(answer)  # before the state changes: see --yield
            await state.set_state(target)

        return start
    if spec.kind == "finish":

        async def finish(message: Message, reply: Sender, state: FSMContext) -> None:
            tally.counts[label] += 1
            await reply(answer)
            await state.clear()

        return finish
    if spec.kind == "payload":

        async def button(postback: Postback, reply: Sender, args: tuple[str, ...]) -> None:
            tally.counts[label] += 1
            await reply(answer)

        return button

    async def text(message: Message, reply: Sender) -> None:
        tally.counts[label] += 1
        await reply(answer)

    return text


def build_ours(tally: Tally, pause: bool = False) -> Dispatcher:
    channels = {"emulator": NoopChannel(tally, pause)}
    dp = Dispatcher(storage=MemoryStorage(), isolation=MemoryIsolation(), channels=channels)
    routers = {n: Router(name=f"r{n}") for n in range(1, ROUTERS + 1)}
    for spec in SPECS:
        router, handler = routers[spec.router], _our_handler(spec, tally)
        if spec.kind == "payload":
            router.postback.register(handler, Payload(spec.keys[0]))
        elif spec.kind == "finish":
            router.message.register(handler, StateFilter(OUR_STATES[spec.flow]))
        elif spec.kind == "fallback":
            router.message.register(handler)
        elif spec.magic:
            router.message.register(handler, F.text.in_(spec.keys))
        else:
            router.message.register(handler, Text(*spec.keys))
    for n, parent in PARENT.items():
        (dp if parent == 0 else routers[parent]).include_router(routers[n])
    return dp


def our_updates(items: Sequence[Item]) -> list[BaseUpdate]:
    now = datetime.now(UTC)
    common = {"channel": "emulator", "account_id": "oa1", "timestamp": now}
    return [
        Message(**common, user_id=f"u{i.user}", event_id=f"e{i.n}", text=i.content)
        if i.kind == "message"
        else Postback(**common, user_id=f"u{i.user}", event_id=f"e{i.n}", payload=i.content)
        for i in items
    ]


# --------------------------------------------------------------------------- aiogram


class AgSignup(AgStatesGroup):
    phone = AgState()


class AgRedeem(AgStatesGroup):
    confirm = AgState()


class AgFeedback(AgStatesGroup):
    text = AgState()


AG_STATES = {"signup": AgSignup.phone, "redeem": AgRedeem.confirm, "feedback": AgFeedback.text}


class LocalSession(BaseSession):
    """A session that answers every API call in process: ``sendMessage`` with a ``Message`` built from
    a cached result dict (as the HTTP session builds one from the response), nothing leaves."""

    def __init__(self) -> None:
        super().__init__()
        self.tally = Tally()
        self.pause = False
        self._sent = {
            "message_id": 1,
            "date": 1_767_225_600,
            "chat": {"id": 1, "type": "private"},
            "from": {"id": 123456789, "is_bot": True, "first_name": "bench"},
            "text": "ok",
        }

    async def make_request(self, bot: AgBot, method: TelegramMethod[Any], timeout: int | None = None) -> Any:
        self.tally.replies += 1
        if self.pause:
            await asyncio.sleep(0)
        if isinstance(method, SendMessage):
            return AgMessage.model_validate(self._sent, context={"bot": bot})
        if method.__returning__ is bool:
            return True
        raise NotImplementedError(f"the bench session does not fake {type(method).__name__}")

    async def close(self) -> None:
        pass

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        raise NotImplementedError("the bench session does not download")
        yield b""  # pragma: no cover - makes this an async generator


def _ag_handler(spec: Spec, tally: Tally) -> Callable[..., Awaitable[None]]:
    label, answer = spec.label, f"{spec.label}: ok"
    if spec.kind == "start":
        target = AG_STATES[spec.flow]

        async def start(message: AgMessage, state: AgFSMContext) -> None:
            tally.counts[label] += 1
            await message.answer(answer)
            await state.set_state(target)

        return start
    if spec.kind == "finish":

        async def finish(message: AgMessage, state: AgFSMContext) -> None:
            tally.counts[label] += 1
            await message.answer(answer)
            await state.clear()

        return finish
    if spec.kind == "payload":

        async def button(callback: CallbackQuery) -> None:
            tally.counts[label] += 1
            assert isinstance(callback.message, AgMessage)
            await callback.message.answer(answer)

        return button

    async def text(message: AgMessage) -> None:
        tally.counts[label] += 1
        await message.answer(answer)

    return text


def build_aiogram(tally: Tally) -> AgDispatcher:
    dp = AgDispatcher(storage=AgMemoryStorage(), events_isolation=SimpleEventIsolation())
    routers = {n: AgRouter(name=f"r{n}") for n in range(1, ROUTERS + 1)}
    for spec in SPECS:
        router, handler = routers[spec.router], _ag_handler(spec, tally)
        if spec.kind == "payload":
            router.callback_query.register(handler, AgF.data.startswith(f"{spec.keys[0]}:"))
        elif spec.kind == "finish":
            router.message.register(handler, AgStateFilter(AG_STATES[spec.flow]))
        elif spec.kind == "fallback":
            router.message.register(handler)
        elif len(spec.keys) == 1:
            router.message.register(handler, AgF.text == spec.keys[0])
        else:
            router.message.register(handler, AgF.text.in_(spec.keys))
    for n, parent in PARENT.items():
        (dp if parent == 0 else routers[parent]).include_router(routers[n])
    return dp


def aiogram_updates(items: Sequence[Item], bot: AgBot) -> list[AgUpdate]:
    """Updates mounted on ``bot`` (as a webhook handler builds them), so feeding does not re-parse."""
    date = 1_767_225_600
    updates = []
    for i in items:
        user = {"id": i.user + 1, "is_bot": False, "first_name": "Khách"}
        chat = {"id": i.user + 1, "type": "private"}
        if i.kind == "message":
            message = {"message_id": i.n + 1, "date": date, "chat": chat, "from": user, "text": i.content}
            data: dict[str, Any] = {"update_id": i.n + 1, "message": message}
        else:
            shown = {"message_id": 1, "date": date, "chat": chat, "text": "menu"}
            query = {
                "id": str(i.n + 1),
                "from": user,
                "chat_instance": "c1",
                "data": i.content,
                "message": shown,
            }
            data = {"update_id": i.n + 1, "callback_query": query}
        updates.append(AgUpdate.model_validate(data, context={"bot": bot}))
    return updates


# --------------------------------------------------------------------------- the plain-Python floor


class Floor:
    """The same logical work with nothing in between: per-user ``asyncio.Lock``, a dict of states,
    first-match predicates over the handlers of the update's kind, an awaited no-op reply."""

    def __init__(self, tally: Tally, pause: bool = False) -> None:
        self.tally = tally
        self.pause = pause
        self.states: dict[str, str] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.handlers: dict[str, list[tuple[Callable[[Any, str | None], bool], str, str]]] = {
            "message": [],
            "postback": [],
        }
        for spec in SPECS:
            keys = frozenset(spec.keys)
            if spec.kind == "payload":
                prefix = spec.keys[0]
                self.handlers["postback"].append(
                    (lambda u, s, p=prefix: u.payload.partition(":")[0] == p, spec.label, "")
                )
            elif spec.kind == "finish":
                name = STATE_NAMES[spec.flow]
                self.handlers["message"].append((lambda u, s, n=name: s == n, spec.label, "clear"))
            elif spec.kind == "fallback":
                self.handlers["message"].append((lambda u, s: True, spec.label, ""))
            else:
                effect = STATE_NAMES[spec.flow] if spec.kind == "start" else ""
                self.handlers["message"].append((lambda u, s, k=keys: u.text in k, spec.label, effect))

    async def reply(self, text: str) -> None:
        self.tally.replies += 1
        if self.pause:
            await asyncio.sleep(0)

    async def feed(self, update: Any) -> str | None:
        user = update.user_id
        lock = self.locks.get(user)
        if lock is None:
            lock = self.locks[user] = asyncio.Lock()
        async with lock:
            state = self.states.get(user)
            for predicate, label, effect in self.handlers[update.kind]:
                if predicate(update, state):
                    self.tally.counts[label] += 1
                    await self.reply(label)
                    if effect == "clear":
                        del self.states[user]
                    elif effect:
                        self.states[user] = effect
                    return label
        return None


# --------------------------------------------------------------------------- the run


@dataclass(slots=True)
class Outcome:
    name: str
    updates: int
    seconds: float
    tally: Tally

    @property
    def rate(self) -> float:
        return self.updates / self.seconds


async def _time_ours(
    warm: Sequence[BaseUpdate], updates: Sequence[BaseUpdate], batch: int, pause: bool
) -> Outcome:
    tally = Tally()
    dp = build_ours(tally, pause)

    async def feed(update: BaseUpdate) -> None:
        result = await dp.feed_update(update)
        tally.handled += result.handled

    await drive(feed, warm, batch)
    tally.reset()
    return Outcome("ours", len(updates), await drive(feed, updates, batch), tally)


async def _time_floor(
    warm: Sequence[BaseUpdate], updates: Sequence[BaseUpdate], batch: int, pause: bool
) -> Outcome:
    tally = Tally()
    floor = Floor(tally, pause)

    async def feed(update: BaseUpdate) -> None:
        label = await floor.feed(update)  # awaited first: `x += await f()` would read x before awaiting
        tally.handled += label is not None

    await drive(feed, warm, batch)
    tally.reset()
    return Outcome("floor", len(updates), await drive(feed, updates, batch), tally)


async def _time_aiogram(
    bot: AgBot, warm: Sequence[AgUpdate], updates: Sequence[AgUpdate], batch: int, pause: bool
) -> Outcome:
    tally = Tally()
    dp = build_aiogram(tally)
    assert isinstance(bot.session, LocalSession)
    bot.session.tally, bot.session.pause = tally, pause
    feed_update = functools.partial(dp.feed_update, bot)

    async def feed(update: AgUpdate) -> None:
        response = await feed_update(update)
        tally.handled += response is not UNHANDLED

    await drive(feed, warm, batch)
    tally.reset()
    return Outcome("aiogram", len(updates), await drive(feed, updates, batch), tally)


def _check(outcome: Outcome, items: Sequence[Item]) -> list[str]:
    """What differs between ``outcome`` and what the workload says must happen (nothing, or a bug)."""
    expected = Counter(item.label for item in items)
    counts, total = outcome.tally.counts, len(items)
    problems = [
        f"{outcome.name}: {what} {value:,} of {total:,} updates"
        for what, value in (
            ("handled", outcome.tally.handled),
            ("counted", sum(counts.values())),
            ("replied to", outcome.tally.replies),
        )
        if value != total
    ]
    wrong = sorted(k for k in expected.keys() | counts.keys() if expected[k] != counts[k])
    problems.extend(f"{outcome.name}: {k} took {counts[k]:,}, expected {expected[k]:,}" for k in wrong)
    return problems


def _best(outcomes: Sequence[Outcome]) -> tuple[Outcome, str]:
    rates = ", ".join(f"{o.rate / 1000:.1f}k" for o in outcomes)
    return max(outcomes, key=lambda o: o.rate), rates


async def _run(options: argparse.Namespace, loop_name: str) -> int:
    total, batch, rounds = options.updates, options.batch, max(1, options.rounds)
    pause = options.yield_replies
    items = workload(total, options.users, seed=42)
    warm = workload(WARMUP, options.users, seed=7, first_user=1_000_000)
    ag_items = items[: min(options.aiogram_updates, total)]
    kinds = Counter("payload" if i.kind == "postback" else KIND_OF[i.label] for i in items)
    print(f"loop: {loop_name}; Python {platform.python_version()}, aiogram {aiogram.__version__}")
    print(
        f"workload: {total:,} updates from {options.users} users, {len(SPECS)} handlers in {ROUTERS} "
        f"routers, FSM in memory, per-user isolation on, fed in batches of {batch}"
    )
    print(
        f"mix: text {(kinds['text'] + kinds['fallback']) / total:.1%} (to the catch-all "
        f"{kinds['fallback'] / total:.1%}), payload {kinds['payload'] / total:.1%}, "
        f"FSM flow {(kinds['start'] + kinds['finish']) / total:.1%}"
    )
    # The three take turns, each round on fresh dispatchers warmed up on other users, and the best
    # round counts: this kind of machine drifts by up to 2x within seconds, the ratios should not.
    ours: list[Outcome] = []
    floors: list[Outcome] = []
    ags: list[Outcome] = []
    warm_updates, updates = our_updates(warm), our_updates(items)
    async with AgBot(TOKEN, session=LocalSession()) as bot:
        # aiogram's warm-up is shorter: it is slow, and its code paths are warm after one round
        ag_warm, ag_updates = aiogram_updates(warm[:200], bot), aiogram_updates(ag_items, bot)
        for round_ in range(rounds):
            ours.append(await _time_ours(warm_updates, updates, batch, pause))
            floors.append(await _time_floor(warm_updates, updates, batch, pause))
            if round_ < max(1, options.aiogram_rounds):
                ags.append(await _time_aiogram(bot, ag_warm, ag_updates, batch, pause))
    (best, our_rates), (floor, floor_rates), (ag, ag_rates) = _best(ours), _best(floors), _best(ags)

    slice_note = "" if ag.updates == total else f"the first {ag.updates:,} only, aiogram is slow; "
    print(f"ours (bot.Dispatcher)      {best.rate:9,.0f} updates/s  ({total:,} updates; {our_rates})")
    print(
        f"aiogram {aiogram.__version__} Dispatcher {ag.rate:9,.0f} updates/s  "
        f"({ag.updates:,} updates, {slice_note}{ag_rates})"
    )
    print(f"plain-Python floor         {floor.rate:9,.0f} updates/s  ({total:,} updates; {floor_rates})")
    print(f"(best of {rounds} rounds, aiogram of {len(ags)}; each round's figure after ';')")
    problems = [p for o in (*ours, *floors) for p in _check(o, items)]
    problems += [p for o in ags for p in _check(o, ag_items)]
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    print(
        f"check: in every round ours and the floor handled {total:,} updates and aiogram {ag.updates:,}, "
        f"one reply each, and all {len(SPECS)} handlers took the updates the workload meant for them"
    )
    print(f"ratio_vs_floor={best.rate / floor.rate:.2f}")
    print(f"ratio_vs_aiogram={best.rate / ag.rate:.1f}")
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument(
        "--aiogram-updates", type=int, default=2_000, help="aiogram is timed on the first N (it is slow)"
    )
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--rounds", type=int, default=7, help="rounds (the best of each counts)")
    parser.add_argument("--aiogram-rounds", type=int, default=3, help="rounds that time aiogram too")
    parser.add_argument(
        "--yield",
        dest="yield_replies",
        action="store_true",
        help="each reply yields to the loop once, as a network send would: a user's updates in one "
        "batch then wait on their lock, and a flow's answer is only routed right if it does (the "
        "default no-op reply never suspends, so ours and the floor take each lock uncontended)",
    )
    options = parser.parse_args(argv or [])
    try:
        import uvloop  # noqa: PLC0415 - optional

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
        loop_name = f"uvloop {uvloop.__version__}"
    except ImportError:
        factory, loop_name = None, "asyncio (uvloop is not installed)"
    with asyncio.Runner(loop_factory=factory) as runner:
        status = runner.run(_run(options, loop_name))
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    main(sys.argv[1:])
