"""Entry counts stay exact when many threads enter the same scopes at once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

import tokenmeter as tm

THREADS = 8
ENTRIES = 5_000


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Threads switch as often as the interpreter allows."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def _run_threads(target: object) -> None:
    start = threading.Barrier(THREADS)

    def worker() -> None:
        start.wait()
        target()  # type: ignore[operator]

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_with_track_counts_every_entry_of_8_threads(fast_switching: None) -> None:
    """8 threads x 5,000 `with track("x")` under one shared parent node: 40,000 entries."""
    meter = tm.Meter()
    with meter.track("parent") as parent:

        def loop() -> None:
            with tm.use_scope(parent):
                for _ in range(ENTRIES):
                    with tm.track("x"):
                        pass

        _run_threads(loop)
    assert meter.report().node("parent", "x").entries == THREADS * ENTRIES


def test_tracked_counts_every_call_of_8_threads(fast_switching: None) -> None:
    """8 threads x 5,000 calls of one @tracked function at the top level: 40,000 entries."""
    tm.reset()

    @tm.tracked("work")
    def work() -> None:
        return None

    def loop() -> None:
        for _ in range(ENTRIES):
            work()

    _run_threads(loop)
    assert tm.report().node("work").entries == THREADS * ENTRIES


def test_a_cached_top_level_entry_of_a_removed_node_lands_in_the_new_node() -> None:
    """Removing a scope's node drops its cached frame: the next entry and call land in the tree."""
    from tokenmeter._meter import DEFAULT_METER
    from tokenmeter._scope import detach_child_locked

    with tm.track("agent"):
        pass
    with DEFAULT_METER._lock:
        detach_child_locked(DEFAULT_METER.root, "agent")
    with tm.track("agent"):
        tm.record(model="gpt-4o-mini", input_tokens=3, output_tokens=4)
    node = tm.report().node("agent")
    assert (node.entries, node.usage.calls, node.usage.input_tokens) == (1, 1, 3)
