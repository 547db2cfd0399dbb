"""The wrappers ``@tracked`` puts around a function: one scope entry per call.

An exception raised on the way in (a KeyboardInterrupt landing between two
instructions) leaves the scope current before the call current again (`_scope.back_to`):
a function wrapper sets its frame inside the ``try`` whose ``finally`` leaves it (a token
not yet kept, ``UnboundLocalError``, means the entry did not finish); a generator wrapper
runs each entry, step of the body and exit inside one ``try`` whose handler sets the
consumer's frame back. See docs/threads.md for what no ``try`` covers.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from . import _events, _scope
from ._scope import GIL_COUNT, TOP, back_to, count_entry, enter_frame, exit_, restore

CURRENT = _scope.CURRENT  # assigned, not imported: see `_track`

if TYPE_CHECKING:
    from contextvars import Token

    from ._frame import Frame
    from ._limits import Limits
    from ._tree import Tree as Meter


def wrap(
    func: Callable[..., Any],
    meter: Meter | None,
    name: str | None,
    module: str | None,
    operation: str | None,
    attributes: Mapping[str, Any] | None,
    limits: Limits | None,
) -> Any:
    """Pick one of four wrappers once, when the decorator is applied."""
    import inspect  # here, not at module level: ``import tokenmeter`` stays light

    if isinstance(func, (staticmethod, classmethod)):
        # @tracked above @staticmethod / @classmethod: wrap the function, keep the kind.
        inner = wrap(func.__func__, meter, name, module, operation, attributes, limits)
        return type(func)(inner)
    if not callable(func):
        raise TypeError(f"@tracked decorates a function, got {func!r}")
    scope_name = name or getattr(func, "__qualname__", None) or repr(func)
    plain = (
        meter is None and module is None and operation is None and not attributes and limits is None
    )

    def enter_slow(cur: Frame | None) -> tuple[Frame, Token[Frame | None]]:
        """Enter without the frame cache (options, a removed node, observers); set it current."""
        f = enter_frame(meter, scope_name, module, operation, attributes, limits, cur)
        tok = CURRENT.set(f)
        if _events.OBSERVERS:
            _events.emit_enter(f)
        return f, tok

    def enter_counted(cur: Frame | None) -> tuple[Frame, Token[Frame | None]]:
        """Enter, through the frame cache when plain, counting under the lock if need be."""
        f = (TOP if cur is None else cur.kids).get(scope_name) if plain else None
        if f is not None and f.scope.attached and not _events.OBSERVERS:
            if GIL_COUNT:
                f.scope.entries += 1
            else:
                count_entry(f.scope)
            return f, CURRENT.set(f)
        return enter_slow(cur)

    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            out = CURRENT.get()
            inner: Frame | None
            try:
                inner, token = enter_counted(out)
                agen = func(*args, **kwargs)  # makes the generator, runs none of it
                exit_(token)
            except BaseException:
                back_to(out)
                raise
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                out = CURRENT.get()
                try:
                    tok = CURRENT.set(inner)
                    try:
                        if thrown is not None:
                            item = await agen.athrow(thrown)
                        else:
                            item = await agen.asend(sent)
                    finally:
                        inner = CURRENT.get()
                        exit_(tok)
                except StopAsyncIteration:
                    return
                except BaseException:
                    back_to(out)
                    raise
                thrown = None
                try:
                    sent = yield item
                except GeneratorExit:
                    out = CURRENT.get()
                    try:
                        tok = CURRENT.set(inner)
                        try:
                            await agen.aclose()
                        finally:
                            exit_(tok)
                    except BaseException:
                        back_to(out)
                        raise
                    raise
                except BaseException as e:
                    thrown, sent = e, None

        return agen_wrapper

    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            out = CURRENT.get()
            inner: Frame | None
            try:
                inner, token = enter_counted(out)
                gen = func(*args, **kwargs)  # makes the generator, runs none of it
                exit_(token)
            except BaseException:
                back_to(out)
                raise
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                out = CURRENT.get()
                try:
                    tok = CURRENT.set(inner)
                    try:
                        item = gen.throw(thrown) if thrown is not None else gen.send(sent)
                    finally:  # `exit_`, written out: one call less per item
                        inner = CURRENT.get()
                        if _events.OBSERVERS:
                            _events.emit_exit(inner)
                        try:
                            CURRENT.reset(tok)
                        except (ValueError, RuntimeError):
                            restore(tok)
                except StopIteration as stop:
                    return stop.value
                except BaseException:
                    back_to(out)
                    raise
                thrown = None
                try:
                    sent = yield item
                except GeneratorExit:
                    out = CURRENT.get()
                    try:
                        tok = CURRENT.set(inner)
                        try:
                            gen.close()
                        finally:
                            exit_(tok)
                    except BaseException:
                        back_to(out)
                        raise
                    raise
                except BaseException as e:
                    thrown, sent = e, None

        return gen_wrapper

    # Below, ``f`` is looked up before the ``try`` (no side effect) so that the ``finally``
    # always has one; ``tok`` unbound there means the entry was interrupted.
    if inspect.iscoroutinefunction(func):
        if plain and GIL_COUNT:

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                cur = CURRENT.get()
                f = (TOP if cur is None else cur.kids).get(scope_name)
                try:
                    if f is not None and f.scope.attached and not _events.OBSERVERS:
                        f.scope.entries += 1
                        tok = CURRENT.set(f)
                    else:
                        f, tok = enter_slow(cur)
                    return await func(*args, **kwargs)
                finally:
                    if _events.OBSERVERS:
                        _events.emit_exit(f)
                    try:
                        CURRENT.reset(tok)
                    except (ValueError, RuntimeError):  # another Context: set the value back
                        CURRENT.set(f.old)  # type: ignore[union-attr]
                    except UnboundLocalError:
                        back_to(cur)

            return async_wrapper

        @functools.wraps(func)
        async def async_wrapper_any(*args: Any, **kwargs: Any) -> Any:
            cur = CURRENT.get()
            f = None
            try:
                f, tok = enter_counted(cur)
                return await func(*args, **kwargs)
            finally:
                if _events.OBSERVERS:
                    _events.emit_exit(f)
                try:
                    CURRENT.reset(tok)
                except (ValueError, RuntimeError):  # another Context: set the value back
                    CURRENT.set(f.old)  # type: ignore[union-attr]
                except UnboundLocalError:
                    back_to(cur)

        return async_wrapper_any

    if plain and GIL_COUNT:
        # The common case, each test written out: no helper call on the way in or out.
        @functools.wraps(func)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            cur = CURRENT.get()
            f = (TOP if cur is None else cur.kids).get(scope_name)
            try:
                if f is not None and f.scope.attached and not _events.OBSERVERS:
                    f.scope.entries += 1
                    tok = CURRENT.set(f)
                else:
                    f, tok = enter_slow(cur)
                return func(*args, **kwargs)
            finally:
                if _events.OBSERVERS:
                    _events.emit_exit(f)
                try:
                    CURRENT.reset(tok)
                except (ValueError, RuntimeError):  # another Context: set the value back
                    CURRENT.set(f.old)  # type: ignore[union-attr]
                except UnboundLocalError:
                    back_to(cur)

        return sync_wrapper

    @functools.wraps(func)
    def sync_wrapper_any(*args: Any, **kwargs: Any) -> Any:
        cur = CURRENT.get()
        f = None
        try:
            f, tok = enter_counted(cur)
            return func(*args, **kwargs)
        finally:
            if _events.OBSERVERS:
                _events.emit_exit(f)
            try:
                CURRENT.reset(tok)
            except (ValueError, RuntimeError):  # another Context: set the value back
                CURRENT.set(f.old)  # type: ignore[union-attr]
            except UnboundLocalError:
                back_to(cur)

    return sync_wrapper_any
