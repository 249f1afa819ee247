"""The Facebook Messenger channel: replies go out through the Graph Send API.

Contract: ``shared/platforms/messenger.md`` Part A (A.3 Send API, A.4 user profile). Every call goes
through :func:`~bot.channels.errors.with_retries`; Graph errors are mapped onto the typed errors of
:mod:`bot.channels.errors` with their ``code``/``subcode`` kept on the exception.

Design points:

* **Auth.** The Page access token travels as the ``access_token`` query parameter, the form every example
  in messenger.md uses (A.4 spells it out; the Send API examples are the same endpoint family). It never
  goes into our log lines or exception messages (:meth:`MessengerClient._scrub`). Note that httpx logs
  request URLs at INFO/DEBUG: the app keeps the ``httpx`` logger at WARNING unless it debugs (and redacts
  secrets), so a DEBUG run is the one place the URL could show up.
* **Window.** Outside the 24 h standard messaging window a free-form send raises
  :class:`~bot.channels.errors.WindowClosedError` before any request; :meth:`MessengerClient.send_tagged`
  sends with ``messaging_type: MESSAGE_TAG`` instead.
* **Bytes images.** messenger.md does not document the Attachment Upload API, so an
  :class:`~bot.replies.Image` with ``data`` raises :class:`~bot.channels.errors.PermanentError`: give
  Messenger a URL (serve the QR code from our own HTTPS origin).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import httpx

from bot.channels.base import ChannelError, Recipient
from bot.channels.errors import (
    DEFAULT_POLICY,
    ConfigurationError,
    PermanentError,
    RateLimitedError,
    RecipientUnavailableError,
    RetryPolicy,
    TokenError,
    TransientError,
    WindowClosedError,
    with_retries,
)
from bot.render import MESSENGER, NumberedOptions, fit, shorten
from bot.replies import Button, Buttons, Card, Image, QuickReplies, Reply, RequestPhone, Text
from bot.timeutil import utc_now

if TYPE_CHECKING:
    from bot.types import BaseUpdate

log = logging.getLogger("loyalty.bot.channels.messenger")

#: The standard messaging window (A.3). Click-to-Messenger ads may open it for up to 7 days; we do not
#: know which entry point opened a conversation, so the 24 h rule applies to every one.
STANDARD_WINDOW: Final = timedelta(hours=24)

#: ``message.text`` limit. messenger.md says "< 2000 chars"; Meta's page says "2000 character limit".
#: Whether exactly 2000 is accepted, and whether it counts code points or UTF-16 units: unconfirmed.
MAX_TEXT: Final = 2000
#: Button template text (A.3): ≤ 640 characters.
MAX_BUTTON_TEXT: Final = 640
#: Generic template element title and subtitle (A.3): ≤ 80 characters.
MAX_CARD_TEXT: Final = 80

#: The message tags messenger.md lists (A.3). One source says CONFIRMED_EVENT_UPDATE, ACCOUNT_UPDATE and
#: POST_PURCHASE_UPDATE get error 100 from 2026-04-27 (unconfirmed): we still send them and warn; the API's
#: answer (a PermanentError, code 100) is the authority.
MESSAGE_TAGS: Final = frozenset(
    {"ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "CUSTOMER_FEEDBACK", "HUMAN_AGENT", "POST_PURCHASE_UPDATE"}
)
DEPRECATED_TAGS: Final = frozenset({"ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"})
TAGS_DEPRECATED_ON: Final = datetime(2026, 4, 27, tzinfo=UTC)

#: Profile fields every app with profile access may read (A.4); ``locale``/``timezone``/``gender`` need
#: their own permissions, and asking for one without it fails the whole call (100/2018247).
DEFAULT_PROFILE_FIELDS: Final = ("first_name", "last_name", "profile_pic")

#: Messenger Profile API limits (Meta's reference pages: greeting, get_started, persistent_menu). A locale
#: named ``default`` is required in both ``greeting`` and ``persistent_menu``.
DEFAULT_LOCALE: Final = "default"
MAX_GREETING: Final = 160
MAX_MENU_ITEMS: Final = 20  # flat menus, Graph v8.0 and later
MAX_MENU_TITLE: Final = 30
MAX_PROFILE_PAYLOAD: Final = 1000

CREDENTIAL_HINT: Final = (
    "Messenger Page access tokens do not refresh: generate a new one and replace FACEBOOK_PAGE_ACCESS_TOKEN"
)

# Subcodes of code 10 meaning "outside the allowed window" (A.3 error table).
_WINDOW_SUBCODES: Final = frozenset({2018278, 2534022, 2018065})
# Code/subcode pairs meaning "this person cannot get our messages" (A.3 error table).
_UNAVAILABLE: Final = frozenset({(10, 2018108), (10, 1893015), (100, 2018001), (200, 1545041)})


class InteractionLog(Protocol):
    """Where the app remembers when each person last wrote to us (the start of their 24 h window)."""

    async def last_interaction(self, to: Recipient) -> datetime | None:
        """The time of ``to``'s last message or action, timezone-aware; ``None`` if never."""
        ...


@dataclass(frozen=True, slots=True)
class GraphError:
    """The Graph ``error`` object of a failed call (A.3 "Error shape"), plus the HTTP status."""

    status: int
    message: str
    code: int | None = None
    subcode: int | None = None
    type: str | None = None
    fbtrace_id: str | None = None
    is_transient: bool | None = None


class _GraphDetails:
    """The Graph error a typed channel error came from: ``code`` (as text, like ``PermanentError``),
    ``subcode`` and the parsed :class:`GraphError` (``None`` for transport failures and local checks)."""

    code: str | None = None
    subcode: int | None = None
    graph: GraphError | None = None


class MessengerTransientError(_GraphDetails, TransientError):
    """A timeout, connection failure, 5xx or Graph code 2: retried."""


class MessengerRateLimitedError(_GraphDetails, RateLimitedError):
    """Graph codes 4 and 613 (or HTTP 429): retried with backoff."""


class MessengerPermanentError(_GraphDetails, PermanentError):
    """A refused request (code 100 and anything unknown): final."""


class MessengerRecipientUnavailableError(_GraphDetails, RecipientUnavailableError):
    """551, 10/2018108, 100/2018001, 200/1545041: this person cannot get our messages now."""


class MessengerWindowClosedError(_GraphDetails, WindowClosedError):
    """Outside the 24 h window (our own check, or 10/2018278 and its siblings)."""


class MessengerTokenError(_GraphDetails, TokenError):
    """190: the Page access token is invalid. Final: Page tokens are replaced, not refreshed."""


class MessengerConfigurationError(_GraphDetails, ConfigurationError):
    """Permission errors (200, 10) and 2018247: the app or Page is not set up for this call."""


_DetailedT = TypeVar("_DetailedT", bound=_GraphDetails)


def _detailed(error: _DetailedT, graph: GraphError | None) -> _DetailedT:
    if graph is not None:
        error.code = str(graph.code) if graph.code is not None else None
        error.subcode = graph.subcode
        error.graph = graph
    return error


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():  # unconfirmed: codes have only been seen as numbers
        return int(value)
    return None


def parse_graph_error(status: int, body: object) -> GraphError:
    """The Graph error in ``body`` (any shape tolerated: a proxy's HTML page gives an empty error)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GraphError(status=status, message=f"HTTP {status} without a Graph error body")
    message = error.get("message")
    is_transient = error.get("is_transient")  # seen in captured responses, not in the official example
    return GraphError(
        status=status,
        message=message if isinstance(message, str) else "",
        code=_int_or_none(error.get("code")),
        subcode=_int_or_none(error.get("error_subcode")),
        type=error.get("type") if isinstance(error.get("type"), str) else None,
        fbtrace_id=error.get("fbtrace_id") if isinstance(error.get("fbtrace_id"), str) else None,
        is_transient=is_transient if isinstance(is_transient, bool) else None,
    )


def error_for(
    graph: GraphError, *, what: str = "Graph call", retry_after: float | None = None
) -> ChannelError:
    """The typed error for a Graph error, following messenger.md's error table and retry policy (A.3)."""
    code, subcode = graph.code, graph.subcode
    ids = f"code {code}" + (f"/{subcode}" if subcode is not None else "")
    text = f"{what} failed: {graph.message or 'no message'} ({ids}, HTTP {graph.status})"
    if graph.fbtrace_id:
        text += f" fbtrace_id={graph.fbtrace_id}"

    if code == 190:
        return _detailed(MessengerTokenError(text, code="190"), graph)
    if code in {4, 613}:
        # 613/2018338 (tag-abuse warning) and 613/1893016 (duplicate opt-in) share the code; whether
        # retrying them helps is unconfirmed, they are bounded by the policy's attempts either way.
        return _detailed(MessengerRateLimitedError(text, retry_after=retry_after), graph)
    if code == 2:
        return _detailed(MessengerTransientError(text), graph)
    if code == 551 or (code, subcode) in _UNAVAILABLE:
        return _detailed(MessengerRecipientUnavailableError(text), graph)
    if code == 10 and subcode in _WINDOW_SUBCODES:
        return _detailed(MessengerWindowClosedError(text), graph)
    if 2018247 in {code, subcode}:
        return _detailed(MessengerConfigurationError(text), graph)
    if code in {10, 200}:
        # 10/1893063 (Page temporarily restricted) and plain permission errors: the Page must be fixed.
        # 10/2018336 ("user thread impact") is unclear in the table: treated the same, final (unconfirmed).
        return _detailed(MessengerConfigurationError(text), graph)
    if code is None and (graph.status >= 500 or graph.status == 429):
        if graph.status == 429:
            return _detailed(MessengerRateLimitedError(text, retry_after=retry_after), graph)
        return _detailed(MessengerTransientError(text), graph)
    if code != 100 and (graph.is_transient or graph.status >= 500):
        return _detailed(MessengerTransientError(text), graph)
    # 100 (bad parameter, URL fetch failed, too big), 2018300 (another app owns the thread), 2018218
    # (no profile) and anything unknown: retrying the same request cannot help.
    return _detailed(MessengerPermanentError(text), graph)


def _retry_after(response: httpx.Response) -> float | None:
    # Graph is not documented to send Retry-After (unconfirmed); honour it when a proxy or Meta does.
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- rendering


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at whitespace when there is some."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = max(window.rfind(" "), window.rfind("\n"), window.rfind("\t"))
        if cut <= 0:
            cut = limit  # one long word: cut it
            head, rest = rest[:cut], rest[cut:]
        else:
            head, rest = rest[:cut], rest[cut + 1 :]
        if head.strip():
            pieces.append(head.rstrip())
        rest = rest.lstrip()
    if rest.strip() or not pieces:
        pieces.append(rest)
    return pieces


def _button(button: Button) -> dict[str, Any]:
    if button.payload is not None:
        return {"type": "postback", "title": button.title, "payload": button.payload}
    if button.url is not None:
        return {"type": "web_url", "url": button.url, "title": button.title}
    # The phone_number button type is listed in messenger.md; its body (payload = "+<country><number>")
    # is from Meta's buttons page, not quoted in messenger.md (unconfirmed).
    return {"type": "phone_number", "title": button.title, "payload": button.phone}


def _texts_then(text: str, limit: int) -> tuple[list[dict[str, Any]], str]:
    """Leading text messages for what does not fit in ``limit``, and the last piece that does."""
    pieces = split_text(text, limit)
    return [{"text": piece} for piece in pieces[:-1]], pieces[-1]


def render(reply: Reply) -> list[dict[str, Any]]:
    """The Send API ``message`` objects for one reply (most replies are one message).

    :raises PermanentError: for an :class:`~bot.replies.Image` given as bytes (no upload API in the contract).
    """
    fitted = fit(reply, MESSENGER)
    if isinstance(fitted, NumberedOptions):
        return [{"text": piece} for piece in split_text(fitted.rendered_text())]
    if isinstance(fitted, Text):
        return [{"text": piece} for piece in split_text(fitted.text)]
    if isinstance(fitted, Buttons):
        if not fitted.buttons:
            return [{"text": piece} for piece in split_text(fitted.text)]
        messages, last = _texts_then(fitted.text, MAX_BUTTON_TEXT)
        template = {"template_type": "button", "text": last, "buttons": [_button(b) for b in fitted.buttons]}
        return [*messages, {"attachment": {"type": "template", "payload": template}}]
    if isinstance(fitted, QuickReplies):
        messages, last = _texts_then(fitted.text, MAX_TEXT)
        options = [{"content_type": "text", "title": o.title, "payload": o.payload} for o in fitted.options]
        return [*messages, {"text": last, "quick_replies": options} if options else {"text": last}]
    if isinstance(fitted, RequestPhone):
        # Messenger's way is the user_phone_number quick reply (A.1 #3); title/subtitle/image_url are
        # Zalo's request-user-info card and have no place here. If the profile has no phone the button
        # is not shown: the text must also work as a plain question.
        messages, last = _texts_then(fitted.text, MAX_TEXT)
        return [*messages, {"text": last, "quick_replies": [{"content_type": "user_phone_number"}]}]
    if isinstance(fitted, Card):
        element: dict[str, Any] = {"title": shorten(fitted.title, MAX_CARD_TEXT)}
        if fitted.subtitle:
            element["subtitle"] = shorten(fitted.subtitle, MAX_CARD_TEXT)
        if fitted.image_url:
            element["image_url"] = fitted.image_url
        if fitted.buttons:
            element["buttons"] = [_button(b) for b in fitted.buttons]
        template = {"template_type": "generic", "elements": [element]}
        return [{"attachment": {"type": "template", "payload": template}}]
    return _image(fitted)


def _image(image: Image) -> list[dict[str, Any]]:
    if image.url is None:
        # messenger.md does not document the Attachment Upload API (multipart), so bytes cannot go out.
        raise MessengerPermanentError(
            "Messenger needs an image URL: images given as bytes are not supported on this channel "
            "(serve the image over HTTPS and send Image(url=...))"
        )
    attachment = {"type": "image", "payload": {"url": image.url, "is_reusable": True}}
    messages: list[dict[str, Any]] = [{"attachment": attachment}]
    if image.caption:
        # Messenger image attachments have no caption: it follows as a text message.
        messages.extend({"text": piece} for piece in split_text(image.caption))
    return messages


# --------------------------------------------------------------------------- Messenger profile


@dataclass(frozen=True)
class MessengerProfile:
    """What ``POST /{version}/me/messenger_profile`` sets for the Page: the Get Started button's payload,
    the welcome screen's greeting and the persistent menu (postback buttons), per locale.

    :param get_started_payload: the ``messaging_postbacks`` payload of Get Started (a persistent menu is
        shown only on Pages that have a Get Started button).
    :param greetings: locale → text (at most 160 characters; ``{{user_first_name}}`` is filled by Meta).
    :param menus: locale → ``(title, payload)`` postback buttons (at most 20, titles at most 30).
    :param composer_input_disabled: hide the text field (then the menu is the only way to talk).
    :raises ValueError: a limit is exceeded or the ``default`` locale is missing.
    """

    get_started_payload: str
    greetings: Mapping[str, str] = field(default_factory=dict)
    menus: Mapping[str, Sequence[tuple[str, str]]] = field(default_factory=dict)
    composer_input_disabled: bool = False

    def __post_init__(self) -> None:
        payloads = [self.get_started_payload, *(p for items in self.menus.values() for _, p in items)]
        if any(not p or len(p) > MAX_PROFILE_PAYLOAD for p in payloads):
            raise ValueError(f"payloads must be 1-{MAX_PROFILE_PAYLOAD} characters")
        for name, by_locale in (("greetings", self.greetings), ("menus", self.menus)):
            if by_locale and DEFAULT_LOCALE not in by_locale:
                raise ValueError(f"{name} need a {DEFAULT_LOCALE!r} locale")
        if any(not text or len(text) > MAX_GREETING for text in self.greetings.values()):
            raise ValueError(f"a greeting must be 1-{MAX_GREETING} characters")
        for locale, items in self.menus.items():
            if not 1 <= len(items) <= MAX_MENU_ITEMS:
                raise ValueError(f"the {locale} menu must have 1-{MAX_MENU_ITEMS} items")
            if any(not title or len(title) > MAX_MENU_TITLE for title, _ in items):
                raise ValueError(f"menu titles must be 1-{MAX_MENU_TITLE} characters ({locale})")

    def body(self) -> dict[str, Any]:
        """The request body, ``default`` locale first."""
        body: dict[str, Any] = {"get_started": {"payload": self.get_started_payload}}
        if self.greetings:
            body["greeting"] = [{"locale": loc, "text": text} for loc, text in _default_first(self.greetings)]
        if self.menus:
            body["persistent_menu"] = [
                {
                    "locale": locale,
                    "composer_input_disabled": self.composer_input_disabled,
                    "call_to_actions": [
                        {"type": "postback", "title": title, "payload": payload} for title, payload in items
                    ],
                }
                for locale, items in _default_first(self.menus)
            ]
        return body


_ValueT = TypeVar("_ValueT")


def _default_first(by_locale: Mapping[str, _ValueT]) -> list[tuple[str, _ValueT]]:
    return sorted(by_locale.items(), key=lambda item: item[0] != DEFAULT_LOCALE)


# --------------------------------------------------------------------------- client


class MessengerClient:
    """A :class:`~bot.channels.base.ChannelClient` for one Facebook Page.

    :param http: the app's client (it owns the timeout, the connection pool and closing).
    :param graph_base: ``FACEBOOK_GRAPH_BASE``, e.g. ``https://graph.facebook.com``.
    :param graph_version: ``FACEBOOK_GRAPH_VERSION``, e.g. ``v25.0``.
    :param page_id: ``FACEBOOK_PAGE_ID``; sends go to ``/{version}/{page_id}/messages``.
    :param page_access_token: ``FACEBOOK_PAGE_ACCESS_TOKEN``; never logged.
    :param policy: retries of each HTTP call.
    :param interactions: when each person last wrote, for sends without ``in_reply_to``.
    :param clock: the current time, timezone-aware.
    :param sleep: the wait between retries (tests pass a no-op).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        graph_base: str,
        graph_version: str,
        page_id: str,
        page_access_token: str,
        policy: RetryPolicy = DEFAULT_POLICY,
        interactions: InteractionLog | None = None,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not page_access_token:
            raise ValueError("a Page access token is required")
        self._http = http
        self._root = f"{graph_base.rstrip('/')}/{graph_version.strip('/')}"
        self.page_id = page_id
        self._token = page_access_token
        self.policy = policy
        self.interactions = interactions
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"MessengerClient(page_id={self.page_id!r}, root={self._root!r})"

    # ----------------------------------------------------------------- public API

    async def send(
        self, to: Recipient, replies: Sequence[Reply], *, in_reply_to: BaseUpdate | None = None
    ) -> None:
        """Send ``replies`` to ``to`` in order, inside the 24 h window.

        ``messaging_type`` is ``RESPONSE`` when ``in_reply_to`` is younger than 24 h; without such an
        update, ``UPDATE`` (a proactive message, messenger.md A.3) when the interaction log shows the
        person wrote within 24 h.

        :raises WindowClosedError: outside the window, before any request (use :meth:`send_tagged`).
        :raises ChannelError: the first reply that could not be delivered; later ones are not sent.
        """
        if not replies:
            return
        self._check_recipient(to)
        messages = self._render_all(replies)
        messaging_type = await self._messaging_type(to, in_reply_to)
        await self._deliver(to, messages, {"messaging_type": messaging_type})

    async def send_tagged(self, to: Recipient, replies: Sequence[Reply], tag: str) -> None:
        """Send outside the window with a message tag (``messaging_type: MESSAGE_TAG``).

        Tags may not carry promotional content; ``HUMAN_AGENT`` needs its own permission, and
        ``CUSTOMER_FEEDBACK`` is for the Customer Feedback Template only.

        :raises ValueError: ``tag`` is not one of :data:`MESSAGE_TAGS`.
        """
        if tag not in MESSAGE_TAGS:
            raise ValueError(
                f"unknown Messenger message tag {tag!r}; allowed: {', '.join(sorted(MESSAGE_TAGS))}"
            )
        if tag in DEPRECATED_TAGS and self._clock() >= TAGS_DEPRECATED_ON:
            log.warning("message tag %s is reported to be refused since %s", tag, TAGS_DEPRECATED_ON.date())
        if not replies:
            return
        self._check_recipient(to)
        messages = self._render_all(replies)
        await self._deliver(to, messages, {"messaging_type": "MESSAGE_TAG", "tag": tag})

    async def typing_on(self, to: Recipient) -> None:
        """Show the typing indicator (a separate request: a sender action cannot carry a message)."""
        self._check_recipient(to)
        body = {"recipient": recipient_field(to.user_id), "sender_action": "typing_on"}
        await self._call("POST", self._messages_url, json=body, what=f"Messenger typing_on to {to.user_id}")

    async def profile(self, psid: str, *, fields: Sequence[str] = DEFAULT_PROFILE_FIELDS) -> dict[str, Any]:
        """The person's profile (A.4): the requested ``fields`` that came back; ``{}`` when the API has none.

        Ask for ``locale``/``timezone``/``gender`` only when the app holds those permissions: otherwise the
        whole call fails with :class:`~bot.channels.errors.ConfigurationError` (100/2018247).
        """
        url = f"{self._root}/{psid}"
        what = f"Messenger profile of {psid}"
        try:
            body = await self._call("GET", url, params={"fields": ",".join(fields)}, what=what)
        except MessengerPermanentError as error:
            if error.graph is not None and 2018218 in {error.graph.code, error.graph.subcode}:
                return {}  # phone-number-created accounts have no profile (A.4)
            raise
        wanted = set(fields)
        return {key: value for key, value in body.items() if key in wanted}

    async def set_profile(self, profile: MessengerProfile) -> None:
        """Set the Page's Messenger profile (Get Started, greeting, persistent menu) in one call.

        The properties sent replace the Page's current ones; properties not sent are left alone. Meta
        answers ``{"result": "success"}``; any other answer to a 2xx is refused as unexpected
        (unconfirmed that one exists).

        :raises ChannelError: the typed error of a refused call (190: the token; 100: a bad property).
        """
        url = f"{self._root}/me/messenger_profile"
        what = "Messenger profile update"
        answer = await self._call("POST", url, json=profile.body(), what=what)
        if answer.get("result") != "success":
            raise MessengerPermanentError(f"{what}: unexpected answer {str(answer)[:200]}")

    # ----------------------------------------------------------------- internals

    @property
    def _messages_url(self) -> str:
        return f"{self._root}/{self.page_id}/messages"

    def _check_recipient(self, to: Recipient) -> None:
        if to.account_id and to.account_id != self.page_id:
            raise MessengerConfigurationError(
                f"recipient belongs to Page {to.account_id!r}, this client sends for Page {self.page_id!r}"
            )

    @staticmethod
    def _render_all(replies: Sequence[Reply]) -> list[dict[str, Any]]:
        # Everything is rendered before the first request, so a reply that cannot exist on Messenger
        # (an image as bytes) fails the call before the person gets half of it.
        return [message for reply in replies for message in render(reply)]

    async def _messaging_type(self, to: Recipient, in_reply_to: BaseUpdate | None) -> str:
        now = self._clock()
        if in_reply_to is not None and now - in_reply_to.timestamp < STANDARD_WINDOW:
            return "RESPONSE"
        last = await self.interactions.last_interaction(to) if self.interactions is not None else None
        if last is not None and now - last < STANDARD_WINDOW:
            return "UPDATE"
        if in_reply_to is not None:
            reason = f"the update being answered is from {in_reply_to.timestamp.isoformat()}, over 24 h ago"
        elif self.interactions is None:
            reason = "nothing to reply to and no interaction log to tell when they last wrote"
        elif last is None:
            reason = "they never wrote to the Page"
        else:
            reason = f"their last interaction was at {last.isoformat()}, over 24 h ago"
        raise MessengerWindowClosedError(
            f"Messenger 24 h window closed for {to.user_id}: {reason}; send_tagged() with a message tag "
            "is the only way to reach them now"
        )

    async def _deliver(self, to: Recipient, messages: list[dict[str, Any]], mode: dict[str, str]) -> None:
        for index, message in enumerate(messages, start=1):
            body = {"recipient": recipient_field(to.user_id), **mode, "message": message}
            what = f"Messenger send {index}/{len(messages)} to {to.user_id}"
            await self._call("POST", self._messages_url, json=body, what=what)

    async def _call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        query = {**(params or {}), "access_token": self._token}

        async def attempt() -> dict[str, Any]:
            try:
                response = await self._http.request(method, url, params=query, json=json)
            except httpx.TimeoutException as exc:
                raise MessengerTransientError(f"{what}: timed out ({type(exc).__name__})") from exc
            except httpx.TransportError as exc:
                detail = self._scrub(str(exc)) or type(exc).__name__
                raise MessengerTransientError(f"{what}: {detail}") from exc
            return self._result(response, what)

        return await with_retries(attempt, policy=self.policy, what=what, sleep=self._sleep)

    def _result(self, response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body: object = response.json()
        except ValueError:
            body = None
        if response.is_success and not (isinstance(body, dict) and "error" in body):
            if not isinstance(body, dict):
                log.warning("%s: HTTP %d with a body that is not a JSON object", what, response.status_code)
                return {}
            return body
        graph = parse_graph_error(response.status_code, body)
        graph = replace(graph, message=self._scrub(graph.message))
        error = error_for(graph, what=what, retry_after=_retry_after(response))
        if isinstance(error, TokenError):
            log.error("%s: %s. %s", what, error, CREDENTIAL_HINT)
        raise error

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "[redacted]") if self._token else text


USER_REF_PREFIX: Final = "user_ref:"


def recipient_field(user_id: str) -> dict[str, str]:
    """The Send API's ``recipient``: a PSID, or the checkbox plugin's ``user_ref``.

    A checkbox-plugin opt-in has no PSID yet: the webhook names that user ``user_ref:<ref>``, and the
    first message to them must be addressed by that ref.
    """
    if user_id.startswith(USER_REF_PREFIX):
        return {"user_ref": user_id.removeprefix(USER_REF_PREFIX)}
    return {"id": user_id}
