"""Check a built book in headless Chromium: every altair chart draws, with the network cut off.

    python -m unlearnability.browser_check _build/html            # exit 0 = all charts drawn

For every HTML page of the site (indexes and `_static/` skipped):
- static check: no `<script src>` or stylesheet `<link href>` pointing at http(s) or `//` (a CDN);
- pages with charts (altair's `<div id="altair-viz-...">` + `vegaEmbed`) are opened with
  `chromium --headless --dump-dom`, host names resolving to nothing (so a CDN load fails
  instead of silently working), and after the page settles each chart container must hold
  vega's output (`svg.marks` or `canvas.marks`) and no error message. Uncaught JavaScript
  errors on the page (from Chromium's console log) and requests the page made to http(s)
  hosts (from Chromium's net log, the browser's own Google services left out) fail it too.
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
                  "--enable-logging=stderr", "--v=0"]
SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html"}
# hosts the browser itself contacts (updates, accounts, time): not the page's doing
BROWSER_HOSTS = re.compile(r"(^|\.)(google\.com|googleapis\.com|gstatic\.com|gvt1\.com|~notfound)$")
_CHART_ID = re.compile(r'id="(altair-viz-[0-9a-f]+)"')
_CDN_SCRIPT = re.compile(r'<script\b[^>]*\bsrc="((?:https?:)?//[^"]+)"', re.I)
_CDN_LINK = re.compile(r'<link\b(?=[^>]*\brel="(?:stylesheet|preload|modulepreload)")[^>]*\bhref="((?:https?:)?//[^"]+)"', re.I)
_CONSOLE = re.compile(r':CONSOLE[:(]\d*\)?\]?\s*"(.*)", source: (\S*)')


@dataclass
class PageReport:
    """What one page showed. `ok` is False if anything failed."""

    page: str
    charts: list[str] = field(default_factory=list)  # chart container ids found in the HTML
    drawn: list[str] = field(default_factory=list)  # ids whose container holds svg/canvas marks
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and set(self.drawn) == set(self.charts)


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
                 f"{self.n_drawn}/{self.n_charts} charts drawn"]
        for p in self.pages:
            if p.charts or p.errors:
                mark = "ok  " if p.ok else "FAIL"
                lines.append(f"  {mark} {p.page}: {len(p.drawn)}/{len(p.charts)} charts drawn")
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


def render(page: Path, chromium: str, budget_ms: int = 15000, timeout: int = 120) -> tuple[str, list[str], list[str]]:
    """Open `page` in headless Chromium; return (DOM after scripts ran, console lines, URLs requested)."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as tmp:
        netlog = Path(tmp) / "net.json"
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile", f"--log-net-log={netlog}",
               f"--virtual-time-budget={budget_ms}", "--dump-dom", page.resolve().as_uri()]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
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


def check_page(page: Path, root: Path, chromium: str | None, budget_ms: int = 15000) -> PageReport:
    """Static check of one page, and the browser check when it has charts."""
    html = page.read_text(encoding="utf-8", errors="replace")
    report = PageReport(page.relative_to(root).as_posix())
    report.errors += static_problems(html)
    report.charts = list(dict.fromkeys(_CHART_ID.findall(html)))
    if not report.charts and "vegaEmbed(" in html:
        report.errors.append("calls vegaEmbed but has no altair-viz-* container to check")
    if not report.charts:
        return report
    if chromium is None:
        report.errors.append("chromium not found: charts not checked")
        return report
    dom, console, urls = render(page, chromium, budget_ms)
    report.drawn, errors = check_dom(dom, report.charts)
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
    parser = argparse.ArgumentParser(prog="python -m unlearnability.browser_check",
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
