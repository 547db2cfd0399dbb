"""The plugin's settings: options resolved command line > ini > default, and their checks.

The options themselves are declared by the light entry module (``pytest_tokenmeter``),
which must not import tokenmeter; this module reads and validates their values.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from tokenmeter import Usage

from ._core import cost_to_units

if TYPE_CHECKING:
    import pytest

#: Where baselines live by default, under the rootdir (like pytest-benchmark's ``.benchmarks``).
DEFAULT_STORAGE = ".tokenmeter"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

_FIELDS = ("tokens", "cost", "calls")


class SettingsError(ValueError):
    """A bad option or ini value (the plugin turns it into a pytest usage error)."""


@attrs.frozen
class Tolerance:
    """One ``--tokenmeter-compare-fail`` gate: ``tokens:10%``, ``cost:0.01``, ``calls:0``.

    ``amount`` is exact: a percentage, or an absolute amount (cost in 1e-10 USD units).
    """

    field: str
    amount: Fraction
    percent: bool
    text: str

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        """Parse ``FIELD:AMOUNT`` or ``FIELD:PERCENT%`` (FIELD: tokens, cost or calls)."""
        field, sep, amount = text.strip().partition(":")
        field = field.strip().lower()
        amount = amount.strip()
        expected = (
            "expected FIELD:LIMIT with FIELD one of tokens, cost, calls and LIMIT a "
            "percentage (10%) or an absolute amount (tokens:500, calls:0, cost:0.01)"
        )
        if not sep or field not in _FIELDS or not amount:
            raise SettingsError(f"bad tokenmeter compare-fail {text!r}: {expected}")
        percent = amount.endswith("%")
        number = amount[:-1].strip() if percent else amount
        try:
            value = Fraction(number)
        except (ValueError, ZeroDivisionError):
            raise SettingsError(f"bad tokenmeter compare-fail {text!r}: {expected}") from None
        if value < 0:
            raise SettingsError(f"bad tokenmeter compare-fail {text!r}: the limit is negative")
        if not percent and field != "cost" and value.denominator != 1:
            raise SettingsError(f"bad tokenmeter compare-fail {text!r}: {field} is a whole number")
        if not percent and field == "cost":
            value = Fraction(cost_to_units(float(value)))
        return cls(field, value, percent, f"{field}:{amount}")

    def value_of(self, u: Usage) -> int:
        """The compared quantity of ``u`` as an exact integer (cost in 1e-10 USD units)."""
        if self.field == "tokens":
            return u.total_tokens
        if self.field == "calls":
            return u.calls
        return cost_to_units(u.cost_usd)

    def exceeded(self, base: Usage, now: Usage) -> bool:
        """Whether ``now`` grew from ``base`` by more than this tolerance."""
        b, n = self.value_of(base), self.value_of(now)
        if self.percent:
            return n * 100 > b * (100 + self.amount)
        return n - b > self.amount


@attrs.frozen
class Settings:
    """The plugin's options after command line > ini > default resolution."""

    summary: bool = False
    json_path: Path | None = None
    max_cost_usd: float | None = None
    max_tokens: int | None = None
    max_calls: int | None = None
    save: str | None = None
    compare: str | None = None  # "" means the most recent baseline
    compare_fail: tuple[Tolerance, ...] = ()
    storage: Path = Path(DEFAULT_STORAGE)

    @property
    def active(self) -> bool:
        """Whether every test gets a scope and its usage is collected."""
        return bool(
            self.summary
            or self.json_path is not None
            or self.session_limits
            or self.save is not None
            or self.compare is not None
        )

    @property
    def session_limits(self) -> dict[str, float]:
        """The whole-session budget, by kind."""
        out: dict[str, float] = {}
        if self.max_calls is not None:
            out["max_calls"] = self.max_calls
        if self.max_tokens is not None:
            out["max_tokens"] = self.max_tokens
        if self.max_cost_usd is not None:
            out["max_cost_usd"] = self.max_cost_usd
        return out


def parse_int(name: str, text: str) -> int:
    """A non-negative integer option value (``1_000`` and ``1,000`` too), or SettingsError."""
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise SettingsError(f"{name}: expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise SettingsError(f"{name}: expected a non-negative integer, got {text!r}")
    return value


def parse_usd(name: str, text: str) -> float:
    """A non-negative dollar amount (``0.05`` or ``$0.05``), or SettingsError naming the option."""
    try:
        value = float(text.strip().lstrip("$"))
    except ValueError:
        raise SettingsError(f"{name}: expected a dollar amount like 0.05, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise SettingsError(f"{name}: expected a dollar amount like 0.05, got {text!r}")
    return value


def check_name(name: str) -> str:
    """A baseline name: a plain file name (letters, digits, ``.``, ``_``, ``-``)."""
    if not _NAME_RE.match(name):
        raise SettingsError(
            f"--tokenmeter-save: a baseline name is letters, digits, '.', '_' and '-' "
            f"(it names a file under the storage directory), got {name!r}"
        )
    return name


def from_config(config: pytest.Config) -> Settings:
    """Resolve the options: command line, then ini, then the default."""

    def pick(name: str) -> Any:
        value = config.getoption(name)
        if value is not None:
            return value
        value = config.getini(name)
        return value if value not in ("", []) else None

    return resolve(
        summary=pick("tokenmeter"),
        json_path=pick("tokenmeter_json"),
        max_cost_usd=pick("tokenmeter_max_cost_usd"),
        max_tokens=pick("tokenmeter_max_tokens"),
        max_calls=pick("tokenmeter_max_calls"),
        save=config.getoption("tokenmeter_save"),
        compare=pick("tokenmeter_compare"),
        compare_fail=pick("tokenmeter_compare_fail") or [],
        storage=pick("tokenmeter_storage"),
    )


def resolve(
    *,
    summary: object = None,
    json_path: str | None = None,
    max_cost_usd: object = None,
    max_tokens: object = None,
    max_calls: object = None,
    save: str | None = None,
    compare: str | None = None,
    compare_fail: list[str] | tuple[str, ...] = (),
    storage: str | None = None,
) -> Settings:
    """Check raw option values (strings, as typed) and build the `Settings`."""
    tolerances = tuple(Tolerance.parse(g) for g in compare_fail)
    if tolerances and compare is None:
        raise SettingsError(
            "--tokenmeter-compare-fail needs a baseline: add --tokenmeter-compare=NAME"
        )
    return Settings(
        summary=bool(summary),
        json_path=Path(json_path) if json_path else None,
        max_cost_usd=None
        if max_cost_usd is None
        else parse_usd("--tokenmeter-max-cost-usd", str(max_cost_usd)),
        max_tokens=None
        if max_tokens is None
        else parse_int("--tokenmeter-max-tokens", str(max_tokens)),
        max_calls=None
        if max_calls is None
        else parse_int("--tokenmeter-max-calls", str(max_calls)),
        save=None if save is None else check_name(save),
        compare=compare,
        compare_fail=tolerances,
        storage=Path(storage or DEFAULT_STORAGE),
    )
