"""Two services on 127.0.0.1: the scope path travels in W3C baggage and nests the receiver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "otel_two_services.py"


def test_two_services_share_one_tree_through_baggage() -> None:
    """The writer's spans and metrics carry agent/research/write, in the gateway's trace."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("OTEL_PROPAGATORS", None)  # the default propagators: tracecontext,baggage
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, env=env, timeout=240
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "baggage sent: tokenmeter.scope=agent%2Fresearch",
        "gateway exported:",
        "  CLIENT   chat gpt-4o-mini   tokenmeter.scope=agent",
        "  INTERNAL research           tokenmeter.scope=agent/research",
        "  INTERNAL agent              tokenmeter.scope=agent",
        "  tokenmeter.calls{tokenmeter.scope='agent'} = 1",
        "writer exported:",
        "  CLIENT   chat gpt-4o-mini   tokenmeter.scope=agent/research/write",
        "  CLIENT   chat gpt-4o-mini   tokenmeter.scope=agent/research/write",
        "  INTERNAL write              tokenmeter.scope=agent/research/write",
        "  tokenmeter.calls{tokenmeter.scope='agent/research/write'} = 2",
        "writer's own report: write: 2 calls",
        "one trace across both services: True",
        "writer's 'write' span is a child of the gateway's 'research': True",
    ]
