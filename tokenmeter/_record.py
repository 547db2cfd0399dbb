"""One LLM call as recorded: `CallRecord`, and validation of manual input."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar, cast

import attrs

from ._acc import MAX_COST_USD as MAX_COST_USD
from ._check import check_label, short

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_INF = float("inf")


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not value:
        return _EMPTY
    return MappingProxyType(dict(value))


@attrs.frozen(weakref_slot=False)  # no weak references: see `new_record`
class CallRecord:
    """One LLM call, as attributed to a scope.

    ``path`` names the scope the call landed on; ``attributes`` are those of the
    scopes around it; ``metadata`` is what the caller attached to this call.
    ``cost_usd`` is None when the call is unpriced.
    """

    model: str
    provider: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    module: str | None = None
    operation: str | None = None
    path: tuple[str, ...] = ()
    kind: str = "manual"
    failed: bool = False
    estimated: bool = False
    timestamp: float = 0.0
    duration_s: float | None = None
    call_id: str | None = None
    # Compared, but not hashed (a mapping has no hash): hash(record) works.
    attributes: Mapping[str, Any] = attrs.field(
        default=_EMPTY, converter=_frozen_mapping, hash=False
    )
    metadata: Mapping[str, Any] = attrs.field(default=_EMPTY, converter=_frozen_mapping, hash=False)

    @property
    def total_tokens(self) -> int:
        """``input_tokens + output_tokens``."""
        return self.input_tokens + self.output_tokens

    @property
    def priced(self) -> bool:
        """Whether the call's cost is known."""
        return self.cost_usd is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``path`` as a list, ``timestamp`` also as ISO 8601)."""
        d = attrs.asdict(self, recurse=False)
        d["path"] = list(self.path)
        d["attributes"] = dict(self.attributes)
        d["metadata"] = dict(self.metadata)
        d["total_tokens"] = self.total_tokens
        d["time"] = _iso(self.timestamp)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "record") -> CallRecord:
        """Build a record from `to_dict` output, checking every field.

        Raises ValueError naming the bad field as ``{where}.{field}`` (a report file's
        loader passes ``records[3]``). ``total_tokens`` and ``time`` are derived and
        not read; fields this version does not know are ignored.
        """
        return cls(**record_kwargs(data, where))


class _NewRecord:
    """`CallRecord`'s layout with a plain ``__init__``: see `new_record`."""

    __slots__ = (
        "attributes",
        "cache_read_tokens",
        "cache_write_tokens",
        "call_id",
        "cost_usd",
        "duration_s",
        "estimated",
        "failed",
        "input_tokens",
        "kind",
        "metadata",
        "model",
        "module",
        "operation",
        "output_tokens",
        "path",
        "provider",
        "reasoning_tokens",
        "timestamp",
    )

    def __init__(
        self,
        model: str,
        provider: str | None,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int,
        cache_write_tokens: int,
        reasoning_tokens: int,
        cost_usd: float | None,
        module: str | None,
        operation: str | None,
        path: tuple[str, ...],
        kind: str,
        failed: bool,
        estimated: bool,
        timestamp: float,
        duration_s: float | None,
        call_id: str | None,
        attributes: Mapping[str, Any],
        metadata: Mapping[str, Any],
    ) -> None:
        self.model = model
        self.provider = provider
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cache_read_tokens = cache_read_tokens
        self.cache_write_tokens = cache_write_tokens
        self.reasoning_tokens = reasoning_tokens
        self.cost_usd = cost_usd
        self.module = module
        self.operation = operation
        self.path = path
        self.kind = kind
        self.failed = failed
        self.estimated = estimated
        self.timestamp = timestamp
        self.duration_s = duration_s
        self.call_id = call_id
        self.attributes = attributes
        self.metadata = metadata
        self.__class__ = CallRecord  # type: ignore[assignment]


def _checked_builder() -> Callable[..., CallRecord]:
    """`_NewRecord` if it builds records equal to `CallRecord`'s own, else `CallRecord`."""
    fields = tuple(a.name for a in attrs.fields(CallRecord))
    probe_args: tuple[Any, ...] = (*fields[:17], _EMPTY, _EMPTY)
    try:
        if sorted(_NewRecord.__slots__) == sorted(fields):
            rec: object = _NewRecord(*probe_args)
            if type(rec) is CallRecord and rec == CallRecord(*probe_args):
                return _NewRecord  # type: ignore[return-value]
    except TypeError:  # an interpreter that refuses the class assignment
        pass
    return CallRecord


#: Build a `CallRecord` from its 19 fields, positional, ``attributes`` and ``metadata``
#: already frozen (``frozen_mapping``): what ``record()`` does on every call. An attrs
#: frozen class sets each field through ``object.__setattr__``; this builds the same
#: object with plain slot stores and then gives it its class (the two layouts are the
#: same, which is why `CallRecord` has no weak-reference slot), in a third of the time.
new_record: Callable[..., CallRecord] = _checked_builder()
frozen_mapping = _frozen_mapping


def _iso(ts: float) -> str | None:
    if not ts:
        return None
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).isoformat()


#: Token counts are below this (they fit a signed 64-bit integer, as exporters need).
MAX_TOKENS = 2**63
#: The largest count `plain_counts` compares directly; 0, which it tests by identity.
_ONE_DIGIT, _ZERO = 2**30 - 1, 0


def check_count(field: str, value: object) -> int:
    """Return ``value`` if it is a non-negative int below 2**63, else raise ValueError naming it."""
    if type(value) is int and 0 <= value < MAX_TOKENS:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_TOKENS:
        raise ValueError(f"{field} must be a non-negative integer below 2**63, got {short(value)}")
    return int(value)


def check_flag(field: str, value: object) -> bool:
    """Return ``value`` if it is a bool (``failed``, ``estimated``), else raise ValueError."""
    if value is True or value is False:
        return value
    raise ValueError(f"{field} must be True or False, got {short(value)}")


def check_metadata(value: object) -> Mapping[str, Any] | None:
    """Return ``value`` if it is None or a mapping with string keys and finite numbers.

    A NaN or infinity is refused here because a report file (strict JSON) could
    not hold it.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"metadata must be a mapping or None, got {type(value).__name__}")
    for k, v in value.items():
        if not isinstance(k, str):
            raise ValueError(f"metadata keys must be strings, got {short(k)}")
        if isinstance(v, float) and not -_INF < v < _INF:
            raise ValueError(f"metadata[{k!r}] must be a finite number, got {v!r}")
    return value


def check_timestamp(value: object) -> float:
    """Return ``value`` as a float if it is a finite, non-negative Unix time, else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e11:
        raise ValueError(f"timestamp must be a Unix time in seconds or None, got {short(value)}")
    return float(value)


def plain_counts(
    model: object,
    input_tokens: object,
    output_tokens: object,
    cache_read_tokens: object,
    cache_write_tokens: object,
    reasoning_tokens: object,
    cost_usd: object,
) -> bool:
    """Whether a manual record's counts and cost are valid exactly as given (plain ints, a
    float or None), in one test.

    The one definition of the bounds: `validate_counts` takes it as its common case,
    and ``tokenmeter.record()``'s fast path calls it before anything else. False
    means "not this simple case", not "invalid": `validate_counts` then decides.
    """
    # Counts up to 2**30 - 1 compare as CPython's one-digit ints (a cheap, specialised
    # comparison); larger ones take `validate_counts`'s checks. Cache and reasoning
    # counts left at their default are the int 0 itself, tested by identity.
    return (
        type(model) is str
        and type(input_tokens) is int
        and type(output_tokens) is int
        and 0 <= input_tokens <= _ONE_DIGIT
        and 0 <= output_tokens <= _ONE_DIGIT
        and (
            cache_read_tokens is cache_write_tokens is reasoning_tokens is _ZERO
            or (
                type(cache_read_tokens) is int
                and type(cache_write_tokens) is int
                and type(reasoning_tokens) is int
                and cache_read_tokens >= 0
                and cache_write_tokens >= 0
                and cache_read_tokens + cache_write_tokens <= input_tokens
                and 0 <= reasoning_tokens <= output_tokens
            )
        )
        and (cost_usd is None or (type(cost_usd) is float and 0.0 <= cost_usd <= MAX_COST_USD))
        and model.strip() != ""
    )


def validate_counts(
    model: object,
    input_tokens: object,
    output_tokens: object,
    cache_read_tokens: object,
    cache_write_tokens: object,
    reasoning_tokens: object,
    cost_usd: object,
) -> tuple[str, int, int, int, int, int, float | None]:
    """Validate a manual record's fields; raise ValueError naming the first bad field."""
    # The common case in one test; anything else takes the checks below, which name
    # the bad field.
    if plain_counts(
        model,
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        reasoning_tokens,
        cost_usd,
    ):
        return cast(
            "tuple[str, int, int, int, int, int, float | None]",
            (
                model,
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_write_tokens,
                reasoning_tokens,
                cost_usd,
            ),
        )
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model must be a non-empty string, got {short(model)}")
    i = check_count("input_tokens", input_tokens)
    o = check_count("output_tokens", output_tokens)
    cr = check_count("cache_read_tokens", cache_read_tokens)
    cw = check_count("cache_write_tokens", cache_write_tokens)
    r = check_count("reasoning_tokens", reasoning_tokens)
    if cr + cw > i:
        raise ValueError(
            f"cache_read_tokens + cache_write_tokens ({cr} + {cw}) must not exceed "
            f"input_tokens ({i})"
        )
    if r > o:
        raise ValueError(f"reasoning_tokens ({r}) must not exceed output_tokens ({o})")
    cost: float | None
    if cost_usd is None:
        cost = None
    elif isinstance(cost_usd, bool) or not isinstance(cost_usd, (int, float)):
        raise ValueError(f"cost_usd must be a non-negative number or None, got {cost_usd!r}")
    elif not (0 <= cost_usd <= MAX_COST_USD):
        raise ValueError(
            f"cost_usd must be a non-negative finite number up to {MAX_COST_USD:g}, "
            f"got {short(cost_usd)}"
        )
    else:
        cost = float(cost_usd)
    return model, i, o, cr, cw, r, cost


# -- records read from a file ---------------------------------------------------------

_T = TypeVar("_T")


def at(where: str, check: Callable[[], _T]) -> _T:
    """Run ``check``; a ValueError it raises is raised again prefixed with ``where.``."""
    try:
        return check()
    except ValueError as e:
        raise ValueError(f"{where}.{e}") from None


def record_kwargs(data: object, where: str) -> dict[str, Any]:
    """The keyword arguments of a `CallRecord` read from ``data``, checked field by field."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be an object, got {type(data).__name__}")
    get = data.get
    model, i, o, cr, cw, r, cost = at(
        where,
        lambda: validate_counts(
            get("model"),
            get("input_tokens", 0),
            get("output_tokens", 0),
            get("cache_read_tokens", 0),
            get("cache_write_tokens", 0),
            get("reasoning_tokens", 0),
            get("cost_usd"),
        ),
    )
    out: dict[str, Any] = {
        "model": model,
        "input_tokens": i,
        "output_tokens": o,
        "cache_read_tokens": cr,
        "cache_write_tokens": cw,
        "reasoning_tokens": r,
        "cost_usd": cost,
    }
    for name in ("provider", "module", "operation", "call_id"):
        try:
            out[name] = check_label(name, get(name))
        except ValueError as e:
            raise ValueError(f"{where}.{e}") from None
    kind = get("kind", "manual")
    if not isinstance(kind, str) or not kind.strip():
        raise ValueError(f"{where}.kind must be a non-empty string, got {kind!r}")
    out["kind"] = kind
    out["path"] = path_of(get("path", []), f"{where}.path")
    out["failed"] = at(where, lambda: check_flag("failed", get("failed", False)))
    out["estimated"] = at(where, lambda: check_flag("estimated", get("estimated", False)))
    ts = get("timestamp", 0.0)
    out["timestamp"] = 0.0 if ts == 0 else at(where, lambda: check_timestamp(ts))
    duration = get("duration_s")
    if duration is not None:
        if (
            isinstance(duration, bool)
            or not isinstance(duration, (int, float))
            or not 0 <= duration < 1e9
        ):
            raise ValueError(
                f"{where}.duration_s must be a non-negative number of seconds or null, "
                f"got {duration!r}"
            )
        duration = float(duration)
    out["duration_s"] = duration
    for name in ("attributes", "metadata"):
        value = get(name, {})
        if value is None:
            value = {}
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ValueError(f"{where}.{name} must be an object, got {value!r:.80}")
        out[name] = value
    return out


def path_of(value: object, where: str) -> tuple[str, ...]:
    """A scope path read from a file: a list of non-empty strings."""
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list of scope names, got {type(value).__name__}")
    for n, part in enumerate(value):
        if not isinstance(part, str) or not part:
            raise ValueError(f"{where}[{n}] must be a non-empty string, got {part!r:.80}")
    return tuple(value)
