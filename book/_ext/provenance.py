"""Sphinx extension: each executed chapter says where it came from, and whether it is stale.

- At the top of every page rendered from an executed notebook (`book/NAME.ipynb`), a line from
  the provenance the runner recorded (`unlearnability.book.provenance`): the commit, date, profile,
  parameters, wall time, threads and cold-store cost; and, when the notebook, the resolved
  preset or a library file changed since, a notice naming what changed.
- The directive `{execution-status}` (used by `book/execution.md`) renders one table row per
  chapter with the same fields, like an execution-status page.

Freshness is judged against the project the book was built from: `$UNLEARN_PROJECT_ROOT`
(set by `unlearnability.book.build.build_site`), else the checkout the library is installed from.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective


def _project_root() -> Path:
    if os.environ.get("UNLEARN_PROJECT_ROOT"):
        return Path(os.environ["UNLEARN_PROJECT_ROOT"])
    import unlearnability

    return Path(unlearnability.__file__).resolve().parents[2]


def _status(srcdir: Path, name: str) -> tuple[dict | None, list[str]]:
    """(provenance block, stale reasons) of the executed chapter `name` in this build's source."""
    from unlearnability.book import provenance

    block = provenance.read(srcdir / "book" / f"{name}.ipynb")
    source = _project_root() / "notebooks" / f"{name}.ipynb"
    reasons = provenance.staleness(block, source, _project_root()) if source.is_file() else []
    return block, reasons


def _banner(app, pagename, templatename, context, doctree) -> None:
    """Prepend the provenance line (and a stale notice) to an executed chapter's page body."""
    from unlearnability.book import provenance

    srcdir = Path(app.srcdir)
    if not pagename.startswith("book/") or not (srcdir / f"{pagename}.ipynb").is_file():
        return
    block, reasons = _status(srcdir, pagename.split("/", 1)[1])
    parts = [f'<p class="provenance-line"><small>{html.escape(provenance.summary_line(block))} '
             '<a href="execution.html">All chapters</a>.</small></p>']
    if reasons:
        parts.insert(0, '<div class="admonition warning provenance-stale"><p>'
                        f'{html.escape(provenance.notice(reasons))}</p></div>')
    context["body"] = "".join(parts) + (context.get("body") or "")


class ExecutionStatus(SphinxDirective):
    """`{execution-status}`: a table of every executed chapter's provenance and freshness."""

    def run(self):
        from unlearnability.book.chapters import list_chapters

        srcdir = Path(self.env.srcdir)
        rows = []
        for ch in list_chapters(_project_root()):
            if ch.kind != "notebook":
                continue
            block, reasons = _status(srcdir, ch.name)
            if not (srcdir / "book" / f"{ch.name}.ipynb").is_file():
                block, reasons = None, ["not executed"]
            b = block or {}
            params = ", ".join(f"{k}={v}" for k, v in (b.get("parameters") or {}).items())
            cells = [ch.name,
                     f"{str(b.get('date', '-'))[:10]}, {(b.get('commit') or '-')[:8]}"
                     + ("" if b.get("clean", True) else " (uncommitted changes)"),
                     str(b.get("profile", "-")) + (f" ({params})" if params else ""),
                     f"{b['wall_seconds'] / 60:.1f} min, {b.get('threads')} thr" if b.get("wall_seconds") is not None else "-",
                     f"{b['cold_minutes']:.0f} min" if b.get("cold_minutes") is not None else "-",
                     "fresh" if not reasons else "stale: " + "; ".join(reasons)]
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        head = ["chapter", "executed (date, commit)", "profile", "wall time", "cold-store cost", "status"]
        table = ('<table class="table execution-status"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head)
                 + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
        return [nodes.raw("", table, format="html")]


def setup(app):
    app.connect("html-page-context", _banner)
    app.add_directive("execution-status", ExecutionStatus)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
