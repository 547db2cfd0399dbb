"""``track()`` and ``@tracked``: entering scopes with ``with``, ``async with`` and decorators."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import _events, _scope
from ._check import check_label
from ._scope import GIL_COUNT, TOP, back_to, count_entry, enter_frame, leave
from ._tracked import wrap

# Bound by assignment, not by ``from ... import``: CPython 3.11 compiles ``NAME.get()``
# on an imported name as an attribute load that builds a bound method on every call
# (about 40 ns each, three times per scope); on an assigned name it is a method call.
CURRENT = _scope.CURRENT

if TYPE_CHECKING:
    from typing import Concatenate

    from typing_extensions import ParamSpec

    from ._handle import Scope
    from ._limits import Limits, OnExceed
    from ._tree import Tree as Meter  # a Meter is a Tree; this module sits below _meter

    P = ParamSpec("P")
else:  # pragma: no cover - only for annotations
    P = TypeVar("P")

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"scope name must be a non-empty string, got {name!r}")
    return name


def _limits(
    max_tokens: int | None, max_cost_usd: float | None, max_calls: int | None, on_exceed: OnExceed
) -> Limits | None:
    if max_tokens is None and max_cost_usd is None and max_calls is None:
        return None
    if not _limits_loaded:
        _load_limits()
    return Limits(max_tokens, max_cost_usd, max_calls, on_exceed)


#: Whether `_load_limits` has run.
_limits_loaded = False


def _load_limits() -> None:
    """Bind ``Limits`` here with the first budget: ``import tokenmeter`` does not load
    attrs, and an import statement on every budgeted ``track()`` would cost microseconds."""
    global Limits, _limits_loaded
    from ._limits import Limits

    _limits_loaded = True


class Track:
    """A scope about to be entered: use with ``with`` or ``async with`` (or as a decorator).

    Entering returns the `Scope` handle. An exception inside the block
    restores the enclosing scope and keeps the usage already recorded.
    A `Track` keeps no state per entry (leaving sets back what the frame recorded,
    or an outermost frame's token), so one may be open in several tasks or threads.
    """

    __slots__ = ("_attributes", "_limits", "_meter", "_module", "_name", "_operation", "_plain")
    _meter: Meter | None
    _name: str
    _module: str | None
    _operation: str | None
    _attributes: Mapping[str, Any] | None
    _limits: Limits | None
    _plain: bool  # entered through the frame cache (see `_frame.Frame`)

    def __repr__(self) -> str:
        return f"<tokenmeter.track {self._name!r}>"

    def __enter__(self) -> Scope:
        cur = CURRENT.get()
        try:
            if self._plain and not _events.OBSERVERS:
                if cur is not None:
                    f = cur.kids.get(self._name)
                    if f is not None:
                        s = f.scope
                        if s.attached:
                            if GIL_COUNT:
                                s.entries += 1
                            else:
                                count_entry(s)
                            CURRENT.set(f)
                            return s  # type: ignore[no-any-return]
                else:  # a top-level frame leaves its cache while entered: this entry owns ``tok``
                    f = TOP.pop(self._name, None)
                    if f is not None:
                        s = f.scope
                        if s.attached:
                            if GIL_COUNT:
                                s.entries += 1
                            else:
                                count_entry(s)
                            f.tok = CURRENT.set(f)
                            return s  # type: ignore[no-any-return]
            f = enter_frame(
                self._meter,
                self._name,
                self._module,
                self._operation,
                self._attributes,
                self._limits,
                cur,
                True,
            )
            tok = CURRENT.set(f)
            if cur is None:
                f.tok = tok
            if _events.OBSERVERS:
                _events.emit_enter(f)
            return f.scope  # type: ignore[no-any-return]
        except BaseException:  # an interrupt on the way in: see docs/threads.md
            back_to(cur)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cur = CURRENT.get()
        if cur is not None and cur.name == self._name and not _events.OBSERVERS:
            old = cur.old
            if old is not None:
                CURRENT.set(old)
                return
            try:  # top level: reset the entry's token (`_scope.release`, written out)
                CURRENT.reset(cur.tok)
                cur.tok = None
            except (TypeError, ValueError, RuntimeError):
                CURRENT.set(None)
            if cur.home is not None:
                cur.home[self._name] = cur
        else:
            leave(self._name)

    async def __aenter__(self) -> Scope:
        cur = CURRENT.get()
        try:
            return self.__enter__()
        except BaseException:  # also one landing as ``__enter__`` returns
            back_to(cur)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        """Use the same scope as a decorator (each call enters it)."""
        t = self
        return wrap(func, t._meter, t._name, t._module, t._operation, t._attributes, t._limits)  # type: ignore[no-any-return]


#: Plain `Track` objects by name: ``track(name)`` without options returns a shared one.
_TRACKS: dict[str, Track] = {}
_TRACKS_MAX = 4096


def make_track(
    meter: Meter | None,
    name: str,
    /,
    *,
    module: str | None = None,
    operation: str | None = None,
    max_tokens: int | None = None,
    max_cost_usd: float | None = None,
    max_calls: int | None = None,
    on_exceed: OnExceed = "raise",
    **attributes: Any,
) -> Track:
    """A scope of ``meter`` (None: the current one's): `track`'s and ``Meter.track``'s signature."""
    if type(name) is not str or not name:
        _check_name(name)
    # A label is a str with more than spaces (`check_label`), tested here without a call.
    if module is not None and (type(module) is not str or module.isspace() or not module):
        check_label("module", module)
    if operation is not None and (
        type(operation) is not str or operation.isspace() or not operation
    ):
        check_label("operation", operation)
    limits = None
    if max_tokens is not None or max_cost_usd is not None or max_calls is not None:
        limits = _limits(max_tokens, max_cost_usd, max_calls, on_exceed)
    # Built with plain slot stores, no __init__: the one signature is this function's.
    t = _new_track(Track)
    t._meter = meter
    t._name = name
    t._module = module
    t._operation = operation
    t._attributes = attributes or None
    t._limits = limits
    t._plain = plain = (
        meter is None and module is None and operation is None and not attributes and limits is None
    )
    if plain and len(_TRACKS) < _TRACKS_MAX:
        _TRACKS[name] = t
    return t


_new_track = object.__new__


def _meterless(
    full: Callable[Concatenate[Any, P], R],
) -> Callable[[Callable[..., R]], Callable[P, R]]:
    """``full``'s signature without its first parameter, for typing and `inspect.signature`."""

    def apply(front: Callable[..., R]) -> Callable[P, R]:
        front.__wrapped__ = functools.partial(full, None)  # type: ignore[attr-defined]
        return front

    return apply


@_meterless(make_track)
def track(name: str, /, **options: Any) -> Track:
    """Open a scope named ``name`` under the current one, with ``with`` or ``async with``.

    Entering a name already used under the same parent reuses that node and counts
    one more entry. ``module`` and ``operation`` are dimensions of every call inside
    (inherited by nested scopes unless they set their own); ``max_tokens``,
    ``max_cost_usd`` and ``max_calls`` set a budget (``on_exceed``: ``"raise"``,
    ``"warn"`` or a callable); any other keyword argument is an attribute carried
    onto each call record inside. The scope belongs to the meter of the current
    scope (the default meter outside any scope). Signature: `make_track`'s, no meter.
    """
    if not options:
        try:
            t = _TRACKS.get(name)
        except TypeError:  # an unhashable name: make_track says what is wrong with it
            t = None
        if t is not None:
            return t
    return make_track(None, name, **options)


# -- @tracked --------------------------------------------------------------------------


@overload
def tracked(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def tracked(
    name: str | None = None,
    /,
    *,
    module: str | None = None,
    operation: str | None = None,
    max_tokens: int | None = None,
    max_cost_usd: float | None = None,
    max_calls: int | None = None,
    on_exceed: OnExceed = "raise",
    meter: Meter | None = None,
    **attributes: Any,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def tracked(
    func_or_name: Any = None,
    /,
    *,
    module: str | None = None,
    operation: str | None = None,
    max_tokens: int | None = None,
    max_cost_usd: float | None = None,
    max_calls: int | None = None,
    on_exceed: OnExceed = "raise",
    meter: Meter | None = None,
    **attributes: Any,
) -> Any:
    """Run each call of the decorated function inside a scope.

    ``@tracked`` names the scope after the function's ``__qualname__``;
    ``@tracked("name")`` names it; ``module=``/``operation=`` set dimensions of
    every call inside; budgets and attributes as in `track`. Works on
    sync functions, coroutine functions, generators and async generators; for
    generators the scope is active while the generator body runs, not while
    its consumer does. The function's signature is kept.
    """
    if module is not None:
        check_label("module", module)
    if operation is not None:
        check_label("operation", operation)
    limits = _limits(max_tokens, max_cost_usd, max_calls, on_exceed)
    attrs_ = attributes or None
    if callable(func_or_name):
        return wrap(func_or_name, meter, None, module, operation, attrs_, limits)
    name = None if func_or_name is None else _check_name(func_or_name)

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        wrapped: Callable[P, R] = wrap(func, meter, name, module, operation, attrs_, limits)
        return wrapped

    return decorate
