"""Where the bundled data lives: ``static/`` beside the packages (in a checkout and in a wheel alike)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"
ASSETS_DIR: Final = STATIC_DIR / "assets"
TEMPLATES_DIR: Final = STATIC_DIR / "templates"
MESSAGES_DIR: Final = TEMPLATES_DIR / "messages"
