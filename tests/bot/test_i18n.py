"""Message copy in templates: locales, fallback, brand overrides, strictness, the number filter."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import UndefinedError

from bot.i18n import Messages


def write(root: Path, locale: str, key: str, text: str) -> None:
    (root / locale).mkdir(parents=True, exist_ok=True)
    (root / locale / f"{key}.j2").write_text(text, encoding="utf-8")


@pytest.fixture
def bundled(tmp_path: Path) -> Path:
    root = tmp_path / "bundled"
    write(root, "vi", "welcome", "Chào {{ name }}!\n")
    write(root, "en", "welcome", "Welcome, {{ name }}!\n")
    write(root, "vi", "points", "Bạn có {{ points | number }} điểm.")
    return root


def test_renders_vietnamese_by_default(bundled: Path) -> None:
    messages = Messages([bundled])

    assert messages.render("welcome", name="Lan") == "Chào Lan!"


def test_renders_english_when_asked(bundled: Path) -> None:
    messages = Messages([bundled])

    assert messages.render("welcome", "en", name="Lan") == "Welcome, Lan!"


def test_falls_back_to_vietnamese_when_the_locale_lacks_the_template(bundled: Path) -> None:
    messages = Messages([bundled])

    assert messages.render("points", "en", points=12500) == "Bạn có 12.500 điểm."


def test_an_unknown_locale_falls_back_too(bundled: Path) -> None:
    assert Messages([bundled]).render("welcome", "fr", name="Lan") == "Chào Lan!"


def test_another_default_locale(bundled: Path) -> None:
    assert Messages([bundled], default_locale="en").render("welcome", name="Lan") == "Welcome, Lan!"


def test_a_brand_directory_listed_first_overrides_the_bundled_template(bundled: Path, tmp_path: Path) -> None:
    brand = tmp_path / "brand"
    write(brand, "vi", "welcome", "Demo Café chào {{ name }} ☕")

    messages = Messages([brand, bundled])

    assert messages.render("welcome", name="Lan") == "Demo Café chào Lan ☕"
    # what the brand did not override still comes from the bundled copy
    assert messages.render("points", points=5) == "Bạn có 5 điểm."
    assert messages.render("welcome", "en", name="Lan") == "Welcome, Lan!"


def test_a_missing_variable_fails_loudly(bundled: Path) -> None:
    with pytest.raises(UndefinedError, match="name"):
        Messages([bundled]).render("welcome")


def test_a_missing_template_is_a_lookup_error(bundled: Path) -> None:
    with pytest.raises(LookupError, match="'nope'"):
        Messages([bundled]).render("nope", "en")


def test_messages_are_callable(bundled: Path) -> None:
    messages = Messages([bundled])

    assert messages("welcome", "en", name="Lan") == messages.render("welcome", "en", name="Lan")


def test_whitespace_around_the_message_is_stripped(tmp_path: Path) -> None:
    write(tmp_path, "vi", "menu", "\n{% if vip %}\nKhách VIP\n{% endif %}\nMenu\n\n")

    assert Messages([tmp_path]).render("menu", vip=True) == "Khách VIP\nMenu"


@pytest.mark.parametrize(
    ("_case", "value", "expected"),
    [
        ("thousands", 12500, "12.500"),
        ("millions", 1250000, "1.250.000"),
        ("small", 999, "999"),
        ("zero", 0, "0"),
        ("negative", -4500, "-4.500"),
        ("float rounds", 1234.6, "1.235"),
    ],
)
def test_the_number_filter(tmp_path: Path, _case: str, value: float, expected: str) -> None:
    write(tmp_path, "vi", "n", "{{ value | number }}")

    assert Messages([tmp_path]).render("n", value=value) == expected


def test_the_bundled_templates_render_in_both_locales() -> None:
    root = Path(__file__).resolve().parents[2] / "static" / "templates" / "messages"
    messages = Messages([root])

    assert messages("fallback", text="abc").startswith("Xin lỗi")
    assert messages("fallback", "en", text="abc").startswith("Sorry")
