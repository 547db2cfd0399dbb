"""Reading report files: malformed, hostile and wrong-version data is refused, naming the place."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tokenmeter as tm

Data = dict[str, Any]


def _good() -> Data:
    """A valid version-2 report with records: nodes 0 '' > 1 agent > (2 plan, 3 act)."""
    meter = tm.Meter(keep_records=True)
    with meter.track("agent"):
        meter.record(model="m1", input_tokens=100, output_tokens=10, cost_usd=0.001,
                     timestamp=1_700_000_000.0)  # fmt: skip
        with meter.track("plan"):
            meter.record(model="m2", provider="p", input_tokens=20, cache_read_tokens=5,
                         output_tokens=3, reasoning_tokens=1, cost_usd=None, failed=True,
                         timestamp=1_700_000_001.0)  # fmt: skip
        with meter.track("act"):
            meter.record(model="m1", input_tokens=7, output_tokens=2, cost_usd=0.5,
                         timestamp=1_700_000_002.0)  # fmt: skip
    return json.loads(meter.report().to_json(include_records=True))  # type: ignore[no-any-return]


def _set(path: str, value: Any) -> Callable[[Data], None]:
    """A change: set the value at ``a.b[2].c`` (``del`` as value removes it)."""
    parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]

    def change(d: Data) -> None:
        for p in parts[:-1]:
            d = d[p]
        if value is _DEL:
            del d[parts[-1]]
        else:
            d[parts[-1]] = value

    return change


_DEL = object()


def _both(*changes: Callable[[Data], None]) -> Callable[[Data], None]:
    def change(d: Data) -> None:
        for c in changes:
            c(d)

    return change


def _v1(d: Data) -> None:
    """Turn the data into a version-1 file (nested ``tree``)."""
    tree = tm.Report.from_dict(d).root.to_dict()
    del d["nodes"]
    d["schema_version"] = 1
    d["tree"] = tree


def _whole(value: Any) -> Callable[[Data], Any]:
    """A change that replaces the whole data with ``value``."""
    return lambda d: ("whole", value)


# (id, change, the start of the ValueError's message after the file name)
CASES: list[tuple[str, Callable[[Data], Any], str]] = [
    ("not-an-object", _whole([1, 2]), "a report must be a JSON object, got list"),
    ("null", _whole(None), "a report must be a JSON object, got null"),
    ("no-schema", _set("schema", _DEL), "not a tokenmeter report (schema=None)"),
    ("other-schema", _set("schema", "otel.spans"), "not a tokenmeter report"),
    ("version-string", _set("schema_version", "2"), "schema_version must be a positive integer"),
    ("version-bool", _set("schema_version", True), "schema_version must be a positive integer"),
    ("version-zero", _set("schema_version", 0), "schema_version must be a positive integer"),
    ("version-newer", _set("schema_version", 3), "report schema_version 3 is newer"),
    ("no-nodes", _set("nodes", _DEL), "nodes must be a non-empty list"),
    ("empty-nodes", _set("nodes", []), "nodes must be a non-empty list"),
    ("node-not-object", _set("nodes[2]", "plan"), "nodes[2] must be an object, got str"),
    ("top-has-parent", _set("nodes[0].parent", 0), "nodes[0].parent must be null"),
    ("parent-later", _set("nodes[1].parent", 3), "nodes[1].parent must be the index of an earl"),
    ("parent-string", _set("nodes[1].parent", "0"), "nodes[1].parent must be the index"),
    ("parent-self", _set("nodes[2].parent", 2), "nodes[2].parent must be the index"),
    ("name-empty", _set("nodes[1].name", ""), "nodes[1].name must be a non-empty string"),
    ("name-number", _set("nodes[3].name", 7), "nodes[3].name must be a non-empty string"),
    ("name-twice", _set("nodes[3].name", "plan"), "nodes[3].name 'plan' appears twice"),
    ("top-path-string", _set("nodes[0].path", "agent"), "nodes[0].path must be a list"),
    ("top-path-number", _set("nodes[0].path", [3]), "nodes[0].path[0] must be a non-empty str"),
    ("top-name-vs-path", _set("nodes[0].name", "x"), "nodes[0].name must be the last name"),
    ("entries-negative", _set("nodes[1].entries", -1), "nodes[1].entries must be a non-negative"),
    ("entries-float", _set("nodes[1].entries", 1.5), "nodes[1].entries must be a non-negative"),
    (
        "tokens-negative",
        _set("nodes[3].usage.input_tokens", -5),
        "nodes[3].usage.input_tokens must be a non-negative integer, got -5",
    ),
    (
        "tokens-string",
        _set("nodes[1].usage.input_tokens", "127"),
        "nodes[1].usage.input_tokens must be a non-negative integer, got '127'",
    ),
    (
        "tokens-huge",
        _set("nodes[1].usage.input_tokens", 10**400),
        "nodes[1].usage.input_tokens must be a non-negative integer, got an integer of 401 digits",
    ),
    (
        "tokens-bool",
        _set("nodes[2].self_usage.calls", True),
        "nodes[2].self_usage.calls must be a non-negative integer",
    ),
    (
        "cost-nan",
        _set("nodes[1].usage.cost_usd", float("nan")),
        "nodes[1].usage.cost_usd must be a non-negative finite number, got nan",
    ),
    ("cost-negative", _set("nodes[3].usage.cost_usd", -0.5), "nodes[3].usage.cost_usd must be"),
    ("cost-huge", _set("nodes[0].usage.cost_usd", 1e308), "nodes[0].usage.cost_usd must be"),
    ("cost-string", _set("nodes[0].usage.cost_usd", "0.5"), "nodes[0].usage.cost_usd must be"),
    (
        "failed-over-calls",
        _set("nodes[2].usage.failed_calls", 2),
        "nodes[2].usage.failed_calls (2) must not exceed calls (1)",
    ),
    (
        "cache-over-input",
        _set("nodes[2].usage.cache_read_tokens", 21),
        "nodes[2].usage: cache_read_tokens + cache_write_tokens must not exceed input_tokens",
    ),
    ("usage-list", _set("nodes[1].usage", [1, 2]), "nodes[1].usage must be an object, got list"),
    ("usage-missing", _set("nodes[1].usage", _DEL), "nodes[1].usage must be an object, got null"),
    (
        "self-vs-breakdown",
        _set("nodes[1].breakdown[0].usage.output_tokens", 9),
        "nodes[1].self_usage must equal the sum of nodes[1].breakdown",
    ),
    (
        "inclusive-vs-children",
        _both(
            _set("nodes[3].usage.input_tokens", 8),
            _set("nodes[3].self_usage.input_tokens", 8),
            _set("nodes[3].breakdown[0].usage.input_tokens", 8),
        ),
        "nodes[1].usage must equal nodes[1].self_usage plus its children's usage",
    ),
    ("breakdown-not-list", _set("nodes[1].breakdown", {}), "nodes[1].breakdown must be a list"),
    (
        "breakdown-model",
        _set("nodes[1].breakdown[0].model", 5),
        "nodes[1].breakdown[0].model must be a non-empty string or null",
    ),
    (
        "breakdown-twice",
        lambda d: d["nodes"][3]["breakdown"].append(copy.deepcopy(d["nodes"][3]["breakdown"][0])),
        "nodes[3].breakdown[1] repeats the dimensions",
    ),
    ("total-differs", _set("total.calls", 4), "total must equal the usage of the top node"),
    ("records-object", _set("records", {}), "records must be a list, got dict"),
    ("record-string", _set("records[1]", "call"), "records[1] must be an object, got str"),
    (
        "record-tokens",
        _set("records[0].input_tokens", -1),
        "records[0].input_tokens must be a non-negative integer",
    ),
    (
        "record-failed-no",
        _set("records[1].failed", "no"),
        "records[1].failed must be True or False",
    ),
    ("record-estimated-2", _set("records[1].estimated", 2), "records[1].estimated must be True"),
    ("record-path", _set("records[2].path", "agent/act"), "records[2].path must be a list"),
    ("record-cost", _set("records[2].cost_usd", "0.5"), "records[2].cost_usd must be a non-neg"),
    ("record-model", _set("records[0].model", " "), "records[0].model must be a non-empty str"),
    ("record-metadata", _set("records[0].metadata", [1]), "records[0].metadata must be an object"),
    ("record-timestamp", _set("records[0].timestamp", "now"), "records[0].timestamp must be"),
    ("record-duration", _set("records[0].duration_s", -1.0), "records[0].duration_s must be"),
    ("dropped-negative", _set("records_dropped", -1), "records_dropped must be a non-negative"),
    ("created-number", _set("created_at", 5), "created_at must be str or null, got 5"),
    ("started-not-a-time", _set("started_at", "yesterday"), "started_at must be an ISO 8601"),
    ("prices-string", _set("prices", "litellm"), "prices must be dict or null"),
    ("kept-string", _set("records_kept", "yes"), "records_kept must be bool or null"),
    ("v1-no-tree", _both(_v1, _set("tree", _DEL)), "tree must be an object, got null"),
    (
        "v1-children-string",
        _both(_v1, _set("tree.children", "agent")),
        "tree.children must be a list, got str",
    ),
    (
        "v1-deep-field",
        _both(_v1, _set("tree.children[0].children[1].usage.calls", -1)),
        "tree.children[0].children[1].usage.calls must be a non-negative integer",
    ),
    (
        "v1-child-not-object",
        _both(_v1, _set("tree.children[0].children[0]", 3)),
        "tree.children[0].children[0] must be an object, got int",
    ),
]


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_report_data_raises_value_error_naming_the_place(
    change: Callable[[Data], Any], message: str
) -> None:
    """Each malformed report is refused by Report.from_dict with a ValueError naming the place."""
    data = _good()
    result = change(data)
    if isinstance(result, tuple):
        data = result[1]
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        tm.Report.from_dict(data)


def test_the_table_is_big_enough() -> None:
    """At least 32 malformed, hostile or wrong-version cases are checked."""
    assert len(CASES) >= 32
    assert len({c[0] for c in CASES}) == len(CASES)


def test_the_good_data_loads_in_both_versions() -> None:
    """The base of the table loads, as version 2 and as version 1, with the same numbers."""
    v2 = tm.Report.from_dict(_good())
    data = _good()
    _v1(data)
    v1 = tm.Report.from_dict(data)
    assert v2.total == v1.total == tm.Usage(
        calls=3, input_tokens=127, cache_read_tokens=5, output_tokens=15, reasoning_tokens=1,
        cost_usd=0.501, unpriced_calls=1, failed_calls=1,
    )  # fmt: skip
    assert [n.path for n in v1.walk()] == [(), ("agent",), ("agent", "plan"), ("agent", "act")]
    assert len(v1.records) == len(v2.records) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a JSON report file"),
        ("{", "not a JSON report file"),
        ('{"schema": "tokenmeter.report", "cost": NaN}', "NaN is not a JSON number"),
        ('{"a": Infinity}', "Infinity is not a JSON number"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply to be a report"),
        (b'{"schema": "\xff"}', "not UTF-8"),
        ('{"calls": ' + "9" * 5000 + "}", "not a JSON report file"),
    ],
    ids=["empty", "truncated", "bare-nan", "bare-infinity", "deep-lists", "latin-1", "5000-digits"],
)
def test_bad_files_name_the_file(tmp_path: Path, text: str | bytes, message: str) -> None:
    """Report.load of a file not JSON, not UTF-8, or with NaN names the file and the problem."""
    path = tmp_path / "usage.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=re.escape(f"{path}: ") + ".*" + re.escape(message)):
        tm.Report.load(path)


def test_nan_cost_in_a_file_never_reaches_by_model(tmp_path: Path) -> None:
    """A saved report edited to hold a NaN cost is refused at load, not crashing by_model()."""
    data = _good()
    data["nodes"][1]["breakdown"][0]["usage"]["cost_usd"] = float("nan")
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(data))  # json.dumps writes a bare NaN
    with pytest.raises(ValueError, match="NaN is not a JSON number"):
        tm.Report.load(path)
    with pytest.raises(ValueError, match=r"nodes\[1\]\.breakdown\[0\]\.usage\.cost_usd"):
        tm.Report.from_dict(data)


def test_sums_past_2_63_load_back(tmp_path: Path) -> None:
    """Two calls of 2**63-1 input tokens each: the saved report loads with the same sums."""
    meter = tm.Meter()
    with meter.track("a"):
        for _ in range(2):
            meter.record(model="m", input_tokens=2**63 - 1, output_tokens=0, cost_usd=0.0)
    meter.report().save(tmp_path / "big.json")
    again = tm.Report.load(tmp_path / "big.json")
    assert again.total.input_tokens == again.node("a").usage.input_tokens == 2**64 - 2
    assert again.by_model()["m"].input_tokens == 2**64 - 2


def test_a_gigabyte_of_zeros_is_refused_without_reading_it(tmp_path: Path) -> None:
    """Report.load of a 1 GB file of NUL bytes fails at its first byte, naming the file."""
    path = tmp_path / "zeros.json"
    with open(path, "wb") as f:
        f.truncate(2**30)  # sparse: no disk used
    with pytest.raises(ValueError) as info:
        tm.Report.load(path)
    assert str(info.value) == (
        f"{path}: not a JSON report file (it does not start with '{{': byte 0 is 0x00)"
    )


def _with_duplicate(data: Data, place: str, key: str, value: Any) -> str:
    """The report as JSON text, with ``key`` written a second time (as ``value``) in ``place``."""
    _set(f"{place}.__second__" if place else "__second__", value)(data)
    text = json.dumps(data, indent=2)
    assert text.count('"__second__"') == 1
    return text.replace('"__second__"', json.dumps(key))


@pytest.mark.parametrize(
    ("place", "key", "value", "message"),
    [
        ("", "schema", "tokenmeter.report", "the top object: duplicate key 'schema'"),
        ("nodes[1].usage", "calls", 7, "nodes[1].usage: duplicate key 'calls'"),
        (
            "nodes[2].breakdown[0].usage",
            "cost_usd",
            0.0,
            "nodes[2].breakdown[0].usage: duplicate key 'cost_usd'",
        ),
        ("records[1]", "model", "m9", "records[1]: duplicate key 'model'"),
        ("records[0].metadata", "a b", 1, "records[0].metadata: duplicate key 'a b'"),
        ("nodes[1].usage", "\\u0063alls", 7, "nodes[1].usage: duplicate key 'calls'"),
    ],
    ids=["top", "node-usage", "breakdown-usage", "record", "metadata", "escaped-key"],
)
def test_a_key_twice_in_a_file_is_refused_naming_the_place(
    tmp_path: Path, place: str, key: str, value: Any, message: str
) -> None:
    """Report.load of a file with a key twice in one object: ValueError naming file and place."""
    data = _good()
    data["records"][0]["metadata"] = {"a b": 1}
    text = _with_duplicate(data, place, key, value)
    if key.startswith("\\"):  # the key spelled with an escape: json.dumps would double it
        text = text.replace(json.dumps(key), f'"{key}"')
    path = tmp_path / "usage.json"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        tm.Report.load(path)
    assert str(info.value) == f"{path}: {message}"


def test_a_key_twice_deep_in_a_file_is_named(tmp_path: Path) -> None:
    """A key twice in an object 500 levels down a record's metadata: the whole path is named."""
    data = _good()
    data["records"][0]["metadata"] = {"k": "__deep__"}
    text = json.dumps(data).replace('"__deep__"', '{"a": ' * 500 + '{"x": 1, "x": 2}' + "}" * 500)
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        tm.Report.load(path)
    assert str(info.value) == f"{path}: records[0].metadata.k{'.a' * 500}: duplicate key 'x'"
