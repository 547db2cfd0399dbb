"""The HTML report: self-contained, escaped, and right in a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tokenmeter as tm
from tokenmeter._html import json_for_script

HOSTILE = "<img src=x onerror=alert(1)>"
CLOSER = "</script><script>alert(2)</script>"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def hostile_report() -> tm.Report:
    """agent > HOSTILE (2 calls, $0.30, model CLOSER), safe ($0.10 + an unpriced call)."""
    meter = tm.Meter()
    with meter.track("agent", note=HOSTILE):
        with meter.track(HOSTILE):
            for _ in range(2):
                tm.record(model=CLOSER, input_tokens=100, output_tokens=50, cost_usd=0.15)
        with meter.track("safe"):
            tm.record(model="gpt-4o", input_tokens=10, output_tokens=5, cost_usd=0.1)
            tm.record(model="acme-ft", input_tokens=7, output_tokens=3, estimated=True)
    rep = meter.report()
    rep.meta["prices"] = {**rep.meta["prices"], "cost_map": HOSTILE}
    return rep


def test_page_is_self_contained_and_escaped() -> None:
    """No URL, no external resource, a CSP, and no data as markup anywhere in the file."""
    page = hostile_report().to_html()
    assert "<img" not in page
    assert CLOSER not in page
    assert page.count("</script>") == 2  # the data block and the page's own script
    assert not re.search(r"https?://", page)
    tags = _tags(page)
    assert not [a for _, attrs in tags for a, _ in attrs if a in ("src", "href", "srcset")]
    assert {t for t, _ in tags} <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "div", "span",
        "label", "input", "table", "thead", "tbody", "tr", "th", "td", "script",
    }  # fmt: skip
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp is not None
    assert csp.group(1).startswith("default-src &#x27;none&#x27;; script-src")
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def _tags(page: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every start tag in ``page`` with its attributes, as a browser's tokenizer sees them."""
    from html.parser import HTMLParser

    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class P(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, attrs))

    P().feed(page)
    return found


def test_json_for_script_round_trips() -> None:
    """The embedded JSON has no <, > or & and parses back to the same data."""
    data = {"name": CLOSER, "x": "a & b <!-- c -->", "sep": "\u2028"}
    text = json_for_script(data)
    assert not set("<>&") & set(text)
    assert json.loads(text) == data


def test_save_html_writes_the_page(tmp_path: Path) -> None:
    """Report.save_html writes to_html's text to the file."""
    rep = hostile_report()
    rep.save_html(tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == rep.to_html()


# -- in a browser -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM) and not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: `make test` installs it (make browser)")
        pytest.skip("chromium is not installed: run `make browser`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Watched:
    """A page with every request, dialog, console error and page error recorded."""

    def __init__(self, browser: Any, url: str) -> None:
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 860})
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.goto(url)
        self.page.wait_for_selector("#icicle .cell")

    def text(self, selector: str) -> str:
        return str(self.page.locator(selector).inner_text())

    def cells(self, table: str, path: str) -> list[str]:
        row = self.page.locator(f'{table} tr[data-path="{path}"] td')
        return [str(t).replace("\xa0", " ").strip() for t in row.all_inner_texts()]


def test_browser_shows_the_numbers(browser: Any, tmp_path: Path) -> None:
    """Chromium renders the totals, the tree, the icicle and node details with exact numbers."""
    path = tmp_path / "report.html"
    hostile_report().save_html(path)
    w = Watched(browser, path.as_uri())
    assert w.text("#total-cost") == "$0.400000*"
    assert w.text("#total-tokens") == "325"
    assert w.text("#total-calls") == "4"
    assert w.cells("#tree-table", "agent/safe") == [
        "safe", "1", "2", "17", "0", "8", "0", "$0.100000*", "$0.100000*", "25.0%",
    ]  # fmt: skip
    icicle = w.page.locator("#icicle .cell")
    assert icicle.all_inner_texts() == ["(total)", "agent", HOSTILE, "safe"]
    # sized by cost: the hostile scope is 3/4 of its parent, safe 1/4
    widths = w.page.eval_on_selector_all(
        "#icicle .cell", "els => els.map(e => parseFloat(e.style.width))"
    )
    assert widths == [100, 100, 75, 25]
    w.page.locator("#icicle .cell", has_text="safe").hover()
    details = w.text("#details")
    assert "agent/safe" in details
    assert "1 unpriced calls: the cost is a lower bound" in details
    assert "1 calls with estimated tokens" in details
    own_vs_inclusive = w.page.locator("#details table").first.locator("tr").all_inner_texts()
    assert own_vs_inclusive[1].split("\t") == ["calls", "2", "2"]
    assert own_vs_inclusive[-1].split("\t") == ["cost", "$0.100000", "$0.100000"]
    w.page.locator("#icicle .cell", has_text="agent").click()  # zoom in
    assert w.page.locator("#icicle .cell").all_inner_texts() == ["agent", HOSTILE, "safe"]
    assert w.page.locator("#crumbs button").all_inner_texts() == ["(total)", "agent"]
    w.page.locator("#crumbs button", has_text="(total)").click()  # and out
    assert w.page.locator("#icicle .cell").count() == 4
    # by tokens: 300 of 325
    w.page.locator("input[value=tokens]").check()
    widths = w.page.eval_on_selector_all(
        "#icicle .cell", "els => els.map(e => Math.round(parseFloat(e.style.width) * 100))"
    )
    assert widths == [10000, 10000, 9231, 769]
    by_model = w.page.locator("#by-model tbody tr").all_inner_texts()
    assert by_model[0].split("\t") == [CLOSER, "2", "200", "100", "300", "$0.300000", "75.0%"]
    assert w.errors == []


def test_browser_hostile_data_is_text_and_nothing_leaves(browser: Any, tmp_path: Path) -> None:
    """A scope named like markup shows as text; no dialog fires; no request leaves the page."""
    path = tmp_path / "report.html"
    hostile_report().save_html(path)
    w = Watched(browser, path.as_uri())
    w.page.locator("#icicle .cell", has_text=HOSTILE).click()
    assert w.page.locator("#details h3").first.inner_text() == f"agent/{HOSTILE}"
    assert CLOSER in w.text("#details")
    assert w.cells("#tree-table", f"agent/{HOSTILE}")[0] == HOSTILE
    assert HOSTILE in w.text("#meta-table")
    assert w.page.locator("img").count() == 0
    assert w.page.evaluate("document.scripts.length") == 2
    w.page.wait_for_timeout(300)
    assert w.dialogs == []
    assert w.requests == [path.as_uri()]
    assert w.errors == []


def test_browser_blocks_a_script_the_csp_does_not_name(browser: Any, tmp_path: Path) -> None:
    """The CSP is in force: an inline script other than the page's own does not run."""
    path = tmp_path / "report.html"
    page = hostile_report().to_html()
    path.write_text(page.replace("</body>", "<script>alert(3)</script></body>"))
    w = Watched(browser, path.as_uri())
    w.page.wait_for_timeout(300)
    assert w.dialogs == []
    assert any("Content Security Policy" in e for e in w.errors)


def test_save_html_writes_a_name_from_undecodable_bytes(tmp_path: Path) -> None:
    """A scope named with a lone surrogate (os.fsdecode of bad bytes) is written as \\udce9."""
    meter = tm.Meter()
    with meter.track("caf\udce9"):
        meter.record(model="gpt-4o", input_tokens=1, output_tokens=1, cost_usd=0.25)
    meter.report().save_html(tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "&nbsp;caf\\udce9</td>" in page
    assert '"name": "caf\\udce9"' in page


def _chain(depth: int) -> tm.Report:
    """Scopes s0 > s1 > ... nested ``depth`` deep, one $0.01 call in the innermost."""
    from contextlib import ExitStack

    meter = tm.Meter()
    with ExitStack() as stack:
        for i in range(depth):
            stack.enter_context(meter.track(f"s{i}"))
        meter.record(model="gpt-4o", input_tokens=1, output_tokens=1, cost_usd=0.01)
    return meter.report()


def test_page_size_grows_linearly_with_depth() -> None:
    """A chain 4,000 deep makes a page twice the size of one 2,000 deep (not four times)."""
    sizes = [len(_chain(depth).to_html().encode()) for depth in (2_000, 4_000)]
    assert sizes[1] < 2.05 * sizes[0]


def test_indentation_stops_at_40_levels() -> None:
    """In a chain 2,000 deep no row is indented past 40 levels; deeper rows show their depth."""
    page = _chain(2_000).to_html()
    assert "&nbsp;" * 121 not in page
    assert "<td>" + "&nbsp;" * 120 + "s39</td>" in page
    assert "<tr><td>" + "&nbsp;" * 120 + "(depth 41) s40</td>" in page
    assert "<tr><td>" + "&nbsp;" * 120 + "(depth 2000) s1999</td>" in page


def test_browser_shows_a_tree_12000_deep(browser: Any, tmp_path: Path) -> None:
    """Chromium draws a 12,000-deep chain with no script error: every bar, the deepest row."""
    path = tmp_path / "deep.html"
    _chain(12_000).save_html(path)
    w = Watched(browser, path.as_uri())
    assert w.errors == []
    assert w.page.locator("#icicle .cell").count() == 12_001
    assert "$0.010000" in w.text("#details")
    row = w.page.locator("#tree-table tbody tr").last.locator("td").all_inner_texts()
    last = [t.replace("\xa0", " ").strip() for t in row]
    assert last[:3] == ["(depth 12000) s11999", "1", "1"]
    w.page.locator("#icicle .cell", has_text="s11999").hover()
    assert w.page.locator("#details h3").first.inner_text().endswith("/s11998/s11999")
