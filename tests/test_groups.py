import pandas as pd

from unlearnability.evaluation.groups import (
    chance_threshold,
    classify,
    combine_seeds,
    switches,
    table1,
    training_positives,
)


def hist(rows):
    return pd.DataFrame(rows, columns=["step", "prompt_id", "mean_reward", "std_reward", "n", "processed", "clip_frac"])


def test_classify_by_hand():
    ids = ["easy", "learn", "unlearn", "none", "amb", "mixed"]
    initial = pd.Series([0.5, 0.05, 0.0, 0.0, 0.0, 0.0], index=ids)
    finals = {1: pd.Series([0.9, 0.5, 0.05, 0.0, 0.5, 0.0], index=ids),
              2: pd.Series([0.9, 0.3, 0.1, 0.0, 0.0, 0.0], index=ids)}
    h1 = hist([(1, "learn", 0.25, 0.4, 8, 1, 0.0), (1, "unlearn", 0.125, 0.3, 8, 1, 0.0), (1, "none", 0, 0, 8, 0, None),
               (1, "amb", 0.125, 0.3, 8, 1, 0.0), (1, "mixed", 0.125, 0.3, 8, 1, 0.0), (2, "unlearn", 0, 0, 8, 0, None)])
    h2 = hist([(1, "learn", 0.5, 0.5, 8, 1, 0.0), (2, "unlearn", 0.25, 0.4, 8, 1, 0.0), (1, "none", 0, 0, 8, 0, None),
               (1, "amb", 0.125, 0.3, 8, 1, 0.0), (1, "mixed", 0.0, 0.0, 8, 0, None)])
    out = classify(initial, finals, {1: h1, 2: h2}, tau=0.1)
    assert out["group"].to_dict() == {"easy": "easy", "learn": "learnable", "unlearn": "unlearnable",
                                      "none": "no_reward", "amb": "ambiguous", "mixed": "no_reward"}
    assert out.loc["amb", "seed_1"] == "learnable" and out.loc["amb", "seed_2"] == "unlearnable"
    t = table1(out["group"])
    assert t["count"].sum() == 6 and t.loc["no_reward", "count"] == 2 and t.loc["no_reward", "percent"] == 33.3
    sw = switches(out)
    assert sw["problems"] == 5 and sw["any_switch"] == 2 / 5  # amb and mixed switch; easy left out


def test_training_positives_and_chance_correction():
    h = hist([(1, "a", 0.125, 0.33, 8, 1, 0.0), (2, "a", 0.0, 0.0, 8, 0, None), (1, "b", 0.5, 0.5, 8, 1, 0.0)])
    tp = training_positives(h)
    assert tp.loc["a"].tolist() == [16, 1, 2, 0.125] and tp.loc["b", "positives"] == 4
    # Binomial(16, 0.01): P(X <= 1) = 0.9891 < 0.99 <= P(X <= 2), so up to 2 positives are chance;
    # Binomial(8, 0.01): P(X <= 1) = 0.9973, so b's 4 positives are not
    assert chance_threshold(16, 100) == 2 and chance_threshold(8, 100) == 1
    assert chance_threshold(1000, 2) > 500
    initial = pd.Series([0.0, 0.0], index=["a", "b"])
    final = {1: pd.Series([0.0, 0.0], index=["a", "b"])}
    paper = classify(initial, final, {1: h}, tau=0.1)
    corrected = classify(initial, final, {1: h}, tau=0.1, p=100)
    assert paper["group"].tolist() == ["unlearnable", "unlearnable"]
    assert corrected["group"].tolist() == ["no_reward", "unlearnable"]


def test_combine_seeds_rules():
    labels = pd.DataFrame({"seed_1": ["easy", "learnable", "unlearnable", "no_reward", "learnable", "learnable"],
                           "seed_2": ["easy", "learnable", "no_reward", "no_reward", "no_reward", "unlearnable"]})
    # a seed that never rewarded a problem makes it no_reward (the union), whatever the other seed
    # says, unless it is easy or learnable in every seed; learnable / unlearnable mixes are ambiguous
    assert combine_seeds(labels).tolist() == ["easy", "learnable", "no_reward", "no_reward", "no_reward", "ambiguous"]


def test_no_reward_is_the_union_over_seeds_whatever_the_pass_rates():
    ids = ["learned_blind", "half_learned", "easy_blind", "unlearn", "split"]
    initial = pd.Series([0.0, 0.0, 0.5, 0.0, 0.0], index=ids)
    finals = {1: pd.Series([0.5, 0.5, 0.9, 0.0, 0.5], index=ids), 2: pd.Series([0.5, 0.0, 0.9, 0.05, 0.0], index=ids)}
    # seed 1 rewards everything but learned_blind; seed 2 rewards everything but half_learned and easy_blind
    h1 = hist([(1, i, 0.125, 0.3, 8, 1, 0.0) for i in ids if i != "learned_blind"] + [(1, "learned_blind", 0, 0, 8, 0, None)])
    h2 = hist([(1, i, 0.125, 0.3, 8, 1, 0.0) for i in ids if i not in ("half_learned", "easy_blind")]
              + [(1, "half_learned", 0, 0, 8, 0, None), (1, "easy_blind", 0, 0, 8, 0, None)])
    out = classify(initial, finals, {1: h1, 2: h2}, tau=0.1)
    # half_learned: learnable in seed 1, never rewarded in seed 2 -> no_reward (the old rule said ambiguous)
    assert out["group"].to_dict() == {"learned_blind": "learnable", "half_learned": "no_reward", "easy_blind": "easy",
                                      "unlearn": "unlearnable", "split": "ambiguous"}
    assert out["rewarded_1"].tolist() == [False, True, True, True, True]
    assert out["rewarded_2"].tolist() == [True, False, False, True, True]
    t = table1(out)
    # the partition gives learned_blind to learnable and easy_blind to easy; the paper's column, the
    # union, counts them too: no_reward overlaps easy and learnable there
    assert t["count"].to_dict() == {"easy": 1, "learnable": 1, "unlearnable": 1, "no_reward": 1, "ambiguous": 1}
    assert t.loc["no_reward", "paper_count"] == 3 and t.loc["no_reward", "paper_percent"] == 60.0
    assert (t["paper_count"].drop("no_reward") == t["count"].drop("no_reward")).all()
    assert table1(out["group"]).columns.tolist() == ["count", "percent"]  # a Series: the old table
    # the chance-corrected union: 1 positive of 8 is chance at p = 100, so every seed "never rewarded" all
    chance = classify(initial, finals, {1: h1, 2: h2}, tau=0.1, p=100)
    assert chance["group"].tolist() == ["learnable", "no_reward", "easy", "no_reward", "no_reward"]


def test_a_study_classifies_as_groups_classify():
    """Study.classify is the chapters' one-call header: the same table as groups.classify."""
    from unlearnability.pipeline.experiment import Study

    ids = ["a", "b", "c"]
    summary = lambda rates: pd.DataFrame({"prompt_id": ids, "pass@1": rates})  # noqa: E731
    h = {1: hist([(1, "b", 0.25, 0.4, 8, 1, 0.0), (1, "c", 0.0, 0.0, 8, 0, None)]),
         2: hist([(1, "b", 0.125, 0.3, 8, 1, 0.0), (1, "c", 0.125, 0.3, 8, 1, 0.0)])}
    study = Study(cfg=None, seeds=[1, 2], run_dirs={}, problems=pd.DataFrame({"prompt_id": ids}),
                  initial=summary([0.5, 0.0, 0.0]), finals={1: summary([0.9, 0.5, 0.0]), 2: summary([0.9, 0.3, 0.05])},
                  histories=h, validations={}, train_logs={})
    expected = classify(pd.Series([0.5, 0.0, 0.0], index=pd.Index(ids, name="prompt_id")),
                        {1: pd.Series([0.9, 0.5, 0.0], index=pd.Index(ids, name="prompt_id")),
                         2: pd.Series([0.9, 0.3, 0.05], index=pd.Index(ids, name="prompt_id"))}, h, tau=0.1)
    pd.testing.assert_frame_equal(study.classify(0.1), expected)
    assert study.classify(0.1)["group"].to_dict() == {"a": "easy", "b": "learnable", "c": "no_reward"}  # c: never rewarded in seed 1 (the union rule)
    pd.testing.assert_frame_equal(study.classify(0.1, p=11), classify(expected["initial"], {
        s: expected[f"final_{s}"] for s in (1, 2)}, h, tau=0.1, p=11), check_names=False)


def test_target_ids_fall_back_to_ambiguous_only_without_unlearnable():
    from unlearnability.evaluation.groups import target_ids

    g = pd.Series({"u2": "unlearnable", "a": "ambiguous", "u1": "unlearnable", "l": "learnable"})
    assert target_ids(g) == (["u1", "u2"], "unlearnable")
    ids, name = target_ids(g[g != "unlearnable"])
    assert ids == ["a"] and name.startswith("unlearnable + ambiguous")
    assert target_ids(pd.Series({"e": "easy"}))[0] == []
