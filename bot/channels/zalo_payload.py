"""Zalo button payloads: how a pressed button is told apart from text a person typed.

Zalo has no postback event. An ``oa.query.show`` button posts its payload as a visible user message,
an ``oa.query.hide`` button as a hidden one, and both come back to the webhook as ``user_send_text``
(that hidden ones use the same event is unconfirmed). So the outbound client writes every button
payload with :data:`PREFIX`, a prefix no person types, and the webhook turns a text that starts with it
into a :class:`~bot.types.Postback` carrying the payload without the prefix.

A payload is not authenticated: anybody can type ``#pl:points``. Handlers treat a postback payload as
user input, exactly like text (which is what it is on Zalo).

This module has no dependencies, so both the webhook (inbound) and the channel client (outbound) use it.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "#pl:"
# the longest payload we write: what bot.types.Postback accepts (Zalo's own button limit is unconfirmed)
MAX_PAYLOAD_LENGTH: Final = 1000


def encode(payload: str) -> str:
    """The text a Zalo ``oa.query.*`` button must carry so that pressing it comes back as ``payload``.

    :param payload: what the handler will see as ``Postback.payload``; 1 to :data:`MAX_PAYLOAD_LENGTH`
        characters.
    :return: ``PREFIX + payload``.
    :raises ValueError: the payload is empty or too long.
    """
    if not payload:
        raise ValueError("a button payload cannot be empty")
    if len(payload) > MAX_PAYLOAD_LENGTH:
        raise ValueError(f"a button payload has at most {MAX_PAYLOAD_LENGTH} characters, got {len(payload)}")
    return PREFIX + payload


def decode(text: str) -> str | None:
    """The payload a user text carries, or ``None`` when it is ordinary text.

    :param text: the ``message.text`` of a ``user_send_text`` event, as received (not stripped).
    :return: the payload without :data:`PREFIX`; ``None`` when the text does not start with the prefix
        or when what follows could not have been written by :func:`encode` (empty or too long).
    """
    if not text.startswith(PREFIX):
        return None
    payload = text[len(PREFIX) :]
    if not payload or len(payload) > MAX_PAYLOAD_LENGTH:
        return None
    return payload
