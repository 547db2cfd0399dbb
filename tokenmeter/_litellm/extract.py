"""Usage extraction: token counts, model and provider, and cost from LiteLLM's objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import litellm
from litellm.types.utils import ModelResponse as _ModelResponse
from litellm.types.utils import Usage as _LiteLLMUsage
from pydantic import BaseModel

from tokenmeter._acc import MAX_COST_USD
from tokenmeter._pricing import (
    custom_cost,
    custom_price_for,
    litellm_knows,
    litellm_rates_finite,
    price_tokens,
)
from tokenmeter._usage import cost_to_units

#: Kinds whose calls always spend tokens: a response without them (no usage, or LiteLLM's
#: all-zero ``Usage`` for a server that sent none) is estimated.
TOKEN_KINDS = frozenset({"completion", "text_completion", "responses", "embedding"})


def to_int(value: object) -> int:
    """A token count as LiteLLM gives it: a positive int (a bool as 0 or 1), else 0."""
    if type(value) is int:
        return value if value > 0 else 0
    return 1 if value is True else 0


#: (class, name) -> whether normal attribute lookup can find ``name`` on the class.
_on_class: dict[tuple[type, str], bool] = {}


def attr(obj: object, name: str, default: Any = None) -> Any:
    """``getattr(obj, name, default)``, without pydantic's slow path.

    LiteLLM's responses and usage objects are pydantic models: a private attribute
    (``_hidden_params``), an extra (``usage``) or a missing one (most providers'
    ``cache_read_input_tokens``) goes through pydantic's ``__getattr__``, and a
    missing one raises twice: microseconds a lookup, several lookups a call. Read
    the dicts that ``__getattr__`` would read, directly.
    """
    if isinstance(obj, BaseModel):
        fields = obj.__dict__  # a model's __dict__ holds its fields, and only them
        if name in fields:
            return fields[name]
        cls = type(obj)
        found = _on_class.get((cls, name))
        if found is None:
            found = _on_class[(cls, name)] = any(name in vars(k) for k in cls.__mro__)
        if not found:
            for more in (obj.__pydantic_private__, obj.__pydantic_extra__):
                if more and name in more:
                    return more[name]
            return default
    return getattr(obj, name, default)


def tokens(usage: object) -> tuple[int, int, int, int, int]:
    """(input, output, cache_read, cache_write, reasoning) from a LiteLLM usage object."""
    if type(usage) is _LiteLLMUsage:
        return chat_tokens(usage)
    g = attr
    i = g(usage, "prompt_tokens", None)
    if i is None:
        i = g(usage, "input_tokens", 0)  # Responses API naming
    o = g(usage, "completion_tokens", None)
    if o is None:
        o = g(usage, "output_tokens", 0)
    i, o = to_int(i), to_int(o)
    details = g(usage, "prompt_tokens_details", None) or g(usage, "input_tokens_details", None)
    cr = to_int(g(usage, "cache_read_input_tokens", 0))
    if not cr and details is not None:
        cr = to_int(g(details, "cached_tokens", 0))
    cw = to_int(g(usage, "cache_creation_input_tokens", 0))
    if not cw and details is not None:
        cw = to_int(g(details, "cache_creation_tokens", 0))
    out_details = g(usage, "completion_tokens_details", None) or g(
        usage, "output_tokens_details", None
    )
    r = to_int(g(out_details, "reasoning_tokens", 0)) if out_details is not None else 0
    # Keep the invariants: the parts never exceed their totals.
    if cr + cw > i:
        i = cr + cw if i < cr + cw else i
    if r > o:
        o = r
    return i, o, cr, cw, r


_NO_ENTRIES: dict[str, Any] = {}


def chat_tokens(usage: Any) -> tuple[int, int, int, int, int]:
    """`tokens` for LiteLLM's own ``Usage`` class, read straight from its field dicts.

    The same values as the general path (LiteLLM mirrors the Anthropic cache
    fields into ``prompt_tokens_details``), without attribute lookups.
    """
    d = usage.__dict__
    i = to_int(d.get("prompt_tokens"))
    o = to_int(d.get("completion_tokens"))
    extra = usage.__pydantic_extra__ or _NO_ENTRIES
    if not i and not o and extra:
        # LiteLLM 1.80 keeps an image response's input/output tokens in
        # the Usage's extras only, leaving prompt/completion tokens at 0.
        i = to_int(extra.get("input_tokens"))
        o = to_int(extra.get("output_tokens"))
    cr = to_int(extra.get("cache_read_input_tokens"))
    cw = to_int(extra.get("cache_creation_input_tokens"))
    details = d.get("prompt_tokens_details")
    if details is not None:
        dd = details.__dict__
        if not cr:
            cr = to_int(dd.get("cached_tokens"))
        if not cw:
            cw = to_int(dd.get("cache_creation_tokens"))
    out_details = d.get("completion_tokens_details")
    r = to_int(out_details.__dict__.get("reasoning_tokens")) if out_details is not None else 0
    if cr + cw > i:
        i = cr + cw
    if r > o:
        o = r
    return i, o, cr, cw, r


_model_cache: dict[tuple[str, str | None], tuple[str, str | None]] = {}


def model_provider(name: str, provider: str | None) -> tuple[str, str | None]:
    """Split LiteLLM's model name into (model, provider) as LiteLLM resolved it."""
    key = (name, provider)
    hit = _model_cache.get(key)
    if hit is not None:
        return hit
    if provider is None:
        try:
            provider = litellm.get_llm_provider(name)[1]
        except Exception:
            provider = name.split("/", 1)[0] if "/" in name else None
    model = name
    if provider and model.startswith(provider + "/"):
        model = model[len(provider) + 1 :]
    if len(_model_cache) < 10_000:
        _model_cache[key] = (model, provider)
    return model, provider


def requested_model(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    model = kwargs.get("model")
    if model is None and args and isinstance(args[0], str):
        model = args[0]
    return str(model) if model else "unknown"


def cost_units(
    model: str,
    provider: str | None,
    reported: object,
    toks: tuple[int, int, int, int, int],
    custom: bool = True,
) -> int | None:
    """Cost in units: a custom price, else LiteLLM's response_cost; None when unpriced.

    A reported cost is taken when it is a number of dollars (finite, 0 to
    `MAX_COST_USD`); anything else (inf, NaN, a negative or absurd cost, not a
    number) is priced from the tokens as if none was reported. A reported 0 is free
    only where LiteLLM's map prices the model with finite rates: LiteLLM reports a
    cost it cannot compute (rates of inf or NaN) as 0 too.
    """
    price = custom_price_for(model, provider) if custom else None  # None when none is set
    if price is not None:
        cost = custom_cost(price, toks[0], toks[1], toks[2], toks[3])
        return None if cost is None else cost_to_units(cost)
    if type(reported) is float or type(reported) is int:
        if 0 < reported <= MAX_COST_USD:
            return cost_to_units(reported)
        if reported == 0:
            return 0 if litellm_rates_finite(model, provider) else None
    if not litellm_knows(model, provider):
        return None
    c = price_tokens(model, provider, *toks)
    return None if c is None else cost_to_units(c)


#: The leading positional parameters of LiteLLM's entry points, by kind (their async forms
#: pass their arguments on to these): ``text_completion(prompt, model)``,
#: ``completion(model, messages)``, ``embedding(model, input)``, ``responses(input, model)``.
_POSITIONAL = {
    "text_completion": ("prompt", "model"),
    "completion": ("model", "messages"),
    "embedding": ("model", "input"),
    "responses": ("input", "model"),
}


def named_arguments(
    kind: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> Mapping[str, Any]:
    """``kwargs`` with the request's positional arguments under their names.

    Only for LiteLLM's module functions: a Router method's arguments (the Router first)
    are the Router's own to pass on, and are left as given.
    """
    names = _POSITIONAL.get(kind)
    if not args or names is None or not isinstance(args[0], (str, list)):
        return kwargs
    given = dict(zip(names, args))  # noqa: B905 (more positional arguments than names)
    given.update(kwargs)
    return given


def call_model(kind: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """The model a call asked for, its positional arguments read as its entry point takes them."""
    named = named_arguments(kind, args, kwargs)
    return requested_model(args if named is kwargs else (), named)


#: Kinds whose entry point takes something else than the model first (the prompt, the input).
PROMPT_FIRST = frozenset(k for k, names in _POSITIONAL.items() if names[0] != "model")


def positional_model(
    name: object, kind: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> Any:
    """The model of a `PROMPT_FIRST` call, given LiteLLM's name for it.

    LiteLLM names a call's model after its first positional argument: for
    ``text_completion("hi", model=...)`` or ``responses("hi", "gpt-4o-mini")`` that is
    the prompt or input (a string, or a list that is no name at all).
    """
    if args and (name is args[0] or name == args[0]):
        return call_model(kind, args, kwargs)
    return name


def deployment_cost(
    name: str, provider: str | None, model_id: object, toks: tuple[int, int, int, int, int]
) -> float | None:
    """LiteLLM's cost of ``toks`` (input, output, cached and reasoning tokens) at a Router
    deployment's own prices; None if it has none.

    A Router files each deployment's prices (``model_info`` or ``litellm_params``
    ``input_cost_per_token``, ...) in LiteLLM's price map under the deployment's id,
    the ``model_id`` of its answers, and LiteLLM's ``response_cost`` of an answer is
    priced from that entry: an estimate is priced from the same one. Once the deployment
    answered, LiteLLM notes in the entry the provider it called (``text-completion-openai``
    for a text completion), and prices the entry under that provider only ($0 under
    ``openai`` on 1.106): the entry's provider is taken, where it names one.
    """
    entry = litellm.model_cost.get(model_id) if isinstance(model_id, str) else None
    if not isinstance(entry, dict):
        return None
    filed = entry.get("litellm_provider")
    if isinstance(filed, str) and filed:
        provider = filed
    try:
        usage = _LiteLLMUsage(
            prompt_tokens=toks[0],
            completion_tokens=toks[1],
            total_tokens=toks[0] + toks[1],
            prompt_tokens_details={"cached_tokens": toks[2]} if toks[2] else None,
            reasoning_tokens=toks[4] or None,
        )
        cost = litellm.completion_cost(
            completion_response=_ModelResponse(model=name, usage=usage),
            custom_llm_provider=provider,
            router_model_id=model_id,
            custom_pricing=True,
        )
    except Exception:
        return None
    if type(cost) is float or type(cost) is int:
        return float(cost)
    return None


def deployment_id(kwargs: Mapping[str, Any]) -> object:
    """The id of the Router deployment a call was made to (the ``model_info`` a Router
    passes on to LiteLLM's entry point), for `deployment_cost`; None if none."""
    info = kwargs.get("model_info")
    return info.get("id") if isinstance(info, Mapping) else None


def estimate_tokens(
    model: str, kwargs: Mapping[str, Any], result: object
) -> tuple[int, int, int, int, int]:
    """LiteLLM's token counts of the request's input and of the response's text."""
    try:
        text = _output_text(result)
    except Exception:
        text = ""
    return estimate_text(model, kwargs, text)


def estimate_text(
    model: str, kwargs: Mapping[str, Any], text: str
) -> tuple[int, int, int, int, int]:
    """LiteLLM's token counts of the request's input and of ``text``, the answer."""
    try:
        i = _input_tokens(model, kwargs)
    except Exception:
        i = 0
    try:
        o = litellm.token_counter(model=model, text=text) if text else 0
    except Exception:
        o = 0
    return int(i), int(o), 0, 0, 0


def _input_tokens(model: str, kwargs: Mapping[str, Any]) -> int:
    """Chat ``messages``, a text completion's ``prompt``, an embedding's or Responses ``input``."""
    messages = kwargs.get("messages")
    if messages:
        return int(litellm.token_counter(model=model, messages=messages))
    given = kwargs.get("prompt")
    if given is None:
        given = kwargs.get("input")
    if isinstance(given, str):
        given = [given]
    if not isinstance(given, list):
        return 0
    if given and all(type(t) is int for t in given):  # one prompt's token ids
        return len(given)
    ids = [g for g in given if isinstance(g, list) and all(type(t) is int for t in g)]
    texts = [g for g in given if isinstance(g, str) and g]
    if texts or ids:  # prompts as text or as token ids: as many tokens as ids
        counted = sum(int(litellm.token_counter(model=model, text=t)) for t in texts)
        return counted + sum(map(len, ids))
    said = [m for m in given if isinstance(m, dict) and isinstance(m.get("content"), str)]
    return int(litellm.token_counter(model=model, messages=said)) if said else 0


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _output_text(result: object) -> str:
    """The text (and tool arguments) of a chat, text completion or Responses API answer."""
    parts: list[str] = []
    for choice in getattr(result, "choices", None) or ():
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None)
        if isinstance(content, str):
            parts.append(content)
        for tool in getattr(message, "tool_calls", None) or ():
            arguments = _get(_get(tool, "function"), "arguments")
            if isinstance(arguments, str):
                parts.append(arguments)
        text = getattr(choice, "text", None)  # a text completion's choice
        if isinstance(text, str):
            parts.append(text)
    for item in getattr(result, "output", None) or ():  # Responses API
        if not isinstance(item, (dict, BaseModel)):
            continue
        for part in _get(item, "content") or ():
            text = _get(part, "text")
            if isinstance(text, str):
                parts.append(text)
        arguments = _get(item, "arguments")
        if isinstance(arguments, str):
            parts.append(arguments)
    return "".join(parts)
