"""@tracked on static and class methods, in either order of the decorators."""

from __future__ import annotations

import tokenmeter as tm


def _one_call() -> None:
    tm.record(model="m", input_tokens=1, output_tokens=2, cost_usd=0.0)


class Agent:
    @tm.tracked
    @staticmethod
    def static_above(x: int) -> int:
        _one_call()
        return x + 1

    @staticmethod
    @tm.tracked
    def static_below(x: int) -> int:
        _one_call()
        return x + 2

    @tm.tracked("cls_above")
    @classmethod
    def class_above(cls, x: int) -> str:
        _one_call()
        return f"{cls.__name__}:{x}"

    @classmethod
    @tm.tracked(module="agents")
    def class_below(cls, x: int) -> str:
        _one_call()
        return f"{cls.__name__}:{x}"


class Sub(Agent):
    pass


def test_tracked_above_staticmethod_works_on_the_class_and_instances() -> None:
    """@tracked over @staticmethod: called on the class and on an instance, one entry each."""
    meter = tm.Meter()
    with meter.track("run"):
        assert Agent.static_above(1) == 2
        assert Agent().static_above(2) == 3
        assert Agent.static_below(1) == 3
    rep = meter.report()
    node = rep.node("run", "Agent.static_above")
    assert (node.entries, node.usage.calls, node.usage.input_tokens) == (2, 2, 2)
    assert rep.node("run", "Agent.static_below").entries == 1


def test_tracked_above_classmethod_binds_the_class() -> None:
    """@tracked over @classmethod: cls is the class called on (subclasses too), one entry each."""
    meter = tm.Meter()
    with meter.track("run"):
        assert Agent.class_above(1) == "Agent:1"
        assert Sub().class_above(2) == "Sub:2"
        assert Sub.class_below(3) == "Sub:3"
    rep = meter.report()
    node = rep.node("run", "cls_above")
    assert (node.entries, node.usage.calls, node.usage.output_tokens) == (2, 2, 4)
    below = rep.node("run", "Agent.class_below")
    assert (below.entries, below.usage.calls) == (1, 1)
    assert rep.by_module()["agents"].calls == 1
