""""Try it" boxes: re-executions of a chapter that change its result in an instructive way,
each with its cost read from the run store.

    try_it("unlearnable-examples", profile, [
        Try({"tau": 0.2}, "a looser threshold: fewer unlearnable, more learnable examples"),
        Try({"grpo.lr": 1e-4}, "a smaller step", runs=[{"grpo": {"lr": 1e-4, "seed": s}} for s in seeds]),
    ])

A try lists the GRPO runs it needs (their config overrides, seed included). Runs already in the
store cost nothing; a missing run costs the median training time of the store's finished runs
of the same preset (the sum of `train_log.csv`'s per-step seconds, so evaluations come on top),
and a missing base model the median of the store's pretraining times. The times are what this
machine measured, under whatever else ran beside them; the box says how many runs they come from.
Executed by `unlearn chapter` / `unlearn book`, the box also says what this chapter's own runs,
evaluations and analyses took to make (its cost ledger so far, `ledger.chapter_cost`).
"""

from __future__ import annotations

import html
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from unlearnability.book.chapters import chapter_command
from unlearnability.config import load_config
from unlearnability.store import ledger, runs


@dataclass
class Try:
    params: dict[str, Any]  # chapter parameters as on the command line; dotted keys are config overrides
    why: str  # what changes, and what to look for
    runs: list[dict[str, Any]] = field(default_factory=list)  # config overrides of each GRPO run it needs
    bases: list[dict[str, Any]] = field(default_factory=list)  # config overrides of base models it needs alone
    also: str = ""  # other work it redoes that the store does not time (e.g. "a new gradient analysis")
    chapter: str = ""  # re-execute this chapter instead of the box's own (the introduction points ahead)


def seeded(overrides: dict | None, change: dict, seeds: list[int]) -> list[dict[str, Any]]:
    """The config overrides of one GRPO run per seed: `overrides` + `change` + the seed."""
    from unlearnability.config import merge_overrides

    return [merge_overrides(overrides, change, {"grpo": {"seed": int(s)}}) for s in seeds]


command = chapter_command  # the re-execution command of a try (the parameters table's, book.py)


def store_times(profile: str, store: Path | None = None) -> dict[str, list[float]]:
    """Minutes of the store's finished GRPO runs of `profile` at its step count, and of its
    pretrained base models with as many phases as the profile's (with or without a final
    phase, `pretrain.anneal_styles`; a two-phase base records both): {"grpo": [...], "pretrain": [...]}."""
    store = Path(store) if store else runs.home()
    profile_cfg = load_config(profile)
    steps = profile_cfg.grpo.steps
    two_phase = profile_cfg.pretrain.anneal_styles is not None
    out: dict[str, list[float]] = {"grpo": [], "pretrain": []}
    for run in sorted((store / "grpo").glob("*/DONE")):
        folder = run.parent
        try:
            cfg = yaml.safe_load((folder / "config.yaml").read_text())
            log = pd.read_csv(folder / "train_log.csv")
        except (OSError, ValueError, yaml.YAMLError):
            continue
        if cfg.get("name") == profile and cfg.get("grpo", {}).get("steps") == steps and len(log) == steps:
            out["grpo"].append(float(log["seconds"].sum()) / 60)
    for f in sorted((store / "base").glob("*/pretrain_seconds.txt")):
        try:
            cfg = yaml.safe_load((f.parent / "config.yaml").read_text())
            if cfg.get("name") == profile and (cfg.get("pretrain", {}).get("anneal_styles") is not None) == two_phase:
                out["pretrain"].append(float(f.read_text().split()[0]) / 60)
        except (OSError, ValueError, IndexError, yaml.YAMLError):
            continue
    return out


def missing(profile: str, run_overrides: list[dict[str, Any]],
            base_overrides: list[dict[str, Any]] = ()) -> tuple[int, int]:
    """(base models, GRPO runs) that these runs and base models need and the store lacks."""
    bases, grpo = set(), 0
    for ov in base_overrides:
        cfg = load_config(profile, ov)
        if not runs.is_done(runs.base_dir(cfg)):
            bases.add(runs.base_dir(cfg))
    for ov in run_overrides:
        cfg = load_config(profile, ov)
        if not runs.is_done(runs.grpo_dir(cfg)):
            grpo += 1
            if not runs.is_done(runs.base_dir(cfg)):
                bases.add(runs.base_dir(cfg))
    return len(bases), grpo


def _dur(minutes: float) -> str:
    return f"{minutes * 60:.0f} s" if minutes < 1 else f"{minutes:.0f} min"


def cost(profile: str, t: Try, times: dict[str, list[float]]) -> str:
    if not t.runs and not t.bases:
        return f"{t.also} (not timed from the store)" if t.also else \
            "no new training: every run is reused from the store"
    also = f", plus {t.also}" if t.also else ""
    n_base, n_grpo = missing(profile, t.runs, t.bases)
    if n_base == n_grpo == 0:
        need = len(t.runs) + len(t.bases)
        held = f"the {need} run(s) it needs are already in the store" if need else "every run is reused from the store"
        return f"no new training: {held}{also}"
    parts, total = [], 0.0
    for n, kind, label in ((n_base, "pretrain", "pretraining"), (n_grpo, "grpo", "GRPO run")):
        if not n:
            continue
        if times[kind]:
            each = statistics.median(times[kind])
            total += n * each
            parts.append(f"{n} {label}{'s' if n > 1 else ''} x {_dur(each)} "
                         f"(median of {len(times[kind])} in the store)")
        else:
            parts.append(f"{n} {label}{'s' if n > 1 else ''} (none in the store to time)")
    head = f"about {_dur(total)} of training" if total else "training"
    return f"{head} on this machine: " + " + ".join(parts) + f", then their evaluations{also}"


class TryIt:
    """The box (HTML in the book, text elsewhere)."""

    def __init__(self, chapter: str, profile: str, tries: list[Try], store: Path | None = None):
        times = store_times(profile, store)
        self.rows = [(command(t.chapter or chapter, profile, t.params), t.why, cost(profile, t, times)) for t in tries]
        self.cold = cold_line(ledger.chapter_cost())

    def _repr_html_(self) -> str:
        items = "".join(f"<li><p><code>{html.escape(cmd)}</code></p><p>{html.escape(why)} "
                        f"<em>Cost: {html.escape(c)}.</em></p></li>" for cmd, why, c in self.rows)
        cold = f"<p>{html.escape(self.cold)}</p>" if self.cold else ""
        return ('<div class="admonition tip"><p class="admonition-title">Try it</p>'
                f"{cold}<ul>{items}</ul></div>")

    def __repr__(self) -> str:
        return "\n".join(["Try it:"] + ([self.cold] if self.cold else [])
                         + [f"- {cmd}\n  {why} Cost: {c}." for cmd, why, c in self.rows])


def cold_line(spent: tuple[float, int, int] | None) -> str:
    """One sentence on what this execution's run-store artifacts took to make (ledger.chapter_cost)."""
    if spent is None or spent[1] + spent[2] == 0:
        return ""
    seconds, timed, untimed = spent
    head = "at least " if untimed else ""
    tail = f"; {untimed} of them were made before the store timed its artifacts and are not counted" if untimed else ""
    return (f"From an empty run store, the {timed + untimed} runs, evaluations and analyses this chapter used "
            f"took {head}{_dur(seconds / 60)} to make on the machine that executed it{tail}.")


def try_it(chapter: str, profile: str, tries: list[Try]) -> TryIt:
    return TryIt(chapter, profile, tries)
