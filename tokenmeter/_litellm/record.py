"""Recording a finished call (answered or failed) on the scope that made it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tokenmeter import _events
from tokenmeter._budgets import count_unchecked_start
from tokenmeter._frame import Frame
from tokenmeter._kept import call_row
from tokenmeter._record import CallRecord
from tokenmeter._tree import add, kept_shapes

from .extract import (
    PROMPT_FIRST,
    TOKEN_KINDS,
    attr,
    call_model,
    cost_units,
    deployment_cost,
    estimate_tokens,
    model_provider,
    named_arguments,
    positional_model,
    tokens,
)


class CallState:
    """The state of an instrumented call in progress, the value of ``IN_CALL`` meanwhile.

    LiteLLM's own retries, fallbacks and Router attempts inside the call find it,
    pass through, and count here. Class attributes are the defaults, so making
    one is a bare allocation.
    """

    attempts = 1  # the call itself; attempts inside it add to this
    streams = 0  # streams attached by attempts inside it
    # (model name, provider, response_cost) of the inner attempt that answered.
    answered: tuple[Any, Any, Any] | None = None


def record_result(
    frame: Frame,
    kind: str,
    result: object,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    started: float,
    state: CallState | None,
) -> None:
    """Record a finished, non-streaming call on ``frame``'s scope."""
    if state is not None and state.streams:
        # An attempt inside answered with a stream, which records the call; this result
        # wraps it (a Router's async text stream from LiteLLM 1.106 on).
        return
    hp: Any = attr(result, "_hidden_params")
    if not isinstance(hp, dict) and not hasattr(hp, "get"):  # TextCompletionResponse: HiddenParams
        hp = {}
    name = hp.get("litellm_model_name")
    provider_name = hp.get("custom_llm_provider")
    reported_cost = hp.get("response_cost")
    # The key `defer` looks this scope's tally up by, next time (LiteLLM's names).
    alias = (name, provider_name, frame.module, frame.operation) if name else None
    if args and kind in PROMPT_FIRST:
        name = positional_model(name, kind, args, kwargs)
        alias = None
    if not name:
        name = call_model(kind, args, kwargs)
    if state is not None and state.answered is not None:
        # A fallback or Router attempt answered: its model, provider and cost.
        name, provider_name, reported_cost = state.answered
        alias = None
    model, provider = model_provider(str(name), provider_name)
    cache_hit = bool(hp.get("cache_hit"))
    estimated = False
    usage = attr(result, "usage")
    if cache_hit:
        toks = (0, 0, 0, 0, 0)
        cost: int | None = 0
    else:
        toks = (0, 0, 0, 0, 0) if usage is None else tokens(usage)
        if not (toks[0] or toks[1]) and kind in TOKEN_KINDS:
            # No usage, or LiteLLM's all-zero one for a server that sent none: estimated,
            # and priced from the estimate (LiteLLM's cost of no tokens is $0).
            toks = estimate_tokens(model, named_arguments(kind, args, kwargs), result)
            estimated = True
            if reported_cost == 0:
                # LiteLLM's cost of no tokens; a Router deployment's own prices, if it has
                # any, as LiteLLM prices the deployment's answers.
                reported_cost = deployment_cost(str(name), provider_name, hp.get("model_id"), toks)
        cost = cost_units(model, provider, reported_cost, toks)
    meta: dict[str, Any] | None = None
    seconds = getattr(result, "duration", None) if kind == "transcription" else None
    if cache_hit or estimated or seconds or (state is not None and state.attempts > 1):
        meta = {}
        if isinstance(seconds, (int, float)) and seconds > 0:
            meta["audio_seconds"] = float(seconds)
        if cache_hit:
            meta["cache_hit"] = True
        if estimated:
            meta["usage_missing"] = True
        if state is not None and state.attempts > 1:
            meta["attempts"] = state.attempts
    add_call(frame, kind, model, provider, toks, cost, False, estimated, started, hp, meta, alias)


def add_call(
    frame: Frame,
    kind: str,
    model: str,
    provider: str | None,
    toks: tuple[int, int, int, int, int],
    cost: int | None,
    failed: bool,
    estimated: bool,
    started: float,
    hp: Mapping[str, Any],
    meta: Mapping[str, Any] | None,
    alias: tuple[Any, Any, str | None, str | None] | None = None,
) -> None:
    meter = frame.scope.meter
    if frame.budgets:
        count_unchecked_start(frame, started)
    now = time.time()
    rec = row = None
    keep = meter.keep_records
    if keep and not _events.OBSERVERS:
        # Kept as a compact row, made a record equal to the one below when read.
        row = call_row(
            kept_shapes(meter), frame, kind, model, provider, toks,
            None if cost is None else cost / 10_000_000_000, failed, estimated, now,
            time.perf_counter() - started, hp.get("litellm_call_id"), meta,
        )  # fmt: skip
    if row is None and (keep or _events.OBSERVERS):
        rec = CallRecord(
            model=model,
            provider=provider,
            input_tokens=toks[0],
            output_tokens=toks[1],
            cache_read_tokens=toks[2],
            cache_write_tokens=toks[3],
            reasoning_tokens=toks[4],
            cost_usd=None if cost is None else cost / 10_000_000_000,
            module=frame.module,
            operation=frame.operation,
            path=frame.scope.path,
            kind=kind,
            failed=failed,
            estimated=estimated,
            timestamp=now,
            duration_s=time.perf_counter() - started,
            call_id=hp.get("litellm_call_id"),
            attributes=frame.attributes,
            metadata=meta,
        )
    add(
        meter,
        frame,
        (model, provider, frame.module, frame.operation),
        toks[0],
        toks[1],
        toks[2],
        toks[3],
        toks[4],
        cost,
        failed,
        estimated,
        now,
        rec,
        True,
        alias,
        False,
        row,
    )


def record_failure(
    frame: Frame,
    kind: str,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    started: float,
    exc: BaseException,
) -> None:
    """Record a call that raised: counted in ``failed_calls``, no tokens, no cost."""
    model, provider = model_provider(
        call_model(kind, args, kwargs), getattr(exc, "llm_provider", None) or None
    )
    meta = {"error": type(exc).__name__}
    add_call(frame, kind, model, provider, (0, 0, 0, 0, 0), 0, True, False, started, {}, meta)
