"""A live one-line ticker of cost, tokens and calls on stderr, for long runs.

``with tm.live(): ...`` (or ``TOKENMETER_LIVE=1`` in the environment, for the
whole process) redraws one line on stderr a few times a second while the block
runs, and leaves the final totals on it at the end. It draws with ``rich`` when
that is installed, with plain ``\\r`` lines otherwise, and not at all when stderr
is not a terminal (a log file or a CI pipe stays clean). The ticker reads the
meter's totals from its own thread: the calls themselves pay nothing for it.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from ._acc import ACC_SIZE
from ._meter import DEFAULT_METER

if TYPE_CHECKING:
    from ._meter import Meter
    from ._usage import Usage

logger = logging.getLogger("tokenmeter")

#: Seconds between two redraws.
INTERVAL = 0.25
ENV = "TOKENMETER_LIVE"


def line(usage: Usage, elapsed: float) -> str:
    """The ticker's text: ``tokenmeter $0.012345 · 12,345 tokens · 42 calls · 3.2s``."""
    extra = []
    if usage.unpriced_calls:
        extra.append(f"{usage.unpriced_calls:,} unpriced")
    if usage.failed_calls:
        extra.append(f"{usage.failed_calls:,} failed")
    more = f" ({', '.join(extra)})" if extra else ""
    plus = "+" if usage.unpriced_calls else ""
    return (
        f"tokenmeter ${usage.cost_usd:.6f}{plus} · {usage.total_tokens:,} tokens · "
        f"{usage.calls:,} calls{more} · {elapsed:.1f}s"
    )


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Live:
    """The ticker: a context manager (also `start`/`stop`); see `tokenmeter.live`."""

    def __init__(
        self,
        meter: Meter | None = None,
        *,
        interval: float = INTERVAL,
        file: IO[str] | None = None,
        use_rich: bool | None = None,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        self.meter = meter if meter is not None else DEFAULT_METER
        self.interval = float(interval)
        self.file: IO[str] = file if file is not None else sys.stderr
        self._use_rich = use_rich
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rich: Any = None
        self._start_usage: Usage | None = None
        self._t0 = 0.0
        self._last = ""

    @property
    def active(self) -> bool:
        """Whether the ticker is drawing (False when stderr is not a terminal)."""
        return self._thread is not None

    def start(self) -> Live:
        """Start drawing, if the stream is a terminal; idempotent."""
        if self._thread is not None or not _is_terminal(self.file):
            return self
        self._t0 = time.monotonic()
        self._start_usage = self.meter.root.usage
        self._stop.clear()
        if self._use_rich is not False:
            self._rich = _rich_live(self.file)
        self._thread = threading.Thread(target=self._loop, name="tokenmeter-live", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Draw the final line and stop; idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=5)
        try:
            self._draw(final=True)
        except Exception:
            logger.exception("tokenmeter live ticker failed; ignored")

    def __enter__(self) -> Live:
        return self.start()

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _usage(self) -> Usage:
        now = self.meter.root.usage
        start = self._start_usage
        if start is None or start.calls == 0:
            return now
        from ._usage import usage_from_acc, usage_to_acc

        # Only what was spent since the ticker started (a meter may carry earlier work).
        a, b = usage_to_acc(now), usage_to_acc(start)
        return usage_from_acc([max(a[i] - b[i], 0) for i in range(ACC_SIZE)])

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._draw(final=False)
            except Exception:
                logger.exception("tokenmeter live ticker failed; stopped")
                return

    def _draw(self, final: bool) -> None:
        text = line(self._usage(), time.monotonic() - self._t0)
        if self._rich is not None:
            from rich.text import Text

            self._rich.update(Text(text), refresh=True)
            if final:
                self._rich.stop()
            return
        if text == self._last and not final:
            return
        self._last = text
        self.file.write("\r" + text + "\x1b[K" + ("\n" if final else ""))
        self.file.flush()


def _rich_live(stream: IO[str]) -> Any:
    """A started ``rich.live.Live`` on ``stream``, or None without rich."""
    try:
        from rich.console import Console
        from rich.live import Live as RichLive
        from rich.text import Text
    except ImportError:
        return None
    rich_live = RichLive(
        Text(""),
        console=Console(file=stream),
        auto_refresh=False,
        transient=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    rich_live.start()
    return rich_live


def live(
    meter: Meter | None = None,
    *,
    interval: float = INTERVAL,
    file: IO[str] | None = None,
    use_rich: bool | None = None,
) -> Live:
    """A live one-line cost/tokens/calls ticker on stderr while a block runs.

    ``with tm.live(): run_pipeline()`` redraws the line every ``interval``
    seconds with what was spent since the block began (in ``meter``, the
    default meter when None) and leaves the final totals at the end. Drawn with
    ``rich`` when installed (``use_rich=False``: plain ``\\r`` lines), and only
    when ``file`` (stderr by default) is a terminal. ``TOKENMETER_LIVE=1`` in
    the environment starts one for the whole process at ``import tokenmeter``.
    """
    return Live(meter, interval=interval, file=file, use_rich=use_rich)


_from_env: Live | None = None


def start_from_env() -> None:
    """Start the process-wide ticker if ``TOKENMETER_LIVE`` is set (not ``0``); never raises."""
    global _from_env
    if os.environ.get(ENV, "").strip().lower() in ("", "0", "false", "no", "off"):
        return
    try:
        import multiprocessing

        if multiprocessing.parent_process() is not None:
            return  # a pool's worker: the parent process draws the one line
        if _from_env is None:
            _from_env = Live().start()
            atexit.register(_from_env.stop)
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=_forget_in_child)
    except Exception:
        logger.exception("tokenmeter: could not start the TOKENMETER_LIVE ticker; ignored")


def _forget_in_child() -> None:
    """A forked child does not draw the parent's ticker (its thread did not come along)."""
    if _from_env is not None:
        _from_env._thread = None
        _from_env._rich = None
