"""Check a built book in headless Chromium: every altair chart draws and every formula is
typeset, with the network cut off.

    python -m unlearnability.book.browser_check _build/html            # exit 0 = all charts drawn

For every HTML page of the site (indexes and `_static/` skipped):
- static check: no `<script src>` or stylesheet `<link href>` pointing at http(s) or `//` (a CDN);
- pages with charts (altair's `<div id="altair-viz-...">` + `vegaEmbed`) are opened with
  `chromium --headless --dump-dom`, host names resolving to nothing (so a CDN load fails
  instead of silently working), and after the page settles each chart container must hold
  vega's output (`svg.marks` or `canvas.marks`) and no error message. Uncaught JavaScript
  errors on the page (from Chromium's console log) and requests the page made to http(s)
  hosts (from Chromium's net log, the browser's own Google services left out) fail it too;
- each chart and each table must fit the content column of a 1280 px wide window (no
  horizontal scrollbar); pages with tables are opened for that too;
- pages with math (Sphinx's `<span class="math">` / `<div class="math">`) are opened the same
  way and each formula must come out as MathJax's `<mjx-container>` without a TeX error
  (`<mjx-merror>`): MathJax is served from the site (`sphinx-mathjax-offline`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND",
                  "--enable-logging=stderr", "--v=0", "--window-size=1280,900"]  # a desktop reader's window
SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html"}
# hosts the browser itself contacts (updates, accounts, time): not the page's doing
BROWSER_HOSTS = re.compile(r"(^|\.)(google\.com|googleapis\.com|gstatic\.com|gvt1\.com|~notfound)$")
_CHART_ID = re.compile(r'id="(altair-viz-[0-9a-f]+)"')
_CDN_SCRIPT = re.compile(r'<script\b[^>]*\bsrc="((?:https?:)?//[^"]+)"', re.I)
_CDN_LINK = re.compile(r'<link\b(?=[^>]*\brel="(?:stylesheet|preload|modulepreload)")[^>]*\bhref="((?:https?:)?//[^"]+)"', re.I)
_TABLE = re.compile(r"<table\b", re.I)
_MATH = re.compile(r'<(?:span|div)\b[^>]*\bclass="math(?:\s[^"]*)?"')
_CONSOLE = re.compile(r':CONSOLE[:(]\d*\)?\]?\s*"(.*)", source: (\S*)')


@dataclass
class PageReport:
    """What one page showed. `ok` is False if anything failed."""

    page: str
    charts: list[str] = field(default_factory=list)  # chart container ids found in the HTML
    drawn: list[str] = field(default_factory=list)  # ids whose container holds svg/canvas marks
    math: int = 0  # formulas in the HTML
    typeset: int = 0  # formulas MathJax rendered in the browser
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and set(self.drawn) == set(self.charts) and self.typeset >= self.math


@dataclass
class SiteReport:
    """Per-page results for a built site; `ok` when every page passed and enough charts drew."""

    root: str
    pages: list[PageReport] = field(default_factory=list)
    min_charts: int = 0

    @property
    def n_charts(self) -> int:
        return sum(len(p.charts) for p in self.pages)

    @property
    def n_drawn(self) -> int:
        return sum(len(p.drawn) for p in self.pages)

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.pages) and self.n_charts >= self.min_charts

    def summary(self) -> str:
        lines = [f"browser check of {self.root}: {len(self.pages)} pages, "
                 f"{self.n_drawn}/{self.n_charts} charts drawn, "
                 f"{sum(p.typeset for p in self.pages)}/{sum(p.math for p in self.pages)} formulas typeset"]
        for p in self.pages:
            if p.charts or p.math or p.errors:
                mark = "ok  " if p.ok else "FAIL"
                lines.append(f"  {mark} {p.page}: {len(p.drawn)}/{len(p.charts)} charts drawn, "
                             f"{p.typeset}/{p.math} formulas typeset")
                lines += [f"       - {e}" for e in p.errors]
        if self.n_charts < self.min_charts:
            lines.append(f"  FAIL expected at least {self.min_charts} chart(s), found {self.n_charts}")
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


def find_chromium() -> str | None:
    """$CHROMIUM (if executable), else the first Chromium/Chrome on PATH; None if there is none."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return None


def static_problems(html: str) -> list[str]:
    """CDN scripts or stylesheets referenced by a page's HTML."""
    refs = _CDN_SCRIPT.findall(html) + _CDN_LINK.findall(html)
    return [f"references a remote script/stylesheet: {url}" for url in refs]


# Injected into a copy of the page: after the charts drew, record on <body> the width of the
# content column and every chart wider than it (a reader would get a horizontal scrollbar).
MEASURE = """<script>window.addEventListener('load', function () { setTimeout(function () {
  var col = document.querySelector('#main-content article') || document.querySelector('main') || document.body;
  var w = col.clientWidth, wide = [];
  document.querySelectorAll('[id^="altair-viz-"]').forEach(function (el) {
    var m = el.querySelector('svg.marks, canvas.marks');
    var cw = m ? Math.ceil(m.getBoundingClientRect().width) : 0;
    if (cw > w + 1) { wide.push(el.id + ':' + cw); }
  });
  var tables = [];
  col.querySelectorAll('table').forEach(function (t, i) {
    var tw = Math.ceil(Math.max(t.getBoundingClientRect().width, t.scrollWidth));
    var cap = t.querySelector('caption');
    var name = 'table-' + (i + 1) + (cap ? '(' + cap.textContent.trim().slice(0, 40).replace(/[^A-Za-z0-9]+/g, '_') + ')' : '');
    if (tw > w + 1) { tables.push(name + ':' + tw); }
  });
  document.body.setAttribute('data-column-width', String(w));
  document.body.setAttribute('data-wide-charts', wide.join(' '));
  document.body.setAttribute('data-wide-tables', tables.join(' '));
}, 8000); });</script>"""


def render(page: Path, chromium: str, budget_ms: int = 15000, timeout: int = 120) -> tuple[str, list[str], list[str]]:
    """Open `page` in headless Chromium; return (DOM after scripts ran, console lines, URLs requested).
    The page is opened as a copy beside it with MEASURE injected (removed afterwards)."""
    html = page.read_text(encoding="utf-8", errors="replace")
    probe = page.with_name(f".browser-check-{page.name}")
    probe.write_text(html.replace("</body>", MEASURE + "</body>", 1) if "</body>" in html else html + MEASURE,
                     encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="chromium-") as tmp:
        netlog = Path(tmp) / "net.json"
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile", f"--log-net-log={netlog}",
               f"--virtual-time-budget={budget_ms}", "--dump-dom", probe.resolve().as_uri()]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        finally:
            probe.unlink(missing_ok=True)
        if result.returncode != 0 and not result.stdout:
            raise RuntimeError(f"chromium exited {result.returncode}: {result.stderr[-2000:]}")
        console = [f"{m.group(1)} ({m.group(2)})" for m in _CONSOLE.finditer(result.stderr)]
        urls = _requested_urls(netlog)
    return result.stdout, console, urls


def _requested_urls(netlog: Path) -> list[str]:
    """http(s) URLs in Chromium's net log, the browser's own service hosts left out."""
    try:
        text = netlog.read_text(errors="replace")
    except OSError:
        return []
    urls = set(re.findall(r'"url":\s*"(https?://[^"]+)"', text))
    out = []
    for url in sorted(urls):
        host = re.sub(r"^https?://([^/:?#]+).*$", r"\1", url)
        if not BROWSER_HOSTS.search(host):
            out.append(url)
    return out


def check_dom(dom: str, chart_ids: list[str]) -> tuple[list[str], list[str]]:
    """(ids drawn, errors) for the chart containers in a rendered DOM."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(dom, "html.parser")
    drawn, errors = [], []
    for cid in chart_ids:
        el = soup.find(id=cid)
        if el is None:
            errors.append(f"{cid}: container missing from the rendered page")
            continue
        err = el.find(class_="error") or el.find(string=re.compile(r"Error loading script|Javascript Error", re.I))
        if err is not None:
            text = err.get_text(" ", strip=True) if hasattr(err, "get_text") else str(err)
            errors.append(f"{cid}: {text[:300]}")
        elif el.select_one("svg.marks, canvas.marks") is not None:
            drawn.append(cid)
        else:
            errors.append(f"{cid}: nothing drawn (no svg/canvas marks) after the time budget")
    return drawn, errors


def check_widths(dom: str, what: str = "charts") -> list[str]:
    """Charts (or tables, `what="tables"`) wider than the content column, from the attributes
    MEASURE left on <body>."""
    m = re.search(rf'data-wide-{what}="([^"]*)"', dom)
    col = re.search(r'data-column-width="(\d+)"', dom)
    if m is None or col is None:
        return [f"{what[:-1]} widths not measured (the page's load event did not fire in the time budget)"]
    return [f"{item.rsplit(':', 1)[0]}: {item.rsplit(':', 1)[1]} px wide, wider than the {col.group(1)} px content "
            "column (a horizontal scrollbar)" for item in m.group(1).split()]


def check_math(dom: str, expected: int) -> tuple[int, list[str]]:
    """(formulas typeset, errors) in a rendered DOM that should hold `expected` formulas."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(dom, "html.parser")
    done = len(soup.find_all("mjx-container"))
    errors = [f"TeX error: {e.get_text(' ', strip=True)[:200]}" for e in soup.find_all("mjx-merror")]
    if done < expected:
        errors.append(f"{expected - done} of {expected} formulas not typeset (is MathJax served from _static?)")
    return done, errors


def check_page(page: Path, root: Path, chromium: str | None, budget_ms: int = 15000) -> PageReport:
    """Static check of one page, and the browser check when it has charts or math."""
    html = page.read_text(encoding="utf-8", errors="replace")
    report = PageReport(page.relative_to(root).as_posix())
    report.errors += static_problems(html)
    report.charts = list(dict.fromkeys(_CHART_ID.findall(html)))
    if not report.charts and "vegaEmbed(" in html:
        report.errors.append("calls vegaEmbed but has no altair-viz-* container to check")
    report.math = len(_MATH.findall(html))
    tables = bool(_TABLE.search(html))
    if not report.charts and not report.math and not tables:
        return report
    if chromium is None:
        report.errors.append("chromium not found: charts and math not checked")
        return report
    dom, console, urls = render(page, chromium, budget_ms)
    report.drawn, errors = check_dom(dom, report.charts)
    report.errors += errors
    if report.charts:
        report.errors += check_widths(dom)
    if tables:
        report.errors += check_widths(dom, "tables")
    if report.math:
        report.typeset, errors = check_math(dom, report.math)
        report.errors += errors
    report.errors += [f"JavaScript error: {line}" for line in console if "Uncaught" in line]
    report.errors += [f"the page requested {url}" for url in urls]
    return report


def html_pages(html_dir: Path) -> list[Path]:
    """The site's content pages (no _static/_sources, no generated index pages)."""
    pages = []
    for path in sorted(html_dir.rglob("*.html")):
        rel = path.relative_to(html_dir)
        if rel.parts[0].startswith("_") or rel.name in SKIP_PAGES:
            continue
        pages.append(path)
    return pages


def check_site(html_dir: str | Path, chromium: str | None = None, min_charts: int = 0,
               budget_ms: int = 15000) -> SiteReport:
    """Check every page of a built site (see the module doc). Needs Chromium for chart pages."""
    root = Path(html_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a built site (no such folder)")
    chromium = chromium or find_chromium()
    report = SiteReport(str(root), min_charts=min_charts)
    for page in html_pages(root):
        report.pages.append(check_page(page, root, chromium, budget_ms))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unlearnability.book.browser_check",
                                     description="Check that every chart of a built book draws offline.")
    parser.add_argument("html_dir", nargs="?", default="_build/html")
    parser.add_argument("--min-charts", type=int, default=1,
                        help="fail unless the site has at least this many charts (default: %(default)s)")
    parser.add_argument("--chromium", default=None, help="browser binary (default: $CHROMIUM or chromium on PATH)")
    parser.add_argument("--budget-ms", type=int, default=15000, help="virtual time each page gets to draw")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    chromium = args.chromium or find_chromium()
    if chromium is None:
        print("error: chromium not found (apt-get install chromium, or set $CHROMIUM)", file=sys.stderr)
        return 2
    report = check_site(args.html_dir, chromium, args.min_charts, args.budget_ms)
    if args.json:
        print(json.dumps({"ok": report.ok, "pages": [vars(p) | {"ok": p.ok} for p in report.pages]}, indent=2))
    else:
        print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
