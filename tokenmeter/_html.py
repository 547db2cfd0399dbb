"""A report as one self-contained HTML page: an icicle of the tree, details, tables, metadata.

The page loads nothing (no network, no CDN; it works from ``file://``), and
nothing from the report can run in it: every name and value is HTML-escaped in
the tables, the data for the icicle is embedded as JSON in a non-executed
``<script type="application/json">`` with ``<``, ``>`` and ``&`` escaped, the
script sets text with ``textContent`` only, and a Content-Security-Policy meta
tag allows only this page's own script and style (by hash) and no requests.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any, Protocol

from ._format import Node as ReportNode
from ._format import money
from ._usage import Usage


class Report(Protocol):
    """What the page reads of a `tokenmeter.Report`."""

    meta: dict[str, Any]
    records_dropped: int

    @property
    def root(self) -> ReportNode: ...
    @property
    def total(self) -> Usage: ...
    def walk(self) -> Iterator[ReportNode]: ...
    def by_model(self) -> dict[str, Usage]: ...


def _asset(name: str) -> str:
    return resources.files("tokenmeter").joinpath(name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&`` in it.

    ``</script>`` or ``<!--`` in a value can then neither end the element nor open
    a comment; JSON.parse reads the ``\\u003c`` escapes back as the characters.
    """
    text = json.dumps(data, default=str, allow_nan=False, ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def page_data(report: Report) -> dict[str, Any]:
    """What the page's script reads: the total and a flat list of nodes, parents first.

    Each node names its parent by index (-1 for the top), so any depth of tree
    is embedded without nesting, and no path per node (the script builds a path
    from the parents when it shows one): the data grows with the number of nodes,
    not with their depth squared.
    """
    nodes: list[dict[str, Any]] = []
    stack: list[tuple[ReportNode, int]] = [(report.root, -1)]
    while stack:
        node, parent = stack.pop()
        index = len(nodes)
        nodes.append(
            {
                "parent": parent,
                "name": node.name,
                "entries": node.entries,
                "usage": node.usage.to_dict(),
                "self_usage": node.self_usage.to_dict(),
                "breakdown": [
                    {"model": k[0], "provider": k[1], "usage": u.to_dict()}
                    for k, u in node.breakdown.items()
                ],
            }
        )
        stack.extend((c, index) for c in reversed(list(node.children.values())))
    return {"total": report.total.to_dict(), "root_path": list(report.root.path), "nodes": nodes}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _n(value: int) -> str:
    return f"{value:,}"


def _cost(u: Usage) -> str:
    star = "*" if u.unpriced_calls else ""
    return _e(money(u.cost_usd, 14) + star)


def _share(u: Usage, total: Usage) -> str:
    if total.cost_usd > 0:
        return f"{100 * u.cost_usd / total.cost_usd:.1f}%"
    if total.total_tokens > 0:
        return f"{100 * u.total_tokens / total.total_tokens:.1f}%"
    return "-"


def _cards(total: Usage) -> str:
    cards = [
        ("cost", _cost(total), "total-cost"),
        ("tokens", _n(total.total_tokens), "total-tokens"),
        ("calls", _n(total.calls), "total-calls"),
        ("input / output", f"{_n(total.input_tokens)} / {_n(total.output_tokens)}", "total-io"),
    ]
    out = [
        f'<div class="card"><div class="k">{k}</div><div class="v" id="{i}">{v}</div></div>'
        for k, v, i in cards
    ]
    for n, what in (
        (total.unpriced_calls, "unpriced calls (cost unknown, not $0)"),
        (total.estimated_calls, "calls with estimated tokens"),
        (total.failed_calls, "failed calls"),
    ):
        if n:
            out.append(
                f'<div class="card warn"><div class="k">{what}</div>'
                f'<div class="v">{_n(n)}</div></div>'
            )
    return '<div class="totals">' + "".join(out) + "</div>"


#: Levels of the scope table indented; deeper rows show their depth instead.
MAX_INDENT = 40


def _tree_table(report: Report) -> str:
    total = report.total
    rows = []
    for node in report.walk():
        depth = len(node.path) - len(report.root.path)
        name = node.name if node.path else "(total)"
        if depth > MAX_INDENT:  # indenting each row by its depth would grow as depth squared
            name = f"(depth {depth}) {name}"
        u, s = node.usage, node.self_usage
        # data-path (what tests and scripts pick a row by) up to MAX_INDENT levels only:
        # on every row of a deep chain it too would grow as depth squared.
        tr = f'<tr data-path="{_e("/".join(node.path))}">' if depth <= MAX_INDENT else "<tr>"
        rows.append(
            f"{tr}"
            f"<td>{'&nbsp;' * 3 * min(depth, MAX_INDENT)}{_e(name)}</td><td>{_n(node.entries)}</td>"
            f"<td>{_n(u.calls)}</td><td>{_n(u.input_tokens)}</td><td>{_n(u.cache_read_tokens)}</td>"
            f"<td>{_n(u.output_tokens)}</td><td>{_n(u.reasoning_tokens)}</td>"
            f"<td>{_cost(u)}</td><td>{_cost(s)}</td><td>{_share(u, total)}</td></tr>"
        )
    head = (
        "<tr><th>scope</th><th>entries</th><th>calls</th><th>input</th><th>cached</th>"
        "<th>output</th><th>reasoning</th><th>cost</th><th>own cost</th><th>share</th></tr>"
    )
    return (
        f'<table class="data tree" id="tree-table"><thead>{head}</thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _breakdown_table(title: str, rows: Mapping[str, Usage], total: Usage) -> str:
    body = "".join(
        f"<tr><td>{_e(k)}</td><td>{_n(u.calls)}</td><td>{_n(u.input_tokens)}</td>"
        f"<td>{_n(u.output_tokens)}</td><td>{_n(u.total_tokens)}</td><td>{_cost(u)}</td>"
        f"<td>{_share(u, total)}</td></tr>"
        for k, u in rows.items()
    )
    head = (
        f"<tr><th>{_e(title)}</th><th>calls</th><th>input</th><th>output</th><th>tokens</th>"
        "<th>cost</th><th>share</th></tr>"
    )
    return (
        f'<h2>By {_e(title)}</h2><table class="data" id="by-{_e(title)}">'
        f"<thead>{head}</thead><tbody>{body}</tbody></table>"
    )


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, Mapping):
        out.append((prefix, "(none)"))
    else:
        out.append((prefix, "" if value is None else str(value)))


def _meta_table(report: Report) -> str:
    pairs: list[tuple[str, str]] = []
    _flatten("", report.meta, pairs)
    if report.records_dropped:
        pairs.append(("records_dropped", str(report.records_dropped)))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs)
    return f'<h2>Run</h2><table class="meta" id="meta-table"><tbody>{body}</tbody></table>'


def to_html(report: Report, title: str = "tokenmeter report") -> str:
    """The report as the text of one self-contained HTML file."""
    css, js = _asset("_html_page.css"), _asset("_html_page.js")
    csp = (
        "default-src 'none'; "
        f"script-src {_csp_hash(js)}; style-src {_csp_hash(css)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    data = page_data(report)
    total = report.total
    prices = report.meta.get("prices")
    litellm_version = prices.get("litellm_version") if isinstance(prices, Mapping) else None
    sub = " · ".join(
        _e(x)
        for x in (
            f"taken {report.meta.get('created_at', '?')}",
            f"tokenmeter {report.meta.get('tokenmeter_version', '?')}",
            f"LiteLLM {litellm_version or '?'} prices",
        )
    )
    breakdowns = "".join(
        _breakdown_table(name, getattr(report, f"by_{name}")(), total)
        for name in ("model", "provider", "module", "operation")
    )
    unpriced = (
        '<p class="note">* includes calls with no known price: the true cost is higher, '
        "by an unknown amount.</p>"
        if total.unpriced_calls
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{_e(title)}</title>
<style>{css}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class="sub">{sub}</p>
{_cards(total)}
<div class="controls">
<span>size by</span>
<label><input type="radio" name="metric" value="cost"> cost</label>
<label><input type="radio" name="metric" value="tokens"> tokens</label>
<label><input type="radio" name="metric" value="calls"> calls</label>
<span id="crumbs"></span>
</div>
<div id="layout">
<div><div id="icicle" aria-label="scopes sized by the chosen measure"></div>
<p class="note">Each bar is a scope, as wide as its inclusive share; the gap under a bar is its
own calls. Hover for details, click to zoom in, use the buttons above to zoom out.</p></div>
<div id="details"></div>
</div>
<h2>Scopes</h2>
{_tree_table(report)}
{unpriced}
{breakdowns}
{_meta_table(report)}
<script type="application/json" id="tm-data">{json_for_script(data)}</script>
<script>{js}</script>
</body>
</html>
"""


def save_html(report: Report, path: str, title: str = "tokenmeter report") -> None:
    """Write ``to_html(report)`` to ``path`` atomically (lone surrogates as ``\\udcXX``)."""
    from ._atomic import write_atomic

    # A name from undecodable bytes (a lone surrogate) is written as \udcXX, not an error.
    write_atomic(path, to_html(report, title), errors="backslashreplace")
