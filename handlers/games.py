"""Minigames in the chat: "chơi game", "game", "trò chơi" or the Games button → the live games as cards
(the turns left or the price of a turn) → the play screen of one, with buttons that fit its kind (three
gift boxes, "Quay", "Cào", three cards, "Lắc") → the result with the prize delivered: a voucher card, the
points with the new balance, or better luck next time.

A **quiz** asks its questions one at a time as buttons. The answers are kept in FSM data and sent to the
loyalty core together after the last one; the core checks them and only then are the correct answers
shown, with the score and the reward. A question never carries its answer.

**Once only.** The buttons of a play screen carry a nonce made from the event that showed it
(``sl:play:<campaign>:<nonce>:<choice>``) and ``chat-<nonce>`` is the play's idempotency key: a double
tap (on another box of the same screen, too) or a retried delivery plays once and shows the same result.
A quiz's nonce comes from the event that started it and keys its attempt. The outcome is drawn on the
server (:mod:`loyalty.games`): the box or card chosen changes the words, never the prize.

A game whose eligibility needs a verified phone asks for it first (``then="games"``: the list of games is
shown once the number is known); every other refusal (not eligible, no turns left, the daily or campaign
limit, sold out, ended, rate limited, not enough points) gets its own message.

FSM data: ``game_quiz`` (``campaign``, ``nonce``, ``answers``: question id → choice index), kept after the
last answer so that a second tap shows the same result. The state ``GameQuiz.answering`` lets a typed
number answer the current question (Zalo shows more than five choices as numbered text).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

from bot import (
    Button,
    Buttons,
    FSMContext,
    Message,
    Payload,
    Postback,
    QuickReplies,
    QuickReply,
    Router,
    Sender,
    State,
    StateFilter,
    StatesGroup,
    Text,
)
from bot.i18n import Messages
from bot.replies import Reply
from bot.types import BaseUpdate
from handlers import answers
from handlers.common import (
    GAME_PAYLOAD,
    GAMES_PAYLOAD,
    HELP_PAYLOAD,
    PLAY_PAYLOAD,
    QUIZ_PAYLOAD,
    Speaker,
    customer_of,
    speaker,
)
from handlers.onboarding import require_phone
from loyalty.clock import LOCAL_TZ
from loyalty.core import Loyalty
from loyalty.customers import Customer
from loyalty.errors import LoyaltyError
from loyalty.games import PlayResult, QuizQuestionView
from loyalty.program import GameCampaign, Program

GAME_WORDS: Final = (
    "chơi game", "game", "games", "trò chơi", "minigame", "mini game", "chơi", "play", "quay thưởng",
)  # fmt: skip
# How many buttons the play screen of a kind shows (one of three gift boxes, one of three cards); the
# other kinds have one button.
CHOICES: Final = {"open_gift": 3, "flip_card": 3}
MAX_CHOICE_TITLE: Final = 20  # Messenger's quick reply titles: longer choices are listed in the text too
_NONCE: Final = re.compile(r"^[0-9a-f]{24}$")
_SMALL_INT: Final = re.compile(r"^[0-9]{1,2}$")
_TYPED_CHOICE: Final = re.compile(r"^\s*([1-9])\s*\.?\s*$")


class GameQuiz(StatesGroup):
    answering = State()


def nonce_of(event_id: str) -> str:
    """The nonce of the screen shown for an event: the same event (a retried delivery) gives the same."""
    return hashlib.sha256(f"game:{event_id}".encode()).hexdigest()[:24]


def play_key(nonce: str) -> str:
    return f"chat-{nonce}"


def typed_choice(update: Any) -> dict[str, int] | bool:
    """A text that is only a number 1-9: the answer to the quiz question shown as numbered text."""
    text = getattr(update, "text", None)
    match = _TYPED_CHOICE.fullmatch(text) if isinstance(text, str) and len(text) <= 8 else None
    return {"choice_number": int(match.group(1))} if match else False


typed_choice.provides = ("choice_number",)  # type: ignore[attr-defined]


async def find_campaign(loyalty: Loyalty, campaign_id: object) -> GameCampaign | None:
    """The campaign of a payload argument (anything else, such as ``{"$ne": ""}``, finds nothing)."""
    try:
        return await loyalty.games.campaign(campaign_id)
    except LoyaltyError:
        return None


def refused(
    say: Speaker, code: str, campaign: GameCampaign | None, program: Program, *, balance: int = 0
) -> QuickReplies:
    """The friendly message of a refusal code, with the menu."""
    tier = None
    if campaign is not None and campaign.eligibility.min_tier is not None:
        tier = program.tier(campaign.eligibility.min_tier).name
    text = say(
        "game_refused",
        code=code,
        name=campaign.name if campaign else None,
        kind=campaign.kind if campaign else None,
        cost=campaign.cost.points if campaign else 0,
        balance=balance,
        min_tier=tier,
        followers_only=bool(campaign and campaign.eligibility.followers_only),
        per_day=campaign.limits.per_day if campaign else None,
        free_per_day=campaign.cost.free_turns_per_day if campaign else 0,
        per_checkin=campaign.turns.per_checkin if campaign else 0,
        per_order=campaign.turns.per_order if campaign else 0,
        starts=campaign.starts_at.astimezone(LOCAL_TZ).strftime("%H:%M %d/%m/%Y") if campaign else None,
    )
    return say.menu(text)


def play_screen(
    say: Speaker, campaign: GameCampaign, facts: dict[str, Any], nonce: str, balance: int
) -> Reply:
    """The kind's buttons, every one with the same nonce: whichever is pressed, and however often, the
    play is the same one."""
    count = CHOICES.get(campaign.kind, 1)
    buttons = tuple(
        Button.postback(
            say("game_button", kind=campaign.kind, n=n), f"{PLAY_PAYLOAD}:{campaign.id}:{nonce}:{n}"
        )
        for n in range(1, count + 1)
    )
    return Buttons(say("game_screen", **facts, balance=balance), buttons)


def question(
    say: Speaker, campaign: GameCampaign, nonce: str, questions: tuple[QuizQuestionView, ...], index: int
) -> QuickReplies:
    """Question ``index`` with its choices as buttons (the answer is not in it: only the core knows)."""
    asked = questions[index]
    long = any(len(choice) > MAX_CHOICE_TITLE for choice in asked.choices)
    text = say(
        "game_quiz_question",
        number=index + 1,
        total=len(questions),
        text=asked.text,
        choices=asked.choices if long else (),
    )
    options = tuple(
        QuickReply(
            f"{n + 1}. {choice}" if long else choice, f"{QUIZ_PAYLOAD}:{campaign.id}:{nonce}:{index}:{n}"
        )
        for n, choice in enumerate(asked.choices)
    )
    return QuickReplies(text, options)


async def next_step(
    loyalty: Loyalty, say: Speaker, customer: Customer, campaign: GameCampaign
) -> QuickReplies:
    """After a result: play again (when a turn is left), the other games, the menu."""
    status = await loyalty.games.status(customer.id, campaign.id)
    options = [
        QuickReply(say("game_button_other"), GAMES_PAYLOAD),
        QuickReply(say("help_button"), HELP_PAYLOAD),
    ]
    if status.can_play:
        options.insert(0, QuickReply(say("game_button_again"), f"{GAME_PAYLOAD}:{campaign.id}"))
    return QuickReplies(say("game_next", can_play=status.can_play), tuple(options))


async def result_replies(
    loyalty: Loyalty,
    say: Speaker,
    *,
    customer: Customer,
    campaign: GameCampaign,
    result: PlayResult,
    choice: int,
) -> list[Reply | str]:
    balance = await loyalty.ledger.balance(customer.id)
    prize = result.prize
    text = say(
        "game_result",
        kind=campaign.kind,
        name=campaign.name,
        choice=choice,
        prize=prize.name if prize else None,
        reward=prize.reward if prize else "nothing",
        points=result.points_awarded,
        spent=result.points_spent,
        balance=balance,
        voucher=result.voucher is not None,
    )
    out: list[Reply | str] = [text]
    if result.voucher is not None:
        out.append(say.voucher_card(result.voucher))
    out.append(await next_step(loyalty, say, customer, campaign))
    return out


async def quiz_result_replies(
    loyalty: Loyalty,
    say: Speaker,
    *,
    customer: Customer,
    campaign: GameCampaign,
    questions: tuple[QuizQuestionView, ...],
    given: dict[str, int],
    result: PlayResult,
) -> list[Reply | str]:
    correct = result.correct_answers or {}
    review = [
        {
            "number": n,
            "right": given.get(q.id) == correct.get(q.id),
            "answer": q.choices[correct[q.id]] if q.id in correct else "",
        }
        for n, q in enumerate(questions, start=1)
    ]
    balance = await loyalty.ledger.balance(customer.id)
    prize = result.prize
    text = say(
        "game_quiz_result",
        score=result.score or 0,
        total=len(questions),
        review=review,
        prize=prize.name if prize else None,
        reward=prize.reward if prize else "nothing",
        points=result.points_awarded,
        balance=balance,
        voucher=result.voucher is not None,
    )
    out: list[Reply | str] = [text]
    if result.voucher is not None:
        out.append(say.voucher_card(result.voucher))
    out.append(await next_step(loyalty, say, customer, campaign))
    return out


def _first_unanswered(questions: tuple[QuizQuestionView, ...], given: dict[str, int]) -> int | None:
    return next((i for i, q in enumerate(questions) if q.id not in given), None)


def _given_answers(raw: object) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    return {
        k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
    }


# ============================================================================================ handlers
async def show_games(
    *, update: BaseUpdate, reply: Sender, copy: Messages, brand: str, loyalty: Loyalty, program: Program
) -> None:
    customer = await customer_of(loyalty, update)
    say = speaker(copy, brand, program, customer)
    await reply(*await answers.games(loyalty, say, customer))


async def open_game(
    *, postback: Postback, args: tuple[str, ...], reply: Sender, state: FSMContext, copy: Messages,
    brand: str, loyalty: Loyalty, program: Program,
) -> None:  # fmt: skip
    """The play screen (a quiz: its first question), or why the game cannot be played now."""
    customer = await customer_of(loyalty, postback)
    say = speaker(copy, brand, program, customer)
    campaign = await find_campaign(loyalty, args[0]) if len(args) == 1 else None
    if campaign is None:
        await reply(refused(say, "game_not_found", None, program))
        return
    if campaign.eligibility.phone_verified and not await require_phone(
        postback, "games", customer=customer, say=say, reply=reply, state=state
    ):
        return
    status = await loyalty.games.status(customer.id, campaign.id)
    balance = await loyalty.ledger.balance(customer.id)
    if not status.can_play:
        await reply(refused(say, status.reason or "game_error", campaign, program, balance=balance))
        return
    if answers.next_turn(status) == "points" and balance < status.points_per_play:
        await reply(refused(say, "insufficient_points", campaign, program, balance=balance))
        return
    facts = answers.game_facts(campaign, status, customer)
    nonce = nonce_of(postback.event_id)
    if campaign.kind != "quiz":
        await reply(play_screen(say, campaign, facts, nonce, balance))
        return
    questions = await loyalty.games.quiz(campaign.id)
    await reply(
        say("game_quiz_intro", **facts, balance=balance), question(say, campaign, nonce, questions, 0)
    )
    await state.set_state(GameQuiz.answering)
    await state.update_data(game_quiz={"campaign": campaign.id, "nonce": nonce, "answers": {}})


async def play(
    *, postback: Postback, args: tuple[str, ...], reply: Sender, state: FSMContext, copy: Messages,
    brand: str, loyalty: Loyalty, program: Program,
) -> None:  # fmt: skip
    """A button of the play screen: play once for its nonce, show the prize."""
    customer = await customer_of(loyalty, postback)
    say = speaker(copy, brand, program, customer)
    well_formed = len(args) == 3 and _NONCE.fullmatch(args[1]) and _SMALL_INT.fullmatch(args[2])
    campaign = await find_campaign(loyalty, args[0]) if well_formed else None
    if campaign is None or campaign.kind == "quiz" or not 1 <= int(args[2]) <= CHOICES.get(campaign.kind, 1):
        await reply(refused(say, "game_not_found", None, program))
        return
    if campaign.eligibility.phone_verified and not await require_phone(
        postback, "games", customer=customer, say=say, reply=reply, state=state
    ):
        return
    try:
        result = await loyalty.games.play(customer.id, campaign.id, key=play_key(args[1]))
    except LoyaltyError as error:
        balance = await loyalty.ledger.balance(customer.id)
        await reply(refused(say, error.code, campaign, program, balance=balance))
        return
    await reply(
        *await result_replies(
            loyalty, say, customer=customer, campaign=campaign, result=result, choice=int(args[2])
        )
    )


async def quiz_step(
    update: BaseUpdate, campaign_id: str, nonce: str, *, index: int | None, choice: int, reply: Sender,
    state: FSMContext, copy: Messages, brand: str, loyalty: Loyalty, program: Program,
) -> None:  # fmt: skip
    """Record the answer to the current question (``index`` ``None``: whichever it is); ask the next, or
    send every answer to the core after the last. A tap on a question answered already (a double tap, a
    retried delivery) changes nothing and shows where the quiz stands."""
    customer = await customer_of(loyalty, update)
    say = speaker(copy, brand, program, customer)
    quiz = (await state.get_data()).get("game_quiz")
    if not isinstance(quiz, dict) or quiz.get("campaign") != campaign_id or quiz.get("nonce") != nonce:
        await reply(say.menu(say("game_quiz_stale")))
        return
    campaign = await find_campaign(loyalty, campaign_id)
    if campaign is None or campaign.kind != "quiz":
        await reply(refused(say, "game_not_found", None, program))
        return
    questions = await loyalty.games.quiz(campaign.id)
    given = _given_answers(quiz.get("answers"))
    current = _first_unanswered(questions, given)
    if current is not None and index in (None, current) and 0 <= choice < len(questions[current].choices):
        given = {**given, questions[current].id: choice}
        current = _first_unanswered(questions, given)
    if current is not None:
        await reply(question(say, campaign, nonce, questions, current))
        await state.set_state(GameQuiz.answering)
        await state.update_data(game_quiz={**quiz, "answers": given})
        return
    try:
        result = await loyalty.games.answer_quiz(customer.id, campaign.id, given, key=play_key(nonce))
    except LoyaltyError as error:
        balance = await loyalty.ledger.balance(customer.id)
        await reply(refused(say, error.code, campaign, program, balance=balance))
        await state.set_state(None)
        await state.update_data(game_quiz=None)
        return
    out = await quiz_result_replies(
        loyalty, say, customer=customer, campaign=campaign, questions=questions, given=given, result=result
    )
    await reply(*out)
    await state.set_state(None)
    await state.update_data(game_quiz={**quiz, "answers": given})


async def quiz_answer(
    *, postback: Postback, args: tuple[str, ...], reply: Sender, state: FSMContext, copy: Messages,
    brand: str, loyalty: Loyalty, program: Program,
) -> None:  # fmt: skip
    if not (
        len(args) == 4
        and _NONCE.fullmatch(args[1])
        and _SMALL_INT.fullmatch(args[2])
        and _SMALL_INT.fullmatch(args[3])
    ):
        await reply(refused(speaker(copy, brand, program), "game_not_found", None, program))
        return
    await quiz_step(
        postback, args[0], args[1], index=int(args[2]), choice=int(args[3]), reply=reply, state=state,
        copy=copy, brand=brand, loyalty=loyalty, program=program,
    )  # fmt: skip


async def typed_answer(
    *, message: Message, choice_number: int, reply: Sender, state: FSMContext, copy: Messages,
    brand: str, loyalty: Loyalty, program: Program,
) -> None:  # fmt: skip
    """A number typed while a quiz question is shown answers it (the numbered text Zalo shows for more
    than five choices)."""
    quiz = (await state.get_data()).get("game_quiz")
    campaign_id = quiz.get("campaign") if isinstance(quiz, dict) else None
    nonce = quiz.get("nonce") if isinstance(quiz, dict) else None
    if not isinstance(campaign_id, str) or not isinstance(nonce, str):
        await reply(speaker(copy, brand, program).help())
        await state.set_state(None)
        return
    await quiz_step(
        message, campaign_id, nonce, index=None, choice=choice_number - 1, reply=reply, state=state,
        copy=copy, brand=brand, loyalty=loyalty, program=program,
    )  # fmt: skip


def build_router() -> Router:
    router = Router(name="games")
    router.message.register(typed_answer, StateFilter(GameQuiz.answering), typed_choice)
    router.message.register(show_games, Text(*GAME_WORDS))
    router.postback.register(show_games, Payload(GAMES_PAYLOAD))
    router.postback.register(open_game, Payload(GAME_PAYLOAD))
    router.postback.register(play, Payload(PLAY_PAYLOAD))
    router.postback.register(quiz_answer, Payload(QUIZ_PAYLOAD))
    return router
