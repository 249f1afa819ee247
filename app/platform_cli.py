"""``loyalty messenger setup-profile`` and ``loyalty zalo authorize``: one-off platform set-up commands.

- ``messenger setup-profile [--dry-run]`` sets the Page's Messenger profile through the Graph API
  (``POST /{FACEBOOK_GRAPH_VERSION}/me/messenger_profile`` with ``FACEBOOK_PAGE_ACCESS_TOKEN``): the Get
  Started button (payload ``sl:get_started``, answered by the welcome handler), the welcome-screen
  greeting (Vietnamese by default, English for ``en_US``) and the persistent menu (points, vouchers,
  rewards, games, help). Texts come from the message templates (``messenger_greeting``, ``menu_*``), so
  a brand edits them in its ``TEMPLATES_DIR``.
- ``zalo authorize`` prints the consent link an OA admin opens after a refused refresh token (see
  :mod:`app.zalo_oauth`). It keeps the link's state in Redis: with embedded servers it must run while
  ``loyalty serve`` (which receives the callback) is stopped, or against its Redis (``REDIS_URL``).

Exit codes: 0 done, 69 the platform or Redis is unavailable, 78 a setting is missing or invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Final

import httpx

from app import zalo_oauth
from app.offline import data_dir_in_use
from app.paths import MESSAGES_DIR
from app.runtime import storage_servers
from app.settings import Settings
from bot.channels.errors import ConfigurationError, TokenError
from bot.channels.messenger import DEFAULT_LOCALE, MessengerClient, MessengerProfile
from bot.i18n import Messages
from handlers.common import (
    GAMES_PAYLOAD,
    GET_STARTED_PAYLOAD,
    HELP_PAYLOAD,
    POINTS_PAYLOAD,
    REWARDS_PAYLOAD,
    VOUCHERS_PAYLOAD,
)
from storage.clients import create_redis_client

EX_OK: Final = 0
EX_UNAVAILABLE: Final = 69
EX_CONFIG: Final = 78

#: Message-template locale → Messenger locale of the profile. ``vi`` is the default locale of the copy
#: (``bot.i18n``) and of the profile; English people get the ``en_US`` texts.
PROFILE_LOCALES: Final = {"vi": DEFAULT_LOCALE, "en": "en_US"}


#: The Page's persistent menu: (copy key of the title, payload), the top-level flows and help.
PERSISTENT_MENU: Final = (
    ("menu_points", POINTS_PAYLOAD),
    ("menu_vouchers", VOUCHERS_PAYLOAD),
    ("menu_rewards", REWARDS_PAYLOAD),
    ("menu_games", GAMES_PAYLOAD),
    ("menu_help", HELP_PAYLOAD),
)


def add_platform_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``loyalty messenger ...`` and ``loyalty zalo ...`` on the CLI's subcommands."""
    messenger = commands.add_parser("messenger", help="Messenger Page set-up")
    messenger_actions = messenger.add_subparsers(dest="messenger_action", metavar="ACTION", required=True)
    profile = messenger_actions.add_parser(
        "setup-profile",
        help="set the Page's Get Started button, greeting and persistent menu",
        description="Set the Page's Messenger profile with FACEBOOK_PAGE_ACCESS_TOKEN: the Get Started "
        f"button ({GET_STARTED_PAYLOAD}), the greeting (vi, en) and the persistent menu. Texts come from "
        "the message templates messenger_greeting and menu_*.",
    )
    profile.add_argument("--dry-run", action="store_true", help="print the request body, send nothing")
    profile.set_defaults(run=run_messenger_setup_profile, pass_args=True)

    zalo = commands.add_parser("zalo", help="Zalo OA set-up")
    zalo_actions = zalo.add_subparsers(dest="zalo_action", metavar="ACTION", required=True)
    authorize = zalo_actions.add_parser(
        "authorize",
        help="print the consent link an OA admin opens to authorize the app again",
        description="Print the OAuth v4 consent link (PKCE) for the OA admin. Zalo sends the admin back to "
        f"PUBLIC_BASE_URL{zalo_oauth.CALLBACK_PATH}, which `loyalty serve` answers by storing the new "
        f"tokens. The link works once, for {int(zalo_oauth.STATE_TTL.total_seconds() // 60)} minutes.",
    )
    authorize.set_defaults(run=run_zalo_authorize, pass_args=True)


# --------------------------------------------------------------------------- messenger setup-profile


def messenger_profile(settings: Settings) -> MessengerProfile:
    """The profile this deployment sets, its texts rendered from the message templates.

    :raises ValueError: a rendered text exceeds Messenger's limits (the template must be shortened).
    """
    directories = [
        d for d in (settings.templates_dir and settings.templates_dir / "messages", MESSAGES_DIR) if d
    ]
    copy = Messages(directories)
    greetings = {
        locale: copy("messenger_greeting", ours, brand=settings.brand_name)
        for ours, locale in PROFILE_LOCALES.items()
    }
    menus = {
        locale: [(copy(key, ours), payload) for key, payload in PERSISTENT_MENU]
        for ours, locale in PROFILE_LOCALES.items()
    }
    return MessengerProfile(get_started_payload=GET_STARTED_PAYLOAD, greetings=greetings, menus=menus)


def run_messenger_setup_profile(settings: Settings, *, args: argparse.Namespace) -> int:
    try:
        profile = messenger_profile(settings)
    except ValueError as error:
        return _refuse(f"loyalty messenger setup-profile: {error} (shorten the message template)")
    if args.dry_run:
        print(json.dumps(profile.body(), ensure_ascii=False, indent=2))  # noqa: T201 - the answer
        return EX_OK
    if settings.facebook_page_access_token is None:
        return _refuse("loyalty messenger setup-profile: invalid setting FACEBOOK_PAGE_ACCESS_TOKEN: not set")
    return asyncio.run(_set_profile(settings, profile))


async def _set_profile(settings: Settings, profile: MessengerProfile) -> int:
    assert settings.facebook_page_access_token is not None
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)) as http:
        client = MessengerClient(
            http,
            graph_base=str(settings.facebook_graph_base),
            graph_version=settings.facebook_graph_version,
            page_id=settings.facebook_page_id or "me",
            page_access_token=settings.facebook_page_access_token.get_secret_value(),
        )
        try:
            await client.set_profile(profile)
        except (TokenError, ConfigurationError) as error:
            return _refuse(f"loyalty messenger setup-profile: {error}")
        except Exception as error:  # noqa: BLE001 - any other channel or network failure: say so, exit 69
            print(f"loyalty messenger setup-profile: {error}", file=sys.stderr)  # noqa: T201
            return EX_UNAVAILABLE
    menu = ", ".join(title for title, _ in profile.menus[DEFAULT_LOCALE])
    print(  # noqa: T201 - the command's answer
        f"Messenger profile set: Get Started ({profile.get_started_payload}), greeting "
        f"({', '.join(profile.greetings)}), persistent menu: {menu}"
    )
    return EX_OK


# --------------------------------------------------------------------------- zalo authorize


def run_zalo_authorize(settings: Settings, *, args: argparse.Namespace) -> int:
    if not zalo_oauth.configured(settings):
        return _refuse(
            "loyalty zalo authorize: invalid setting ZALO_APP_ID, ZALO_APP_SECRET and ZALO_OA_ID: "
            "all three must be set"
        )
    if not settings.embedded_redis:  # only Redis is needed: the state goes there, MongoDB is not touched
        url = asyncio.run(_start(settings))
    elif busy := data_dir_in_use(settings, "loyalty zalo authorize"):
        print(busy, file=sys.stderr)  # noqa: T201 - the command's answer
        return EX_UNAVAILABLE
    else:
        # `serve` is stopped: the state is kept in its embedded Redis (persisted) for when it starts
        with storage_servers(settings) as effective:
            url = asyncio.run(_start(effective))
    callback = zalo_oauth.redirect_uri(settings)
    minutes = int(zalo_oauth.STATE_TTL.total_seconds() // 60)
    print(  # noqa: T201 - the command's answer
        f"An admin of Zalo OA {settings.zalo_oa_id} opens this link (once, within {minutes} minutes):\n\n"
        f"  {url}\n\n"
        f"Zalo then sends the browser to {callback}: that URL must be the callback registered in the Zalo "
        "app's settings, and `loyalty serve` must be running there to store the new tokens."
    )
    if not callback.startswith("https://"):
        print(  # noqa: T201
            "warning: PUBLIC_BASE_URL is not HTTPS; Zalo may refuse the redirect", file=sys.stderr
        )
    return EX_OK


async def _start(settings: Settings) -> str:
    assert settings.redis_url is not None
    redis = create_redis_client(settings.redis_url.get_secret_value())
    try:
        return await zalo_oauth.start_authorization(settings, redis)
    finally:
        await redis.aclose()


def _refuse(message: str) -> int:
    print(message, file=sys.stderr)  # noqa: T201 - the command's answer
    return EX_CONFIG
