"""Where a call lands when the code that makes it is created in one scope and runs in another."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator

import litellm

import tokenmeter as tm

MSGS = [{"role": "user", "content": "hi"}]


def _calls(*names: str) -> tuple[int, ...]:
    rep = tm.report()
    return tuple(rep.node(n).usage.calls if rep.root.children.get(n) else 0 for n in names)


def test_a_generator_made_in_one_scope_records_where_it_is_iterated() -> None:
    """A plain generator runs in its consumer's context: its call lands on the consumer's scope."""

    def gen() -> Iterator[int]:
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        yield 1

    with tm.track("made"):
        g = gen()
    with tm.track("iterated"):
        assert next(g) == 1
    assert _calls("made", "iterated") == (0, 1)


async def test_a_coroutine_made_in_one_scope_records_where_it_is_awaited() -> None:
    """A coroutine object runs in the context that awaits it, not the one that created it."""

    async def ask() -> None:
        await litellm.acompletion(model="gpt-4o-mini", messages=MSGS, mock_response="x")

    with tm.track("made"):
        coro = ask()
    with tm.track("awaited"):
        await coro
    assert _calls("made", "awaited") == (0, 1)


async def test_a_task_records_where_it_was_created_wherever_it_is_awaited() -> None:
    """asyncio.create_task copies the context at creation: the task's call lands there."""

    async def ask() -> None:
        await asyncio.sleep(0)
        await litellm.acompletion(model="gpt-4o-mini", messages=MSGS, mock_response="x")

    with tm.track("created"):
        task = asyncio.create_task(ask())
    with tm.track("awaited"):
        await task
    assert _calls("created", "awaited") == (1, 0)


async def _cancel_a_reader_between_chunks(*, aclosing: bool) -> None:
    """A task reads a stream in scope ``reader`` and is cancelled while awaiting between chunks."""
    started = asyncio.Event()

    async def consume() -> None:
        with tm.track("reader"):
            stream = await litellm.acompletion(
                model="gpt-4o-mini", messages=MSGS, mock_response="word " * 200, stream=True
            )
            async with contextlib.aclosing(stream) if aclosing else contextlib.nullcontext():
                async for _chunk in stream:
                    started.set()
                    await asyncio.sleep(3600)  # cancelled here, outside the stream

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_a_reader_cancelled_between_chunks_records_the_stream_once_it_is_freed() -> None:
    """Left open by a cancelled reader, the stream is one estimated call once it is freed."""
    asyncio.run(_cancel_a_reader_between_chunks(aclosing=False))
    gc.collect()  # the cancelled task's frames, which hold the stream, are gone with the loop
    u = tm.report().node("reader").usage
    assert (u.calls, u.failed_calls, u.estimated_calls) == (1, 0, 1)


async def test_a_reader_cancelled_between_chunks_with_aclosing_records_at_once() -> None:
    """Closed by `contextlib.aclosing` as the cancellation unwinds: one estimated call, no GC."""
    gc.disable()
    try:
        await _cancel_a_reader_between_chunks(aclosing=True)
        u = tm.report().node("reader").usage
    finally:
        gc.enable()
    assert (u.calls, u.failed_calls, u.estimated_calls) == (1, 0, 1)
