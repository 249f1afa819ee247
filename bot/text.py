"""Text folding for keyword matching: "điểm" == "diem" == "ĐIỂM" == "  Điểm  "."""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Final

# đ/Đ is a letter of its own, not d + a combining mark, so NFD leaves it alone.
_EXTRA: Final = str.maketrans({"đ": "d", "Đ": "d"})


@lru_cache(maxsize=8192)
def fold(text: str) -> str:
    """Lower-case, strip Vietnamese diacritics (đ → d) and collapse whitespace."""
    decomposed = unicodedata.normalize("NFD", text.translate(_EXTRA))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())
