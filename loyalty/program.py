"""The loyalty program a brand runs, described in one file (``PROGRAM_FILE``, YAML or TOML).

:func:`load_program` reads and validates it at start-up; an error names the file, the line and the
field (``program.yaml:42: tiers.levels.1.threshold: must be greater than 0``). Without a file the bundled
demo program (``loyalty/demo_program.yaml``) is used. ``docs/loyalty-program.md`` documents every field.

Amounts of money are whole VND (``int``). Points are whole numbers.
"""

from __future__ import annotations

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
            raise ValueError("the first tier must have threshold 0 (every customer has a tier)")
        for lower, higher in zip(levels, levels[1:], strict=False):
            if higher.threshold <= lower.threshold:
                raise ValueError(f"thresholds must increase: {higher.id} is not above {lower.id}")
        ids = [level.id for level in levels]
        if len(set(ids)) != len(ids):
            raise ValueError("tier ids must be unique")
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
            raise ValueError("a percent voucher's value is 1 to 100")
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

    @model_validator(mode="after")
    def _references(self) -> Program:
        templates = {t.id for t in self.voucher_templates}
        if len(templates) != len(self.voucher_templates):
            raise ValueError("voucher_templates: ids must be unique")
        for ids, what in ((self.rewards, "rewards"), (self.products, "products")):
            if len({item.id for item in ids}) != len(ids):
                raise ValueError(f"{what}: ids must be unique")
        wanted: list[tuple[str, str | None]] = [("welcome_voucher", self.welcome_voucher)]
        wanted += [(f"tiers.levels.{lvl.id}.voucher", lvl.voucher) for lvl in self.tiers.levels]
        wanted += [(f"rewards.{rwd.id}.voucher_template", rwd.voucher_template) for rwd in self.rewards]
        wanted += [
            ("referral.referrer_voucher", self.referral.referrer_voucher),
            ("referral.referee_voucher", self.referral.referee_voucher),
        ]
        for where, template in wanted:
            if template is not None and template not in templates:
                raise ValueError(f"{where}: no voucher template {template!r}")
        return self

    # ---------------------------------------------------------------- look-ups
    def voucher_template(self, template_id: str) -> VoucherTemplate | None:
        return next((t for t in self.voucher_templates if t.id == template_id), None)

    def reward(self, reward_id: str) -> Reward | None:
        return next((r for r in self.rewards if r.id == reward_id), None)

    def product(self, product_id: str) -> Product | None:
        return next((p for p in self.products if p.id == product_id), None)

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
        first = error.errors()[0]
        loc = tuple(first["loc"])
        where = ".".join(str(part) for part in loc) or "(top level)"
        line = _line_of(lines, loc)
        message = first["msg"].removeprefix("Value error, ")
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
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(error, "problem", None) or str(error)
        raise ProgramError(f"{source}:{line}: not valid YAML: {problem}") from None
    lines: LineMap = {}
    if node is not None:
        _walk_yaml(node, (), lines)
    return _plain(data), lines


def _walk_yaml(node: yaml.Node, path: tuple[str | int, ...], lines: LineMap) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            lines[child] = key.start_mark.line + 1
            _walk_yaml(value, child, lines)
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk_yaml(item, (*path, index), lines)


def _parse_toml(source: Path, text: str) -> tuple[Any, LineMap]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line = getattr(error, "lineno", None) or _toml_error_line(str(error))
        raise ProgramError(f"{source}:{line}: not valid TOML: {error}") from None
    return data, _toml_lines(text)


def _toml_error_line(message: str) -> int:
    marker = "line "
    if marker in message:
        digits = message.split(marker, 1)[1].split(",", 1)[0].split(")", 1)[0]
        if digits.isdigit():
            return int(digits)
    return 1


def _toml_lines(text: str) -> LineMap:
    """Best-effort lines for TOML: tables (``[a.b]``, ``[[a.b]]``) and their ``key =`` lines."""
    lines: LineMap = {}
    table: tuple[str | int, ...] = ()
    counters: dict[tuple[str | int, ...], int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("[["):
            name = tuple(part.strip() for part in line.strip("[] ").split("."))
            index = counters.get(name, -1) + 1
            counters[name] = index
            table = (*name, index)
            lines.setdefault(name, number)
            lines[table] = number
        elif line.startswith("["):
            table = tuple(part.strip() for part in line.strip("[] ").split("."))
            lines[table] = number
        elif "=" in line and not line.startswith("#"):
            key = line.split("=", 1)[0].strip().strip('"')
            lines[(*table, *key.split("."))] = number
    return lines


def _plain(value: Any) -> Any:
    """YAML dates stay strings where the model wants text (``anchor: 04-01`` is already a string)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value
