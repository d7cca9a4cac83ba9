"""What a chapter's notebook calls while it runs: `show_parameters` (the parameters table and the
command that re-executes the chapter with them), `save_results` (the chapter's numbers, into
`book/NAME.json`) and `save_table` (a table behind a figure, into `book/data/`)."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from unlearnability.book.chapters import RESULTS_ENV, _yaml_flow, chapter_command


def save_results(results: dict[str, Any], path: str | Path | None = None) -> dict[str, Any]:
    """Called by a chapter: merge its headline numbers (every verdict with its numbers) into its
    results file `book/NAME.json` ($UNLEARN_RESULTS, set by the runner). Outside the runner,
    with no path, nothing is written. Returns the results."""
    from unlearnability.book.provenance import merge_json

    target = path or os.environ.get(RESULTS_ENV)
    if target:
        merge_json(target, results)
    return results


def save_table(name: str, table, path: str | Path | None = None) -> Path | None:
    """Called by a chapter: write a per-example table as `book/data/NAME.csv` beside its results
    file (so anyone can recompute its numbers without the run store). Outside the runner, with no
    path, nothing is written. Returns the path written, or None."""
    target = Path(path) if path else (Path(os.environ[RESULTS_ENV]).parent / "data" / f"{name}.csv"
                                      if os.environ.get(RESULTS_ENV) else None)
    if target is None:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(target, index=False, float_format="%.6g")
    return target


# ---------------------------------------------------------------- shown in chapters


_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}
_PLAIN = (type(None), bool, int, float, str, list, tuple, dict)


def _is_parameter(name: str, value: Any) -> bool:
    return (not name.startswith("_") and name not in _IPYTHON_NAMES and isinstance(value, _PLAIN))


class ParametersTable:
    """The parameters a chapter ran with, as a small table (HTML in the book, text elsewhere)."""

    def __init__(self, params: dict[str, Any], chapter: str | None = None):
        self.params = params
        self.chapter = chapter

    def command(self) -> str:
        """The command that re-executes the chapter with exactly these parameters."""
        return chapter_command(self.chapter or "NAME", str(self.params.get("profile", "default")), self.params)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td><code>{html.escape(_yaml_flow(v))}</code></td></tr>"
                       for k, v in self.params.items())
        return ("<div class=\"chapter-parameters\"><table class=\"table\" style=\"width: auto\">"
                "<caption>Parameters this page was executed with</caption>"
                f"<thead><tr><th>parameter</th><th>value</th></tr></thead><tbody>{rows}</tbody></table>"
                f"<p>Re-run this chapter: <code>{html.escape(self.command())}</code></p></div>")

    def __repr__(self) -> str:
        width = max((len(k) for k in self.params), default=0)
        lines = [f"{k:<{width}}  {_yaml_flow(v)}" for k, v in self.params.items()]
        return "\n".join(["Parameters this page was executed with:", *lines, f"re-run: {self.command()}"])


def show_parameters(namespace: dict[str, Any], names: list[str] | None = None,
                    chapter: str | None = None) -> ParametersTable:
    """A table of the parameters a chapter ran with, for the cell right after the parameters.

    Pass `globals()` (plain values are kept: numbers, strings, lists, dicts; modules, functions
    and names starting with "_" are dropped) or an explicit dict; `names` picks and orders.
    `profile` comes first. `chapter` fills in the re-run command shown under the table.
    """
    if names is not None:
        params = {n: namespace[n] for n in names if n in namespace}
    else:
        params = {k: v for k, v in namespace.items() if _is_parameter(k, v)}
    if "profile" in params:
        params = {"profile": params.pop("profile"), **params}
    return ParametersTable(params, chapter)
