"""The program file: the demo and documented programs load, in YAML and TOML alike, and every error names
the file, the line and the field a brand has to fix."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from loyalty.program import DEMO_PROGRAM, Program, ProgramError, VoucherTemplate, load_program

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "loyalty-program.md"
TOML_DEMO = ROOT / "docs" / "examples" / "program.toml"


def doc_block(language: str, index: int = 0) -> str:
    blocks = re.findall(rf"^```{language}\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.M | re.S)
    return str(blocks[index])


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str, occurrence: int = 0) -> int:
    """The 1-based line where the ``occurrence``-th ``needle`` starts."""
    at = -1
    for _ in range(occurrence + 1):
        at = text.index(needle, at + 1)
    return text.count("\n", 0, at) + 1


def failure(path: Path) -> str:
    with pytest.raises(ProgramError) as caught:
        load_program(path)
    return str(caught.value)


# ------------------------------------------------------------------------------------------ loading
def test_the_demo_program_loads_with_the_defaults_the_issue_asks_for() -> None:
    program = load_program()

    assert program.earning.vnd_per_point == 10_000
    assert [(t.id, t.threshold) for t in program.tiers.levels] == [
        ("member", 0),
        ("silver", 500),
        ("gold", 1000),
        ("platinum", 2000),
    ]
    assert program.points_expiry.months == 12
    assert program.welcome_voucher is not None
    assert program.voucher_template(program.welcome_voucher) is not None
    for level in program.tiers.levels[1:]:
        assert level.voucher is not None
        assert program.voucher_template(level.voucher) is not None
    for reward in program.rewards:
        assert program.voucher_template(reward.voucher_template) is not None
    assert program.reward("discount-50k") is not None
    assert program.reward("discount-50k").stock == 200  # type: ignore[union-attr]
    assert program.product("bac-xiu") is not None
    assert program.product("bac-xiu").price == 35_000  # type: ignore[union-attr]


def test_the_toml_example_is_the_demo_program() -> None:
    assert load_program(TOML_DEMO) == load_program(DEMO_PROGRAM)


def test_the_documented_yaml_example_loads(tmp_path: Path) -> None:
    program = load_program(write(tmp_path, "program.yaml", doc_block("yaml")))

    assert program.brand.name == "Cà Phê Phố"
    assert program.tiers.window.kind == "calendar_year"
    assert program.tiers.window.anchor == "04-01"
    assert program.tiers.downgrade == "one_level"
    assert program.tier("silver").multiplier == Decimal("1.1")
    assert [p.id for p in program.products] == ["ca-phe-sua-da", "bac-xiu"]


def _field_names(model: type[BaseModel]) -> set[str]:
    names: set[str] = set()
    for name, field in model.model_fields.items():
        names.add(name)
        for candidate in _models_in(field.annotation):
            names |= _field_names(candidate)
    return names


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in getattr(annotation, "__args__", ()) for model in _models_in(arg)]


def _keys(data: Any) -> set[str]:
    if isinstance(data, dict):
        return set(data) | {key for value in data.values() for key in _keys(value)}
    if isinstance(data, list):
        return {key for item in data for key in _keys(item)}
    return set()


def test_the_documented_example_shows_every_field() -> None:
    """A field added to the model and not to the documented example fails here."""
    shown = _keys(yaml.safe_load(doc_block("yaml")))

    assert _field_names(Program) - shown == set()


def test_the_documented_toml_snippet_loads(tmp_path: Path) -> None:
    program = load_program(write(tmp_path, "program.toml", doc_block("toml")))

    assert [level.id for level in program.tiers.levels] == ["member", "silver"]


def test_the_documented_error_lines_are_real_messages(tmp_path: Path) -> None:
    """The messages quoted in the doc are what the loader says for those mistakes in the demo."""
    demo = DEMO_PROGRAM.read_text(encoding="utf-8")
    mistakes = [
        demo.replace("threshold: 1000,", "threshold: lots,"),
        demo.replace("threshold: 2000,", "threshold: 900,"),
        demo.replace("  vnd_per_point: 10000", "  vnd_per_point: 10000\n  bonus: 3"),
        demo.replace("voucher_template: discount_50k", "voucher_template: nope"),
        demo.replace("  name: Demo Café\n", ""),
    ]
    documented = doc_block("text").splitlines()
    for mistake, line in zip(mistakes, documented, strict=False):
        message = failure(write(tmp_path, "program.yaml", mistake))
        assert line == f"loyalty: {message.removeprefix(str(tmp_path) + '/')}"


# ------------------------------------------------------------------------------------------ errors
# Each mistake: (a replacement in the demo text, the text to find the expected line by, the field).
YAML_MISTAKES = {
    "wrong type": ("threshold: 1000,", "threshold: lots,", "threshold: lots", "tiers.levels.2.threshold"),
    "missing required field": ("  name: Demo Café\n", "", "brand:", "brand.name"),
    "unknown field": ("  rounding: down", "  rounding: down\n  bonus: 3", "bonus: 3", "earning.bonus"),
    "thresholds not increasing": (
        "threshold: 2000,",
        "threshold: 900,",
        "threshold: 900",
        "tiers.levels.3.threshold",
    ),
    "dangling voucher reference": (
        "voucher_template: discount_50k",
        "voucher_template: nope",
        "voucher_template: nope",
        "rewards.1.voucher_template",
    ),
    "dangling tier voucher": (
        "voucher: tier_gold",
        "voucher: gone",
        "voucher: gone",
        "tiers.levels.2.voucher",
    ),
    "dangling welcome voucher": (
        "welcome_voucher: welcome_20k",
        "welcome_voucher: x",
        "welcome_voucher",
        "welcome_voucher",
    ),
}
TOML_MISTAKES = {
    "wrong type": (
        "threshold = 1000\n",
        'threshold = "lots"\n',
        'threshold = "lots"',
        "tiers.levels.2.threshold",
    ),
    "missing required field": ('name = "Demo Café"\n', "", "[brand]", "brand.name"),
    "unknown field": ('rounding = "down"', 'rounding = "down"\nbonus = 3', "bonus = 3", "earning.bonus"),
    "thresholds not increasing": (
        "threshold = 2000",
        "threshold = 900",
        "threshold = 900",
        "tiers.levels.3.threshold",
    ),
    "dangling voucher reference": (
        'voucher_template = "discount_50k"',
        'voucher_template = "nope"',
        'voucher_template = "nope"',
        "rewards.1.voucher_template",
    ),
    "wrong type in an inline table": ("price = 42000", "price = -1", "price = -1", "products.3.price"),
    "dangling welcome voucher": (
        'welcome_voucher = "welcome_20k"',
        'welcome_voucher = "x"',
        "welcome_voucher",
        "welcome_voucher",
    ),
}


@pytest.mark.parametrize("mistake", YAML_MISTAKES, ids=str)
def test_a_yaml_error_names_file_line_and_field(tmp_path: Path, mistake: str) -> None:
    old, new, anchor, field = YAML_MISTAKES[mistake]
    demo = DEMO_PROGRAM.read_text(encoding="utf-8")
    assert old in demo
    text = demo.replace(old, new, 1)
    path = write(tmp_path, "program.yaml", text)

    assert failure(path).startswith(f"{path}:{line_of(text, anchor)}: {field}: ")


@pytest.mark.parametrize("mistake", TOML_MISTAKES, ids=str)
def test_a_toml_error_names_file_line_and_field(tmp_path: Path, mistake: str) -> None:
    old, new, anchor, field = TOML_MISTAKES[mistake]
    demo = TOML_DEMO.read_text(encoding="utf-8")
    assert old in demo
    text = demo.replace(old, new, 1)
    path = write(tmp_path, "program.toml", text)

    assert failure(path).startswith(f"{path}:{line_of(text, anchor)}: {field}: ")


def test_the_messages_say_what_is_wrong(tmp_path: Path) -> None:
    demo = DEMO_PROGRAM.read_text(encoding="utf-8")

    unknown = failure(
        write(tmp_path, "a.yaml", demo.replace("  rounding: down", "  rounding: down\n  bonus: 3"))
    )
    order = failure(write(tmp_path, "b.yaml", demo.replace("threshold: 2000,", "threshold: 900,")))
    dangling = failure(write(tmp_path, "c.yaml", demo.replace("voucher: tier_gold", "voucher: gone")))

    assert unknown.endswith("Extra inputs are not permitted")
    assert order.endswith("thresholds must increase: platinum (900) is not above gold (1000)")
    assert "no voucher template 'gone'" in dangling


def test_block_style_nested_list_items_have_their_own_lines(tmp_path: Path) -> None:
    """The documented example writes levels as block mappings: the error is on the item's own line."""
    text = doc_block("yaml").replace("threshold: 1000", "threshold: 400")
    path = write(tmp_path, "program.yaml", text)

    assert failure(path).startswith(f"{path}:{line_of(text, 'threshold: 400')}: tiers.levels.2.threshold: ")


def test_a_missing_field_of_a_list_item_points_at_the_item(tmp_path: Path) -> None:
    yaml_text = DEMO_PROGRAM.read_text(encoding="utf-8").replace(
        "    kind: percent\n    value: 15", "    value: 15"
    )
    toml_text = TOML_DEMO.read_text(encoding="utf-8").replace('kind = "percent"\nvalue = 15', "value = 15")
    yaml_path = write(tmp_path, "program.yaml", yaml_text)
    toml_path = write(tmp_path, "program.toml", toml_text)

    assert failure(yaml_path).startswith(
        f"{yaml_path}:{line_of(yaml_text, '- id: tier_gold')}: voucher_templates.2.kind:"
    )
    assert failure(toml_path).startswith(
        f"{toml_path}:{line_of(toml_text, '[[voucher_templates]]', 2)}: voucher_templates.2.kind:"
    )


@pytest.mark.parametrize(
    ("old", "new", "anchor"),
    [
        ("  months: 12\n\nwelcome", "  months: [12\n\nwelcome", "months: [12"),  # an unclosed flow list
        ("checkin:\n  points_per_scan: 10", "checkin:\n  points_per_scan: 10\n    daily: 2", "    daily: 2"),
        ("  name: Demo Café\n", '  name: "Demo Café\n', '"Demo Café'),  # an unclosed quote
    ],
)
def test_invalid_yaml_names_the_line(tmp_path: Path, old: str, new: str, anchor: str) -> None:
    text = DEMO_PROGRAM.read_text(encoding="utf-8").replace(old, new, 1)
    path = write(tmp_path, "program.yaml", text)

    message = failure(path)

    assert message.startswith(f"{path}:")
    assert ": not valid YAML: " in message
    # where the parser stopped, or, when that is later, the line where the broken part began
    assert str(line_of(text, anchor)) in re.findall(r"\d+", message.removeprefix(str(path)))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("threshold = 1000\n", "threshold = 1000 lots\n"),
        ("[checkin]", "[checkin"),
        ("daily_cap_per_customer = 1\n", "daily_cap_per_customer =\n"),
    ],
)
def test_invalid_toml_names_the_line(tmp_path: Path, old: str, new: str) -> None:
    text = TOML_DEMO.read_text(encoding="utf-8").replace(old, new, 1)
    path = write(tmp_path, "program.toml", text)

    message = failure(path)

    assert message.startswith(f"{path}:{line_of(text, new)}: not valid TOML: ")
    assert "(at line" not in message  # the position is said once, in front


def test_a_duplicate_yaml_key_is_refused_not_silently_overwritten(tmp_path: Path) -> None:
    text = DEMO_PROGRAM.read_text(encoding="utf-8").replace(
        "checkin:\n", "checkin:\n  points_per_scan: 5\n", 1
    )
    path = write(tmp_path, "program.yaml", text)

    assert (
        failure(path)
        == f"{path}:{line_of(text, 'points_per_scan: 10')}: checkin.points_per_scan: duplicate key"
    )


def test_duplicate_ids_are_refused_at_the_second_one(tmp_path: Path) -> None:
    text = DEMO_PROGRAM.read_text(encoding="utf-8").replace("- id: free_drink", "- id: discount_50k", 1)
    path = write(tmp_path, "program.yaml", text)

    line = line_of(text, "- id: discount_50k", 1)

    assert failure(path) == f"{path}:{line}: voucher_templates.5.id: duplicate id 'discount_50k'"


def test_the_first_tier_must_start_at_zero(tmp_path: Path) -> None:
    text = DEMO_PROGRAM.read_text(encoding="utf-8").replace("threshold: 0,", "threshold: 10,")
    path = write(tmp_path, "program.yaml", text)

    assert failure(path).startswith(f"{path}:{line_of(text, 'threshold: 10,')}: tiers.levels.0.threshold: ")


def test_toml_lines_survive_strings_that_look_like_keys_and_tables(tmp_path: Path) -> None:
    """Multi-line strings, quoted keys and comments must not shift the lines the errors name."""
    text = (
        TOML_DEMO.read_text(encoding="utf-8")
        .replace(
            'name = "Giảm 50.000đ"',
            'name = "Giảm 50.000đ"\ndescription = """\n[[voucher_templates]]\nvalue = "not a key"\n"""\n'
            "'min_spend' = 150000 # a quoted key\n",
        )
        .replace("min_spend = 150000\n", "", 1)
    )
    text = text.replace('id = "referral_30k"\n', 'id = "referral_30k"\n"validity_days" = "soon"\n')
    text = text.replace("validity_days = 30\n\n[[rewards]]", "\n[[rewards]]")
    path = write(tmp_path, "program.toml", text)
    line = line_of(text, '"validity_days" = "soon"')

    assert failure(path).startswith(f"{path}:{line}: voucher_templates.6.validity_days: ")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("program.json", "{}", "must end in .yaml, .yml or .toml"),
        ("program.yaml", "- a\n- b\n", ":1: the program must be a mapping"),
        ("program.yaml", "", ":1: the program must be a mapping"),
    ],
)
def test_files_that_are_not_programs(tmp_path: Path, name: str, content: str, expected: str) -> None:
    assert expected in failure(write(tmp_path, name, content))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    message = failure(tmp_path / "nowhere.yaml")

    assert message.startswith(f"{tmp_path / 'nowhere.yaml'}: cannot read")


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "program.yaml"
    path.write_bytes("brand:\n  name: Cà phê\n".encode("cp1258"))

    assert failure(path) == f"{path}: not UTF-8 text"


# ------------------------------------------------------------------------------------------ rules
@pytest.mark.parametrize(
    ("amount", "tier", "points"),
    [
        (95_000, "member", 9),  # 9.5 rounds down
        (95_000, "silver", 10),  # 10.45
        (95_000, "gold", 11),  # 11.875
        (95_000, "platinum", 14),  # 14.25
        (9_999, "member", 0),
        (10_000, "member", 1),
        (0, "platinum", 0),
        (-50_000, "gold", 0),
        (95_000, "no-longer-configured", 9),  # the lowest tier's multiplier
        (95_000, None, 9),
        (10_000_000_000, "platinum", 1_500_000),
    ],
)
def test_points_for_rounds_down_after_the_multiplier(
    program: Program, amount: int, tier: str | None, points: int
) -> None:
    assert program.points_for(amount, tier) == points


def test_multipliers_are_exact_decimals(tmp_path: Path) -> None:
    """YAML and TOML read 1.15 as a binary float, 1.1499999...: 200,000 VND would earn 22 points, not 23."""
    yaml_text = DEMO_PROGRAM.read_text(encoding="utf-8").replace("multiplier: 1.25", "multiplier: 1.15")
    toml_text = TOML_DEMO.read_text(encoding="utf-8").replace("multiplier = 1.25", "multiplier = 1.15")

    for program in (
        load_program(write(tmp_path, "program.yaml", yaml_text)),
        load_program(write(tmp_path, "program.toml", toml_text)),
    ):
        assert program.tier("gold").multiplier == Decimal("1.15")
        assert program.points_for(200_000, "gold") == 23


@pytest.mark.parametrize(
    ("points", "tier"),
    [
        (0, "member"),
        (499, "member"),
        (500, "silver"),
        (999, "silver"),
        (1000, "gold"),
        (1999, "gold"),
        (2000, "platinum"),
        (10**9, "platinum"),
        (-5, "member"),
    ],
)
def test_tier_for(program: Program, points: int, tier: str) -> None:
    assert program.tier_for(points).id == tier


@pytest.mark.parametrize(
    ("tier", "following"),
    [("member", "silver"), ("silver", "gold"), ("gold", "platinum"), ("platinum", None), (None, "silver")],
)
def test_next_tier(program: Program, tier: str | None, following: str | None) -> None:
    after = program.next_tier(tier)

    assert (after.id if after else None) == following


def test_tier_rank_orders_levels(program: Program) -> None:
    assert [program.tier_rank(t) for t in ("member", "silver", "gold", "platinum", "gone")] == [0, 1, 2, 3, 0]


@pytest.mark.parametrize(
    ("template", "total", "discount"),
    [
        (VoucherTemplate(id="f", name="F", kind="fixed", value=20_000), 100_000, 20_000),
        (
            VoucherTemplate(id="f", name="F", kind="fixed", value=20_000),
            15_000,
            15_000,
        ),  # never above the total
        (VoucherTemplate(id="p", name="P", kind="percent", value=10), 123_456, 12_345),  # rounds down
        (VoucherTemplate(id="p", name="P", kind="percent", value=15, max_discount=50_000), 1_000_000, 50_000),
    ],
)
def test_discount_for(template: VoucherTemplate, total: int, discount: int) -> None:
    assert template.discount_for(total) == discount


def test_a_percent_voucher_above_100_names_its_value(tmp_path: Path) -> None:
    text = DEMO_PROGRAM.read_text(encoding="utf-8").replace("    value: 15\n", "    value: 150\n")
    path = write(tmp_path, "program.yaml", text)

    line = line_of(text, "value: 150")

    assert failure(path) == f"{path}:{line}: voucher_templates.2.value: a percent voucher's value is 1 to 100"
