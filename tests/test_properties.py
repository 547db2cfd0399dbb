"""Property tests: random scope trees and usage events, in any order and from several threads."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st
from support.strategies import SETTINGS, Event, events

import tokenmeter as tm

EVENT_LISTS = st.lists(events(), max_size=40)


def _apply(meter: tm.Meter, ev: Event) -> None:
    with contextlib.ExitStack() as stack:
        for name in ev.path:
            stack.enter_context(meter.track(name))
        meter.record(
            model=ev.model,
            provider="tm-prop",
            input_tokens=ev.input_tokens,
            cache_read_tokens=ev.cache_read_tokens,
            cache_write_tokens=ev.cache_write_tokens,
            output_tokens=ev.output_tokens,
            reasoning_tokens=ev.reasoning_tokens,
            cost_usd=ev.cost_usd,
            failed=ev.failed,
            estimated=ev.estimated,
            module=ev.module,
        )


def _run(evs: Sequence[Event], threads: int = 1) -> tm.Report:
    meter = tm.Meter()
    if threads == 1:
        for ev in evs:
            _apply(meter, ev)
        return meter.report()
    barrier = threading.Barrier(threads)

    def work(part: Sequence[Event]) -> None:
        barrier.wait()
        for ev in part:
            _apply(meter, ev)

    workers = [threading.Thread(target=work, args=(evs[i::threads],)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return meter.report()


def _numbers(rep: tm.Report) -> dict[tuple[str, ...], tuple[int, tm.Usage, tm.Usage]]:
    return {n.path: (n.entries, n.self_usage, n.usage) for n in rep.walk()}


def _check_invariants(rep: tm.Report, evs: Sequence[Event]) -> None:
    assert rep.total == sum((ev.usage() for ev in evs), tm.Usage())
    for node in rep.walk():
        # inclusive == own + sum of the children's inclusive, exactly
        assert node.usage == sum((c.usage for c in node.children.values()), node.self_usage)
        own = [ev for ev in evs if ev.path == node.path]
        assert node.self_usage == sum((ev.usage() for ev in own), tm.Usage())
        if node.path:
            n = len(node.path)
            assert node.entries == sum(1 for ev in evs if ev.path[:n] == node.path)
        assert sum(node.breakdown.values(), tm.Usage()) == node.self_usage
    for by in (rep.by_model(), rep.by_provider(), rep.by_module(), rep.by_operation()):
        assert sum(by.values(), tm.Usage()) == rep.total
    for model, u in rep.by_model().items():
        assert u == sum((ev.usage() for ev in evs if ev.model == model), tm.Usage())


@SETTINGS
@given(EVENT_LISTS)
def test_tree_sums_are_exact(evs: list[Event]) -> None:
    """Every node's inclusive usage == own + children; root == sum of events; by_* sum to total."""
    _check_invariants(_run(evs), evs)


@SETTINGS
@given(st.lists(events(), max_size=30).flatmap(lambda e: st.tuples(st.just(e), st.permutations(e))))
def test_order_does_not_matter(pair: tuple[list[Event], list[Event]]) -> None:
    """The same events applied in another order give the same numbers on every node."""
    evs, shuffled = pair
    assert _numbers(_run(evs)) == _numbers(_run(shuffled))


@SETTINGS
@given(EVENT_LISTS, st.integers(2, 4))
def test_threads_give_the_same_numbers(evs: list[Event], threads: int) -> None:
    """Events split over 2-4 threads give the numbers of one thread; the invariants hold."""
    rep = _run(evs, threads)
    _check_invariants(rep, evs)
    assert _numbers(rep) == _numbers(_run(evs))


@SETTINGS
@given(EVENT_LISTS)
def test_json_round_trip_keeps_numbers(evs: list[Event]) -> None:
    """to_dict -> JSON -> from_dict gives back the same numbers on every node."""
    rep = _run(evs)
    back = tm.Report.from_dict(json.loads(json.dumps(rep.to_dict())))
    assert _numbers(back) == _numbers(rep)
    assert back.by_model() == rep.by_model()


USAGES = st.builds(
    tm.Usage,
    calls=st.integers(0, 10**6),
    input_tokens=st.integers(0, 10**9),
    output_tokens=st.integers(0, 10**9),
    cost_usd=st.integers(0, 10**12).map(lambda n: n / 10**10),
    unpriced_calls=st.integers(0, 10),
)


@SETTINGS
@given(USAGES, USAGES, USAGES)
def test_usage_addition_is_commutative_and_associative(
    a: tm.Usage, b: tm.Usage, c: tm.Usage
) -> None:
    """a + b == b + a and (a + b) + c == a + (b + c), costs included, exactly."""
    assert a + b == b + a
    assert (a + b) + c == a + (b + c)
    assert a + tm.Usage() == a
