"""The whole pipeline under random programs: scopes, threads, pools and tasks; calls recorded
with tm.record and made through LiteLLM; scopes left by exceptions. Totals are conserved.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from hypothesis import given
from support.responses import acomplete, complete
from support.strategies import (
    LITELLM_MODEL,
    PROGRAM_SETTINGS,
    Block,
    Event,
    LiteLLMCall,
    Step,
    expected,
    litellm_calls,
    programs,
)

import tokenmeter as tm
import tokenmeter.testing


class Planned(Exception):
    """Raised by a failing scope block, caught outside the scope."""


def run(steps: tuple[Step, ...]) -> None:
    """Run a program's steps in this thread."""
    for step in steps:
        if isinstance(step, Event):
            step.record()
        elif isinstance(step, LiteLLMCall):
            complete(step.input_tokens, step.output_tokens, LITELLM_MODEL)
        elif step.how == "scope":
            try:
                with tm.track(step.name):
                    run(step.branches[0])
                    if step.fails:
                        raise Planned(step.name)
            except Planned:
                pass
        elif step.how == "threads":
            threads = [threading.Thread(target=run, args=(b,)) for b in step.branches]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        elif step.how == "pool":
            with concurrent.futures.ThreadPoolExecutor(len(step.branches)) as pool:
                for future in [pool.submit(run, b) for b in step.branches]:
                    future.result()
        else:
            asyncio.run(arun_branches(step))


async def arun(steps: tuple[Step, ...]) -> None:
    """Run a program's steps in an asyncio task (threads via to_thread, calls via acompletion)."""
    for step in steps:
        if isinstance(step, Event):
            step.record()
        elif isinstance(step, LiteLLMCall):
            await acomplete(step.input_tokens, step.output_tokens, LITELLM_MODEL)
        elif step.how == "scope":
            try:
                async with tm.track(step.name):
                    await arun(step.branches[0])
                    if step.fails:
                        raise Planned(step.name)
            except Planned:
                pass
        elif step.how == "tasks":
            await arun_branches(step)
        else:  # threads and pools, from async code
            await asyncio.gather(*(asyncio.to_thread(run, b) for b in step.branches))


async def arun_branches(block: Block) -> None:
    await asyncio.gather(*(asyncio.create_task(arun(b)) for b in block.branches))


@PROGRAM_SETTINGS
@given(programs.filter(lambda p: litellm_calls(p) <= 2))
def test_every_call_lands_once_where_it_was_made(program: tuple[Step, ...]) -> None:
    """Own usage and entries per node are as the program says; inclusive = own + children."""
    tm.set_price(LITELLM_MODEL, input_per_mtok=1.0, output_per_mtok=2.0)
    with tokenmeter.testing.isolated_meter(keep_records=False) as meter:
        run(program)
    rep = meter.report()
    exp = expected(program)
    assert rep.total == exp.total
    assert {node.path for node in rep.walk()} == exp.paths
    for node in rep.walk():
        assert node.self_usage == exp.own.get(node.path, tm.Usage())
        assert node.usage == sum((c.usage for c in node.children.values()), node.self_usage)
        if node.path:
            assert node.entries == exp.entries[node.path]
    assert sum(rep.by_model().values(), tm.Usage()) == rep.total
    assert tm.report().total == tm.Usage()  # nothing leaked into the default meter
