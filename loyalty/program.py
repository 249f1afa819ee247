"""The loyalty program a brand runs, described in one file (``PROGRAM_FILE``, YAML or TOML).

:func:`load_program` reads and validates it at start-up; an error names the file, the line and the
field (``program.yaml:42: tiers.levels.1.threshold: must be greater than 0``). Without a file the bundled
demo program (``loyalty/demo_program.yaml``) is used. ``docs/loyalty-program.md`` documents every field.

Amounts of money are whole VND (``int``). Points are whole numbers.
"""

from __future__ import annotations

import bisect
import itertools
import re
import tomllib
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEMO_PROGRAM: Final = Path(__file__).with_name("demo_program.yaml")
_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,62}$"

Id = Annotated[str, Field(pattern=_ID_PATTERN)]
Vnd = Annotated[int, Field(ge=0, le=10_000_000_000)]
Points = Annotated[int, Field(ge=0, le=1_000_000_000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class _FieldProblem(ValueError):
    """A cross-field rule broken at ``at`` (a path relative to the validated object).

    Pydantic reports a validator's error at the validator's own location (``tiers.levels``, or the
    top level for the program); :func:`load_program` appends ``at`` so the message and the line point
    at the offending field (``tiers.levels.3.threshold``) instead.
    """

    def __init__(self, at: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.at = at


class Brand(_Strict):
    name: str = Field(min_length=1, max_length=80)
    locale: Literal["vi", "en"] = "vi"
    # A directory of Jinja2 message templates that override the bundled copy (same file names).
    templates_dir: Path | None = None
    # Where customers reach the brand: used in share links and QR check-in links.
    zalo_oa_link: str | None = None  # e.g. https://zalo.me/<oa_id>
    messenger_link: str | None = None  # e.g. https://m.me/<page_username>
    miniapp_link: str | None = None  # e.g. https://zalo.me/s/<miniapp_id>/


class Earning(_Strict):
    """Points for money spent: ``floor(amount / vnd_per_point * tier multiplier)``."""

    vnd_per_point: int = Field(default=10_000, ge=1, le=100_000_000)
    rounding: Literal["down"] = "down"


class TierLevel(_Strict):
    id: Id
    name: str = Field(min_length=1, max_length=40)
    threshold: Points  # qualifying points needed
    multiplier: Decimal = Field(default=Decimal(1), ge=Decimal(1), le=Decimal(10))
    voucher: Id | None = None  # voucher template issued once per qualification period on reaching it


class TierWindow(_Strict):
    """Which earned points qualify: those of the last ``months`` months, or of the current year."""

    kind: Literal["rolling_months", "calendar_year"] = "rolling_months"
    months: int = Field(default=12, ge=1, le=60)
    # calendar_year: the day the year starts, as MM-DD (a brand's fiscal year may start in April).
    anchor: str = Field(default="01-01", pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")

    @field_validator("anchor")
    @classmethod
    def _first_of_month(cls, anchor: str) -> str:
        if not anchor.endswith("-01"):
            raise ValueError("the year must start on the first day of a month (points are counted by month)")
        return anchor

    @property
    def start_month(self) -> int:
        return int(self.anchor[:2])


class TierPolicy(_Strict):
    """How tiers are computed. ``version`` changes whenever the rules do; the history records it."""

    version: int = Field(default=1, ge=1)
    basis: Literal["earned_points"] = "earned_points"  # never the spendable balance
    window: TierWindow = TierWindow()
    # When tiers go down: "recompute" (at each review, to whatever the window's points qualify for),
    # "one_level" (at most one level per review) or "never" (tiers only go up).
    downgrade: Literal["recompute", "one_level", "never"] = "recompute"
    # How often downgrades are reviewed (upgrades happen at once, on earning).
    review: Literal["monthly", "yearly"] = "monthly"
    levels: tuple[TierLevel, ...] = Field(min_length=1)

    @field_validator("levels")
    @classmethod
    def _ordered(cls, levels: tuple[TierLevel, ...]) -> tuple[TierLevel, ...]:
        if levels[0].threshold != 0:
            raise _FieldProblem(
                (0, "threshold"), "the first tier must have threshold 0 (every customer has a tier)"
            )
        for index, (lower, higher) in enumerate(itertools.pairwise(levels), start=1):
            if higher.threshold <= lower.threshold:
                raise _FieldProblem(
                    (index, "threshold"),
                    f"thresholds must increase: {higher.id} ({higher.threshold}) is not above "
                    f"{lower.id} ({lower.threshold})",
                )
        _unique_ids("", levels)
        return levels


class PointsExpiry(_Strict):
    """Earned points expire ``months`` after they were earned (``null``: never)."""

    months: int | None = Field(default=12, ge=1, le=120)


class VoucherTemplate(_Strict):
    id: Id
    name: str = Field(min_length=1, max_length=80)
    kind: Literal["fixed", "percent"]
    value: int = Field(gt=0)  # VND for fixed, percent (1-100) for percent
    max_discount: Vnd | None = None  # cap of a percent discount
    min_spend: Vnd = 0
    validity_days: int = Field(default=30, ge=1, le=3650)
    per_customer_limit: int | None = Field(default=None, ge=1)
    total_limit: int | None = Field(default=None, ge=1)
    description: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _percent_range(self) -> VoucherTemplate:
        if self.kind == "percent" and self.value > 100:
            raise _FieldProblem(("value",), "a percent voucher's value is 1 to 100")
        return self

    def discount_for(self, order_total: int) -> int:
        """The discount this voucher gives on an order of ``order_total`` VND (never above it)."""
        if self.kind == "fixed":
            discount = self.value
        else:
            discount = order_total * self.value // 100
            if self.max_discount is not None:
                discount = min(discount, self.max_discount)
        return min(discount, order_total)


class Reward(_Strict):
    """Something a customer buys with points: a voucher from a template."""

    id: Id
    name: str = Field(min_length=1, max_length=80)
    points_cost: int = Field(ge=1, le=1_000_000_000)
    voucher_template: Id
    stock: int | None = Field(default=None, ge=0)  # None: unlimited
    image: str | None = None
    description: str = Field(default="", max_length=500)
    active: bool = True


class ReferralRules(_Strict):
    """Rewards for a customer who invites a friend, and for the friend."""

    enabled: bool = True
    referrer_points: Points = 100
    referee_points: Points = 50
    referrer_voucher: Id | None = None
    referee_voucher: Id | None = None
    # When the invitation counts: when the friend verifies a phone, or completes a first order.
    trigger: Literal["phone_verified", "first_order"] = "phone_verified"
    max_rewarded_per_referrer: int | None = Field(default=None, ge=1)


class CheckinRules(_Strict):
    points_per_scan: Points = 10  # default for a new check-in code
    daily_cap_per_customer: int = Field(default=1, ge=1, le=100)  # rewarded scans per local day


class Product(_Strict):
    id: Id
    name: str = Field(min_length=1, max_length=120)
    price: Vnd
    category: str = Field(default="", max_length=60)
    image: str | None = None
    description: str = Field(default="", max_length=500)
    active: bool = True


# ---------------------------------------------------------------- minigames (loyalty/games.py)
GameKind = Literal["wheel", "open_gift", "scratch", "flip_card", "shake_tree", "quiz"]


class GamePrize(_Strict):
    """One line of a game's prize table. ``weight`` is an integer: the chance is weight / total weight
    of the prizes still in stock. ``reward``: points, a voucher template, or nothing ("better luck")."""

    id: Id
    name: str = Field(min_length=1, max_length=80)
    reward: Literal["points", "voucher", "nothing"] = "nothing"
    points: Points = 0
    voucher_template: Id | None = None
    weight: int = Field(default=0, ge=0, le=1_000_000_000)  # quiz prizes are given by score, not drawn
    stock: int | None = Field(default=None, ge=0, le=10_000_000)  # total units; None: unlimited
    daily_stock: int | None = Field(default=None, ge=0, le=10_000_000)  # units per local day
    value_vnd: Vnd = 0  # what one unit costs the brand, counted against the campaign's budget
    image: str | None = None

    @model_validator(mode="after")
    def _reward_fields(self) -> GamePrize:
        if self.reward == "points" and self.points <= 0:
            raise _FieldProblem(("points",), "a points prize needs points > 0")
        if self.reward == "voucher" and self.voucher_template is None:
            raise _FieldProblem(("voucher_template",), "a voucher prize needs a voucher_template")
        if self.reward != "voucher" and self.voucher_template is not None:
            raise _FieldProblem(("voucher_template",), "only a voucher prize has a voucher_template")
        return self

    @property
    def limited(self) -> bool:
        return self.stock is not None or self.daily_stock is not None


class GameEligibility(_Strict):
    """Who may play: everyone by default; each condition set narrows it."""

    followers_only: bool = False  # follows the OA / page on at least one channel
    phone_verified: bool = False
    min_tier: Id | None = None


class GameCost(_Strict):
    """What one play costs: a free turn of the day, else a granted turn, else ``points`` (0: cannot buy)."""

    free_turns_per_day: int = Field(default=1, ge=0, le=1000)
    points: Points = 0


class GameTurnGrants(_Strict):
    """Extra turns granted by events."""

    per_order: int = Field(default=0, ge=0, le=100)  # per completed order
    per_checkin: int = Field(default=0, ge=0, le=100)  # per rewarded QR check-in


class GameLimits(_Strict):
    per_day: int | None = Field(default=None, ge=1, le=10_000)  # plays per customer per local day
    per_campaign: int | None = Field(default=None, ge=1, le=100_000)  # plays per customer, ever


class GameRateLimit(_Strict):
    """At most ``plays`` play requests per customer per ``seconds`` (Redis; refusals: game_rate_limited)."""

    plays: int = Field(default=5, ge=1, le=10_000)
    seconds: int = Field(default=10, ge=1, le=86_400)


class QuizQuestion(_Strict):
    id: Id
    text: str = Field(min_length=1, max_length=500)
    choices: tuple[str, ...] = Field(min_length=2, max_length=6)
    answer: int = Field(ge=0)  # index into choices; never sent to a client

    @model_validator(mode="after")
    def _answer_in_choices(self) -> QuizQuestion:
        if self.answer >= len(self.choices):
            raise _FieldProblem(("answer",), f"the answer must index one of the {len(self.choices)} choices")
        return self


class ScorePrize(_Strict):
    """Quiz: the prize for a score of at least ``min_score`` correct answers (the highest reached wins)."""

    min_score: int = Field(ge=0)
    prize: Id


class GameCampaign(_Strict):
    """A minigame campaign. Every kind but the quiz is an instant-win draw; the kind is only the skin."""

    id: Id
    kind: GameKind
    name: str = Field(min_length=1, max_length=80)
    description: str = Field(default="", max_length=1000)
    starts_at: datetime
    ends_at: datetime
    active: bool = True
    eligibility: GameEligibility = GameEligibility()
    cost: GameCost = GameCost()
    turns: GameTurnGrants = GameTurnGrants()
    limits: GameLimits = GameLimits()
    rate_limit: GameRateLimit = GameRateLimit()
    budget_vnd: Vnd | None = None  # total value of prizes the campaign may give; None: no budget
    prizes: tuple[GamePrize, ...] = Field(min_length=1, max_length=50)
    # quiz only
    questions: tuple[QuizQuestion, ...] = ()
    score_prizes: tuple[ScorePrize, ...] = ()

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("give a time zone (for example 2026-12-01T00:00:00+07:00)")
        return moment

    @model_validator(mode="after")
    def _consistent(self) -> GameCampaign:
        if self.ends_at <= self.starts_at:
            raise _FieldProblem(("ends_at",), "the campaign must end after it starts")
        _unique_ids("prizes", self.prizes)
        prize_ids = {prize.id for prize in self.prizes}
        if self.kind == "quiz":
            if not self.questions:
                raise _FieldProblem(("questions",), "a quiz needs questions")
            _unique_ids("questions", self.questions)
            for index, line in enumerate(self.score_prizes):
                if line.prize not in prize_ids:
                    raise _FieldProblem(("score_prizes", index, "prize"), f"no prize {line.prize!r}")
                if line.min_score > len(self.questions):
                    raise _FieldProblem(("score_prizes", index, "min_score"), "above the number of questions")
        else:
            if self.questions or self.score_prizes:
                raise _FieldProblem(("questions",), "only a quiz has questions and score_prizes")
            if sum(prize.weight for prize in self.prizes) <= 0:
                raise _FieldProblem(("prizes",), "at least one prize needs a weight above 0")
        return self

    def prize(self, prize_id: str) -> GamePrize | None:
        return next((p for p in self.prizes if p.id == prize_id), None)


class Program(_Strict):
    version: Literal[1] = 1
    brand: Brand
    earning: Earning = Earning()
    tiers: TierPolicy
    points_expiry: PointsExpiry = PointsExpiry()
    welcome_voucher: Id | None = None
    voucher_templates: tuple[VoucherTemplate, ...] = ()
    rewards: tuple[Reward, ...] = ()
    referral: ReferralRules = ReferralRules()
    checkin: CheckinRules = CheckinRules()
    products: tuple[Product, ...] = ()
    games: tuple[GameCampaign, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> Program:
        _unique_ids("voucher_templates", self.voucher_templates)
        _unique_ids("rewards", self.rewards)
        _unique_ids("products", self.products)
        templates = {t.id for t in self.voucher_templates}
        wanted: list[tuple[tuple[str | int, ...], str | None]] = [
            (("welcome_voucher",), self.welcome_voucher)
        ]
        wanted += [
            (("tiers", "levels", i, "voucher"), lvl.voucher) for i, lvl in enumerate(self.tiers.levels)
        ]
        wanted += [
            (("rewards", i, "voucher_template"), r.voucher_template) for i, r in enumerate(self.rewards)
        ]
        wanted += [
            (("referral", "referrer_voucher"), self.referral.referrer_voucher),
            (("referral", "referee_voucher"), self.referral.referee_voucher),
        ]
        _unique_ids("games", self.games)
        wanted += [
            (("games", g, "prizes", i, "voucher_template"), prize.voucher_template)
            for g, game in enumerate(self.games)
            for i, prize in enumerate(game.prizes)
        ]
        for where, template in wanted:
            if template is not None and template not in templates:
                raise _FieldProblem(where, f"no voucher template {template!r} (see voucher_templates)")
        tier_ids = {level.id for level in self.tiers.levels}
        for g, game in enumerate(self.games):
            if game.eligibility.min_tier is not None and game.eligibility.min_tier not in tier_ids:
                raise _FieldProblem(
                    ("games", g, "eligibility", "min_tier"), f"no tier {game.eligibility.min_tier!r}"
                )
        return self

    # ---------------------------------------------------------------- look-ups
    def voucher_template(self, template_id: str) -> VoucherTemplate | None:
        return next((t for t in self.voucher_templates if t.id == template_id), None)

    def reward(self, reward_id: str) -> Reward | None:
        return next((r for r in self.rewards if r.id == reward_id), None)

    def product(self, product_id: str) -> Product | None:
        return next((p for p in self.products if p.id == product_id), None)

    def game(self, campaign_id: str) -> GameCampaign | None:
        return next((g for g in self.games if g.id == campaign_id), None)

    def tier(self, tier_id: str | None) -> TierLevel:
        """The tier with this id; the first (lowest) tier for ``None`` or an id no longer configured."""
        return next((lvl for lvl in self.tiers.levels if lvl.id == tier_id), self.tiers.levels[0])

    def tier_for(self, qualifying_points: int) -> TierLevel:
        """The highest tier whose threshold ``qualifying_points`` reaches."""
        reached = self.tiers.levels[0]
        for level in self.tiers.levels:
            if qualifying_points >= level.threshold:
                reached = level
        return reached

    def next_tier(self, tier_id: str | None) -> TierLevel | None:
        levels = self.tiers.levels
        index = levels.index(self.tier(tier_id))
        return levels[index + 1] if index + 1 < len(levels) else None

    def tier_rank(self, tier_id: str | None) -> int:
        return self.tiers.levels.index(self.tier(tier_id))

    def points_for(self, amount_vnd: int, tier_id: str | None) -> int:
        """Points earned for ``amount_vnd`` at the tier's multiplier, rounded down."""
        if amount_vnd <= 0:
            return 0
        multiplier = self.tier(tier_id).multiplier
        return int(Decimal(amount_vnd) * multiplier // Decimal(self.earning.vnd_per_point))


def _unique_ids(
    where: str,
    items: Sequence[TierLevel | VoucherTemplate | Reward | Product | GameCampaign | GamePrize | QuizQuestion],
) -> None:
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item.id in seen:
            at: tuple[str | int, ...] = (where, index, "id") if where else (index, "id")
            raise _FieldProblem(at, f"duplicate id {item.id!r}")
        seen.add(item.id)


class ProgramError(ValueError):
    """The program file is missing, unreadable or invalid; the message names file, line and field."""


def load_program(path: Path | None = None) -> Program:
    """Read and validate the program in ``path`` (``.yaml``/``.yml`` or ``.toml``), or the demo program."""
    source = path or DEMO_PROGRAM
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise ProgramError(f"{source}: cannot read: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise ProgramError(f"{source}: not UTF-8 text") from error
    if source.suffix.lower() == ".toml":
        data, lines = _parse_toml(source, text)
    elif source.suffix.lower() in (".yaml", ".yml"):
        data, lines = _parse_yaml(source, text)
    else:
        raise ProgramError(f"{source}: the program file must end in .yaml, .yml or .toml")
    if not isinstance(data, Mapping):
        raise ProgramError(f"{source}:1: the program must be a mapping of sections (brand, tiers, ...)")
    try:
        return Program.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        loc: tuple[str | int, ...] = tuple(first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        problem = first.get("ctx", {}).get("error")
        if isinstance(problem, _FieldProblem):
            loc, message = (*loc, *problem.at), str(problem)
        where = ".".join(str(part) for part in loc) or "(top level)"
        line = _line_of(lines, loc)
        raise ProgramError(f"{source}:{line}: {where}: {message}") from None


# -------------------------------------------------------------------- line numbers of fields
# `lines` maps a field path (a tuple of keys and indexes) to the 1-based line where it is written.
LineMap = dict[tuple[str | int, ...], int]


def _line_of(lines: LineMap, loc: Sequence[str | int]) -> int:
    """The line of the deepest written part of ``loc`` (a missing field: its parent's line)."""
    for depth in range(len(loc), 0, -1):
        if (line := lines.get(tuple(loc[:depth]))) is not None:
            return line
    return 1


def _parse_yaml(source: Path, text: str) -> tuple[Any, LineMap]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ProgramError(f"{source}:{_yaml_problem(error)}") from None
    lines: LineMap = {}
    if node is not None:
        _walk_yaml(source, node, (), lines, frozenset())
    return _plain(data), lines


def _yaml_problem(error: yaml.YAMLError) -> str:
    """``<line>: not valid YAML: <problem>``, with where the broken construct began when that differs.

    PyYAML notices a problem where parsing cannot go on (an unclosed quote: at the end of the file), so
    the line where the construct started (``context_mark``) is often the one to fix.
    """
    mark = getattr(error, "problem_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    context_mark = getattr(error, "context_mark", None)
    if context and context_mark is not None and context_mark.line + 1 != line:
        problem = f"{problem} ({context} on line {context_mark.line + 1})"
    return f"{line}: not valid YAML: {problem}"


def _walk_yaml(
    source: Path, node: yaml.Node, path: tuple[str | int, ...], lines: LineMap, above: frozenset[int]
) -> None:
    """Record the line of every key and list item; refuse duplicate keys.

    PyYAML silently keeps the last of two equal keys, so a pasted section would replace the first one
    without a word: a classic way to lose half a config.
    """
    lines[path] = node.start_mark.line + 1
    if id(node) in above:  # a recursive alias: its lines are already known
        return
    inside = above | {id(node)}
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            child = (*path, name)
            line = key.start_mark.line + 1
            if name in seen and name != "<<":
                where = ".".join(str(part) for part in child)
                raise ProgramError(f"{source}:{line}: {where}: duplicate key")
            seen.add(name)
            _walk_yaml(source, value, child, lines, inside)
            lines[child] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk_yaml(source, item, (*path, index), lines, inside)


_TOML_POSITION: Final = re.compile(r"\s*\(at line (\d+), column \d+\)|\s*\(at end of document\)")


def _parse_toml(source: Path, text: str) -> tuple[Any, LineMap]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        found = _TOML_POSITION.search(message)
        if found is None:
            line = 1
        elif found.group(1) is not None:
            line = int(found.group(1))
        else:
            line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        raise ProgramError(f"{source}:{line}: not valid TOML: {_TOML_POSITION.sub('', message)}") from None
    return data, _TomlLines(text).scan()


class _TomlLines:
    """The line of every key, table, array-of-tables item and array element of a *valid* TOML text.

    ``tomllib`` gives no positions, so this walks the text once more, skipping string contents and
    comments, and follows the same table rules (``[[a]]`` appends an item; ``[a.b]`` after ``[[a]]``
    is inside its last item). It runs only after ``tomllib`` accepted the text, so it need not
    report syntax errors.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._at = 0
        self._newlines = [index for index, char in enumerate(text) if char == "\n"]
        self._lines: LineMap = {}
        self._array_items: dict[tuple[str | int, ...], int] = {}

    def scan(self) -> LineMap:
        table: tuple[str | int, ...] = ()
        while self._skip_blank():
            line = self._line()
            if self._text.startswith("[[", self._at):
                self._at += 2
                name = self._resolve(self._key())
                index = self._array_items.get(name, 0)
                self._array_items[name] = index + 1
                table = (*name, index)
                self._at = self._text.index("]]", self._at) + 2
                self._mark(name, line)
                self._lines[table] = line
            elif self._text.startswith("[", self._at):
                self._at += 1
                table = self._resolve(self._key())
                self._at = self._text.index("]", self._at) + 1
                self._mark(table, line)
            else:
                self._key_value(table)
        return self._lines

    # ------------------------------------------------------------ pieces
    def _line(self) -> int:
        return bisect.bisect_left(self._newlines, self._at) + 1

    def _mark(self, path: tuple[str | int, ...], line: int) -> None:
        """``path`` is written on ``line``; its enclosing tables at least there, if nowhere earlier."""
        for depth in range(1, len(path)):
            self._lines.setdefault(path[:depth], line)
        self._lines[path] = line

    def _resolve(self, parts: Sequence[str]) -> tuple[str | int, ...]:
        """A header's path, with the current item index after every array of tables it goes through."""
        path: tuple[str | int, ...] = ()
        for position, part in enumerate(parts):
            path = (*path, part)
            if position < len(parts) - 1 and path in self._array_items:
                path = (*path, self._array_items[path] - 1)
        return path

    def _skip_blank(self, *, newlines: bool = True) -> bool:
        """Skip spaces, comments (and newlines); False at the end of the text."""
        text = self._text
        while self._at < len(text):
            char = text[self._at]
            if char in " \t\r" or (newlines and char == "\n"):
                self._at += 1
            elif char == "#":
                end = text.find("\n", self._at)
                self._at = len(text) if end < 0 else end
            else:
                return True
        return False

    def _key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            char = self._text[self._at]
            if char in "\"'":
                start = self._at
                self._skip_string()
                parts.append(tomllib.loads(f"k = {self._text[start : self._at]}")["k"])
            else:
                start = self._at
                while self._at < len(self._text) and (
                    self._text[self._at].isalnum() or self._text[self._at] in "_-"
                ):
                    self._at += 1
                parts.append(self._text[start : self._at])
            self._skip_blank(newlines=False)
            if self._text.startswith(".", self._at):
                self._at += 1
                continue
            return parts

    def _key_value(self, table: tuple[str | int, ...]) -> None:
        line = self._line()
        path = (*table, *self._key())
        self._mark(path, line)
        self._at = self._text.index("=", self._at) + 1
        self._value(path)

    def _value(self, path: tuple[str | int, ...]) -> None:
        self._skip_blank(newlines=False)
        text = self._text
        char = text[self._at]
        if char in "\"'":
            self._skip_string()
        elif char == "[":
            self._at += 1
            index = 0
            while self._skip_blank() and text[self._at] != "]":
                self._mark((*path, index), self._line())
                self._value((*path, index))
                self._skip_blank()
                if text[self._at] == ",":
                    self._at += 1
                    index += 1
            self._at += 1
        elif char == "{":
            self._at += 1
            while self._skip_blank(newlines=False) and text[self._at] != "}":
                if text[self._at] == ",":
                    self._at += 1
                    continue
                self._key_value(path)
            self._at += 1
        else:  # a number, boolean or date: up to the next delimiter
            while self._at < len(text) and text[self._at] not in ",]}\n#":
                self._at += 1

    def _skip_string(self) -> None:
        text = self._text
        quote = text[self._at]
        if text.startswith(quote * 3, self._at):
            end = self._at + 3
            while True:
                end = text.index(quote * 3, end)
                if quote == "'" or not _escaped(text, end):
                    break
                end += 1
            end += 3
            while text.startswith(quote, end):  # up to two quotes may end the content itself
                end += 1
            self._at = end
            return
        end = self._at + 1
        while True:
            end = text.index(quote, end)
            if quote == "'" or not _escaped(text, end):
                break
            end += 1
        self._at = end + 1


def _escaped(text: str, index: int) -> bool:
    """Whether the character at ``index`` is preceded by an odd number of backslashes."""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def _plain(value: Any) -> Any:
    """YAML dates stay strings where the model wants text (``anchor: 04-01`` is already a string)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value
