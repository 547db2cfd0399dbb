"""The live ticker on a terminal (a pty), and the per-call log on `tokenmeter.calls`."""

from __future__ import annotations

import logging
import os
import pty
import select
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import litellm
import pytest

import tokenmeter as tm
from tokenmeter import _calls_log, _events

PROGRAM = textwrap.dedent(
    """
    import time
    import tokenmeter as tm

    with {opener}:
        for _ in range(3):
            tm.record(model="gpt-4o", provider="openai", input_tokens=100, output_tokens=50,
                      cost_usd=0.001)  # provider given: LiteLLM is never imported
            time.sleep(0.15)
    print("done")
    """
)


def run_on(
    opener: str, terminal: bool, env: dict[str, str] | None = None, program: str = PROGRAM
) -> tuple[str, str]:
    """Run ``program`` with stderr on a pty (``terminal``) or a pipe: (stdout, stderr)."""
    code = program.format(opener=opener)
    full_env = {**os.environ, **(env or {})}
    if not terminal:
        r = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=60
        )
        return r.stdout, r.stderr
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=slave,
            env={**full_env, "TERM": "xterm", "COLUMNS": "100"},
        )
        os.close(slave)
        chunks = []
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                data = os.read(master, 4096)
            except OSError:  # the pty closed: the program ended
                break
            if not data:
                break
            chunks.append(data)
        out = p.communicate(timeout=30)[0]
    finally:
        os.close(master)
    return out.decode(), b"".join(chunks).decode(errors="replace")


FINAL = "tokenmeter $0.003000 · 450 tokens · 3 calls"


def test_plain_ticker_redraws_one_line_on_a_terminal() -> None:
    """Without rich: \\r-redrawn lines while it runs, the final totals left on the line."""
    out, err = run_on("tm.live(interval=0.05, use_rich=False)", terminal=True)
    assert out == "done\n"
    frames = [f for f in err.replace("\x1b[K", "").replace("\r\n", "\n").split("\r") if f]
    assert len(frames) >= 3  # redrawn as the calls came in
    assert frames[-1].startswith(FINAL + " · ")
    assert frames[-1].endswith("s\n")
    assert any(f.startswith("tokenmeter $0.001000 · 150 tokens · 1 calls") for f in frames)
    assert err.count("\n") == 1  # one line, redrawn in place


def test_rich_ticker_on_a_terminal() -> None:
    """With rich installed, the ticker draws through rich and ends on the final totals."""
    out, err = run_on("tm.live(interval=0.05)", terminal=True)
    assert out == "done\n"
    assert FINAL in err
    assert "\x1b[?25l" in err  # rich hides the cursor while it draws


def test_ticker_is_off_when_stderr_is_not_a_terminal() -> None:
    """Piped stderr (a log file, CI): nothing is drawn."""
    out, err = run_on("tm.live(interval=0.05, use_rich=False)", terminal=False)
    assert (out, err) == ("done\n", "")


def test_tokenmeter_live_env_ticks_for_the_whole_process() -> None:
    """TOKENMETER_LIVE=1 starts a ticker at import; the final totals are drawn at exit."""
    out, err = run_on("open('/dev/null')", terminal=True, env={"TOKENMETER_LIVE": "1"})
    assert out == "done\n"
    assert FINAL in err
    out, err = run_on("open('/dev/null')", terminal=False, env={"TOKENMETER_LIVE": "1"})
    assert (out, err) == ("done\n", "")


def test_live_counts_only_what_was_spent_inside(capsys: pytest.CaptureFixture[str]) -> None:
    """The ticker's totals start at zero when it starts, whatever the meter held before."""
    meter = tm.Meter()
    with meter.track("before"):
        tm.record(model="m", input_tokens=1000, output_tokens=0, cost_usd=1.0)
    ticker = tm.live(meter, use_rich=False)
    ticker._start_usage = meter.root.usage
    with meter.track("after"):
        tm.record(model="m", input_tokens=10, output_tokens=5, cost_usd=0.5)
    u = ticker._usage()
    assert (u.calls, u.total_tokens, u.cost_usd) == (1, 15, 0.5)
    with pytest.raises(ValueError, match="interval must be a positive number"):
        tm.live(interval=0)


# -- tokenmeter.calls -------------------------------------------------------------------


@pytest.fixture
def calls_logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("tokenmeter.calls")
    level = log.level
    yield log
    log.setLevel(level)
    assert _calls_log.OBSERVER not in _events.OBSERVERS


def test_calls_log_one_record_per_call(
    calls_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    """At INFO every call is logged once with scope, model, tokens, cost, duration in extra."""
    assert _calls_log.OBSERVER not in _events.OBSERVERS  # off by default: nothing registered
    with caplog.at_level(logging.INFO, logger="tokenmeter.calls"):
        assert _calls_log.OBSERVER in _events.OBSERVERS
        with tm.track("agent"), tm.track("tool"):
            litellm.completion(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                mock_response="ok",
            )
            tm.record(model="acme", input_tokens=3, output_tokens=4)
    records = [r for r in caplog.records if r.name == "tokenmeter.calls"]
    assert len(records) == 2
    first, second = records
    assert first.scope == "agent/tool"  # type: ignore[attr-defined]
    assert first.model == "gpt-4o-mini"  # type: ignore[attr-defined]
    assert first.total_tokens == first.input_tokens + first.output_tokens > 0  # type: ignore[attr-defined]
    assert first.duration_s > 0  # type: ignore[attr-defined]
    assert first.call_kind == "completion"  # type: ignore[attr-defined]
    assert (second.model, second.input_tokens, second.output_tokens, second.cost_usd) == (  # type: ignore[attr-defined]
        "acme",
        3,
        4,
        None,
    )
    assert second.getMessage() == "agent/tool acme: 7 tokens (3 in, 4 out), unpriced"
    cost = tm.report().by_model()["gpt-4o-mini"].cost_usd
    assert first.cost_usd == pytest.approx(cost, abs=1e-12)  # type: ignore[attr-defined]


def test_calls_log_off_when_the_logger_would_not_emit(calls_logger: logging.Logger) -> None:
    """Below INFO nothing is registered, so calls pay nothing; setLevel turns it on and off."""
    calls_logger.setLevel(logging.WARNING)
    assert _calls_log.OBSERVER not in _events.OBSERVERS
    calls_logger.setLevel(logging.INFO)
    assert _calls_log.OBSERVER in _events.OBSERVERS
    calls_logger.setLevel(logging.NOTSET)
    assert _calls_log.OBSERVER not in _events.OBSERVERS


def test_calls_log_follows_the_root_level_and_logging_disable(calls_logger: logging.Logger) -> None:
    """Root at INFO turns the log on; logging.disable(INFO) and root at WARNING turn it off."""
    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.INFO)
        assert _calls_log.OBSERVER in _events.OBSERVERS
        logging.disable(logging.INFO)
        assert _calls_log.OBSERVER not in _events.OBSERVERS
        logging.disable(logging.NOTSET)
        assert _calls_log.OBSERVER in _events.OBSERVERS
        root.setLevel(logging.WARNING)
        assert _calls_log.OBSERVER not in _events.OBSERVERS
    finally:
        logging.disable(logging.NOTSET)
        root.setLevel(level)


def test_calls_log_leaves_the_logging_module_unpatched() -> None:
    """Importing tokenmeter replaces nothing in logging: the manager's methods are its class's."""
    manager = logging.Logger.manager
    assert "_clear_cache" not in vars(manager)
    assert type(manager) is logging.Manager
    assert logging.Manager._clear_cache.__module__ == "logging"


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_tokenmeter_live_is_drawn_by_the_parent_only(method: str) -> None:
    """With TOKENMETER_LIVE=1 a forked or spawned worker draws nothing: one final line only."""
    opener = (
        "__import__('concurrent.futures').futures.ProcessPoolExecutor(2, "
        f"mp_context=__import__('multiprocessing').get_context('{method}')) as pool"
    )
    program = PROGRAM.replace("time.sleep(0.15)", "pool.submit(time.sleep, 0.15).result()")
    out, err = run_on(opener, terminal=True, env={"TOKENMETER_LIVE": "1"}, program=program)
    assert out == "done\n"
    assert FINAL in err
    assert err.count("\n") == 1  # the parent's last line; no worker drew one
