"""Routers: one observer per update kind, handlers registered on them with filters, nested routers.

.. code-block:: python

    router = Router(name="points")

    @router.message(Text("điểm", "points"))
    async def show_points(update: Message, reply: Sender) -> None:
        await reply("Bạn có 120 điểm")

The first handler whose filters all match takes the update; handlers are tried in registration
order, a router's own handlers before those of the routers it includes.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.filters import Compiled, compile_filter
from bot.types import UpdateKind

HandlerCallback = Callable[..., Awaitable[Any]]
Middleware = Callable[[Callable[[Any, Any], Awaitable[Any]], Any, Any], Awaitable[Any]]
CallbackT = TypeVar("CallbackT", bound=Callable[..., Any])
MiddlewareT = TypeVar("MiddlewareT", bound=Middleware)

ERRORS = "errors"


class RegistrationError(TypeError):
    """A handler, filter or middleware cannot be registered as given (raised at registration)."""


@dataclass(slots=True)
class HandlerObject:
    """A registered handler: its callback, compiled filters and the parameters it asks for."""

    callback: HandlerCallback
    filters: tuple[Compiled, ...]
    parameters: tuple[inspect.Parameter, ...]
    accepts_any: bool
    router: Router
    observer: str

    @property
    def name(self) -> str:
        return f"{self.callback.__module__}.{self.callback.__qualname__}"

    def provided_by_filters(self) -> frozenset[str]:
        return frozenset().union(*(f.provides for f in self.filters))


def make_handler(
    callback: HandlerCallback, filters: tuple[Any, ...], router: Router, observer: str
) -> HandlerObject:
    if not inspect.iscoroutinefunction(callback):
        raise RegistrationError(f"handler {callback.__qualname__} must be an `async def` function")
    signature = inspect.signature(callback)
    parameters = tuple(
        p for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )
    positional_only = [p.name for p in parameters if p.kind is p.POSITIONAL_ONLY]
    if positional_only:
        raise RegistrationError(
            f"handler {callback.__qualname__}: parameters are passed by name, "
            f"but {positional_only} are positional-only"
        )
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    try:
        compiled = tuple(compile_filter(f) for f in filters)
    except TypeError as error:
        raise RegistrationError(f"handler {callback.__qualname__}: {error}") from None
    return HandlerObject(callback, compiled, parameters, accepts_any, router, observer)


@dataclass(slots=True)
class Observer:
    """The handlers of one update kind on one router, and its middlewares."""

    router: Router
    name: str
    handlers: list[HandlerObject] = field(default_factory=list)
    inner: list[Middleware] = field(default_factory=list)
    outer: list[Middleware] = field(default_factory=list)

    def __call__(self, *filters: Any) -> Callable[[CallbackT], CallbackT]:
        """Decorator: ``@router.message(Text("hi"))``."""

        def decorator(callback: CallbackT) -> CallbackT:
            self.register(callback, *filters)
            return callback

        return decorator

    def register(self, callback: HandlerCallback, *filters: Any) -> HandlerObject:
        handler = make_handler(callback, filters, self.router, self.name)
        self.handlers.append(handler)
        try:
            self.router._changed(handler)
        except RegistrationError:
            self.handlers.remove(handler)  # a refused handler leaves nothing behind
            raise
        return handler

    def middleware(self, middleware: MiddlewareT) -> MiddlewareT:
        """An inner middleware: runs around each matched handler of this observer (and of sub-routers)."""
        self.inner.append(middleware)
        self.router._changed(None)
        return middleware

    def outer_middleware(self, middleware: MiddlewareT) -> MiddlewareT:
        """An outer middleware: runs around the whole dispatch of an update of this kind, before filters.

        Only the dispatcher (the root router) has outer middlewares: they see every update, which is what
        they are for (logging, metrics, loading the customer).
        """
        if self.router.parent is not None:
            raise RegistrationError(
                f"router {self.router.name}: outer middlewares belong on the Dispatcher "
                "(they see every update)"
            )
        self.outer.append(middleware)
        self.router._changed(None)
        return middleware


class Router:
    """A set of observers, one per update kind plus ``errors``, and the routers it includes."""

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or f"router-{id(self):x}"
        self.parent: Router | None = None
        self.sub_routers: list[Router] = []
        self.observers: dict[str, Observer] = {kind.value: Observer(self, kind.value) for kind in UpdateKind}
        self.observers[ERRORS] = Observer(self, ERRORS)
        self.inner: list[Middleware] = []  # inner middlewares for every kind
        self.startup_hooks: list[Callable[..., Awaitable[Any]]] = []
        self.shutdown_hooks: list[Callable[..., Awaitable[Any]]] = []

    # one attribute per observer, derived from the UpdateKind enum
    @property
    def follow(self) -> Observer:
        return self.observers[UpdateKind.FOLLOW]

    @property
    def unfollow(self) -> Observer:
        return self.observers[UpdateKind.UNFOLLOW]

    @property
    def message(self) -> Observer:
        return self.observers[UpdateKind.MESSAGE]

    @property
    def postback(self) -> Observer:
        return self.observers[UpdateKind.POSTBACK]

    @property
    def contact(self) -> Observer:
        return self.observers[UpdateKind.CONTACT]

    @property
    def referral(self) -> Observer:
        return self.observers[UpdateKind.REFERRAL]

    @property
    def optin(self) -> Observer:
        return self.observers[UpdateKind.OPTIN]

    @property
    def errors(self) -> Observer:
        return self.observers[ERRORS]

    def middleware(self, middleware: MiddlewareT) -> MiddlewareT:
        """An inner middleware for every update kind of this router (and its sub-routers)."""
        self.inner.append(middleware)
        self._changed(None)
        return middleware

    def startup(self) -> Callable[[CallbackT], CallbackT]:
        def decorator(callback: CallbackT) -> CallbackT:
            self.startup_hooks.append(callback)
            return callback

        return decorator

    def shutdown(self) -> Callable[[CallbackT], CallbackT]:
        def decorator(callback: CallbackT) -> CallbackT:
            self.shutdown_hooks.append(callback)
            return callback

        return decorator

    def include_router(self, router: Router) -> Router:
        """Nest ``router``: its handlers are tried after this router's own."""
        if router.parent is not None:
            raise RegistrationError(f"router {router.name} is already included in {router.parent.name}")
        ancestor: Router | None = self
        while ancestor is not None:
            if ancestor is router:
                raise RegistrationError(f"including {router.name} in {self.name} would make a cycle")
            ancestor = ancestor.parent
        router.parent = self
        self.sub_routers.append(router)
        try:
            self.root._validate_tree(router)
        except RegistrationError:
            self.sub_routers.remove(router)  # a refused router leaves the tree as it was
            router.parent = None
            raise
        self._changed(None)
        return router

    def include_routers(self, *routers: Router) -> None:
        for router in routers:
            self.include_router(router)

    @property
    def root(self) -> Router:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def walk(self) -> list[Router]:
        """This router and every router below it, depth first, in inclusion order."""
        routers = [self]
        for sub in self.sub_routers:
            routers.extend(sub.walk())
        return routers

    # hooks for the dispatcher (the root)
    def _changed(self, handler: HandlerObject | None) -> None:
        root = self.root
        root._on_change(handler)

    def _on_change(self, handler: HandlerObject | None) -> None:
        """A plain router has nothing to rebuild; the dispatcher overrides this."""

    def _validate_tree(self, router: Router) -> None:
        """A plain router cannot validate dependencies yet; the dispatcher overrides this."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
