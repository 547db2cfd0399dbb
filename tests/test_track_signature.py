"""`track` and `Meter.track`: one signature, the same options, the same checks."""

from __future__ import annotations

import inspect

import pytest

import tokenmeter as tm


def test_meter_track_has_the_module_tracks_signature() -> None:
    """`Meter().track` and `tm.track` have the same signature, keyword-only options included."""
    sig = inspect.signature(tm.track)
    assert inspect.signature(tm.Meter().track) == sig
    assert list(sig.parameters) == [
        "name",
        "module",
        "operation",
        "max_tokens",
        "max_cost_usd",
        "max_calls",
        "on_exceed",
        "attributes",
    ]
    assert sig.parameters["on_exceed"].default == "raise"


def test_track_options_reach_the_scope() -> None:
    """Options given to `tm.track` and `Meter.track` set the module, attributes and budget."""
    meter = tm.Meter(keep_records=True)
    with meter.track("m", module="mod", operation="op", user="u1", max_calls=1) as s:
        meter.record(model="x", input_tokens=1, output_tokens=2, cost_usd=0.5)
    rec = meter.report().records[0]
    assert (rec.module, rec.operation, rec.path, dict(rec.attributes)) == (
        "mod",
        "op",
        ("m",),
        {"user": "u1"},
    )
    assert s.entries == 1
    assert s.limits is not None
    assert (s.limits.max_calls, s.limits.max_tokens, s.limits.on_exceed) == (1, None, "raise")
    with pytest.raises(ValueError, match="max_calls must be a non-negative integer"):
        meter.track("m", max_calls=-1)
    with pytest.raises(ValueError, match="on_exceed must be"):
        tm.track("m", max_calls=1, on_exceed="ignore")  # type: ignore[arg-type]


def test_track_without_options_returns_one_shared_track() -> None:
    """`tm.track('x')` twice is one object; with an option it is a new one."""
    assert tm.track("shared_sig") is tm.track("shared_sig")
    assert tm.track("shared_sig", module="m") is not tm.track("shared_sig")


@pytest.mark.parametrize("name", ["", None, 3, ["x"]])
def test_track_rejects_a_bad_name(name: object) -> None:
    """`tm.track` and `Meter.track` raise ValueError naming the scope name for a bad name."""
    with pytest.raises(ValueError, match="scope name"):
        tm.track(name)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scope name"):
        tm.Meter().track(name)  # type: ignore[arg-type]
