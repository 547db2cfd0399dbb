"""Hypothesis strategies shared by the property tests: usage events and whole programs.

`events` are single calls at a scope path (test_properties.py). `programs` are random
trees of scopes, threads, thread pools and asyncio tasks whose leaves are calls, made
with ``tm.record`` or through LiteLLM (``mock_response``); `expected` says exactly what
each node of the call tree must hold once a program has run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import tokenmeter as tm

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

MODELS = ("tm-prop-a", "tm-prop-b", "tm-prop-c")

#: Cost units (1e-10 USD) per token of the price `programs` set on LITELLM_MODEL.
LITELLM_MODEL = "gpt-4o-mini"
INPUT_UNITS, OUTPUT_UNITS = 10_000, 20_000  # $1 and $2 per million tokens


class Event(NamedTuple):
    """One recorded call, at a scope path."""

    path: tuple[str, ...]
    model: str
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_cents_e6: int | None  # cost in units of 1e-8 USD; None: unpriced
    failed: bool
    estimated: bool
    module: str | None

    @property
    def cost_usd(self) -> float | None:
        return None if self.cost_cents_e6 is None else self.cost_cents_e6 / 10**8

    def usage(self) -> tm.Usage:
        return tm.Usage(
            calls=1,
            input_tokens=self.input_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            output_tokens=self.output_tokens,
            reasoning_tokens=self.reasoning_tokens,
            cost_usd=self.cost_usd or 0.0,
            unpriced_calls=int(self.cost_usd is None),
            failed_calls=int(self.failed),
            estimated_calls=int(self.estimated),
        )

    def record(self) -> None:
        """Record this call with ``tm.record`` on the current scope."""
        tm.record(
            model=self.model,
            provider="tm-prop",
            input_tokens=self.input_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            output_tokens=self.output_tokens,
            reasoning_tokens=self.reasoning_tokens,
            cost_usd=self.cost_usd,
            failed=self.failed,
            estimated=self.estimated,
            module=self.module,
        )


@st.composite
def events(draw: st.DrawFn, paths: st.SearchStrategy[tuple[str, ...]] | None = None) -> Event:
    """A recorded call with consistent counts (cached and reasoning within their totals)."""
    if paths is None:
        paths = st.lists(st.sampled_from("abc"), max_size=3).map(tuple)
    inp = draw(st.integers(0, 10**7))
    cr = draw(st.integers(0, inp))
    cw = draw(st.integers(0, inp - cr))
    out = draw(st.integers(0, 10**6))
    return Event(
        draw(paths),
        draw(st.sampled_from(MODELS)),
        inp,
        cr,
        cw,
        out,
        draw(st.integers(0, out)),
        draw(st.none() | st.integers(0, 10**9)),
        draw(st.booleans()),
        draw(st.booleans()),
        draw(st.sampled_from([None, "m1", "m2"])),
    )


# -- whole programs ------------------------------------------------------------------------


@dataclass(frozen=True)
class LiteLLMCall:
    """A ``litellm.completion`` (or ``acompletion`` in a task) answered by ``mock_response``."""

    input_tokens: int
    output_tokens: int

    def usage(self) -> tm.Usage:
        units = self.input_tokens * INPUT_UNITS + self.output_tokens * OUTPUT_UNITS
        return tm.Usage(
            calls=1,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=units / 10**10,
        )


@dataclass(frozen=True)
class Block:
    """Steps run in a scope (``how="scope"``), or in new threads, pool jobs or asyncio tasks.

    A ``scope`` block that ``fails`` raises after its steps; the program catches it
    outside the scope. ``threads``/``pool``/``tasks`` run each branch concurrently.
    """

    how: str
    name: str
    fails: bool
    branches: tuple[tuple[Step, ...], ...]


Step = Event | LiteLLMCall | Block

_NAMES = st.sampled_from(["plan", "act", "judge"])


def _calls() -> st.SearchStrategy[Step]:
    here = st.just(())
    return st.one_of(
        events(paths=here),
        # At least one input token: a usage of 0 in and 0 out is what LiteLLM makes when a
        # server sent none, and tokenmeter estimates that call (tests/test_litellm_edges.py).
        st.builds(LiteLLMCall, st.integers(1, 5000), st.integers(0, 2000)),
    )


def _extend(children: st.SearchStrategy[Step]) -> st.SearchStrategy[Step]:
    body = st.lists(children, max_size=3).map(tuple)
    scope = st.builds(Block, st.just("scope"), _NAMES, st.booleans(), body.map(lambda b: (b,)))
    concurrent = st.builds(
        Block,
        st.sampled_from(["threads", "pool", "tasks"]),
        st.just(""),
        st.just(False),
        st.lists(body, min_size=1, max_size=2).map(tuple),
    )
    return scope | concurrent


#: Programs: up to ~12 calls, nested a few levels deep.
programs = st.lists(st.recursive(_calls(), _extend, max_leaves=6), max_size=3).map(tuple)

#: Settings for whole programs (each runs real threads, event loops and LiteLLM calls).
PROGRAM_SETTINGS = settings(SETTINGS, max_examples=30)


def litellm_calls(steps: tuple[Step, ...]) -> int:
    """How many LiteLLM calls a program makes."""
    n = 0
    for step in steps:
        if isinstance(step, LiteLLMCall):
            n += 1
        elif isinstance(step, Block):
            n += sum(litellm_calls(b) for b in step.branches)
    return n


@dataclass
class Expected:
    """What a program must leave on each node: own usage and entries, by path."""

    own: dict[tuple[str, ...], tm.Usage]
    entries: Counter[tuple[str, ...]]

    @property
    def total(self) -> tm.Usage:
        return sum(self.own.values(), tm.Usage())

    @property
    def paths(self) -> set[tuple[str, ...]]:
        """Every node the tree must have: those entered or recorded on, and their ancestors."""
        out: set[tuple[str, ...]] = {()}
        for p in [*self.own, *self.entries]:
            out.update(p[:i] for i in range(len(p) + 1))
        return out


def expected(steps: tuple[Step, ...]) -> Expected:
    """The exact numbers a program must produce, from its structure alone."""
    exp = Expected({}, Counter())

    def walk(steps: tuple[Step, ...], path: tuple[str, ...]) -> None:
        for step in steps:
            if isinstance(step, Block):
                inner = (*path, step.name) if step.how == "scope" else path
                if step.how == "scope":
                    exp.entries[inner] += 1
                for branch in step.branches:
                    walk(branch, inner)
            else:
                exp.own[path] = exp.own.get(path, tm.Usage()) + step.usage()

    walk(steps, ())
    return exp
