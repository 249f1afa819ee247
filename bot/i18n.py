"""Message copy in Jinja2 templates, per locale, that a brand can edit.

Templates are looked up in the brand's directory first, then in the bundled one, as
``<locale>/<key>.j2`` (``vi/welcome.j2``). Vietnamese is the default locale, English the second;
a key missing in the requested locale falls back to the default one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound


class Messages:
    def __init__(self, directories: Sequence[Path], *, default_locale: str = "vi") -> None:
        self.default_locale = default_locale
        self._env = Environment(
            loader=FileSystemLoader([str(d) for d in directories]),
            undefined=StrictUndefined,  # a typo in a template variable fails loudly, in tests
            autoescape=False,  # chat text, not HTML  # noqa: S701
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self._env.filters["number"] = _vietnamese_number

    def render(self, key: str, locale: str | None = None, /, **values: Any) -> str:
        """The text of message ``key`` in ``locale`` (default locale if missing there)."""
        for candidate in dict.fromkeys((locale or self.default_locale, self.default_locale)):
            try:
                template = self._env.get_template(f"{candidate}/{key}.j2")
            except TemplateNotFound:
                continue
            return template.render(**values).strip()
        raise LookupError(f"no message template {key!r} for locale {locale or self.default_locale!r}")

    def __call__(self, key: str, locale: str | None = None, /, **values: Any) -> str:
        return self.render(key, locale, **values)


def _vietnamese_number(value: int | float) -> str:
    """``12500`` → ``12.500`` (Vietnamese thousands separator)."""
    return f"{value:,.0f}".replace(",", ".")
