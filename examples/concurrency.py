"""Concurrent workers, each in its own scope: asyncio tasks and a thread pool.

Asyncio tasks inherit the scope they were created in, and so do threads and
executor jobs started inside a scope: no code is needed to carry it. Each
worker then opens its own scope, and every call it makes lands there, exactly
once, however the workers interleave.

Runs offline on LiteLLM mock responses (10 prompt + 20 completion tokens each).

    .venv/bin/python examples/concurrency.py
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

# LiteLLM's bundled price map: no download at import, and the same numbers every run.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

import tokenmeter as tm

MODEL = "gpt-4o-mini"
QUESTIONS = 5
SHARDS = 4
CALLS_PER_SHARD = 3


async def answer(question: int) -> str:
    """An asyncio worker: one call in its own scope."""
    async with tm.track(f"question-{question}"):
        await asyncio.sleep(0.001 * (QUESTIONS - question))  # finish in reverse order
        response = await litellm.acompletion(
            model=MODEL,
            messages=[{"role": "user", "content": f"question {question}"}],
            mock_response=f"answer {question}",
        )
        return str(response.choices[0].message.content)


async def summarise() -> None:
    """A task with no scope of its own: its call lands on the scope it was created in."""
    await litellm.acompletion(
        model=MODEL, messages=[{"role": "user", "content": "summary"}], mock_response="ok"
    )


async def fan_out() -> list[str]:
    """Gather the workers inside one parent scope."""
    async with tm.track("async_fan_out"):
        answers = await asyncio.gather(*(answer(q) for q in range(QUESTIONS)))
        await asyncio.create_task(summarise())
        return list(answers)


def index_shard(shard: int) -> int:
    """A thread-pool worker: several calls in its own scope."""
    with tm.track(f"shard-{shard}"):
        for part in range(CALLS_PER_SHARD):
            litellm.completion(
                model=MODEL,
                messages=[{"role": "user", "content": f"shard {shard} part {part}"}],
                mock_response="indexed",
            )
    return shard


def check_pool() -> None:
    """A pool job with no scope of its own: its call lands on the submitting scope."""
    litellm.completion(
        model=MODEL, messages=[{"role": "user", "content": "ping"}], mock_response="pong"
    )


def thread_pool() -> list[int]:
    """Run the shards on a 3-thread pool inside one parent scope."""
    with tm.track("thread_pool"), ThreadPoolExecutor(max_workers=3) as pool:
        done = list(pool.map(index_shard, range(SHARDS)))
        pool.submit(check_pool).result()
        return done


def main() -> None:
    answers = asyncio.run(fan_out())
    shards = thread_pool()
    print(f"{len(answers)} answers, {len(shards)} shards indexed\n")

    report = tm.report()
    report.print()

    print()
    fan = report.node("async_fan_out")
    pool = report.node("thread_pool")
    print(f"async_fan_out: {fan.usage.calls} calls, {fan.self_usage.calls} of them its own")
    for name, node in sorted(fan.children.items()):
        print(f"  {name}: {node.usage.calls} call, {node.usage.total_tokens} tokens")
    print(f"thread_pool: {pool.usage.calls} calls, {pool.self_usage.calls} of them its own")
    for name, node in sorted(pool.children.items()):
        print(f"  {name}: {node.usage.calls} calls, {node.usage.total_tokens} tokens")
    total = report.total
    print(f"total: {total.calls} calls, {total.total_tokens} tokens, ${total.cost_usd:.6f}")


if __name__ == "__main__":
    main()
