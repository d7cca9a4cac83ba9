"""Forecast unlearnable examples from the initial policy, before RL spends compute (issue 11).

The paper diagnoses unlearnable examples after three GRPO runs. This module asks whether the
*initial* policy already tells them apart from the learnable ones, and packages the answer as
`unlearn screen`. Layout:

    features           per-example features of the initial policy (thin wrapper: computes or
                       loads the tables through `experiment`, all cached in the run store)
    feature_table      the same from tables already computed (pure; what the tests check)
    gradient_features  per-example similarity with a reference set, from a cosine matrix
    hard_labels        1 = unlearnable, 0 = learnable (the two groups of hard examples with a positive)
    seed_labels        the same label per seed, from `groups.classify`'s seed_<s> columns
    Forecaster         the predictor: an L2 logistic regression (scikit-learn), inspectable
                       (`fit_forecaster`, `.predict`, `.coefficients`)
    cross_validated_scores, stratified_folds, auroc, roc_points, feature_aurocs (intervals by
    evaluation.stats.bootstrap_ci),
    cross_seed(_scores), calibration_table      the honest evaluation
    screen             fit on the §3 labels, forecast every example in scope (`unlearn screen`)

Choices and simplifications (all ours; the paper has no such experiment):

  * Features come from the initial policy only: the base model's pass@k evaluation samples
    (the same k samples the §3 groups use for initial pass@1; k = 32 at paper scale, 4 on
    smoke), the step checker's verdicts on them, LoRA gradients at step 0, log-likelihoods
    under the base model, and the problem's metadata. Nothing from a GRPO run.
  * pass@1 = mean reward over the k samples; pass@4 = the unbiased estimator (Chen et al.)
    from the same k samples (NaN when k < 4). `positives` = correct samples among the k.
  * Luck: on the testbed the answer is a number mod p, so a blind guesser is right with
    probability 1/p per sample: `chance_positives` = k / p (its expected positives) and
    `luck_p` = P(Binomial(k, 1/p) >= positives), the chance that guessing alone gets at least
    as many (cf. `groups.chance_threshold`). At paper scale (no p) both are NaN.
  * Quality of the correct samples (NaN when an example has none): `score_mean` (step checker
    0-5, or whatever `score` column the samples carry, e.g. an LLM judge's), `exact_share`
    (exact worked solutions), `worked_share` (style "worked").
  * Gradient similarity (LoRA, step 0, `analysis.gradients.gradient_matrix`): `grad_sim` = mean cosine
    with a *reference set of easy examples* (initial pass@1 > tau: an initial-policy fact),
    itself excluded; `grad_sim_all` = the paper's "average similarity" (mean cosine with every
    other analysed example; context only, not a model feature, since it depends on which
    other examples were analysed). Two sources:
      - "targets" (default): one analysis over the examples asked for plus up to
        `gradients.per_group` easy reference examples drawn with `gradients.seed`; every
        example is covered (NaN only when its rollouts all agree). Label-free.
      - "analysis": reuse the §5 analysis (`gradient_matrix(study, group_of)`), which draws up
        to `per_group` examples *per group*. Cheap when cached, but which examples are covered
        depends on the labels: with unequal group sizes, coverage (and so a missing-value
        indicator) leaks the label. Use it for exploration, not for the honest AUROC.
    Note that the rollouts behind an example's gradient are seeded by its position in the
    analysed list, so the same example analysed in two different lists differs by sampling noise.
  * Reference log-likelihood `loglik` = mean over the example's correct samples of their
    per-token mean log-prob under the base model (`analysis.likelihood`). Source "samples"
    (default) scores the correct samples of the pass@k evaluation (label-free, cached);
    "analysis" reads `analysis.likelihood.reference_logliks` (the §4 analysis; same coverage caveat).
  * Metadata where known: testbed tier, depth, distractors, n_skills, coverage class (string
    `coverage`, and `coverage_level` 0 common / 1 rare / 2 unseen); MATH `level`.
  * Labels: among hard examples with a positive, 1 = unlearnable, 0 = learnable (3-seed
    intersection groups); every other group is left out. Per seed s (`seed_labels`):
    1 where `seed_<s>` == "unlearnable", 0 where == "learnable", NaN otherwise; those are
    `groups.label_seed`'s labels before the intersection (initial <= tau and final_s > tau /
    final_s <= tau with a positive in seed s's training history).
  * Predictor: scikit-learn `LogisticRegression` (L2, C = 1, lbfgs, no class weights so
    probabilities stay calibrated to the base rate) after median imputation with a missing-
    value indicator per feature that had missing values in training, and standardisation.
    Columns all NaN in training are dropped. When the training labels hold one class only
    (smoke groups often have no learnable example) nothing can be fitted: the forecast is
    the base rate, and `Forecaster.note` says so.
  * Evaluation: stratified k-fold over examples (own implementation, deterministic in `seed`:
    each class shuffled with numpy's default_rng(seed), dealt round-robin to the folds).
    AUROC is rank based (Mann-Whitney U with average ranks, so ties count 1/2; a constant
    score gives 0.5; NaN with one class). Bootstrap: percentile interval over `n` resamples
    of the examples with replacement (resamples with one class are skipped).
    Per feature: AUROC of the raw value (higher = unlearnable) on the examples that have it,
    and a cross-validated AUROC whose direction is chosen on each training fold (missing
    values take the training fold's median).
  * Across seeds (`cross_seed`): for each held-out seed t, a model is trained on the other
    seeds' labels combined by intersection (an example counts only where all of them agree)
    and scored against seed t's own labels; with `folds` > 1 the examples are also split, so
    no example is scored by a model that saw it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from math import comb
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from unlearnability.evaluation.stats import bootstrap_ci
from unlearnability.paper import TAU
from unlearnability.policy.model import set_threads

if TYPE_CHECKING:  # pragma: no cover
    from unlearnability.config import Config
    from unlearnability.pipeline.experiment import Study

COVERAGE_LEVEL = {"common": 0, "rare": 1, "unseen": 2}

# The columns `feature_table` writes, in order (prompt_id first).
FEATURE_COLUMNS = ["k", "positives", "pass@1", "pass@4", "chance_positives", "luck_p",
                   "score_mean", "exact_share", "worked_share", "grad_sim", "grad_sim_all", "loglik",
                   "tier", "depth", "distractors", "n_skills", "coverage", "coverage_level", "level"]

# What the predictor sees by default (numeric, and comparable across examples).
MODEL_FEATURES = ["pass@1", "pass@4", "luck_p", "score_mean", "exact_share", "worked_share", "grad_sim",
                  "loglik", "tier", "depth", "distractors", "n_skills", "coverage_level", "level"]

# Columns of `unlearn screen`'s csv: these, then FEATURE_COLUMNS in between (see `screen`).
SCREEN_COLUMNS = ["prompt_id", "group", "label", *FEATURE_COLUMNS, "forecast", "forecast_oof", "verdict"]

LABEL_GROUPS = {"unlearnable": 1, "learnable": 0}


# ----------------------------------------------------------------------------- features (pure)


def luck_tail(k: int, positives: int, p: float) -> float:
    """P(Binomial(k, 1/p) >= positives): the chance that blind guessing gets at least as many
    positives in k samples. NaN when p is unknown (NaN or None)."""
    if p is None or not np.isfinite(p) or p <= 0:
        return math.nan
    if positives <= 0:
        return 1.0
    q = 1.0 / p
    below = sum(comb(k, j) * q**j * (1 - q) ** (k - j) for j in range(min(int(positives), k + 1)))
    return float(min(1.0, max(0.0, 1.0 - below)))


def _n_skills(v) -> float:
    if isinstance(v, (list, tuple)):
        return float(len(v))
    if isinstance(v, str) and v:
        return float(len(v.split("+")))
    return math.nan


def feature_table(ids, samples: pd.DataFrame, problems: pd.DataFrame | None = None,
                  gradients: pd.DataFrame | None = None, logliks: pd.DataFrame | None = None,
                  p: float | None = None) -> pd.DataFrame:
    """Per-example features from tables of the initial policy (pure; no model, no files).

    ids: the examples, one output row each, in this order.
    samples: the initial policy's pass@k samples, one row per sample: prompt_id, reward
        [, score, exact, style] (`experiment.read_eval(..., samples=True)`); every id needs rows.
    problems: prompt_id + any of tier, depth, distractors, skills ("a+b" or a list), coverage,
        level, p (`experiment.problem_table`); missing columns give NaN.
    gradients: prompt_id, grad_sim[, grad_sim_all] (`gradient_features`); ids absent -> NaN.
    logliks: per correct rollout: prompt_id, reward, mean_logp (`likelihood.rollout_logliks`);
        `loglik` = mean of mean_logp over the example's rows with reward > 0, else NaN.
    p: the guessing modulus (chance 1/p per sample); default: the problems' `p` column, else NaN.

    Returns prompt_id + FEATURE_COLUMNS, len(ids) rows.
    """
    ids = [str(i) for i in ids]
    s = samples.assign(prompt_id=samples["prompt_id"].astype(str))
    s = s[s["prompt_id"].isin(set(ids))]
    missing = sorted(set(ids) - set(s["prompt_id"]))
    if missing:
        raise ValueError(f"no initial samples for {len(missing)} example(s), e.g. {missing[:3]}")
    idx = pd.Index(ids, name="prompt_id")
    meta = problems.assign(prompt_id=problems["prompt_id"].astype(str)).set_index("prompt_id").reindex(idx) \
        if problems is not None else pd.DataFrame(index=idx)
    out = _sample_columns(s, idx)
    if p is not None:
        mod = pd.Series(float(p), index=idx)
    elif "p" in meta:
        mod = pd.to_numeric(meta["p"], errors="coerce")
    else:
        mod = pd.Series(math.nan, index=idx)
    out["chance_positives"] = out["k"] / mod
    out["luck_p"] = [luck_tail(k, c, m) for k, c, m in zip(out["k"], out["positives"], mod)]

    gr = gradients.assign(prompt_id=gradients["prompt_id"].astype(str)).set_index("prompt_id") \
        if gradients is not None and len(gradients) else pd.DataFrame(index=pd.Index([], name="prompt_id"))
    for col in ("grad_sim", "grad_sim_all"):
        out[col] = gr[col].reindex(idx).astype(float) if col in gr else math.nan

    if logliks is not None and len(logliks):
        lc = logliks[logliks["reward"] > 0].assign(prompt_id=lambda d: d["prompt_id"].astype(str))
        out["loglik"] = lc.groupby("prompt_id")["mean_logp"].mean().reindex(idx).astype(float)
    else:
        out["loglik"] = math.nan

    for col in ("tier", "depth", "distractors", "level"):
        out[col] = pd.to_numeric(meta[col], errors="coerce") if col in meta else math.nan
    out["n_skills"] = meta["skills"].map(_n_skills) if "skills" in meta else math.nan
    out["coverage"] = meta["coverage"] if "coverage" in meta else None
    out["coverage_level"] = out["coverage"].map(COVERAGE_LEVEL).astype(float)
    return out[FEATURE_COLUMNS].reset_index()


def _sample_columns(s: pd.DataFrame, idx: pd.Index) -> pd.DataFrame:
    """`feature_table`'s columns from the initial samples `s` of the examples `idx`: k, positives,
    pass@1, pass@4, and over the correct samples score_mean, exact_share and worked_share."""
    from unlearnability.evaluation.evaluate import pass_at_k_estimate

    g = s.groupby("prompt_id")
    out = pd.DataFrame(index=idx)
    out["k"] = g.size().reindex(idx).astype(int)
    out["positives"] = g["reward"].apply(lambda r: int((r > 0).sum())).reindex(idx).astype(int)
    out["pass@1"] = g["reward"].mean().reindex(idx).astype(float)
    out["pass@4"] = [pass_at_k_estimate(k, c, 4) if k >= 4 else math.nan for k, c in zip(out["k"], out["positives"])]
    c = s[s["reward"] > 0]
    gc = c.groupby("prompt_id")
    out["score_mean"] = gc["score"].mean().reindex(idx) if "score" in c else math.nan
    out["exact_share"] = gc["exact"].mean().reindex(idx).astype(float) if "exact" in c else math.nan
    out["worked_share"] = (c.assign(w=(c["style"] == "worked").astype(float)).groupby("prompt_id")["w"].mean()
                           .reindex(idx)) if "style" in c else math.nan
    return out


def gradient_features(examples: pd.DataFrame, C: np.ndarray, reference) -> pd.DataFrame:
    """Per analysed example: grad_sim = mean cosine with the reference examples other than
    itself (NaN when there is none), grad_sim_all = mean cosine with every other example.

    examples: prompt_id per row of C, in C's order (`analysis.gradients.gradient_matrix`'s table).
    C: cosine matrix (N, N). reference: prompt ids (those not analysed are ignored).
    Returns prompt_id, grad_sim, grad_sim_all (N rows).
    """
    ids = examples["prompt_id"].astype(str).to_numpy()
    n = len(ids)
    C = np.asarray(C, float).reshape(n, n)
    ref = np.isin(ids, [str(r) for r in reference])
    off = ~np.eye(n, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_mask = off & ref[None, :]  # (N, N): other examples that are references
        sim_ref = np.where(ref_mask.sum(1) > 0, (C * ref_mask).sum(1) / ref_mask.sum(1), np.nan)
        sim_all = np.where(n > 1, (C * off).sum(1) / max(1, n - 1), np.nan)
    return pd.DataFrame({"prompt_id": ids, "grad_sim": sim_ref, "grad_sim_all": sim_all})


# ----------------------------------------------------------------------------- labels


def hard_labels(group_of: pd.Series) -> pd.Series:
    """group per prompt_id -> 1 (unlearnable) / 0 (learnable), other groups dropped (int Series)."""
    g = group_of[group_of.isin(list(LABEL_GROUPS))]
    return g.map(LABEL_GROUPS).astype(int).rename("label")


def seed_labels(classified: pd.DataFrame) -> pd.DataFrame:
    """`groups.classify`'s table (index prompt_id, columns seed_<s>) -> one column per seed
    (int s): 1.0 unlearnable / 0.0 learnable / NaN any other label of that seed."""
    cols = [c for c in classified.columns if str(c).startswith("seed_")]
    if not cols:
        raise ValueError(f"no seed_<s> columns in {list(classified.columns)}: pass groups.classify's table")
    out = {}
    for c in cols:
        key = c[len("seed_"):]
        out[int(key) if key.lstrip("-").isdigit() else key] = classified[c].map(LABEL_GROUPS).astype(float)
    return pd.DataFrame(out, index=classified.index)


def intersect_labels(labels: pd.DataFrame) -> pd.Series:
    """Per example: the label every column agrees on (NaN where a column is NaN or they differ)."""
    lo, hi = labels.min(axis=1, skipna=False), labels.max(axis=1, skipna=False)
    return lo.where(lo == hi)


# ----------------------------------------------------------------------------- predictor


@dataclass
class Forecaster:
    """An L2 logistic regression of "unlearnable" on the features, or the base rate.

    columns: the features it was fitted on (all-NaN ones dropped); model: the scikit-learn
    Pipeline (None when the labels held one class); base_rate: share of 1s in training;
    note: why there is no model, "" when there is one.
    """

    columns: list[str]
    model: object | None
    base_rate: float
    n: int
    note: str = ""
    positives: int = 0

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """P(unlearnable) per row of X (it needs the fitted columns): (len(X),)."""
        if self.model is None:
            return np.full(len(X), self.base_rate)
        return self.model.predict_proba(_matrix(X, self.columns))[:, 1]

    def coefficients(self) -> pd.DataFrame:
        """feature, coef (per standard deviation of the standardised input; missing-value
        indicators are named missingindicator_<feature>), plus the intercept. Empty without a model."""
        if self.model is None:
            return pd.DataFrame(columns=["feature", "coef"])
        names = list(self.model[:-1].get_feature_names_out(self.columns))
        lr = self.model[-1]
        return pd.DataFrame({"feature": names + ["(intercept)"],
                             "coef": list(lr.coef_[0]) + [float(lr.intercept_[0])]})


def _matrix(X: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in X]
    if missing:
        raise ValueError(f"feature table lacks column(s) {missing}")
    return X[columns].apply(pd.to_numeric, errors="coerce").astype(float)


def make_model(C: float = 1.0):
    """The scikit-learn pipeline: median imputation (+ missing indicators), standardisation,
    L2 logistic regression with inverse strength C."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True)),
                     ("scale", StandardScaler()),
                     ("logit", LogisticRegression(C=C, max_iter=1000))])


def fit_forecaster(X: pd.DataFrame, y, columns: list[str] | None = None, C: float = 1.0) -> Forecaster:
    """Fit on X's `columns` (default: the MODEL_FEATURES present) and labels y (1/0, len(X)).
    One class in y: no model, the forecast is the base rate (see `Forecaster.note`)."""
    y = np.asarray(y, float)
    if len(y) != len(X):
        raise ValueError(f"{len(X)} feature rows but {len(y)} labels")
    if len(y) == 0:
        raise ValueError("no labelled examples (no learnable or unlearnable example): nothing to fit")
    cols = [c for c in (columns or MODEL_FEATURES) if c in X]
    M = _matrix(X, cols)
    cols = [c for c in cols if M[c].notna().any()]
    n1 = int(y.sum())
    if n1 == 0 or n1 == len(y):
        note = (f"the labels hold one class only ({n1} unlearnable, {len(y) - n1} learnable): no model was fitted; "
                f"the forecast is the base rate {n1 / len(y):.2f} for every example")
        return Forecaster(cols, None, n1 / len(y), len(y), note, n1)
    if not cols:
        return Forecaster(cols, None, n1 / len(y), len(y), "no feature has a value: the forecast is the base rate", n1)
    model = make_model(C).fit(M[cols], y.astype(int))
    return Forecaster(cols, model, n1 / len(y), len(y), "", n1)


# ----------------------------------------------------------------------------- evaluation


def stratified_folds(y, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index (0 .. folds-1) per example: each class (any hashable values) shuffled with
    default_rng(seed) and dealt round-robin, continuing where the previous class stopped, so
    every fold gets its share of each class. (N,) ints; deterministic in (y, folds, seed)."""
    y = np.asarray(y)
    if folds < 2:
        raise ValueError(f"folds={folds}: need at least 2")
    rng = np.random.default_rng(seed)
    out = np.zeros(len(y), dtype=int)
    start = 0
    for cls in sorted(set(y.tolist()), key=str):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(len(idx))]
        out[idx] = (start + np.arange(len(idx))) % folds
        start = (start + len(idx)) % folds
    return out


def cross_validated_scores(X: pd.DataFrame, y, folds: int = 5, seed: int = 0,
                           columns: list[str] | None = None, C: float = 1.0) -> np.ndarray:
    """Out-of-fold P(unlearnable) per row of X: each fold scored by a model fitted on the
    others (`stratified_folds`; a one-class training part gives its base rate). (N,)."""
    y = np.asarray(y, float)
    out = np.full(len(y), np.nan)
    if len(y) < 2:
        return out
    fold = stratified_folds(y, min(folds, len(y)), seed)
    for f in np.unique(fold):
        test = fold == f
        m = fit_forecaster(X[~test], y[~test], columns, C)
        out[test] = m.predict(X[test])
    return out


def auroc(y, p) -> float:
    """Area under the ROC curve by ranks (Mann-Whitney U / (n1 n0)); tied scores share the
    average rank (count 1/2). NaN when y holds one class. NaN scores are not allowed."""
    y = np.asarray(y, float)
    p = np.asarray(p, float)
    n1 = int((y == 1).sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:  # one class: nothing to separate (a forecast cannot even be fitted)
        return math.nan
    if np.isnan(p).any():
        raise ValueError("auroc: NaN scores; drop or impute them first")
    ranks = pd.Series(p).rank(method="average").to_numpy()
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def roc_points(y, p) -> pd.DataFrame:
    """The ROC curve (scikit-learn's `roc_curve`, every threshold kept): fpr, tpr, threshold
    (a row per distinct score, plus the (0, 0) start). Empty when y holds one class."""
    from sklearn.metrics import roc_curve

    y, p = np.asarray(y, float), np.asarray(p, float)
    if len(set(y.tolist())) < 2:
        return pd.DataFrame(columns=["fpr", "tpr", "threshold"])
    fpr, tpr, thr = roc_curve(y, p, drop_intermediate=False)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thr})


def feature_aurocs(X: pd.DataFrame, y, columns: list[str] | None = None, folds: int = 5, seed: int = 0,
                   n_boot: int = 1000) -> pd.DataFrame:
    """Each feature alone. Per feature: covered (examples with a value), auroc_high (AUROC of
    the raw value, higher = unlearnable, on the covered examples; in-sample, no choice made),
    direction ("higher" / "lower" = unlearnable: the majority of the per-fold choices; "" when
    no training fold held both classes),
    auroc_cv (out-of-fold: on each training fold the direction is chosen and missing values
    take its median; pooled over folds), lo / hi (bootstrap interval of auroc_cv)."""
    y = np.asarray(y, float)
    cols = [c for c in (columns or MODEL_FEATURES) if c in X]
    fold = stratified_folds(y, max(2, min(folds, len(y))), seed) if len(y) >= 2 else np.zeros(len(y), int)
    rows = []
    for c in cols:
        v = pd.to_numeric(X[c], errors="coerce").to_numpy(float)
        have = ~np.isnan(v)
        row = {"feature": c, "covered": int(have.sum()),
               "auroc_high": auroc(y[have], v[have]) if have.any() else math.nan}
        score = np.full(len(y), np.nan)
        signs = []
        for f in np.unique(fold):
            tr, te = fold != f, fold == f
            vt = v[tr & have]
            if not len(vt):
                score[te] = 0.0
                continue
            a = auroc(y[tr & have], vt)
            sign = -1.0 if (not math.isnan(a) and a < 0.5) else 1.0
            if not math.isnan(a):
                signs.append(sign)
            med = float(np.median(vt))
            score[te] = sign * np.where(np.isnan(v[te]), med, v[te])
        row["direction"] = ("higher" if sum(signs) >= 0 else "lower") if signs else ""
        row["auroc_cv"] = auroc(y, score) if len(y) else math.nan
        row["lo"], row["hi"] = bootstrap_ci(auroc, y, score, n=n_boot, seed=seed) if len(y) else (math.nan, math.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=["feature", "covered", "auroc_high", "direction", "auroc_cv", "lo", "hi"])


def cross_seed_scores(X: pd.DataFrame, labels: pd.DataFrame, folds: int = 5, seed: int = 0,
                      columns: list[str] | None = None, C: float = 1.0) -> dict:
    """Train on the other seeds' labels, test on one seed's: {held-out seed: DataFrame
    prompt_id, y (that seed's label), p (forecast)} over the examples that seed labels.

    X: features with prompt_id; labels: `seed_labels` (index prompt_id, one column per seed,
    1/0/NaN). Training labels: the other seeds' labels where they all agree
    (`intersect_labels`). folds > 1: examples split into stratified folds (by the held-out
    seed's label, unlabelled ones as their own stratum); each fold is scored by a model fitted
    on the other folds' examples. folds <= 1: one model on every example with a training label.
    """
    Xi = X.assign(prompt_id=X["prompt_id"].astype(str)).set_index("prompt_id")
    lab = labels.copy()
    lab.index = lab.index.astype(str)
    lab = lab.reindex(Xi.index)
    out = {}
    for t in lab.columns:
        train_y = intersect_labels(lab.drop(columns=[t])) if lab.shape[1] > 1 else pd.Series(np.nan, index=lab.index)
        test_y = lab[t]
        p = np.full(len(Xi), np.nan)
        if folds > 1:
            strata = test_y.fillna(-1).to_numpy()
            fold = stratified_folds(strata, min(folds, max(2, len(strata))), seed)
            groups = [(fold != f, fold == f) for f in np.unique(fold)]
        else:
            groups = [(np.ones(len(Xi), bool), np.ones(len(Xi), bool))]
        for tr, te in groups:
            sel = tr & train_y.notna().to_numpy()
            if not sel.any():
                continue
            m = fit_forecaster(Xi[sel], train_y[sel].to_numpy(), columns, C)
            p[te] = m.predict(Xi[te])
        keep = test_y.notna().to_numpy() & ~np.isnan(p)
        out[t] = pd.DataFrame({"prompt_id": Xi.index[keep], "y": test_y.to_numpy()[keep].astype(int), "p": p[keep]})
    return out


def cross_seed(X: pd.DataFrame, labels: pd.DataFrame, folds: int = 5, seed: int = 0, n_boot: int = 1000,
               columns: list[str] | None = None) -> pd.DataFrame:
    """`cross_seed_scores` summarised: per held-out seed: test_seed, train_seeds, n_test,
    unlearnable (1s among them), auroc, lo, hi (bootstrap interval)."""
    rows = []
    for t, d in cross_seed_scores(X, labels, folds, seed, columns).items():
        lo, hi = bootstrap_ci(auroc, d["y"], d["p"], n=n_boot, seed=seed) if len(d) else (math.nan, math.nan)
        rows.append({"test_seed": t, "train_seeds": ",".join(str(s) for s in labels.columns if s != t),
                     "n_test": len(d), "unlearnable": int(d["y"].sum()),
                     "auroc": auroc(d["y"], d["p"]) if len(d) else math.nan, "lo": lo, "hi": hi})
    return pd.DataFrame(rows, columns=["test_seed", "train_seeds", "n_test", "unlearnable", "auroc", "lo", "hi"])


def calibration_table(y, p, bins: int = 5, strategy: str = "uniform") -> pd.DataFrame:
    """Reliability table: per bin of forecast probability: bin, lo, hi, n, mean_p, observed
    (share of 1s; NaN for an empty bin). "uniform": equal-width bins on [0, 1] (every bin
    listed; p = 1 falls in the last); "quantile": edges at quantiles of p (empty ones dropped)."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, bins + 1)
    elif strategy == "quantile":
        edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1))) if len(p) else np.array([0.0, 1.0])
    else:
        raise ValueError(f"strategy={strategy!r}: use 'uniform' or 'quantile'")
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for b in range(len(edges) - 1):
        m = which == b
        rows.append({"bin": b, "lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(m.sum()),
                     "mean_p": float(p[m].mean()) if m.any() else math.nan,
                     "observed": float(y[m].mean()) if m.any() else math.nan})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- wrappers (compute / load)


def light_study(cfg: Config) -> Study:
    """A Study holding only what step-0 analyses need (cfg, training problems, the base
    model's pass@k table): for features without any GRPO run."""
    from unlearnability.data.tasks import load_task
    from unlearnability.pipeline.experiment import (
        Study,
        evaluate_base,
        problem_table,
        read_eval,
    )
    from unlearnability.train.base import ensure_base_model

    task = load_task(cfg, ensure_base_model(cfg))
    return Study(cfg=cfg, seeds=[cfg.grpo.seed], run_dirs={}, problems=problem_table(task.train),
                 initial=read_eval(evaluate_base(cfg, "train")), finals={}, histories={}, validations={},
                 train_logs={})


def _study(source) -> Study:
    from unlearnability.pipeline.experiment import Study

    return source if isinstance(source, Study) else light_study(source)


def easy_reference(initial: pd.DataFrame, size: int, seed: int = 0, tau: float = TAU) -> list[str]:
    """Up to `size` easy examples (initial pass@1 > tau; an initial-policy fact) drawn with
    `seed`: the reference set of `grad_sim`. initial: prompt_id, pass@1 (sorted ids)."""
    easy = sorted(initial.loc[initial["pass@1"] > tau, "prompt_id"].astype(str))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(easy, size=min(size, len(easy)), replace=False).tolist()) if easy else []


def features(source, ids, split: str = "train", group_of: pd.Series | None = None, gradients: str = "targets",
             loglik: str = "samples", sampler: str = "torch", gradient_overrides: dict | None = None,
             tau: float = TAU) -> pd.DataFrame:
    """`feature_table` for `ids` (problems of `split`), computing or loading every table
    through `experiment` (all cached in the run store).

    source: a `Study` (e.g. `experiment.baseline_study`) or a `Config` (no GRPO run needed).
    gradients: "targets" (label-free, one analysis over ids + easy references), "analysis"
        (the §5 analysis of `group_of`; coverage depends on the labels), or "none".
    loglik: "samples" (correct pass@k samples scored under the base model), "analysis"
        (`analysis.likelihood.reference_logliks(study, group_of)`), or "none".
    sampler: "torch" or "vllm" for the pass@k evaluation (paper scale).
    gradient_overrides: e.g. {"rollouts": 64, "per_group": 50} (per_group = reference size).
    """
    from unlearnability.data.tasks import load_task
    from unlearnability.pipeline import experiment as ex
    from unlearnability.train.base import ensure_base_model

    for name, val, ok in (("gradients", gradients, ("targets", "analysis", "none")),
                          ("loglik", loglik, ("samples", "analysis", "none"))):
        if val not in ok:
            raise ValueError(f"{name}={val!r}: use one of {', '.join(ok)}")
    if "analysis" in (gradients, loglik) and group_of is None:
        raise ValueError("gradients/loglik='analysis' reuse the group analyses: pass group_of")
    study = _study(source)
    cfg = study.cfg
    ids = [str(i) for i in ids]
    eval_path = ex.evaluate_base(cfg, split, sampler=sampler)
    samples = ex.read_eval(eval_path, samples=True)
    base = ensure_base_model(cfg)
    task = None
    if split == "train":
        problems = study.problems
    else:
        task = load_task(cfg, base)
        problems = ex.problem_table(task.valid if split == "valid" else task.train)
    grads = None
    if gradients != "none":
        grads = _gradient_features_of(study, ids, group_of, gradients, sampler, gradient_overrides, tau)
    logs = None
    if loglik == "analysis":
        from unlearnability.analysis.likelihood import reference_logliks

        logs = reference_logliks(study, group_of, 0, gradient_overrides=gradient_overrides)
    elif loglik == "samples":
        logs = _sample_logliks(cfg, base, task, samples, ids, eval_path)
    return feature_table(ids, samples, problems, grads, logs)


def _gradient_features_of(study: Study, ids: list[str], group_of: pd.Series | None, gradients: str, sampler: str,
                          gradient_overrides: dict | None, tau: float) -> pd.DataFrame:
    """`features`' gradient columns: from the §5 analysis of `group_of` ("analysis") or from one
    label-free analysis of `ids` beside easy references drawn from the base model's evaluation ("targets")."""
    import dataclasses

    from unlearnability.analysis.gradients import gradient_matrix
    from unlearnability.pipeline import experiment as ex

    cfg = study.cfg
    g = dataclasses.replace(cfg.gradients, **(gradient_overrides or {}))
    if gradients == "analysis":
        exs, C = gradient_matrix(study, group_of, 0, gradient_overrides=gradient_overrides)
        reference = exs.loc[exs["group"] == "easy", "prompt_id"]
    else:
        initial = ex.read_eval(ex.evaluate_base(cfg, "train", sampler=sampler))
        reference = easy_reference(initial, g.per_group, g.seed, tau)
        pseudo = pd.Series({**{r: "easy" for r in reference}, **{i: "learnable" for i in ids}}, name="group")
        # "learnable" is a placeholder name for "asked for" (sample_per_group knows three names);
        # per_group is raised so that every id and every reference is analysed
        over = {**(gradient_overrides or {}), "per_group": max(len(ids), len(reference), 1)}
        exs, C = gradient_matrix(study, pseudo, 0, gradient_overrides=over)
    return gradient_features(exs, C, reference)


def _sample_logliks(cfg: Config, base, task, samples: pd.DataFrame, ids: list[str], eval_path) -> pd.DataFrame | None:
    """`features`' log-likelihood columns: the correct pass@k samples of `ids` scored under the base
    model (cached); None when no id has a correct sample."""
    from unlearnability.data.reward import SCORING_VERSION
    from unlearnability.data.tasks import load_task
    from unlearnability.store.cache import cached_table

    rows = samples[samples["prompt_id"].astype(str).isin(set(ids)) & (samples["reward"] > 0)]
    key = {"eval": str(eval_path), "reference": str(base), "ids": sorted(set(rows["prompt_id"].astype(str))),
           "v": SCORING_VERSION}

    def compute() -> pd.DataFrame:

        set_threads()
        from unlearnability.analysis.likelihood import rollout_logliks

        return rollout_logliks(base, task or load_task(cfg, base), rows)

    return cached_table("forecast-loglik", key, compute) if len(rows) else None


# ----------------------------------------------------------------------------- screen


@dataclass
class Screen:
    """What `screen` returns: the per-example table (SCREEN_COLUMNS), the fitted forecaster,
    and the features of the labelled training examples it was fitted on."""

    table: pd.DataFrame
    forecaster: Forecaster
    training: pd.DataFrame


def screen(source, group_of: pd.Series, split: str = "train", scope: str = "hard", threshold: float = 0.5,
           folds: int = 5, seed: int = 0, tau: float = TAU, **feature_kw) -> Screen:
    """Fit the forecaster on the labelled training examples (`hard_labels(group_of)`) and
    forecast the examples in scope.

    scope "hard": on the train split the labelled examples (learnable + unlearnable: hard
    examples with a positive); on the valid split, which no run trains on, the examples with
    initial pass@1 <= tau. scope "all": every example of the split.
    Columns (SCREEN_COLUMNS): prompt_id, group (from group_of; "" where unknown), label
    (1 / 0 / NaN), the features, forecast (P(unlearnable) by the model fitted on every
    label), forecast_oof (for labelled examples: the out-of-fold probability of
    `cross_validated_scores`, the honest one; NaN otherwise), verdict ("unlearnable" when
    forecast >= threshold, else "learnable").
    feature_kw: passed to `features` (gradients, loglik, sampler, gradient_overrides).
    """
    from unlearnability.pipeline import experiment as ex

    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold={threshold}: a probability in [0, 1]")
    if split not in ("train", "valid"):
        raise ValueError(f"split={split!r}: use 'train' or 'valid'")
    if scope not in ("hard", "all"):
        raise ValueError(f"scope={scope!r}: use 'hard' or 'all'")
    study = _study(source)
    group_of = group_of.copy()
    group_of.index = group_of.index.astype(str)
    y = hard_labels(group_of)
    if y.empty:
        raise ValueError(f"no learnable or unlearnable example in the groups ({group_of.value_counts().to_dict()}): "
                         "nothing to fit the forecast on")
    sampler = feature_kw.get("sampler", "torch")
    split_eval = ex.read_eval(ex.evaluate_base(study.cfg, split, sampler=sampler))
    split_eval["prompt_id"] = split_eval["prompt_id"].astype(str)
    if scope == "all":
        targets = list(split_eval["prompt_id"])
    elif split == "train":
        targets = list(y.index)
    else:
        targets = list(split_eval.loc[split_eval["pass@1"] <= tau, "prompt_id"])
    if split == "train":
        ids = list(dict.fromkeys(list(y.index) + targets))
        feats = features(study, ids, "train", group_of, tau=tau, **feature_kw).set_index("prompt_id")
        train_x, target_x = feats.loc[list(y.index)], feats.loc[targets]
    else:
        train_x = features(study, list(y.index), "train", group_of, tau=tau, **feature_kw).set_index("prompt_id")
        target_x = features(study, targets, split, group_of, tau=tau, **feature_kw).set_index("prompt_id") \
            if targets else train_x.iloc[:0]
    model = fit_forecaster(train_x, y.to_numpy())
    oof = pd.Series(cross_validated_scores(train_x, y.to_numpy(), folds, seed), index=y.index)
    table = target_x.reset_index()
    table["group"] = table["prompt_id"].map(group_of).fillna("") if split == "train" else ""
    table["label"] = table["prompt_id"].map(y).astype(float) if split == "train" else math.nan
    table["forecast"] = model.predict(target_x) if len(target_x) else []
    table["forecast_oof"] = table["prompt_id"].map(oof).astype(float) if split == "train" else math.nan
    table["verdict"] = np.where(table["forecast"] >= threshold, "unlearnable", "learnable")
    return Screen(table[SCREEN_COLUMNS], model, train_x.reset_index())


def preset_labels(preset: str, overrides: dict | None = None, seeds: list[int] | None = None,
                  groups_csv: str | None = None, tau: float = TAU):
    """(source for `features`, group per prompt_id) for `unlearn screen`: from a groups csv
    (prompt_id, group; the preset's config is the source, no GRPO run) or from the §3 study of
    the preset (`experiment.baseline_study`, run or cached; 3-seed intersection groups)."""
    from unlearnability.config import load_config

    if groups_csv is not None:
        from unlearnability.train.sft import read_groups

        group_of = read_groups(groups_csv)
        return load_config(preset, overrides), group_of
    from unlearnability.paper import SEEDS
    from unlearnability.pipeline.experiment import baseline_study

    study = baseline_study(preset, list(seeds or SEEDS), overrides)
    return study, study.classify(tau)["group"]
