"""The §3 chapter's tables and claims (evaluation/calibration.py, groups.py, null.py), on small
synthetic runs: what unlearnable-examples displays and records."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from simulated import training_history

from unlearnability.evaluation import calibration as cal
from unlearnability.evaluation import groups as G
from unlearnability.evaluation import null as N
from unlearnability.paper import TABLE1


def validation(before: list[float], after: list[float], end: int = 10) -> pd.DataFrame:
    ids = [f"v{i}" for i in range(len(before))]
    return pd.DataFrame({"step": [0] * len(ids) + [end] * len(ids), "prompt_id": ids + ids,
                         "mean_reward": before + after})


def train_log(kl: list[float], reward: list[float] | None = None, rel_change: bool = True) -> pd.DataFrame:
    t = pd.DataFrame({"step": range(1, len(kl) + 1), "kl": kl, "mean_reward": reward or [0.0] * len(kl)})
    return t.assign(rel_change=1e-3) if rel_change else t


def gen_table(changes, ses, gains=(0.2, 0.1), before=0.1):
    """A `generalisation_table`-shaped table, one row per seed."""
    seeds = [1, 42, 37][: len(changes)]
    return pd.DataFrame({"training gain": list(gains)[: len(changes)], "validation before": before,
                         "validation after": [before + c for c in changes], "validation change": changes,
                         "SE": ses}, index=pd.Index(seeds, name="seed"))


def test_generalisation_table_pairs_validation_and_training_per_seed():
    initial = pd.Series([0.0, 0.2], index=["a", "b"])
    finals = {1: pd.Series([0.4, 0.4], index=["a", "b"]), 42: pd.Series([0.0, 0.1], index=["a", "b"])}
    vals = {1: validation([0.0, 0.5], [0.5, 1.0]), 42: validation([0.5, 0.5], [0.5, 0.5])}
    logs = {1: train_log([0.1, 0.3]), 42: train_log([0.2], rel_change=False)}
    g = cal.generalisation_table(initial, finals, vals, logs)
    assert g.index.tolist() == [1, 42]
    assert g.loc[1, "training gain"] == pytest.approx(0.3) and g.loc[1, "after"] == pytest.approx(0.4)
    assert g.loc[1, "validation change"] == pytest.approx(0.5) and g.loc[1, "SE"] == pytest.approx(0.0)
    assert g.loc[1, "validation / training gain"] == pytest.approx(0.5 / 0.3)
    assert math.isnan(g.loc[42, "validation / training gain"])  # the training gain is negative
    assert g.loc[1, "max KL"] == 0.3 and g.loc[1, "relative change per step"] == pytest.approx(1e-3)
    assert math.isnan(g.loc[42, "relative change per step"])  # not logged


def test_transfer_sentence_and_note_judge_each_seed_by_two_standard_errors():
    every = gen_table([0.10, 0.08], [0.02, 0.03])
    some = gen_table([0.10, 0.02], [0.02, 0.03])
    none = gen_table([0.01, -0.02], [0.02, 0.03])
    assert cal.significant_rise(some).tolist() == [True, False]
    assert cal.transfer_sentence(every).endswith("to problems it never saw, as in the paper.")
    assert "more than two standard errors in 1 of 2 seeds;" in cal.transfer_sentence(some)
    assert cal.transfer_sentence(none).startswith(
        "Training-set pass@1 rose by +0.100 to +0.200 across seeds; held-out validation changed by -0.020 to +0.010 "
        "(standard errors about 0.025). In no seed")
    assert cal.generalisation_note(every).endswith("it rose beyond two standard errors in every seed.")
    assert cal.generalisation_note(none) == ("Generalisation: held-out validation moved by -0.020 to +0.010 per seed "
                                             "against a training gain of +0.100 to +0.200; it rose beyond two standard "
                                             "errors in 0 of 2 seeds.")


def samples(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["prompt_id", "style", "reward"])


def test_style_change_table_averages_the_seeds_shares():
    before = samples([("a", "worked", 1), ("a", "answer", 0), ("b", "answer", 0), ("b", "answer", 0)])
    after = [samples([("a", "worked", 1), ("b", "worked", 1)]), samples([("a", "worked", 0), ("b", "answer", 1)])]
    t = cal.style_change_table(before, after)
    assert t.index.tolist() == ["before: all samples", "after: all samples", "before: correct samples",
                                "after: correct samples"]
    assert t.loc["before: all samples", "answer"] == pytest.approx(0.75)
    assert t.loc["after: all samples", "worked"] == pytest.approx((1.0 + 0.5) / 2)
    assert t.loc["after: correct samples", "answer"] == pytest.approx(1.0)  # the mean of the seeds that have the style
    assert t.loc["after: correct samples", "worked"] == pytest.approx(1.0)
    assert t.loc["before: correct samples", "worked"] == pytest.approx(1.0)
    assert t.loc["before: correct samples", "answer"] == 0  # a share no sample has is 0


def test_correct_styles_by_group_orders_groups_and_counts_the_correct_samples():
    group_of = pd.Series({"e": "easy", "l": "learnable", "u": "unlearnable"}, name="group")
    before = samples([("e", "worked", 1), ("e", "answer", 1), ("l", "answer", 1), ("u", "worked", 0)])
    after = [samples([("e", "worked", 1), ("l", "worked", 1)]), samples([("l", "worked", 1), ("l", "answer", 1)])]
    t = cal.correct_styles_by_group(before, after, group_of)
    assert t.index.tolist() == [("easy", "before"), ("easy", "after"), ("learnable", "before"), ("learnable", "after")]
    assert t.loc[("easy", "before"), "worked"] == pytest.approx(0.5)
    assert t.loc[("learnable", "after"), "worked"] == pytest.approx((1.0 + 0.5) / 2)
    assert t["correct samples"].tolist() == [2, 1, 1, 3]  # after: both seeds together


def labels(rows: dict[str, list[str]], seeds=(1, 2)) -> pd.DataFrame:
    """A classify-like table: seed_<s> labels per problem and their combined group."""
    t = pd.DataFrame(rows, index=[f"seed_{s}" for s in seeds]).T
    return t.assign(group=G.combine_seeds(t))


def test_switching_sentence_quotes_the_shares_and_the_ambiguous_problems():
    text = cal.switching_sentence({"problems": 40, "any_switch": 0.25, "seed_1 vs seed_2": 0.25},
                                  {"problems": 30, "switch": 0.2, "kappa": 0.61}, 3)
    assert text == ("Of the 40 non-easy problems, **25.0%** get different labels in different seeds (seed_1 vs seed_2: "
                    "25.0%). Of the 30 non-easy problems with a positive reward in some seed, **20.0%** switch label; "
                    "Fleiss' kappa over the seeds is **0.61**. After the intersection, 3 problems are ambiguous.")


def test_luck_switches_count_the_no_reward_unlearnable_switches():
    cls = labels({"a": ["no_reward", "unlearnable"], "b": ["unlearnable", "no_reward"], "c": ["learnable", "unlearnable"],
                  "d": ["easy", "easy"], "e": ["unlearnable", "unlearnable"]})
    finals = {1: pd.Series({"a": 0.0, "b": 0.1, "c": 0.5, "d": 1, "e": 0}),
              2: pd.Series({"a": 0.1, "b": 0.1, "c": 0.0, "d": 1, "e": 0})}
    hist = {1: pd.DataFrame({"prompt_id": ["a", "a", "b", "c"]}), 2: pd.DataFrame({"prompt_id": ["a", "b"]})}
    luck = cal.luck_switches(cls, finals, hist)
    assert luck["switching"] == 3 and luck["luck_only"] == 2 and luck["share"] == pytest.approx(200 / 3)
    assert luck["median_final"] == pytest.approx((0.05 + 0.1) / 2) and luck["mean_final"] == pytest.approx(0.075)
    assert luck["mean_draws"] == pytest.approx((2 + 1 + 1 + 1 + 1) / 5)
    text = cal.luck_sentence(luck, 8, p=100)
    assert text.startswith("2 of the 3 switching problems (67%) never pass the threshold")
    assert "median pass@1 of 0.075 (mean over seeds; mean 0.075, and a blind guess is right with chance 0.010)" in text
    assert "whether about 1 draws of 8 rollouts" in text
    assert "blind guess" not in cal.luck_sentence(luck, 8)


def write_run(folder, before, after, kl):
    from unlearnability.store.history import VALIDATION_FILE

    folder.mkdir()
    validation(before, after).to_csv(folder / VALIDATION_FILE, index=False)
    train_log(kl, reward=[0.0] * 6 + [0.6] * 6).to_csv(folder / "train_log.csv", index=False)
    return folder


def test_ablation_table_summarises_every_run_and_the_notes_compare_them(tmp_path):
    runs = {"with styles": {1: write_run(tmp_path / "s1", [0.2, 0.2], [0.4, 0.6], [0.1] * 12)},
            "worked only": {1: write_run(tmp_path / "c1", [0.5, 0.5], [0.5, 0.7], [0.3] * 12)}}
    t = cal.ablation_table(runs)
    assert t.index.tolist() == [("with styles", 1), ("worked only", 1)]
    assert t.loc[("with styles", 1), "validation change"] == pytest.approx(0.3)
    assert t.loc[("worked only", 1), "max KL"] == pytest.approx(0.3)
    assert t.loc[("with styles", 1), "drawn-prompt reward, first steps"] == 0.0 and t.loc[("with styles", 1), "last steps"] == 0.6

    gen = gen_table([0.3], [0.05], gains=(0.2,), before=0.2)
    notes = cal.ablation_notes(gen, t.xs("worked only", level=0))
    d, se = 0.3 - 0.1, (0.05**2 + t.loc[("worked only", 1), "SE"] ** 2) ** 0.5
    assert notes[0].startswith("Without the extra styles (matched control, seed 1), held-out validation changed by +0.100 "
                               "from a base at 0.500, against +0.300 to +0.300 with the styles from 0.200.")
    assert notes[0].endswith(f"Styles minus control, same seed: +0.200 (seed 1, {d / se:.1f} standard errors).")
    assert "validates at 0.500 and the worked-only control at 0.600. The styles lower the base model" in notes[1]
    high = cal.ablation_notes(gen.assign(**{"validation after": 0.9}), t.xs("worked only", level=0))
    assert high[1].endswith("more than recovering what the extra styles took away.")


def test_chance_positives_and_sentence():
    hist = {1: pd.DataFrame({"step": [1, 2], "prompt_id": ["a", "b"], "mean_reward": [0.5, 0.0], "n": [8, 8]}),
            2: pd.DataFrame({"step": [1], "prompt_id": ["a"], "mean_reward": [0.25], "n": [16]})}
    luck = G.chance_positives(hist, 8)
    assert luck.seed.tolist() == [1, 1, 2] and luck.expected_by_chance.tolist() == [1.0, 1.0, 2.0]
    assert luck.positives.tolist() == [4, 0, 4]
    cls = pd.DataFrame({"group": ["unlearnable", "no_reward", "easy"]}, index=["a", "b", "c"])
    chance = pd.DataFrame({"group": ["no_reward", "no_reward", "easy"]}, index=["a", "b", "c"])
    text = G.chance_sentence(cls, chance, luck, 3)
    assert text == ("1 of 3 problems change group under the chance correction; 0 of the 1 unlearnable problems keep "
                    "their label. Across seeds, a problem's training rollouts would contain on average 1.33 lucky "
                    "positives (at most 2.00); the problems counted as *unlearnable* had on average 4.00 positives per seed.")
    none = pd.DataFrame({"group": ["easy", "no_reward", "easy"]}, index=["a", "b", "c"])
    assert G.chance_sentence(none, chance, luck, 3).endswith("no positives (there are none).")


def test_shares_sentence_quotes_the_groups_beside_the_papers_range():
    initial = pd.Series([0.5, 0.0, 0.0, 0.0, 0.0], index=list("abcde"))
    finals = {s: pd.Series([0.5, 0.5, 0.0, 0.0, 0.0], index=list("abcde")) for s in (1, 2)}
    hist = {s: pd.DataFrame({"step": 1, "prompt_id": list("abcd"), "mean_reward": [1, 1, 0.5, 0.5 if s == 1 else 0],
                             "n": 8}) for s in (1, 2)}
    cls = G.classify(initial, finals, hist)  # a easy, b learnable, c unlearnable, d and e no_reward
    text = G.shares_sentence(cls)
    lo, hi = min(r["unlearnable"] for r in TABLE1.values()), max(r["unlearnable"] for r in TABLE1.values())
    assert text.startswith(f"On the testbed, 20.0% of training problems are *unlearnable* by the paper's definition "
                           f"(the paper: {lo:.1f}-{hi:.1f}%), 20.0% learnable")
    assert "40.0% never rewarded in some seed (the union, as the paper:" in text
    assert "; 40.0% once easy and learnable problems keep their group), 20.0% easy and 0.0% ambiguous" in text


def study_like(seed: int = 0, n: int = 300, seeds=(1, 42)):
    """A study-like object of a simulated run where nothing changes (what the null reads)."""
    rng = np.random.default_rng(seed)
    tier = np.arange(n) % 3 + 1
    r = rng.beta(np.array([0.2, 0.08, 0.03])[tier - 1] * 5, 5)
    ids = [f"p{i:03d}" for i in range(n)]
    c0 = rng.binomial(32, r)
    initial = pd.DataFrame({"prompt_id": ids, "correct": c0, "n": 32, "pass@1": c0 / 32})
    finals, histories = {}, {}
    for s in seeds:
        histories[s] = training_history(rng, r, ids)
        cf = rng.binomial(32, r)
        finals[s] = pd.DataFrame({"prompt_id": ids, "correct": cf, "n": 32, "pass@1": cf / 32})
    st = SimpleNamespace(problems=pd.DataFrame({"prompt_id": ids, "tier": tier}), initial=initial, finals=finals,
                         histories=histories, cfg=SimpleNamespace(world=SimpleNamespace(p=50), data=SimpleNamespace(source="testbed")))
    pass1 = lambda t: t.set_index("prompt_id")["pass@1"]  # noqa: E731
    return st, lambda p=None: G.classify(pass1(initial), {s: pass1(finals[s]) for s in seeds}, histories, 0.1, p=p)


def test_table1_beside_paper_and_the_null_note():
    st, classify = study_like()
    cls = classify()
    vs = N.compare_groups(cls, st.histories, N.null_from_study(st, replicates=100))
    t = N.table1_beside_paper(vs)
    assert t.index.name == "group" and t.index.tolist() == [N.LABEL[q] for q in N.COUNTS]
    assert t["this book (count)"].tolist() == [int(vs.loc[q, "measured"]) for q in N.COUNTS]
    qwen = "paper: Qwen2.5-0.5B (%)"
    assert t.loc["unlearnable", qwen] == TABLE1["Qwen2.5-0.5B (MATH levels 1-4)"]["unlearnable"]
    assert t.loc[N.LABEL["no_reward_union"], qwen] == TABLE1["Qwen2.5-0.5B (MATH levels 1-4)"]["no_reward"]
    assert t.loc[N.LABEL["no_reward"], qwen] != t.loc[N.LABEL["no_reward"], qwen]  # NaN: the paper has the union only
    note = N.null_note(vs)
    assert note.startswith(f"Against Table 1 if RL changed nothing: learnable {vs.loc['learnable', 'measured_percent']:.1f}% "
                           f"vs {vs.loc['learnable', 'null_text']}%, {vs.loc['learnable', 'verdict']}; unlearnable")
    assert note.count("; ") == 2 and note.endswith(f"{vs.loc['no_reward_union', 'verdict']}.")


def test_chance_corrected_table_adds_the_null_only_with_a_modulus():
    st, classify = study_like(1)
    cls, chance = classify(), classify(p=50)
    plain = N.chance_corrected_table(st, cls, chance, 0.1)
    assert list(plain.columns) == ["paper's definition", "chance-corrected"] and plain.index.tolist() == G.GROUPS
    assert plain["chance-corrected"].tolist() == G.table1(chance["group"])["count"].tolist()
    with_null = N.chance_corrected_table(st, cls, chance, 0.1, p=50)
    assert list(with_null.columns)[2:] == ["chance-corrected, if RL changed nothing (%, 95% interval)", "against the null"]
    assert set(with_null["against the null"]) <= {*N.VERDICTS, "no measure"}


def test_agreement_note_with_and_without_problems_above_chance():
    table = pd.DataFrame({"measured_text": ["81.5"], "null_text": ["60.0 [50.0, 70.0]"]}, index=["agreement"])
    sw = {"switch": 0.123, "kappa": 0.456}
    assert N.agreement_note(sw, table, 27, 4.25) == (
        "Seed agreement: 12% of the non-easy problems with a positive reward switch label between seeds (Fleiss' kappa "
        "0.46), leaving 4.2% of all problems ambiguous; 81.5% of the 27 with positives above chance in some seed get one "
        "label in every seed (60.0 [50.0, 70.0]% if RL changed nothing).")
    assert N.agreement_note(sw, table, 0, 4.25).endswith("; no non-easy problem had positives above chance in any seed.")
