"""Render docs/performance.md from a results file, and a console summary.

    python benchmarks/render.py benchmarks/results.json docs/performance.md

The page is ``performance.md.in`` with its ``{{...}}`` placeholders filled from the
results; nothing on it is typed in by hand:

- ``{{machine}}``: machine, interpreter, packages, commits, load average, rounds;
- ``{{table:MODULE}}``, ``{{title:MODULE}}``: the table of one case module (e.g.
  ``{{table:cases_scopes}}``) and its title;
- ``{{before_after}}``: every case before (the baseline commit) and after;
- ``{{changes}}``: each recorded change's gain on the hot rows;
- ``{{other_tables}}``: the tables of case modules the template does not place;
- ``{{targets}}``: the targets, measured and judged;
- ``{{mypyc}}``: pure Python against a mypyc build (``results-mypyc.json``, if present);
- ``{{probe:import}}``, ``{{probe:memory}}``, ``{{probe:completion}}``,
  ``{{probe:litellm_memory}}``;
- ``{{noise}}``: the rows whose code is the same in both versions, before against after;
- ``{{us:KEY}}``, ``{{floor:KEY}}``, ``{{otel:KEY}}``, ``{{pct:KEY}}``: one case's figure
  in microseconds, its ratio to the floor, an OpenTelemetry SDK span's time over it,
  and its change against the baseline.

A case's figure is the 10th percentile of its per-round CPU times (`harness.low`,
which says why not the median); the median is shown beside it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from harness import FLOOR_KEY, OTEL_KEY, low

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "performance.md.in")

#: The floor on a quiet machine (CPython 3.11, the machine of this page's history):
#: a goal given in microseconds is judged as a multiple of the floor measured in the
#: same run, so that a loaded machine does not decide it.
QUIET_FLOOR_US = 0.106

#: (key of the wrapped row, key of the bare row, label): tokenmeter's own work per call.
OWN_WORK = (
    ("litellm_wrapped", "litellm_bare", "tokenmeter's own work per LiteLLM call, sync"),
    (
        "litellm_async_wrapped",
        "litellm_async_bare",
        "tokenmeter's own work per LiteLLM call, async",
    ),
)


def fmt_us(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.3f}"


def fmt_x(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x >= 100:
        return f"{x:,.0f}x"
    if x >= 10:
        return f"{x:.1f}x"
    return f"{x:.2f}x"


def fmt_pct(after: float | None, before: float | None) -> str:
    if after is None or before is None or before == 0:
        return "n/a"
    return f"{(after - before) / before * 100:+.0f}%"


class View:
    """One version's figures in a results dict."""

    def __init__(self, version: dict[str, Any]) -> None:
        self.v = version
        self.r = version["results"]

    def cpu(self, key: str) -> float | None:
        """The case's figure: the 10th percentile of its samples (`harness.low`); the
        median in a results file that kept no samples."""
        res = self.r.get(key)
        if not res or res["status"] != "ok" or not res["cpu_us"]:
            return None
        samples = res.get("cpu_samples_us")
        return float(low(samples)) if samples else float(res["cpu_us"]["median"])

    def median(self, key: str) -> float | None:
        return self.field(key, "cpu_us", "median")

    def field(self, key: str, clock: str, stat: str) -> float | None:
        res = self.r.get(key)
        if not res or res["status"] != "ok" or not res[clock]:
            return None
        return float(res[clock][stat])

    def floor(self) -> float | None:
        return self.cpu(FLOOR_KEY)

    def xfloor(self, key: str) -> float | None:
        m, f = self.cpu(key), self.floor()
        return None if m is None or not f else m / f

    def otel_over(self, key: str) -> float | None:
        m, o = self.cpu(key), self.cpu(OTEL_KEY)
        return None if m is None or not o else o / m

    def own(self, wrapped: str, bare: str) -> float | None:
        w, b = self.cpu(wrapped), self.cpu(bare)
        return None if w is None or b is None else w - b

    def alloc(self, key: str, what: str) -> float | None:
        res = self.r.get(key)
        if not res or not res.get("alloc"):
            return None
        return float(res["alloc"][what])


def _versions(results: dict[str, Any]) -> tuple[View, View | None]:
    vs = results["versions"]
    return View(vs[0]), (View(vs[1]) if len(vs) > 1 else None)


def module_table(results: dict[str, Any], module: str) -> str:
    cur, _ = _versions(results)
    lines = [
        "| operation | CPU (us) | median (us) | IQR (us) | wall, median (us) | x floor "
        "| OTel span / this | peak B/op |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in results["cases"]:
        if c["module"] != module:
            continue
        k = c["key"]
        res = cur.r.get(k, {})
        if res.get("status") != "ok":
            lines.append(f"| {c['label']} | {res.get('status', 'n/a')} | | | | | | |")
            continue
        q1, q3 = cur.field(k, "cpu_us", "q1"), cur.field(k, "cpu_us", "q3")
        iqr = None if q1 is None or q3 is None else q3 - q1
        peak = cur.alloc(k, "peak_bytes_per_op")
        lines.append(
            f"| {c['label']} | {fmt_us(cur.cpu(k))} | {fmt_us(cur.median(k))} | {fmt_us(iqr)} "
            f"| {fmt_us(cur.field(k, 'wall_us', 'median'))} | {fmt_x(cur.xfloor(k))} "
            f"| {fmt_x(cur.otel_over(k))} | {'n/a' if peak is None else f'{peak:,.0f}'} |"
        )
    return "\n".join(lines)


def before_after(results: dict[str, Any]) -> str:
    cur, base = _versions(results)
    if base is None:
        return "_(this run had no baseline: run `make bench`)_"
    lines = [
        f"Before: commit {base.v['commit']}; after: {cur.v['commit']}; the same cases, "
        "interleaved round by round in the same run.",
        "",
        "| operation | before (us) | before x floor | after (us) | after x floor | change |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in results["cases"]:
        k = c["key"]
        lines.append(
            f"| {c['label']} | {fmt_us(base.cpu(k))} | {fmt_x(base.xfloor(k))} "
            f"| {fmt_us(cur.cpu(k))} | {fmt_x(cur.xfloor(k))} "
            f"| {fmt_pct(cur.cpu(k), base.cpu(k))} |"
        )
    for wrapped, bare, label in OWN_WORK:
        b, a = base.own(wrapped, bare), cur.own(wrapped, bare)
        bf, af = base.floor(), cur.floor()
        lines.append(
            f"| {label} (wrapped minus bare) | {fmt_us(b)} | {fmt_x(b / bf if b and bf else None)} "
            f"| {fmt_us(a)} | {fmt_x(a / af if a and af else None)} | {fmt_pct(a, b)} |"
        )
    bo, co = base.otel_over("track_flat"), cur.otel_over("track_flat")
    lines.append(f"| OTel SDK span / scope | {fmt_x(bo)} | | {fmt_x(co)} | | |")
    return "\n".join(lines)


#: Rows whose code is the same in every version (no tokenmeter in them): what they move
#: between versions is the noise of the run.
NOISE_ROWS = (
    FLOOR_KEY,
    "floor_with",
    "lock",
    OTEL_KEY,
    "otel_noop",
    "sync_plain",
    "coro_plain",
    "litellm_bare",
    "litellm_async_bare",
)


def noise(results: dict[str, Any]) -> str:
    """The rows of identical code, after against before, by the figure and by the median."""
    cur, base = _versions(results)
    if base is None:
        return "_(this run had no baseline: run `make bench`)_"
    labels = {c["key"]: c["label"] for c in results["cases"]}
    lines = [
        "| operation (the same code in both) | change, 10th percentile | change, median |",
        "|---|---:|---:|",
    ]
    for k in NOISE_ROWS:
        if k in labels:
            lines.append(
                f"| {labels[k]} | {fmt_pct(cur.cpu(k), base.cpu(k))} "
                f"| {fmt_pct(cur.median(k), base.median(k))} |"
            )
    return "\n".join(lines)


def changes(results: dict[str, Any]) -> str:
    listed = results.get("changes")
    if not listed:
        return "_(no change listed in benchmarks/changes.json)_"
    keys = [
        c["key"] for c in listed[0]["results"]["cases"] if c["key"] not in (FLOOR_KEY, OTEL_KEY)
    ]
    labels = {c["key"]: c["label"] for c in results["cases"]}
    labels.update({w: label.replace("tokenmeter's own work per ", "") for w, _, label in OWN_WORK})
    labels[FLOOR_KEY] = "the floor (same code before and after: the noise)"
    if any(c["key"] == FLOOR_KEY for c in listed[0]["results"]["cases"]):
        keys.insert(0, FLOOR_KEY)
    # A label that leans on the row above it ("the same, ...") is named by its key here.
    heads = [
        f"`{k}`" if labels.get(k, k).startswith("the same") else labels.get(k, k) for k in keys
    ]
    head = "| change | load | " + " | ".join(heads) + " |"
    lines = [
        "CPU time after the change against before it, per operation (negative: faster); "
        "each change timed against its parent commit, the two interleaved, hot rows only.",
        "",
        head,
        "|---|---|" + "---:|" * len(keys),
    ]
    for ch in listed:
        res = ch["results"]
        after, before = View(res["versions"][0]), View(res["versions"][1])
        load = res["loadavg"]["start"]
        cells = [fmt_pct(after.cpu(k), before.cpu(k)) for k in keys]
        lines.append(
            f"| {ch['title']} ({ch['rev'][:7]}) | {load[0] if load else 'n/a'} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def targets(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(target, measured, goal, met) for each target of the performance issue."""
    cur, _ = _versions(results)
    f = cur.floor()
    out: list[tuple[str, str, str, bool | None]] = []

    def add(name: str, measured: str, goal: str, ok: bool | None) -> None:
        out.append((name, measured, goal, ok))

    def judged(value: float | None, limit: float) -> bool | None:
        return None if value is None else value <= limit

    r = cur.otel_over("track_flat")
    add("OTel SDK span / `with tm.track(...)`", fmt_x(r), ">= 25x", None if r is None else r >= 25)
    x = cur.xfloor("sync_tracked")
    add("`@tm.tracked` sync call", f"{fmt_x(x)} floor", "<= 3x floor", judged(x, 3))
    x = cur.xfloor("record_1t")
    add(
        "`tm.record(...)`",
        f"{fmt_us(cur.cpu('record_1t'))} us, {fmt_x(x)} floor",
        "<= 2 us quiet, about 12x floor",
        judged(x, 12),
    )
    goal_x = 2.0 / QUIET_FLOOR_US
    for wrapped, bare, label in OWN_WORK:
        own = cur.own(wrapped, bare)
        ox = None if own is None or not f else own / f
        add(
            label,
            f"{fmt_us(own)} us, {fmt_x(ox)} floor",
            f"<= 2 us ({goal_x:.0f}x floor)",
            judged(ox, goal_x),
        )
    x = cur.xfloor("report1k")
    add(
        "`report()` of 1,000 scopes",
        f"{fmt_us(cur.cpu('report1k'))} us, {fmt_x(x)} floor",
        f"<= 2 ms ({2000 / QUIET_FLOOR_US:,.0f}x floor)",
        judged(x, 2000 / QUIET_FLOOR_US),
    )
    a, b = cur.cpu("report100k"), cur.cpu("report1k")
    lin = None if a is None or b is None else a / b / 100
    add(
        "`report()` grows linearly: (100k time / 1k time) / 100",
        "n/a" if lin is None else f"{lin:.2f}",
        "<= 1.25",
        judged(lin, 1.25),
    )
    for probe_key, what in (("memory", "`record()`"), ("litellm_memory", "LiteLLM")):
        mem = cur.v["probes"].get(probe_key, {})
        for k, goal, limit in (
            ("records_off", "0 B/call", 0.01),
            ("records_on", "<= 150 B/call", 150),
        ):
            per = mem.get(k, {}).get("bytes_per_call")
            add(
                f"memory per {what} call, {k.replace('_', ' ')}",
                "n/a" if per is None else f"{per:.2f} B/call",
                goal,
                judged(per, limit),
            )
    imp = cur.v["probes"].get("import", {})
    extra = imp.get("extra_ms")
    add(
        "`import tokenmeter` (extra over `python -c pass`)",
        "n/a" if extra is None else f"{extra:.1f} ms",
        "<= 50 ms",
        judged(extra, 50),
    )
    return out


def targets_table(results: dict[str, Any]) -> str:
    lines = ["| target | measured | goal | |", "|---|---|---|---|"]
    judged = targets(results)
    for name, measured, goal, ok in judged:
        verdict = "n/a" if ok is None else "met" if ok else "**missed**"
        lines.append(f"| {name} | {measured} | {goal} | {verdict} |")
    met = sum(1 for t in judged if t[3])
    missed = [t[0] for t in judged if t[3] is False]
    lines += [
        "",
        f"{met} of {len(judged)} targets met in this run"
        + ("." if not missed else "; missed: " + "; ".join(missed) + "."),
    ]
    return "\n".join(lines)


#: A comparison with a mypyc build of the hot modules, made apart (not shipped).
MYPYC_RESULTS = os.path.join(os.path.dirname(TEMPLATE), "results-mypyc.json")
MYPYC_ROWS = (
    FLOOR_KEY,
    OTEL_KEY,
    "track_flat",
    "track_prebuilt",
    "engine",
    "sync_tracked",
    "coro_tracked",
)


def mypyc_table(path: str = MYPYC_RESULTS) -> str:
    """Pure Python against the mypyc build, from the results file of that run."""
    if not os.path.exists(path):
        return "_(not measured: no benchmarks/results-mypyc.json)_"
    with open(path) as f:
        res = json.load(f)
    pure, comp = View(res["versions"][0]), View(res["versions"][1])
    labels = {c["key"]: c["label"] for c in res["cases"]}
    lines = [
        f"Pure Python ({pure.v['commit']}) against {comp.v['commit']}, "
        f"{res['config']['rounds']} interleaved rounds, run started {res['started']}, "
        f"load average {res['loadavg']['start']} at the start "
        f"(`benchmarks/results-mypyc.json`):",
        "",
        "| operation | pure (us) | pure x floor | mypyc (us) | mypyc x floor | change |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k in MYPYC_ROWS:
        lines.append(
            f"| {labels.get(k, k)} | {fmt_us(pure.cpu(k))} | {fmt_x(pure.xfloor(k))} "
            f"| {fmt_us(comp.cpu(k))} | {fmt_x(comp.xfloor(k))} "
            f"| {fmt_pct(comp.cpu(k), pure.cpu(k))} |"
        )
    lines.append(
        f"| OTel SDK span / scope | {fmt_x(pure.otel_over('track_flat'))} | "
        f"| {fmt_x(comp.otel_over('track_flat'))} | | |"
    )
    return "\n".join(lines)


def machine(results: dict[str, Any]) -> str:
    m = results["machine"]
    cur, base = _versions(results)
    pk = cur.v["packages"]
    load = results["loadavg"]
    out = [
        f"- CPU: {m['cpu']}, {m['cores_usable']} of {m['cores']} cores usable",
        f"- {m['python']} ({m['python_build']}), {m['os']}",
        "- " + ", ".join(f"{k} {v}" for k, v in pk.items() if v),
        f"- tokenmeter: {cur.v['commit']}"
        + (f"; baseline: {base.v['commit']}" if base is not None else ""),
        f"- load average (1, 5, 15 min): {load['start']} at the start, "
        f"{load['after_timing']} after the timed rounds, {load['end']} at the end",
        f"- {results['config']['rounds']} interleaved rounds, run started "
        f"{results['started']}, took {results['seconds']:.0f} s",
    ]
    if cur.floor():
        out.append(f"- the floor, a `ContextVar` set+reset: {fmt_us(cur.floor())} us of CPU time")
    return "\n".join(out)


def probe(results: dict[str, Any], key: str) -> str:
    cur, base = _versions(results)
    views = [("", cur)] + ([(" (before)", base)] if base is not None else [])
    out = []
    for tag, v in views:
        p = v.v["probes"].get(key)
        if not p:
            out.append(f"- _(not measured{tag})_")
        elif "error" in p:
            out.append(f"- failed{tag}")
        elif key == "import":
            out.append(
                f"- `python -c pass` {p['pass_ms']:.1f} ms, `import tokenmeter` "
                f"{p['import_ms']:.1f} ms: tokenmeter's extra **{p['extra_ms']:.1f} ms**{tag} "
                f"(medians of {p['runs']} interleaved runs; `-X importtime`: "
                f"{p['importtime_ms']:.1f} ms); loaded by it: "
                + ", ".join(f"{m} {'yes' if y else 'no'}" for m, y in p["loaded"].items())
            )
        elif key in ("memory", "litellm_memory"):
            off, on = p["records_off"], p["records_on"]
            what = "`record()`" if key == "memory" else "wrapped `completion()`"
            out.append(
                f"- {p['calls']:,} {what} calls{tag}: records off "
                f"**{off['bytes_per_call']:.2f} B per call** ({off['grown_bytes']:+,} B in all); "
                f"records on **{on['bytes_per_call']:.1f} B per call** "
                f"({on['records_kept']:,} records kept)"
            )
        elif key == "completion":
            q1, q3 = p["own_in_flow_q1_q3_us"]
            out.append(
                f"- without tokenmeter {fmt_us(p['without_us'])} us, with it "
                f"{fmt_us(p['with_us'])} us per call (ratio {p['ratio']:.3f}, "
                f"{p['rounds']} interleaved rounds of {p['calls_per_round']} calls){tag}; "
                f"tokenmeter's own time inside real calls: median {fmt_us(p['own_in_flow_us'])} us "
                f"(IQR {fmt_us(q1)}-{fmt_us(q3)})"
            )
    return "\n".join(out)


def render(results: dict[str, Any], template: str) -> str:
    with open(template) as f:
        text = f.read()
    cur, base = _versions(results)
    inline: dict[str, Callable[[str], str]] = {
        "us": lambda k: fmt_us(cur.cpu(k)),
        "floor": lambda k: fmt_x(cur.xfloor(k)),
        "otel": lambda k: fmt_x(cur.otel_over(k)),
        "pct": lambda k: fmt_pct(cur.cpu(k), base.cpu(k)) if base is not None else "n/a",
        "table": lambda m: module_table(results, m),
        "title": lambda m: next((x["title"] for x in results["modules"] if x["name"] == m), m),
        "probe": lambda k: probe(results, k),
    }
    placed = set(re.findall(r"\{\{table:([A-Za-z0-9_]+)\}\}", text))

    def other_tables() -> str:
        """Every case module the template does not place, under its title."""
        out = []
        for mod in results["modules"]:
            if mod["name"] not in placed:
                out += [f"### {mod['title']}", "", module_table(results, mod["name"]), ""]
        return "\n".join(out).rstrip("\n") or "_(none)_"

    blocks: dict[str, Callable[[], str]] = {
        "other_tables": other_tables,
        "machine": lambda: machine(results),
        "before_after": lambda: before_after(results),
        "noise": lambda: noise(results),
        "changes": lambda: changes(results),
        "targets": lambda: targets_table(results),
        "mypyc": mypyc_table,
    }

    def fill(m: re.Match[str]) -> str:
        name, _, arg = m.group(1).partition(":")
        if arg:
            return inline[name](arg)
        return blocks[name]()

    page = re.sub(r"\{\{([a-z_]+(?::[A-Za-z0-9_]+)?)\}\}", fill, text)
    if results.get("quick"):
        page = "<!-- QUICK RUN: the figures are not meaningful -->\n" + page
    return page


def console(results: dict[str, Any]) -> str:
    cur, base = _versions(results)
    out = [
        f"{'case':<28} {'CPU us':>10} {'x floor':>9}"
        + (f" {'before':>10} {'change':>7}" if base else "")
    ]
    for c in results["cases"]:
        k = c["key"]
        line = f"{k:<28} {fmt_us(cur.cpu(k)):>10} {fmt_x(cur.xfloor(k)):>9}"
        if base is not None:
            line += f" {fmt_us(base.cpu(k)):>10} {fmt_pct(cur.cpu(k), base.cpu(k)):>7}"
        out.append(line)
    out.append("")
    for name, measured, goal, ok in targets(results):
        out.append(
            f"{'--' if ok is None else 'ok' if ok else 'NO'} {name}: {measured} (goal {goal})"
        )
    out.append(f"load average: {results['loadavg']}")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    with open(argv[0]) as f:
        results = json.load(f)
    page = render(results, TEMPLATE)
    with open(argv[1], "w") as f:
        f.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
