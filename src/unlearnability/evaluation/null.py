"""Table 1 if RL changed nothing: a null for the groups (testbed-v3 issue; the audit is
shared/notes/table1-null-audit.md).

The groups are read off noisy counts (32 evaluation samples, a few dozen training rollouts per
seed), so some of every group is sampling noise. The null measures how much: every problem keeps
one pass rate q for its initial evaluation, every seed's training draws and every seed's final
evaluation, and Table 1 is computed with the book's own rules on counts drawn from q.

    1. Prior, per stratum (the testbed's tier, MATH's level, else one stratum): Beta(a, b)
       fitted by maximum likelihood of the beta-binomial on the measured initial counts
       (correct c of n) of the stratum's problems (`fit_beta_binomial`: scipy.stats.betabinom,
       scipy.optimize.minimize over the logit of the mean and the log of a + b).
    2. Posterior, per problem: Beta(a + c, b + n - c). (A flat Beta(1 + c, 1 + n - c) counts
       the sampling noise twice and pulls rates towards 0.5: the audit measured easy 29.7%
       against a true 23.6% with it.)
    3. Per replicate: q ~ the posterior; initial correct ~ Binomial(n_initial, q); per seed
       s: training positives ~ Binomial(rollouts_s, q), with rollouts_s the run's own rollouts
       of that problem (`groups.training_positives`), and final correct ~ Binomial(n_final_s, q).
       The training positive rate is taken equal to the evaluation pass rate (training samples
       at T = 1, evaluation at T = 0.7: a simplification, as in the audit).
    4. Labels and groups by `groups.label_codes` / `groups.combine_codes`, the functions
       `groups.classify` uses (with `p`: the chance-corrected rule, `groups.rewarded_mask`).
    5. Per quantity, over replicates: the mean and the central `level` interval (percentiles).

Quantities (columns of `NullResult.draws`, keys of `measured`): the five groups' counts, the
paper's no_reward column (`no_reward_union`: the union over seeds, whatever the pass rates),
`switch_non_easy` (`groups.switches`' any_switch: share of non-easy problems whose label differs
between seeds), `switch_rewarded` / `kappa` (`calibration.seed_switches`: the same share and
Fleiss' kappa over the non-easy problems with a positive in some seed, the book's measured kappa,
both via `calibration.kappa_from_counts`, statsmodels), and `agreement` (`calibration.agreement`:
the share of the non-easy problems whose positives exceed guessing's 99% quantile in some seed,
chance 1/`chance_p`, that get one label in every seed; any positive when `chance_p` is None).

The §3 chapter's pieces: `table1_beside_paper` (Table 1 with the null and the paper's numbers),
`chance_corrected_table`, and the summary lines `null_note` and `agreement_note`.

`simulate_rates` runs the same core on given true rates instead of a study's posteriors (to size a
regime before training: benchmarks/null_frontier.py); `group_caveat` turns a chapter's groups and
its study into one sentence per group against the null (cached per study within the process).

Everything is vectorised over problems and replicates (numpy, one seeded Generator): 1000
replicates of 1024 problems x 3 seeds take about a second, and the same inputs and seed give
the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from unlearnability.evaluation import groups as G
from unlearnability.evaluation.calibration import (
    agreement,
    kappa_from_counts,
    seed_switches,
)
from unlearnability.paper import TAU

COUNTS = G.GROUPS + ["no_reward_union"]  # quantities that are numbers of problems
SHARES = ["switch_non_easy", "switch_rewarded", "agreement"]  # shares of problems, 0-1
QUANTITIES = COUNTS + SHARES + ["kappa"]
LABEL = {"easy": "easy", "learnable": "learnable", "unlearnable": "unlearnable", "no_reward": "no positive reward",
         "ambiguous": "ambiguous", "no_reward_union": "no positive reward, union over seeds (the paper's column)",
         "switch_non_easy": "label switching, non-easy problems",
         "switch_rewarded": "label switching, non-easy problems with a positive",
         "agreement": "one label in every seed, non-easy problems with positives above chance in some seed",
         "kappa": "Fleiss' kappa"}
VERDICTS = ("above the null", "within", "below")


# ----------------------------------------------------------------------------- prior and posterior


def fit_beta_binomial(correct, n) -> tuple[float, float]:
    """Maximum-likelihood Beta(a, b) of a beta-binomial: correct[i] ~ Binomial(n[i], q_i), q_i ~ Beta(a, b).

    Fitted over the logit of the mean a / (a + b) (bounded to +-12) and the log of the
    concentration a + b (bounded to [0.01, 1e6]; a stratum without overdispersion sits at the
    upper bound, i.e. one rate for all). Problems with n = 0 carry no information and are left
    out; with none left the prior is Beta(1, 1).
    """
    from scipy.optimize import minimize
    from scipy.special import expit
    from scipy.stats import betabinom

    c, n = np.asarray(correct, dtype=int).ravel(), np.asarray(n, dtype=int).ravel()
    keep = n > 0
    c, n = c[keep], n[keep]
    if len(c) == 0:
        return 1.0, 1.0
    pairs, weight = np.unique(np.stack([c, n], axis=1), axis=0, return_counts=True)
    pc, pn = pairs[:, 0], pairs[:, 1]

    def nll(theta):
        m, conc = expit(theta[0]), np.exp(theta[1])
        return -float(np.sum(weight * betabinom.logpmf(pc, pn, m * conc, (1 - m) * conc)))

    m0 = np.clip((c.sum() + 0.5) / (n.sum() + 1.0), 1e-5, 1 - 1e-5)
    best = None
    for conc0 in (3.0, 100.0):  # two starts: the concentration's likelihood can be flat
        res = minimize(nll, x0=[np.log(m0 / (1 - m0)), np.log(conc0)], method="L-BFGS-B",
                       bounds=[(-12.0, 12.0), (np.log(1e-2), np.log(1e6))])
        if best is None or res.fun < best.fun:
            best = res
    m, conc = float(expit(best.x[0])), float(np.exp(best.x[1]))
    return m * conc, (1 - m) * conc


def fit_prior(correct, n, strata=None) -> pd.DataFrame:
    """`fit_beta_binomial` per stratum: index stratum; columns a, b, mean, concentration, problems."""
    c, n = np.asarray(correct, dtype=int), np.asarray(n, dtype=int)
    s = np.zeros(len(c), dtype=int) if strata is None else np.asarray(strata)
    rows = {}
    for key in pd.unique(s):
        m = s == key
        a, b = fit_beta_binomial(c[m], n[m])
        rows[key] = {"a": a, "b": b, "mean": a / (a + b), "concentration": a + b, "problems": int(m.sum())}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "stratum"
    return out.sort_index()


def posterior(correct, n, strata, prior: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each problem's Beta posterior (A, B) = (a + c, b + n - c) under its stratum's prior."""
    c, n = np.asarray(correct, dtype=float), np.asarray(n, dtype=float)
    s = np.zeros(len(c), dtype=int) if strata is None else np.asarray(strata)
    a = prior["a"].reindex(s).to_numpy(float)
    b = prior["b"].reindex(s).to_numpy(float)
    return a + c, b + n - c


# ----------------------------------------------------------------------------- the simulation


@dataclass
class NullResult:
    """The null's replicates and how they were made."""

    draws: pd.DataFrame  # one row per replicate, one column per quantity (QUANTITIES)
    problems: int
    prior: pd.DataFrame  # `fit_prior`'s table
    seeds: list
    tau: float
    p: float | None
    level: float
    chance_p: float | None = None  # `agreement`'s above-chance rule (None: any positive)

    def summary(self, level: float | None = None) -> pd.DataFrame:
        """Per quantity: mean, lo, hi (the central `level` interval over replicates); counts
        also as percent of the problems (mean_percent, lo_percent, hi_percent)."""
        level = self.level if level is None else level
        d = self.draws
        lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
        out = pd.DataFrame({"mean": d.mean(), "lo": d.quantile(lo_q), "hi": d.quantile(hi_q)})
        pct = 100 / max(self.problems, 1)
        for col in ("mean", "lo", "hi"):
            out[f"{col}_percent"] = np.where(out.index.isin(COUNTS), out[col] * pct,
                                             np.where(out.index.isin(SHARES), out[col] * 100, np.nan))
        return out.reindex(QUANTITIES)


def simulate(initial_correct, initial_n, rollouts: Mapping, final_n: Mapping, strata=None, tau: float = TAU,
             p: float | None = None, replicates: int = 1000, seed: int = 0, level: float = 0.95,
             chunk_elements: int = 4_000_000, chance_p: float | None = None) -> NullResult:
    """Table 1's quantities under "RL changed nothing" (the module docstring's steps).

    initial_correct, initial_n: per problem, the measured initial evaluation (correct of n; n
             may be one int for all).
    rollouts: {seed: per problem, training rollouts drawn in that run (0: never drawn)}.
    final_n: {seed: per problem (or one int), samples of that seed's final evaluation; 0 counts
             as a missing final, <= tau, as in `groups.label_seed`}.
    strata: per problem, the prior's stratum (e.g. the tier); None: one prior for all.
    p: the chance-corrected rule (positives must exceed guessing's 99% quantile, chance 1/p).
    chance_p: the above-chance rule of the `agreement` quantity only (labels unchanged).
    """
    c0 = np.asarray(initial_correct, dtype=int)
    P = len(c0)
    n0, seeds, roll, nfin = _design(P, initial_n, rollouts, final_n)
    prior = fit_prior(c0, n0, strata)
    A, B = posterior(c0, n0, strata, prior)
    draws = _run(np.random.default_rng(seed), lambda rng, r: rng.beta(A, B, size=(r, P)), P, replicates,
                 chunk_elements, n0, roll, nfin, tau, p, chance_p)
    return NullResult(draws=draws, problems=P, prior=prior, seeds=seeds, tau=tau, p=p, level=level, chance_p=chance_p)


def simulate_rates(rates, initial_n, rollouts: Mapping, final_n: Mapping, concentration: float | None = None,
                   floor: float = 0.0, tau: float = TAU, p: float | None = None, chance_p: float | None = None,
                   replicates: int = 1000, seed: int = 0, level: float = 0.95,
                   chunk_elements: int = 4_000_000) -> NullResult:
    """`simulate`'s core on given true rates instead of a study's posteriors: Table 1 if RL changed
    nothing, for a world whose rates are known (or assumed), e.g. to size a regime before training.

    rates: per problem, the true pass rate (of reasoning; the guess floor is added below).
    concentration: None: each problem keeps its rate in every replicate; else each replicate draws
             the problem's rate from Beta(rate * c, (1 - rate) * c) (a spread around it).
    floor: chance that a rollout that does not reason its way to the answer is right anyway (a
             blind guess, 1/p): the rate used is q + (1 - q) * floor.
    initial_n, rollouts, final_n, tau, p, chance_p: as in `simulate` (per problem or one int).
    The result's `prior` is one row: the rates' mean, the concentration and the number of problems.
    """
    m = np.clip(np.asarray(rates, dtype=float).ravel(), 0.0, 1.0)
    P = len(m)
    n0, seeds, roll, nfin = _design(P, initial_n, rollouts, final_n)
    if concentration is None:
        def draw(rng, r):
            return np.broadcast_to(m, (r, P))
    else:
        mc = np.clip(m, 1e-6, 1 - 1e-6)

        def draw(rng, r):
            return rng.beta(mc * concentration, (1 - mc) * concentration, size=(r, P))

    def with_floor(rng, r):
        q = draw(rng, r)
        return q + (1 - q) * floor if floor else q

    draws = _run(np.random.default_rng(seed), with_floor, P, replicates, chunk_elements, n0, roll, nfin, tau, p,
                 chance_p)
    prior = pd.DataFrame({"a": [np.nan], "b": [np.nan], "mean": [float(m.mean()) if P else np.nan],
                          "concentration": [concentration], "problems": [P]}, index=pd.Index([0], name="stratum"))
    return NullResult(draws=draws, problems=P, prior=prior, seeds=seeds, tau=tau, p=p, level=level, chance_p=chance_p)


def _design(P, initial_n, rollouts, final_n):
    """Per-problem arrays: initial samples (P,), the seeds, rollouts and final samples (S, P)."""
    n0 = np.broadcast_to(np.asarray(initial_n, dtype=int), (P,)).copy()
    seeds = list(rollouts)
    if list(final_n) != seeds:
        raise ValueError(f"rollouts and final_n need the same seeds: {seeds} vs {list(final_n)}")
    roll = np.stack([np.broadcast_to(np.asarray(rollouts[s], dtype=int), (P,)) for s in seeds])  # (S, P)
    nfin = np.stack([np.broadcast_to(np.asarray(final_n[s], dtype=int), (P,)) for s in seeds])
    return n0, seeds, roll, nfin


def _run(rng, draw_q, P, replicates, chunk_elements, n0, roll, nfin, tau, p, chance_p) -> pd.DataFrame:
    """The replicates in chunks of at most `chunk_elements` problem x seed draws; draw_q(rng, r): (r, P) rates."""
    per_chunk = max(1, chunk_elements // max(P * max(len(roll), 1), 1))
    rows = []
    for start in range(0, replicates, per_chunk):
        r = min(per_chunk, replicates - start)
        rows.append(_replicates(rng, draw_q(rng, r), n0, roll, nfin, tau, p, chance_p))
    draws = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=QUANTITIES)
    return draws[QUANTITIES]


def _replicates(rng, q, n0, roll, nfin, tau, p, chance_p=None) -> pd.DataFrame:
    r = len(q)  # q: (r, P), one row of true rates per replicate
    init = rng.binomial(n0, q) / np.maximum(n0, 1)
    init = np.where(n0 > 0, init, np.nan)
    labels, rewarded, any_pos, above = [], [], [], []
    for s in range(len(roll)):
        pos = rng.binomial(roll[s], q)
        fin = np.where(nfin[s] > 0, rng.binomial(nfin[s], q) / np.maximum(nfin[s], 1), np.nan)
        rew = G.rewarded_mask(pos, roll[s], p)
        labels.append(G.label_codes(init, fin, rew, tau))
        rewarded.append(rew)
        any_pos.append(pos > 0)
        above.append(G.rewarded_mask(pos, roll[s], chance_p))
    lab = np.stack(labels, axis=-1)  # (r, P, S)
    rew = np.stack(rewarded, axis=-1)
    grp = G.combine_codes(lab, rew)  # (r, P)
    out = {g: (grp == i).sum(axis=1) for i, g in enumerate(G.GROUPS)}
    out["no_reward_union"] = (~rew.all(axis=-1)).sum(axis=1)
    non_easy = ~(lab == G.EASY).all(axis=-1)
    switched = (lab != lab[..., :1]).any(axis=-1)
    out["switch_non_easy"] = _share(switched, non_easy)
    sub = non_easy & np.stack(any_pos, axis=-1).any(axis=-1)  # calibration.seed_switches' problems
    out["switch_rewarded"] = _share(switched, sub)
    out["agreement"] = _share(~switched, non_easy & np.stack(above, axis=-1).any(axis=-1))
    counts = np.stack([(lab == i).sum(axis=-1) for i in range(len(G.LABELS))], axis=-1)  # (r, P, 4)
    out["kappa"] = [kappa_from_counts(counts[i][sub[i]]) if len(roll) > 1 else np.nan for i in range(r)]
    return pd.DataFrame(out)


def _share(flag: np.ndarray, among: np.ndarray) -> np.ndarray:
    n = among.sum(axis=1)
    return np.where(n > 0, (flag & among).sum(axis=1) / np.maximum(n, 1), np.nan)


# ----------------------------------------------------------------------------- from a study


def default_strata(problems: pd.DataFrame) -> str | None:
    """The prior's stratum column of a `Study.problems` table: tier (testbed), level (MATH), or None."""
    return next((c for c in ("tier", "level") if c in problems), None)


def study_inputs(study, strata: str | None = "auto") -> dict:
    """`simulate`'s per-problem inputs from a `experiment.Study` (in `study.problems` order):
    initial_correct / initial_n from the initial evaluation, per seed the rollouts of its history
    and the samples of its final evaluation, and the strata column."""
    ids = study.problems["prompt_id"]
    init = study.initial.set_index("prompt_id").reindex(ids)
    strata = default_strata(study.problems) if strata == "auto" else strata
    rollouts = {s: G.training_positives(h)["rollouts"].reindex(ids).fillna(0).to_numpy(int)
                for s, h in study.histories.items()}
    final_n = {s: study.finals[s].set_index("prompt_id")["n"].reindex(ids).fillna(0).to_numpy(int)
               for s in study.histories}
    return {"initial_correct": init["correct"].fillna(0).to_numpy(int), "initial_n": init["n"].fillna(0).to_numpy(int),
            "rollouts": rollouts, "final_n": final_n,
            "strata": None if strata is None else study.problems[strata].to_numpy()}


def null_from_study(study, tau: float = TAU, p: float | None = None, replicates: int = 1000, seed: int = 0,
                    level: float = 0.95, strata: str | None = "auto", chance_p: float | None = None) -> NullResult:
    """`simulate` on a study's own counts, draws and evaluation sizes (`study_inputs`)."""
    return simulate(**study_inputs(study, strata), tau=tau, p=p, replicates=replicates, seed=seed, level=level,
                    chance_p=chance_p)


_CACHE: dict = {}  # (id(study), arguments) -> (study, NullResult): one null per study and arguments


def cached_null(study, tau: float = TAU, p: float | None = None, chance_p: float | None = None,
                replicates: int = 1000, seed: int = 0) -> NullResult:
    """`null_from_study`, computed once per study object and arguments within the process."""
    key = (id(study), tau, p, chance_p, replicates, seed)
    hit = _CACHE.get(key)
    if hit is None or hit[0] is not study:
        hit = _CACHE[key] = (study, null_from_study(study, tau, p, replicates, seed, chance_p=chance_p))
    return hit[1]


def world_p(study) -> float | None:
    """The testbed's modulus (a guess is right with chance 1/p), None off the testbed."""
    cfg = getattr(study, "cfg", None)
    if cfg is None or getattr(getattr(cfg, "data", None), "source", "testbed") != "testbed":
        return None
    return getattr(getattr(cfg, "world", None), "p", None)


# ----------------------------------------------------------------------------- measured vs null


def measured(classified: pd.DataFrame, histories: Mapping, chance_p: float | None = None) -> dict:
    """The measured value of every quantity, by the book's own functions: `groups.table1`
    (counts; no_reward_union its paper_count), `groups.switches`, `calibration.seed_switches` and
    `calibration.agreement` (above chance 1/`chance_p`; any positive when None).
    classified: `groups.classify`'s table; histories: {seed: history}."""
    t = G.table1(classified)
    out = {g: float(t.loc[g, "count"]) for g in G.GROUPS}
    out["no_reward_union"] = float(t.loc["no_reward", "paper_count"])
    out["switch_non_easy"] = G.switches(classified)["any_switch"] if len(classified) else np.nan
    sw = seed_switches(classified, histories)
    out["switch_rewarded"], out["kappa"] = sw["switch"], sw["kappa"]
    out["agreement"] = agreement(classified, histories, chance_p)["agreement"]
    return out


def verdict(value: float, lo: float, hi: float) -> str:
    """"above the null" (value > hi), "below" (value < lo), "within" (lo <= value <= hi);
    "no measure" when the value or the interval is NaN."""
    if any(x is None or (isinstance(x, float) and np.isnan(x)) for x in (value, lo, hi)):
        return "no measure"
    if value > hi:
        return VERDICTS[0]
    if value < lo:
        return VERDICTS[2]
    return VERDICTS[1]


def compare(values: Mapping, null: NullResult, quantities: list[str] | None = None) -> pd.DataFrame:
    """Measured beside the null, per quantity (default: all that `values` has).

    Columns: measured (count, share 0-1 or kappa), measured_percent (counts and shares, else
    NaN), measured_text (percent, or kappa, as text), null_mean, null_lo, null_hi (same units as measured), null_percent, null_lo_percent,
    null_hi_percent, null_text ("mean [lo, hi]" in percent, or in kappa units), verdict (judged
    on the measured value against [null_lo, null_hi]), and above (bool). Index: the quantities;
    column `label` has their names in words.
    """
    summ = null.summary()
    qs = [q for q in (quantities or QUANTITIES) if q in values]
    pct = 100 / max(null.problems, 1)
    rows = []
    for q in qs:
        v = float(values[q]) if values[q] is not None else np.nan
        s = summ.loc[q]
        scale = pct if q in COUNTS else 100.0 if q in SHARES else np.nan
        if q == "kappa":
            text = f"{s['mean']:.2f} [{s['lo']:.2f}, {s['hi']:.2f}]"
        else:
            text = f"{s['mean_percent']:.1f} [{s['lo_percent']:.1f}, {s['hi_percent']:.1f}]"
        ver = verdict(v, float(s["lo"]), float(s["hi"]))
        got = "–" if np.isnan(v) else f"{v:.2f}" if q == "kappa" else f"{v * scale:.1f}"
        rows.append({"quantity": q, "label": LABEL.get(q, q), "measured": v, "measured_percent": v * scale,
                     "measured_text": got,
                     "null_mean": s["mean"], "null_lo": s["lo"], "null_hi": s["hi"],
                     "null_percent": s["mean_percent"], "null_lo_percent": s["lo_percent"],
                     "null_hi_percent": s["hi_percent"], "null_text": text, "verdict": ver,
                     "above": ver == VERDICTS[0]})
    out = pd.DataFrame(rows).set_index("quantity")
    out.attrs["level"] = null.level
    return out


def compare_groups(classified: pd.DataFrame, histories: Mapping, null: NullResult) -> pd.DataFrame:
    """`compare` for Table 1's rows: the five groups and the paper's no_reward union."""
    return compare(measured(classified, histories), null, COUNTS)


def compare_agreement(classified: pd.DataFrame, histories: Mapping, null: NullResult) -> pd.DataFrame:
    """`compare` for the seeds' agreement: the two switching shares, the agreement above chance
    (by the null's `chance_p`) and Fleiss' kappa."""
    out = compare(measured(classified, histories, null.chance_p), null, SHARES + ["kappa"])
    if null.chance_p is None and "agreement" in out.index:
        out.loc["agreement", "label"] = "one label in every seed, non-easy problems with a positive in some seed"
    return out


def as_results(table: pd.DataFrame) -> dict:
    """A `compare` table as plain numbers for `book.save_results`: per quantity, counts as
    {count, percent, null_mean, null_low, null_high, verdict} (the null in percent of the
    problems), shares as {value (0-1), percent, null_mean, null_low, null_high (percent), verdict},
    kappa as {value, null_mean, null_low, null_high, verdict} (kappa units); NaN as None."""
    def num(x):
        return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)

    out = {}
    for q, r in table.iterrows():
        if q == "kappa":
            row = {"value": num(r["measured"]), "null_mean": num(r["null_mean"]), "null_low": num(r["null_lo"]),
                   "null_high": num(r["null_hi"])}
        else:
            head = ({"count": None if np.isnan(r["measured"]) else int(r["measured"])} if q in COUNTS
                    else {"value": num(r["measured"])})
            row = {**head, "percent": num(r["measured_percent"]), "null_mean": num(r["null_percent"]),
                   "null_low": num(r["null_lo_percent"]), "null_high": num(r["null_hi_percent"])}
        out[q] = {**row, "verdict": r["verdict"]}
    return out


def group_results(study, classified: pd.DataFrame, tau: float = TAU, p: float | None = None,
                  replicates: int = 1000) -> dict:
    """Table 1's rows against the null of `study` (`cached_null`) as `as_results` numbers."""
    return as_results(compare_groups(classified, study.histories, cached_null(study, tau, p, replicates=replicates)))


def group_caveat(study, classified: pd.DataFrame, groups=("unlearnable", "learnable"), tau: float = TAU,
                 p: float | None = None, replicates: int = 1000) -> str:
    """One sentence per group of `groups`: its size beside what sampling noise alone puts there
    if RL changed nothing (the null of `study`, `cached_null`), and what that means for the
    comparisons a chapter then makes on it. classified: `groups.classify`'s table of the study
    (same tau and p)."""
    null = cached_null(study, tau, p, replicates=replicates)
    table = compare_groups(classified, study.histories, null)
    level = f"{null.level:.0%}"
    out = []
    for g in groups:
        r = table.loc[g]
        n = int(r["measured"])
        head = (f"The {g.replace('_', ' ')} group ({n} problem{'' if n == 1 else 's'}, "
                f"{r['measured_percent']:.1f}%)")
        noise = (f"what sampling noise alone gives if RL changed nothing ({level} interval "
                 f"{r['null_lo_percent']:.1f}-{r['null_hi_percent']:.1f}%)")
        if n == 0 and r["verdict"] != "no measure":
            out.append(f"The {g.replace('_', ' ')} group is empty, while sampling noise alone would give it "
                       f"{r['null_lo_percent']:.1f}-{r['null_hi_percent']:.1f}% of the problems if RL changed nothing "
                       f"({level} interval): there is no such problem for the comparisons below to describe.")
            continue
        out.append({
            VERDICTS[0]: f"{head} exceeds {noise}: it holds more problems than an unchanged pass rate explains, "
                         f"though about {r['null_percent']:.1f}% of all problems would land there by noise alone.",
            VERDICTS[1]: f"{head} is within {noise}: the comparisons below describe problems that noise can put there.",
            VERDICTS[2]: f"{head} is below {noise}: it is smaller than noise alone would make it, so the comparisons "
                         "below describe problems that noise can put there, not an excess RL failed to learn.",
        }.get(r["verdict"], f"{head} cannot be judged against the null here."))
    return " ".join(out)


def describe(table: pd.DataFrame) -> list[str]:
    """One sentence per row of a `compare` table: measured against the null, and the verdict."""
    level = f"{table.attrs.get('level', 0.95):.0%}"
    out = []
    for q, r in table.iterrows():
        if q == "kappa":
            got = f"{r['measured']:.2f}"
        else:
            n = int(r["measured"]) if q in COUNTS else 0
            got = f"{r['measured_percent']:.1f}%" + (f" ({n} problem{'' if n == 1 else 's'})" if q in COUNTS else "")
        unit = "" if q == "kappa" else "%"
        if r["verdict"] == "no measure":
            out.append(f"{r['label'].capitalize()}: not measurable here (no problem to measure it on).")
            continue
        judged = {VERDICTS[0]: "above what sampling noise alone gives: more than a pass rate RL left unchanged explains",
                  VERDICTS[1]: "within what sampling noise alone gives: a pass rate RL left unchanged explains it",
                  VERDICTS[2]: "below what sampling noise alone gives"}[r["verdict"]]
        out.append(f"{r['label'].capitalize()}: {got} measured against {r['null_text']}{unit} if RL changed nothing "
                   f"({level} interval), {judged}.")
    return out


# ----------------------------------------------------------------------------- the §3 chapter's tables and notes


def table1_beside_paper(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as the chapter prints it: per row of `compare_groups`' table (index `LABEL`'s words,
    named group), this book's count and percent, the null's interval as text, the verdict, and
    one column per paper model with its reported percent ("paper: <model> (%)", `paper.table1`;
    the paper's no_reward beside the union row, NaN elsewhere)."""
    from unlearnability.paper import table1 as paper_table1

    out = pd.DataFrame({"this book (count)": table["measured"].astype(int), "this book (%)": table["measured_percent"],
                        "if RL changed nothing (95% interval)": table["null_text"], "against the null": table["verdict"]})
    theirs = paper_table1().pivot(index="group", columns="model", values="percent").rename(index={"no_reward": "no_reward_union"})
    out = out.join(theirs.rename(columns=lambda m: f"paper: {m.split(' (')[0]} (%)"))
    out.index = pd.Index([LABEL[g] for g in out.index], name="group")
    return out


def chance_corrected_table(study, classified: pd.DataFrame, chance: pd.DataFrame, tau: float = TAU,
                           p: float | None = None) -> pd.DataFrame:
    """Problems per group by the paper's rule beside the chance-corrected one (columns "paper's
    definition", "chance-corrected": `groups.table1` counts, index the five groups); with the
    testbed's modulus `p`, also the chance-corrected null (`null_from_study(study, tau, p=p)`):
    "chance-corrected, if RL changed nothing (%, 95% interval)" and "against the null".
    classified, chance: `groups.classify`'s tables of `study` without and with p."""
    side = pd.DataFrame({"paper's definition": G.table1(classified["group"])["count"],
                         "chance-corrected": G.table1(chance["group"])["count"]})
    if p is not None:  # the same null, with the chance-corrected rule
        vs = compare_groups(chance, study.histories, null_from_study(study, tau, p=p))
        side["chance-corrected, if RL changed nothing (%, 95% interval)"] = vs["null_text"]
        side["against the null"] = vs["verdict"]
    return side


def null_note(table: pd.DataFrame, quantities=("learnable", "unlearnable", "no_reward_union")) -> str:
    """The chapter summary's line on Table 1 against its null: per quantity, the measured percent
    beside the null's interval and the verdict. table: `compare_groups`' table."""
    return "Against Table 1 if RL changed nothing: " + "; ".join(
        f"{table.loc[g, 'label']} {table.loc[g, 'measured_percent']:.1f}% vs {table.loc[g, 'null_text']}%, "
        f"{table.loc[g, 'verdict']}" for g in quantities) + "."


def agreement_note(switches: dict, table: pd.DataFrame, problems: int, ambiguous_percent: float) -> str:
    """The chapter summary's line on the seeds' agreement: label switching and Fleiss' kappa among
    the non-easy problems with a positive (`calibration.seed_switches`), the ambiguous share of all
    problems, and the share with one label in every seed among the `problems` with positives above
    chance in some seed beside its null (`compare_agreement`'s table, row agreement)."""
    head = (f"Seed agreement: {100 * switches['switch']:.0f}% of the non-easy problems with a positive reward switch label "
            f"between seeds (Fleiss' kappa {switches['kappa']:.2f}), leaving {ambiguous_percent:.1f}% of all problems ambiguous; ")
    if not problems:
        return head + "no non-easy problem had positives above chance in any seed."
    return head + (f"{table.loc['agreement', 'measured_text']}% of the {problems} with positives above chance in some seed "
                   f"get one label in every seed ({table.loc['agreement', 'null_text']}% if RL changed nothing).")
