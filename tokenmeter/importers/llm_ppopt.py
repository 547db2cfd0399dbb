"""LLM-PPOpt ``TokenTracker`` exports as tokenmeter reports.

LLM-PPOpt's tracker (``src/token_tracker.py`` in that project) writes, with
``get_tracker().export_to_file(path)``, a JSON object::

    {"exported_at": "2026-01-31T15:26:42.788521",
     "statistics": {"summary": {...}, "by_module": {...}, "by_model": {...}},
     "records": [{"module": "persona_formulation", "operation": "formulate_system_prompt",
                  "model": "gpt-5.2", "provider": "openai",
                  "input_tokens": 283, "output_tokens": 434, "total_tokens": 717,
                  "timestamp": "2026-01-31T15:14:06.431575",
                  "metadata": {"attempt": 1}}, ...]}

Each record becomes one :class:`~tokenmeter.CallRecord` on the scope its
``module`` and ``operation`` name (or the fields chosen with ``tree=``). The
export's ``by_model`` keys are ``f"{provider}/{model}"``; tokenmeter keeps the
model and the provider apart (``Report.by_model()`` and ``Report.by_provider()``).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from tokenmeter._jsonload import DuplicateKeyError, loads_unique, no_constant
from tokenmeter._pricing import price_tokens, provider_for
from tokenmeter._record import MAX_TOKENS, CallRecord
from tokenmeter._report import Report

__all__ = ["TREE_FIELDS", "llm_ppopt_statistics", "load_llm_ppopt", "read_llm_ppopt"]

#: The record fields that can name the levels of the scope tree (``tree=``).
TREE_FIELDS = ("module", "operation", "model", "provider")

#: What the loaders accept: a path to the JSON file, the parsed export, or its
#: list of records (what ``TokenTracker.get_all_records()`` returns).
Source: TypeAlias = "str | os.PathLike[str] | Mapping[str, Any] | Sequence[Mapping[str, Any]]"

#: The ``kind`` of the records made here.
KIND = "imported"

_NONE = "(none)"


def load_llm_ppopt(
    source: Source,
    *,
    tree: Sequence[str] = ("module", "operation"),
    price: bool = True,
    timezone: _dt.tzinfo | None = None,
    check_statistics: bool = True,
) -> Report:
    """Load an LLM-PPOpt token-usage export into a :class:`tokenmeter.Report`.

    Args:
        source: the export's path, its parsed JSON object, or its list of records.
        tree: the record fields naming each level of the scope tree, outermost
            first, from :data:`TREE_FIELDS`; ``()`` puts every call on the root.
        price: price each call from custom prices (``tm.set_price``) or LiteLLM's
            price map; models with no known price count as unpriced, never as $0.
            With ``price=False`` every call is unpriced.
        timezone: the zone of the export's timestamps, which LLM-PPOpt writes
            without one (``datetime.now().isoformat()``); None reads them as this
            machine's local time. Timestamps carrying an offset keep it.
        check_statistics: when the export has a ``statistics`` block, check that
            its records add up to it, and raise ValueError naming the first
            difference if not (a truncated or hand-edited file).

    Raises:
        ValueError: the input is not an LLM-PPOpt export, a record is malformed
            (the message names its index and field), ``tree`` names an unknown
            field, or the statistics do not match the records.
    """
    data = _load(source)
    records = _records(data, tree, price, timezone)
    if check_statistics and isinstance(data, Mapping) and "statistics" in data:
        _check_statistics(data["statistics"], records)
    return Report.from_records(records)


def read_llm_ppopt(
    source: Source,
    *,
    tree: Sequence[str] = ("module", "operation"),
    price: bool = True,
    timezone: _dt.tzinfo | None = None,
) -> list[CallRecord]:
    """The export's records as :class:`tokenmeter.CallRecord` objects, in file order.

    Arguments as in :func:`load_llm_ppopt`; ``Report.from_records`` turns the
    list (or any concatenation of such lists) into a report.
    """
    return _records(_load(source), tree, price, timezone)


def llm_ppopt_statistics(source: Report | Iterable[CallRecord]) -> dict[str, Any]:
    """A report's (or records') numbers in the shape of LLM-PPOpt's ``statistics`` block.

    ``{"summary": {...}, "by_module": {...}, "by_model": {...}}``, with
    ``by_model`` keyed ``f"{provider}/{model}"`` as LLM-PPOpt does. Works on any
    report, not only imported ones, so scripts that read that block keep working.
    """
    rows: list[tuple[str, str | None, str | None, int, int, int]] = []
    if isinstance(source, Report):
        for node in source.walk():
            for (model, provider, module, _op), u in node.breakdown.items():
                rows.append((model, provider, module, u.calls, u.input_tokens, u.output_tokens))
    else:
        for r in source:
            rows.append((r.model, r.provider, r.module, 1, r.input_tokens, r.output_tokens))
    by_module: dict[str, dict[str, int]] = {}
    by_model: dict[str, dict[str, int]] = {}
    calls = total_in = total_out = 0
    for model, provider, module, n, i, o in rows:
        calls += n
        total_in += i
        total_out += o
        model_key = f"{provider}/{model}" if provider else model
        for table, key in (
            (by_module, module if module is not None else _NONE),
            (by_model, model_key),
        ):
            row = table.setdefault(
                key, {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "call_count": 0}
            )
            row["input_tokens"] += i
            row["output_tokens"] += o
            row["total_tokens"] += i + o
            row["call_count"] += n
    return {
        "summary": {
            "total_calls": calls,
            "total_input_tokens": total_in,
            "total_output_tokens": total_out,
            "total_tokens": total_in + total_out,
        },
        "by_module": by_module,
        "by_model": by_model,
    }


# -- reading -------------------------------------------------------------------------


def _load(source: Source) -> Any:
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        with open(path, "rb") as f:
            raw = f.read()
        try:
            return loads_unique(raw.decode("utf-8"), parse_constant=no_constant)
        except DuplicateKeyError as e:
            raise ValueError(f"{path}: {e}") from None
        except UnicodeDecodeError as e:
            why = f"not UTF-8 text (byte {e.start})"
        except RecursionError:
            why = "nested too deeply"
        except ValueError as e:  # JSONDecodeError, a bare NaN or Infinity, a number too long
            why = f"invalid JSON ({e})"
        raise ValueError(f"{path}: not an LLM-PPOpt export: {why}")
    return source


def _record_list(data: Any) -> Sequence[Any]:
    if isinstance(data, Mapping):
        records = data.get("records")
        if records is None:
            if "statistics" in data:
                raise ValueError(
                    "this LLM-PPOpt export has no 'records' (it was written with "
                    "export_to_file(..., include_records=False)); tokenmeter needs the "
                    "per-call records"
                )
            raise ValueError(
                "not an LLM-PPOpt export: expected a JSON object with a 'records' list, "
                f"got keys {sorted(map(str, data))[:10]}"
            )
        if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
            raise ValueError(
                f"not an LLM-PPOpt export: 'records' must be a list, got {type(records).__name__}"
            )
        return records
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        return data
    raise ValueError(
        "not an LLM-PPOpt export: expected a path, a JSON object with a 'records' list, "
        f"or a list of records, got {type(data).__name__}"
    )


def _check_tree(tree: Sequence[str]) -> tuple[str, ...]:
    if isinstance(tree, str):
        raise ValueError(f"tree must be a sequence of field names, got the string {tree!r}")
    fields = tuple(tree)
    for f in fields:
        if f not in TREE_FIELDS:
            raise ValueError(f"tree: unknown field {f!r}; choose from {list(TREE_FIELDS)}")
    return fields


def _records(
    data: Any, tree: Sequence[str], price: bool, timezone: _dt.tzinfo | None
) -> list[CallRecord]:
    fields = _check_tree(tree)
    out: list[CallRecord] = []
    for index, raw in enumerate(_record_list(data)):
        try:
            out.append(_record(raw, fields, price, timezone))
        except ValueError as e:
            raise ValueError(f"record {index}: {e}") from None
    return out


def _record(
    raw: Any, fields: tuple[str, ...], price: bool, timezone: _dt.tzinfo | None
) -> CallRecord:
    if not isinstance(raw, Mapping):
        raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
    module = _text(raw, "module")
    operation = _text(raw, "operation")
    model = _text(raw, "model")
    provider = raw.get("provider")
    if provider is None:
        provider = provider_for(model)
    elif not isinstance(provider, str) or not provider:
        raise ValueError(f"provider must be a non-empty string, got {provider!r}")
    input_tokens = _count(raw, "input_tokens")
    output_tokens = _count(raw, "output_tokens")
    total = raw.get("total_tokens")
    if total is not None and total != input_tokens + output_tokens:
        raise ValueError(
            f"total_tokens ({total!r}) is not input_tokens + output_tokens "
            f"({input_tokens} + {output_tokens})"
        )
    metadata = raw.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be an object, got {type(metadata).__name__}")
    values = {"module": module, "operation": operation, "model": model, "provider": provider}
    path = tuple(values[f] or _NONE for f in fields)
    cost = price_tokens(model, provider, input_tokens, output_tokens) if price else None
    return CallRecord(
        model=model,
        provider=provider,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost,
        module=module,
        operation=operation,
        path=path,
        kind=KIND,
        timestamp=_timestamp(raw.get("timestamp"), timezone),
        metadata=metadata,
    )


def _text(raw: Mapping[str, Any], field: str) -> str:
    value = raw.get(field)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a non-empty string, got {value!r}")
    return value


def _count(raw: Mapping[str, Any], field: str) -> int:
    value = raw.get(field)
    if type(value) is not int or value < 0:
        raise ValueError(f"{field} must be a non-negative integer, got {value!r:.60}")
    if value >= MAX_TOKENS:  # a report holding it could not be loaded back
        raise ValueError(f"{field} must be below 2**63 (as in tm.record), got {value!r:.60}")
    return value


def _timestamp(value: Any, timezone: _dt.tzinfo | None) -> float:
    if value is None:
        return 0.0
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be an ISO 8601 string, got {value!r}")
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"timestamp must be an ISO 8601 string, got {value!r}") from None
    if when.tzinfo is None and timezone is not None:
        when = when.replace(tzinfo=timezone)
    return when.timestamp()


def _check_statistics(stats: Any, records: Sequence[CallRecord]) -> None:
    if not isinstance(stats, Mapping):
        raise ValueError(f"'statistics' must be an object, got {type(stats).__name__}")
    ours = llm_ppopt_statistics(records)
    for section in ("summary", "by_module", "by_model"):
        if section not in stats:
            continue
        diff = _first_difference(stats[section], ours[section], section)
        if diff is not None:
            raise ValueError(
                f"the export's statistics do not match its records: {diff} "
                "(pass check_statistics=False to load the records anyway)"
            )


def _first_difference(theirs: Any, ours: Any, where: str) -> str | None:
    if isinstance(theirs, Mapping) and isinstance(ours, Mapping):
        for key in sorted(set(theirs) | set(ours), key=str):
            if key not in ours:
                return f"{where}[{key!r}] is in the file but in no record"
            if key not in theirs:
                return f"{where}[{key!r}] is in the records but not in the file"
            diff = _first_difference(theirs[key], ours[key], f"{where}[{key!r}]")
            if diff is not None:
                return diff
        return None
    if theirs != ours:
        return f"{where}: the file says {theirs!r}, the records add up to {ours!r}"
    return None
