"""Prices: LiteLLM's price map by default, custom per-million-token prices on top."""

from __future__ import annotations

import functools
import math
import os
import sys
from typing import Any

import attrs

from ._acc import MAX_COST_USD
from ._errors import internal_errors_swallowed
from ._forksafe import fork_safe_lock


@attrs.frozen
class Price:
    """A custom price, in USD per million tokens.

    Cache reads and writes default to the input price, reasoning is output.
    """

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None

    def __attrs_post_init__(self) -> None:
        for f in attrs.fields(type(self)):
            v = getattr(self, f.name)
            if v is None and f.default is None:
                continue
            # 10**400 is finite but no float: its costs could not be computed.
            ok = isinstance(v, (int, float)) and 0 <= v <= sys.float_info.max
            if isinstance(v, bool) or not ok:
                raise ValueError(f"{f.name} must be a non-negative finite number, got {v!r}")

    def cost(
        self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int
    ) -> float:
        """The cost in USD of one call with these token counts."""
        cr = self.input_per_mtok if self.cache_read_per_mtok is None else self.cache_read_per_mtok
        cw = self.input_per_mtok if self.cache_write_per_mtok is None else self.cache_write_per_mtok
        fresh = input_tokens - cache_read - cache_write
        return (
            fresh * self.input_per_mtok
            + cache_read * cr
            + cache_write * cw
            + output_tokens * self.output_per_mtok
        ) / 1_000_000


_lock = fork_safe_lock()
CUSTOM_PRICES: dict[str, Price] = {}


def set_price(
    model: str,
    *,
    input_per_mtok: float,
    output_per_mtok: float,
    cache_read_per_mtok: float | None = None,
    cache_write_per_mtok: float | None = None,
) -> Price:
    """Price ``model`` yourself, in USD per million tokens; overrides LiteLLM's price map.

    ``model`` matches a call's model name with or without its provider prefix
    (``"gpt-4o-mini"`` or ``"openai/gpt-4o-mini"``). Returns the price set.
    """
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model must be a non-empty string, got {model!r}")
    price = Price(input_per_mtok, output_per_mtok, cache_read_per_mtok, cache_write_per_mtok)
    with _lock:
        CUSTOM_PRICES[model] = price
    return price


def clear_prices(model: str | None = None) -> None:
    """Forget the custom price of ``model``, or of every model when None."""
    with _lock:
        if model is None:
            CUSTOM_PRICES.clear()
        else:
            CUSTOM_PRICES.pop(model, None)


def custom_prices() -> dict[str, Price]:
    """The custom prices in force, by model."""
    with _lock:
        return dict(CUSTOM_PRICES)


def custom_price_for(model: str, provider: str | None) -> Price | None:
    """The custom price for a call's model, trying ``provider/model`` then ``model``."""
    if not CUSTOM_PRICES:
        return None
    if provider:
        p = CUSTOM_PRICES.get(f"{provider}/{model}")
        if p is not None:
            return p
    p = CUSTOM_PRICES.get(model)
    if p is None and "/" in model:
        p = CUSTOM_PRICES.get(model.split("/", 1)[1])
    return p


def custom_cost(
    price: Price, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int
) -> float | None:
    """``price.cost(...)``, or None (unpriced) past `MAX_COST_USD`.

    An absurd rate makes the call unpriced, as a LiteLLM cost of inf does, never a
    figure that no report could hold.
    """
    cost = price.cost(input_tokens, output_tokens, cache_read, cache_write)
    return cost if cost <= MAX_COST_USD else None  # inf too


def price_tokens(
    model: str,
    provider: str | None,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> float | None:
    """The cost of one call: a custom price, else LiteLLM's map; None when unknown."""
    custom = custom_price_for(model, provider)
    if custom is not None:
        return custom_cost(
            custom, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens
        )
    with internal_errors_swallowed("pricing"):
        return _litellm_price(
            model,
            provider,
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            reasoning_tokens,
        )
    return None


def priceless(entry: object) -> bool:
    """Whether a price map entry is one a LiteLLM Router filed, no price of the model's.

    A Router whose deployment sets its own prices files an entry under
    ``provider/model`` when the model is listed under another provider
    (gpt-3.5-turbo-instruct is ``text-completion-openai``'s): on LiteLLM 1.90 and later
    with no rates (``{}`` or ``{"id": ...}``), which LiteLLM then prices at $0; on 1.80
    with the deployment's prices and ``id``. Neither is the model's price elsewhere: an
    entry with no cost at all, or with the ``id`` of a deployment and no provider. An
    entry of LiteLLM's map whose rates are 0 (a free model) is a price.
    """
    if not isinstance(entry, dict):  # LiteLLM 1.110's entries are dicts of a subclass
        return False
    if "litellm_provider" in entry:
        return False  # LiteLLM's map names a provider in every entry: most end here
    if "id" in entry:
        return True
    return not any("cost" in k and type(v) in (int, float) for k, v in entry.items())


def _entry(model: str, provider: str | None) -> Any:
    """LiteLLM's price map entry for this model, as `_listed` finds it; None if none."""
    found = _listed(model, provider)
    return None if found is None else found[1]


def _listed(model: str, provider: str | None) -> tuple[str, Any] | None:
    """The name the model is priced by and its price map entry: ``model``, then
    ``provider/model``, then ``model`` without its ``provider/`` prefix (`_unprefixed`);
    priceless entries (`priceless`) skipped; None if none."""
    import litellm

    cost_map: dict[str, Any] = litellm.model_cost
    entry = cost_map.get(model)
    if entry is not None and not priceless(entry):
        return model, entry
    if provider:
        entry = cost_map.get(f"{provider}/{model}")
        if entry is not None and not priceless(entry):
            return model, entry
        bare = _unprefixed(model, provider)
        if bare is not None:
            entry = cost_map.get(bare)
            if entry is not None and not priceless(entry):
                return bare, entry
    return None


def _unprefixed(model: str, provider: str) -> str | None:
    """``model`` without a ``provider/`` prefix naming a provider LiteLLM has; None if none.

    The map files most models bare (``gpt-4o-mini``, not ``openai/gpt-4o-mini``), and some
    under another provider than the one a caller names (``gpt-3.5-turbo-instruct`` is
    ``text-completion-openai``'s): a record of ``openai/gpt-3.5-turbo-instruct`` is priced
    by that entry. A prefix that is no provider of LiteLLM's (``foo/``) is part of the name.
    """
    if not model.startswith(provider + "/") or provider not in _litellm_providers():
        return None
    return model[len(provider) + 1 :] or None


@functools.cache
def _litellm_providers() -> frozenset[str]:
    import litellm

    return frozenset(str(getattr(p, "value", p)) for p in litellm.provider_list)


def litellm_knows(model: str, provider: str | None) -> bool:
    """Whether LiteLLM's price map has a price for this model (no lookup noise)."""
    return _entry(model, provider) is not None


def litellm_rates_finite(model: str, provider: str | None) -> bool:
    """Whether LiteLLM's price map has an entry for this model whose rates are all numbers.

    A rate of inf or NaN (a price map entry set by hand, say) makes every cost of the
    model no figure: LiteLLM reports such a cost as 0.
    """
    entry = _entry(model, provider)
    if not isinstance(entry, dict):
        return False
    return all(math.isfinite(v) for k, v in entry.items() if type(v) is float and "cost" in k)


def _litellm_price(
    model: str,
    provider: str | None,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    reasoning_tokens: int,
) -> float | None:
    import litellm
    from litellm.types.utils import CompletionTokensDetailsWrapper, Usage

    found = _listed(model, provider)
    if found is None:
        return None
    model = found[0]  # without a provider prefix, if the map files it so
    usage = Usage(
        prompt_tokens=input_tokens,
        completion_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
        cache_read_input_tokens=cache_read_tokens,
        cache_creation_input_tokens=cache_write_tokens,
        completion_tokens_details=CompletionTokensDetailsWrapper(reasoning_tokens=reasoning_tokens)
        if reasoning_tokens
        else None,
    )
    try:
        if provider and priceless(litellm.model_cost.get(f"{provider}/{model}")):
            # LiteLLM would take that entry, and say $0: the model's own entry prices it.
            raise LookupError(f"{provider}/{model} has no price")
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model,
            custom_llm_provider=provider,
            usage_object=usage,
            # LiteLLM 1.80 prices a provider it has no calculator for by these only.
            prompt_tokens=input_tokens,
            completion_tokens=output_tokens,
        )
    except Exception:
        # Listed under another provider's name (gpt-3.5-turbo-instruct, called through
        # "openai", is LiteLLM's "text-completion-openai"): priced by that entry.
        entry = litellm.model_cost.get(model)
        listed = entry.get("litellm_provider") if isinstance(entry, dict) else None
        if not listed or listed == provider:
            return None
        try:
            prompt_cost, completion_cost = litellm.cost_per_token(
                model=model,
                custom_llm_provider=listed,
                usage_object=usage,
                # LiteLLM 1.80 prices text-completion-openai by these, not usage_object.
                prompt_tokens=input_tokens,
                completion_tokens=output_tokens,
            )
        except Exception:
            return None
    cost = float(prompt_cost) + float(completion_cost)
    return cost if 0.0 <= cost <= MAX_COST_USD else None  # inf, NaN: no price


def provider_for(model: str, *, import_litellm: bool = False) -> str | None:
    """The provider of ``model``: its ``provider/`` prefix, else LiteLLM's resolution.

    LiteLLM is consulted only if it is already imported, or ``import_litellm`` is set.
    """
    if "/" in model:
        return model.split("/", 1)[0]
    if not import_litellm and "litellm" not in sys.modules:
        return None
    known = _providers.get(model)
    if known is not None:
        return known
    with internal_errors_swallowed("provider lookup"):
        import litellm

        entry = litellm.model_cost.get(model)
        if entry and entry.get("litellm_provider"):
            known = str(entry["litellm_provider"])
            if len(_providers) < 10_000:
                _providers[model] = known
            return known
    return None


#: Providers found in LiteLLM's map, by model: ``record()`` asks on every call.
_providers: dict[str, str] = {}
#: The provider of a model `provider_for` named before, else None (its cache's ``get``).
cached_provider = _providers.get


def _has_source_info() -> bool:
    # LiteLLM before 1.81 does not say where its map came from: the environment then tells.
    from litellm.litellm_core_utils import get_model_cost_map

    return hasattr(get_model_cost_map, "get_model_cost_map_source_info")


def _cost_map_source() -> dict[str, Any]:
    """Where LiteLLM's price map came from: its bundled copy ("local") or a fetched one."""
    if "litellm" in sys.modules and _has_source_info():
        with internal_errors_swallowed("price map source"):
            from litellm.litellm_core_utils.get_model_cost_map import (
                get_model_cost_map_source_info,
            )

            info = dict(get_model_cost_map_source_info())
            return {
                "source": "bundled" if info.get("source") == "local" else "fetched",
                "url": info.get("url"),
                "revision": info.get("source_revision"),
                "loaded_at": info.get("loaded_at"),
                "fallback_reason": info.get("fallback_reason"),
            }
    # litellm not imported: no call was priced by it, so say which copy it would use.
    local = os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "").lower() in ("true", "1", "yes")
    return {"source": "bundled" if local else "fetched at import (bundled if offline)"}


def prices_info() -> dict[str, Any]:
    """Which prices a report used: LiteLLM's version and map source, and custom prices."""
    return {
        "source": "litellm",
        "litellm_version": _litellm_version(),
        "cost_map": _cost_map_source(),
        "custom": {k: attrs.asdict(v) for k, v in custom_prices().items()},
    }


@functools.cache
def _litellm_version() -> str | None:
    # Once per process: reading it parses LiteLLM's METADATA file, most of the cost
    # of a small report otherwise.
    from importlib import metadata

    try:
        return metadata.version("litellm")
    except metadata.PackageNotFoundError:  # pragma: no cover - litellm is a dependency
        return None
