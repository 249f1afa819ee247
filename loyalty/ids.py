"""Identifiers: opaque, unguessable strings, never database-specific types."""

from __future__ import annotations

import secrets


def new_id() -> str:
    """A 24-character lowercase hex id (96 random bits)."""
    return secrets.token_hex(12)
