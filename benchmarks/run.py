"""tokenmeter's benchmarks: time every case, write the results file, render the page.

    make bench          # = the command below: before/after, each change, the page
    python benchmarks/run.py --baseline REV --changes benchmarks/changes.json \\
        --results benchmarks/results.json --render docs/performance.md
    python benchmarks/run.py --quick    # every case and probe once (make test)

Cases live in ``benchmarks/cases_*.py`` (see ``harness.py`` for the interface);
the page is rendered by ``render.py`` from the results file and the template
``benchmarks/performance.md.in``, so every figure on it comes from the run.

``--baseline REV`` times the same cases against tokenmeter's source at commit
REV in a second worker process, rounds interleaved with the working tree, so the
before/after comparison is made on the same machine at the same time.
``--changes FILE`` times the hot rows of each commit listed there against its
parent commit (each pair interleaved, one pair at a time) to record each change's
gain. Exits non-zero if a case or probe fails on the working tree.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any

import harness
import render

_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:5.1f}s] {msg}", file=sys.stderr, flush=True)


def measure_changes(path: str, log: Any) -> list[dict[str, Any]]:
    """Each listed commit against its parent, hot rows only, one pair at a time."""
    with open(path) as f:
        listed = json.load(f)["changes"]
    out = []
    for change in listed:
        rev = change["rev"]
        log(f"change {rev}: {change['title']}")
        res = harness.run_versions(
            [("after", rev), ("before", f"{rev}^")],
            harness.CHANGE_RUN,
            log,
            hot_only=True,
            probes=False,
        )
        out.append({**change, "results": res})
    return out


def failures(results: dict[str, Any]) -> list[str]:
    """What failed on the working tree: cases with errors, probes that raised."""
    current = results["versions"][0]
    bad = [
        f"case {k}:\n{r['detail']}" for k, r in current["results"].items() if r["status"] == "error"
    ]
    bad += [f"probe {k}:\n{p['error']}" for k, p in current["probes"].items() if "error" in p]
    return bad


def positive(text: str) -> int:
    """A whole number of at least 1, for argparse."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {n}")
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each case once: check it runs")
    parser.add_argument("--baseline", metavar="REV", help="also time tokenmeter at commit REV")
    parser.add_argument("--changes", metavar="FILE", help="time each listed commit vs its parent")
    parser.add_argument("--results", metavar="PATH", help="write the results file (JSON) here")
    parser.add_argument("--render", metavar="PATH", help="render the page from the results here")
    parser.add_argument("--modules", help="only these case modules (comma-separated names)")
    parser.add_argument("--no-probes", action="store_true", help="skip import/memory/whole calls")
    parser.add_argument("--rounds", type=positive, help="interleaved rounds (full run: 25)")
    parser.add_argument(
        "--restart-every",
        type=positive,
        metavar="N",
        help="fresh worker processes every N rounds (full run: 1)",
    )
    args = parser.parse_args(argv)
    cfg = harness.QUICK_RUN if args.quick else harness.FULL_RUN
    if args.rounds:
        cfg = dataclasses.replace(cfg, rounds=args.rounds)
    if args.restart_every:
        cfg = dataclasses.replace(cfg, restart_every=args.restart_every)
    versions: list[tuple[str, str | None]] = [("current", None)]
    if args.baseline:
        versions.append(("baseline", args.baseline))
    results = harness.run_versions(
        versions,
        cfg,
        log,
        probes=not args.no_probes,
        modules=args.modules.split(",") if args.modules else None,
    )
    if args.changes and not args.quick:
        results["changes"] = measure_changes(args.changes, log)
    if args.results:
        os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
        with open(args.results, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
    print(render.console(results))
    if args.render:
        page = render.render(results, render.TEMPLATE)
        with open(args.render, "w") as f:
            f.write(page)
        log(f"wrote {args.render}")
    bad = failures(results)
    for b in bad:
        log(f"\nFAILED {b}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
