"""The dispatcher: the root router, per-user isolation, dependency injection and error handling.

Feeding an update does, in order:

1. take the user's isolation lock (per-user isolation is **on** by default: one user's events are
   handled one at a time, in the order they were fed; an aiogram trap is to have it off);
2. run the outer middlewares of the dispatcher (global, then the update kind's);
3. try the handlers of the update's kind, first match wins: each handler's compiled filters, then
   its inner middlewares (ancestors' first) and the handler, called with the parameters it declared;
4. on an exception: log it with the update id, hand it to the ``errors`` handlers (first match wins),
   and return a result saying so. Nothing raised by a handler escapes :meth:`Dispatcher.feed_update`.

Everything that can be decided once is decided when the router tree changes (:meth:`freeze`): the
flattened handler list per kind, the middleware chains, and for each handler the getter of each of
its parameters. Dispatching does no signature inspection, no validation and no thread hops.

Dependencies (what a handler may ask for, by parameter name):

============  ======================================================================================
``update``    the update (also under its kind's name: ``message``, ``postback``, ``follow``,
              ``unfollow``, ``contact``, ``referral``, ``optin``)
``state``     :class:`~bot.fsm.context.FSMContext` of the user
``reply``     :class:`~bot.context.Sender` bound to the user and channel
``ctx``       the :class:`~bot.context.Context` of this dispatch
``error``     the exception (``errors`` handlers only)
services      every name registered with ``Dispatcher(services=...)`` or ``dispatcher[name] = value``
filters       names a matching filter declares in ``provides`` (``text``, ``match``, ``args``...)
middlewares   names a middleware declares in its ``provides`` attribute and puts in ``ctx.data``
============  ======================================================================================

A handler asking for any other name fails with :class:`UnknownDependencyError` when it is registered
on (or its router is included into) a dispatcher, naming the handler and what is available.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from bot.channels.base import ChannelClient
from bot.context import Context
from bot.filters import Compiled
from bot.fsm.memory import MemoryIsolation, MemoryStorage
from bot.fsm.storage import BaseStorage, EventIsolation, StorageKey
from bot.outbox import Outbox
from bot.router import ERRORS, HandlerObject, Middleware, RegistrationError, Router
from bot.types import BaseUpdate, UpdateKind

log = logging.getLogger("loyalty.bot")

BUILTIN_NAMES: Final = frozenset({"update", "state", "reply", "ctx", *(kind.value for kind in UpdateKind)})
_MISSING: Final = inspect.Parameter.empty

Getter = Callable[[Context], Any]
Invoke = Callable[[Any, Context], Awaitable[Any]]


class UnknownDependencyError(RegistrationError):
    """A handler asks for a parameter nobody provides."""


@dataclass(frozen=True, slots=True)
class DispatchResult:
    """What happened to one update."""

    handled: bool
    handler: str | None = None
    error: BaseException | None = None
    error_handled: bool = False


@dataclass(slots=True)
class _Entry:
    filters: tuple[Compiled, ...]
    invoke: Invoke
    name: str


@dataclass(slots=True)
class _Route:
    entries: tuple[_Entry, ...]
    outer: Invoke | None


class Dispatcher(Router):
    """The root router.

    :param storage: FSM storage (default: :class:`MemoryStorage`; use ``RedisStorage`` with several
        processes).
    :param isolation: per-user event isolation (default: :class:`MemoryIsolation`; ``RedisIsolation``
        across processes; ``NoIsolation()`` to opt out).
    :param services: objects handlers may ask for by name.
    :param channels: the client that delivers replies, per channel name.
    :param outbox: records what was sent per update and step, so an update handled twice does not
        send its replies twice (``RedisOutbox`` in the service).
    """

    def __init__(
        self,
        *,
        storage: BaseStorage | None = None,
        isolation: EventIsolation | None = None,
        services: Mapping[str, Any] | None = None,
        channels: Mapping[str, ChannelClient] | None = None,
        outbox: Outbox | None = None,
        name: str = "dispatcher",
    ) -> None:
        self._routes: dict[str, _Route] = {}
        self._frozen = False
        self._outer_global: list[Middleware] = []
        super().__init__(name=name)
        self.storage: BaseStorage = storage if storage is not None else MemoryStorage()
        self.isolation: EventIsolation = isolation if isolation is not None else MemoryIsolation()
        self.services: dict[str, Any] = {}
        self.channels: dict[str, ChannelClient] = dict(channels or {})
        self.outbox = outbox
        for key, value in (services or {}).items():
            self[key] = value

    # ------------------------------------------------------------------ registry
    def __setitem__(self, name: str, value: Any) -> None:
        """Register a service handlers may ask for by ``name``."""
        if not name.isidentifier():
            raise RegistrationError(f"service name {name!r} is not a valid parameter name")
        if name in BUILTIN_NAMES or name == "error":
            raise RegistrationError(f"service name {name!r} is reserved")
        self.services[name] = value
        self._frozen = False

    def __getitem__(self, name: str) -> Any:
        return self.services[name]

    def channel_client(self, channel: str) -> ChannelClient:
        try:
            return self.channels[channel]
        except KeyError:
            raise LookupError(f"no channel client registered for {channel!r}") from None

    def available_names(self, handler: HandlerObject) -> frozenset[str]:
        names = (
            BUILTIN_NAMES
            | self.services.keys()
            | handler.provided_by_filters()
            | self._middleware_names(handler)
        )
        return names | {"error"} if handler.observer == ERRORS else names

    # ------------------------------------------------------------------ validation and freezing
    def _on_change(self, handler: HandlerObject | None) -> None:
        self._frozen = False
        if handler is not None:
            self._validate(handler)

    def _validate_tree(self, router: Router) -> None:
        for node in router.walk():
            for observer in node.observers.values():
                for handler in observer.handlers:
                    self._validate(handler)
            if node is not self and any(o.outer for o in node.observers.values()):
                raise RegistrationError(
                    f"router {node.name}: outer middlewares belong on the Dispatcher (they see every update)"
                )

    def _validate(self, handler: HandlerObject) -> None:
        if handler.accepts_any:
            return
        available = self.available_names(handler)
        for parameter in handler.parameters:
            if parameter.name not in available and parameter.default is _MISSING:
                raise UnknownDependencyError(
                    f"handler {handler.name} asks for {parameter.name!r}, which nothing provides; "
                    f"available: {', '.join(sorted(available))}"
                )

    def _middleware_names(self, handler: HandlerObject) -> frozenset[str]:
        """Names added by the middlewares that run around ``handler``: the dispatcher's outer ones and
        the inner ones of the handler's router and its ancestors."""
        middlewares: list[Middleware] = [*self._outer_global, *self.observers[handler.observer].outer]
        node: Router | None = handler.router
        while node is not None:
            middlewares += [*node.inner, *node.observers[handler.observer].inner]
            node = node.parent
        return frozenset(name for m in middlewares for name in getattr(m, "provides", ()))

    def freeze(self) -> None:
        """Build the dispatch tables. Called automatically before the first update after a change."""
        self._validate_tree(self)
        routes: dict[str, _Route] = {}
        for observer_name in [kind.value for kind in UpdateKind] + [ERRORS]:
            entries: list[_Entry] = []
            self._collect(self, observer_name, [], entries)
            outer = [*self._outer_global, *self.observers[observer_name].outer]
            routes[observer_name] = _Route(tuple(entries), self._outer_chain(outer) if outer else None)
        self._routes = routes
        self._frozen = True

    def _collect(
        self, router: Router, observer_name: str, inherited: list[Middleware], out: list[_Entry]
    ) -> None:
        observer = router.observers[observer_name]
        chain = [*inherited, *router.inner, *observer.inner]
        for handler in observer.handlers:
            out.append(_Entry(handler.filters, self._invoker(handler, chain), handler.name))
        for sub in router.sub_routers:
            self._collect(sub, observer_name, chain, out)

    def _invoker(self, handler: HandlerObject, middlewares: list[Middleware]) -> Invoke:
        getters = tuple((p.name, self._getter(handler, p)) for p in handler.parameters)
        callback = handler.callback
        if handler.accepts_any:
            base_names = tuple(name for name, _ in getters)

            async def call_any(update: Any, ctx: Context) -> Any:
                kwargs = {**self.services, **ctx.data, **(ctx.extras or {})}
                kwargs.update(
                    {
                        "update": update,
                        update.kind.value: update,
                        "ctx": ctx,
                        "state": ctx.fsm,
                        "reply": ctx.reply,
                    }
                )
                for name, getter in getters:
                    kwargs[name] = getter(ctx)
                for name in base_names:
                    kwargs.setdefault(name, None)
                return await callback(**kwargs)

            base: Invoke = call_any
        else:

            async def call(update: Any, ctx: Context) -> Any:
                return await callback(**{name: getter(ctx) for name, getter in getters})

            base = call
        for middleware in reversed(middlewares):
            base = functools.partial(middleware, base)
        return base

    def _getter(self, handler: HandlerObject, parameter: inspect.Parameter) -> Getter:
        name, default = parameter.name, (None if parameter.default is _MISSING else parameter.default)
        if name == "update" or name in _KIND_NAMES:
            return _get_update
        if name == "state":
            return _get_state
        if name == "reply":
            return _get_reply
        if name == "ctx":
            return _get_ctx
        if name == "error":
            return lambda ctx: ctx.data.get("error", default)
        if name in handler.provided_by_filters():
            return lambda ctx: ctx.extras.get(name, default) if ctx.extras else default
        if name in self.services:
            value = self.services[name]
            return lambda ctx: value

        # a middleware's value, or a filter's that it did not declare (the parameter has a default)
        def from_context(ctx: Context) -> Any:
            if ctx.extras and name in ctx.extras:
                return ctx.extras[name]
            return ctx.data.get(name, default)

        return from_context

    def outer_middleware(self, middleware: Middleware) -> Middleware:
        """An outer middleware for every update kind."""
        self._outer_global.append(middleware)
        self._frozen = False
        return middleware

    def _outer_chain(self, middlewares: list[Middleware]) -> Invoke:
        base: Invoke = self._propagate_from_ctx
        for middleware in reversed(middlewares):
            base = functools.partial(middleware, base)
        return base

    # ------------------------------------------------------------------ dispatching
    async def feed_update(self, update: BaseUpdate) -> DispatchResult:
        """Dispatch one update. Never raises for a handler's error: see :class:`DispatchResult`."""
        if not self._frozen:
            self.freeze()
        route = self._routes[update.kind.value]  # type: ignore[attr-defined]
        key = StorageKey(update.channel.value, update.account_id, update.user_id)
        async with self.isolation.lock(key):
            ctx = Context(self, update, key)
            try:
                if route.outer is None:
                    await self._propagate(route.entries, update, ctx)
                else:
                    # what an outer middleware returns does not matter: the context knows the handler
                    await route.outer(update, ctx)
            except Exception as error:  # noqa: BLE001 - a handler error must never kill the worker
                return await self._on_error(error, update, ctx)
        name = ctx.handler
        return DispatchResult(handled=name is not None, handler=name)

    async def _propagate_from_ctx(self, update: Any, ctx: Context) -> str | None:
        return await self._propagate(self._routes[update.kind.value].entries, update, ctx)

    async def _propagate(self, entries: Iterable[_Entry], update: Any, ctx: Context) -> str | None:
        for entry in entries:
            extras: dict[str, Any] | None = None
            for item in entry.filters:
                result = item.call(update, ctx)
                if item.is_async:
                    result = await result
                if not result:
                    break
                if result is not True:
                    extras = result if extras is None else {**extras, **result}
            else:
                ctx.extras = extras
                ctx.handler = entry.name
                await entry.invoke(update, ctx)
                return entry.name
        return None

    async def _on_error(self, error: Exception, update: BaseUpdate, ctx: Context) -> DispatchResult:
        log.error(
            "update %s (%s from %s:%s) failed: %s: %s",
            update.event_id,
            update.kind.value,  # type: ignore[attr-defined]
            update.channel.value,
            update.user_id,
            type(error).__name__,
            error,
            exc_info=error,
        )
        ctx.data["error"] = error
        try:
            name = await self._propagate(self._routes[ERRORS].entries, update, ctx)
        except Exception:
            log.exception("the errors handler for update %s failed too", update.event_id)
            name = None
        return DispatchResult(handled=False, handler=None, error=error, error_handled=name is not None)

    # ------------------------------------------------------------------ lifecycle
    async def emit_startup(self) -> None:
        """Run every router's startup hooks (depth first), passing services they ask for by name."""
        for router in self.walk():
            for hook in router.startup_hooks:
                await hook(**self._hook_kwargs(hook))

    async def emit_shutdown(self) -> None:
        for router in reversed(self.walk()):
            for hook in router.shutdown_hooks:
                await hook(**self._hook_kwargs(hook))

    def _hook_kwargs(self, hook: Callable[..., Any]) -> dict[str, Any]:
        available = {**self.services, "dispatcher": self}
        wanted = inspect.signature(hook).parameters
        return {name: available[name] for name in wanted if name in available}


_KIND_NAMES: Final = frozenset(kind.value for kind in UpdateKind)


def _get_update(ctx: Context) -> Any:
    return ctx.update


def _get_state(ctx: Context) -> Any:
    return ctx.fsm


def _get_reply(ctx: Context) -> Any:
    return ctx.reply


def _get_ctx(ctx: Context) -> Any:
    return ctx
