"""Ray: tasks and actor calls run in the driver's scope path; their usage lands in its tree."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed")

import ray_jobs  # noqa: E402
from ray import cloudpickle  # noqa: E402

import tokenmeter as tm  # noqa: E402

MINI_IN, MINI_OUT = 10, 20  # LiteLLM's mock usage per call

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    """A local Ray cluster of 2 CPUs for this module, the test jobs pickled by value."""
    cloudpickle.register_pickle_by_value(ray_jobs)
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ["TOKENMETER_RAISE_INTERNAL_ERRORS"] = "1"
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local cluster: no token to set up
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(ray_jobs)


def test_tasks_actor_and_nested_calls_make_the_exact_tree() -> None:
    """8 tasks, an actor with 3 calls and nested tasks (LiteLLM): the exact tree in the driver."""
    with tm.track("pipeline"):
        with tm.track("tasks"):
            results = ray.get([ray_jobs.label.remote(i) for i in range(8)])
        with tm.track("critic"):
            critic = ray_jobs.Critic.remote(2)
            reviews = ray.get([critic.review.remote(f"t{i}") for i in range(3)])
            assert ray.get(critic.count.remote()) == 3
        with tm.track("nested"):
            fanned = ray.get(ray_jobs.fan_out.remote(3))
    assert {p for p, _ in results} == {("pipeline", "tasks")}
    assert [a for _, a in results] == [f"answer to item {i}" for i in range(8)]
    assert {p for p, _ in reviews} == {("pipeline", "critic")}
    assert fanned == [f"answer to item {i}" for i in range(3)]
    rep = tm.report()
    label = rep.node("pipeline", "tasks", "label")
    assert (label.entries, label.usage.calls) == (8, 8)
    assert (label.usage.input_tokens, label.usage.output_tokens) == (8 * MINI_IN, 8 * MINI_OUT)
    review = rep.node("pipeline", "critic", "review")
    assert (review.entries, review.usage.calls) == (3, 3)
    fan = rep.node("pipeline", "nested", "fan")
    assert (fan.entries, fan.self_usage.calls) == (1, 0)
    assert (fan.child("label").entries, fan.child("label").usage.calls) == (3, 3)
    assert rep.node("pipeline").usage.calls == 14
    assert rep.by_model() == {"gpt-4o-mini": rep.total}
    assert rep.total.unpriced_calls == 0


def test_result_read_twice_lands_once_and_failures_bring_usage() -> None:
    """A result read twice lands once; a failing task's usage arrives with its error."""
    with tm.track("once"):
        ref = ray_jobs.record.remote(2)
        assert ray.get(ref) == 2
        assert ray.get(ref) == 2
        with pytest.raises(ValueError, match="task failed"):
            ray.get(ray_jobs.fails.remote())
        first, second = ray_jobs.two_values.remote()
        assert ray.get([second, first]) == [2, 1]
    node = tm.report().node("once")
    assert (node.usage.calls, node.usage.input_tokens) == (4, 20 + 7 + 3)


def test_a_result_passed_to_another_task_still_lands() -> None:
    """A task's result given to another task: its usage reaches the driver, once."""
    with tm.track("passed"):
        ref = ray_jobs.record.remote(3)
        assert ray.get(ray_jobs.plus_one.remote(ref)) == 4
        assert ray.get(ref) == 3  # read in the driver as well: still counted once
    node = tm.report().node("passed")
    assert (node.usage.calls, node.usage.input_tokens) == (3, 30)


def test_map_batches_with_a_collector() -> None:
    """Ray Data map_batches through collect(): every batch's LiteLLM calls land in the scope."""
    pytest.importorskip("pyarrow", reason="Ray Data needs pyarrow")
    from tokenmeter.integrations import ray as tmray

    ray.data.DataContext.get_current().enable_progress_bars = False
    with tm.track("embed"), tmray.collect() as usage:
        ds = ray.data.range(12, override_num_blocks=3)
        rows = ds.map_batches(usage.carry(ray_jobs.label_batch), batch_size=4).take_all()
    assert sorted(r["label"] for r in rows) == sorted(f"answer to {i}" for i in range(12))
    node = tm.report().node("embed", "label_batch")
    assert (node.entries, node.usage.calls) == (3, 12)
    assert (node.usage.input_tokens, node.usage.output_tokens) == (12 * MINI_IN, 12 * MINI_OUT)
