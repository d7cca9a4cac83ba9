import random

import numpy as np
import pandas as pd
import pytest
import torch

from unlearnability.analysis.gradients import (
    average_similarity,
    cosine_matrix,
    example_gradient,
    group_pair_means,
    lora_params,
    lora_policy,
    sample_per_group,
)
from unlearnability.config import GradientConfig


@pytest.fixture(scope="module")
def tiny_dir(tiny_model):
    return tiny_model


def test_lora_gradient_only_in_b_and_none_without_variance(tiny_dir):
    d, tok = tiny_dir
    g = GradientConfig(lora_r=4, lora_alpha=8)
    model = lora_policy(d, g)
    names = [n for n, _ in lora_params(model)]
    assert names and all("lora_" in n for n in names)
    assert any("q_proj" in n for n in names) and any("v_proj" in n for n in names)
    assert not any("k_proj" in n or "mlp" in n for n in names)
    prompt = tok("a = 3 . what is a ?")["input_ids"]
    resp = [tok("answer 3", add_special_tokens=False)["input_ids"] + [tok.eos_token_id],
            tok("answer 4", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]
    vec = example_gradient(model, prompt, resp, [1.0, 0.0], g, tok.pad_token_id, random.Random(0))
    sizes = [p.numel() for _, p in lora_params(model)]
    parts = torch.split(vec, sizes)
    for (n, _), part in zip(lora_params(model), parts):
        if "lora_A" in n:
            assert part.abs().max() == 0  # B = 0 at init, so A gets no gradient
        else:
            assert part.abs().max() > 0
    assert example_gradient(model, prompt, resp, [1.0, 1.0], g, tok.pad_token_id, random.Random(0)) is None


def test_similarity_by_hand():
    G = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    C = cosine_matrix(G)
    r = 1 / np.sqrt(2)
    assert C == pytest.approx(np.array([[1, r, 0], [r, 1, r], [0, r, 1]]), abs=1e-6)
    assert average_similarity(C) == pytest.approx([r / 2, r, r / 2], abs=1e-6)
    pm = group_pair_means(C, ["x", "x", "y"]).set_index(["group_a", "group_b"])
    assert pm.loc[("x", "x"), "mean_cosine"] == pytest.approx(r) and pm.loc[("x", "x"), "pairs"] == 2
    assert pm.loc[("x", "y"), "mean_cosine"] == pytest.approx(r / 2) and pm.loc[("x", "y"), "pairs"] == 2


def test_sample_per_group_is_seeded():
    import pandas as pd

    groups = pd.Series(["easy"] * 10 + ["learnable"] * 3 + ["no_reward"] * 4, index=[f"p{i}" for i in range(17)])
    a = sample_per_group(groups, 5, seed=0)
    assert (a == "easy").sum() == 5 and (a == "learnable").sum() == 3 and "no_reward" not in set(a)
    assert a.index.tolist() == sample_per_group(groups, 5, seed=0).index.tolist()
    assert a.index.tolist() != sample_per_group(groups, 5, seed=1).index.tolist()


def test_full_parameter_gradients_and_matrix_agreement(tiny_dir):
    from unlearnability.analysis.gradients import (
        full_policy,
        matrix_agreement,
        spearman,
        upper_pairs,
    )

    d, tok = tiny_dir
    g = GradientConfig()
    model = full_policy(d)
    prompt = tok("a = 3 . what is a ?")["input_ids"]
    resp = [tok("answer 3", add_special_tokens=False)["input_ids"] + [tok.eos_token_id],
            tok("answer 4", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]
    vec = example_gradient(model, prompt, resp, [1.0, 0.0], g, tok.pad_token_id, random.Random(0))
    assert vec.numel() == sum(p.numel() for p in model.parameters()) and vec.abs().max() > 0
    C = np.array([[1.0, 0.2, 0.5], [0.2, 1.0, -0.1], [0.5, -0.1, 1.0]])
    assert upper_pairs(C).tolist() == [0.2, 0.5, -0.1]
    same = matrix_agreement(C, C)
    assert same["pairs"] == 3 and abs(same["pearson"] - 1) < 1e-12 and abs(same["spearman"] - 1) < 1e-12
    flipped = matrix_agreement(C, -C + 2 * np.eye(3))
    assert flipped["spearman"] < -0.99
    import pandas as pd
    assert abs(spearman(pd.Series([1, 2, 3, 4]), pd.Series([1, 4, 9, 16])) - 1) < 1e-12  # monotone, not linear


def examples_table(label="initial policy", unl_shift=-1.0):
    g = ["easy"] * 4 + ["learnable"] * 4 + ["unlearnable"] * 4
    sim = [0.5, 0.6, 0.55, 0.45, 0.5, 0.4, 0.6, 0.5] + [0.5 + unl_shift + d for d in (0.0, 0.05, -0.05, 0.02)]
    return pd.DataFrame({"prompt_id": [f"p{i}" for i in range(12)], "group": g, "avg_similarity": sim, "policy": label})


def test_outlier_claims_and_counts():
    from unlearnability.analysis.gradients import examples_per_policy, outlier_claims

    ex = pd.concat([examples_table(), examples_table("step 5", unl_shift=0.3),
                    examples_table("step 9").query("group != 'unlearnable'")])
    rows = outlier_claims(ex)
    assert [r["claim"] for r in rows] == ["unlearnable are gradient outliers, initial policy (Fig 6)",
                                          "unlearnable are gradient outliers, step 5 (Fig 17)",
                                          "unlearnable are gradient outliers, step 9 (Fig 17)"]
    assert [r["testbed"] for r in rows] == ["reproduced", "not", "untestable"]
    assert rows[0]["numbers"].startswith("lowest group: unlearnable; unlearnable - rest -1.0")
    assert rows[1]["numbers"].startswith("lowest group: learnable")
    counts = examples_per_policy(ex, ["easy", "learnable", "unlearnable", "no_reward"])
    assert list(counts.columns) == ["easy", "learnable", "unlearnable"] and counts.loc["step 5", "unlearnable"] == 4
    assert np.isnan(counts.loc["step 9", "unlearnable"])


def test_lora_full_claim_thresholds_and_rows():
    from unlearnability.analysis.gradients import lora_full_claim, outlier_gap, rollouts_agreement

    a = {"examples": 6, "pairs": 15, "pearson": 0.81, "spearman": 0.75, "avg_pearson": 0.5, "avg_spearman": 0.4}
    c = lora_full_claim(a)
    assert c["verdict"] == "reproduced" and c["numbers"] == "pairs Spearman 0.750, Pearson 0.810 (reproduced: >= 0.7)"
    assert c["line"].startswith("LoRA vs full-parameter gradients at the initial policy, 6 examples (15 pairs)")
    assert lora_full_claim({**a, "spearman": 0.5})["verdict"] == "partly"
    assert lora_full_claim({**a, "spearman": 0.1})["verdict"] == "not"
    row = outlier_gap("LoRA", 16, examples_table())
    assert row["gradients"] == "LoRA" and row["rollouts"] == 16 and row["examples"] == 12
    assert row["unlearnable - rest"] == pytest.approx(-0.495 - 0.5125) and row["p"] < 0.05  # group means by hand
    ex, alt_ex = examples_table(), examples_table()
    alt_ex["avg_similarity"] = -alt_ex["avg_similarity"]  # reversed ranks
    line = rollouts_agreement(ex.drop(columns="policy"), alt_ex.drop(columns="policy"), 16, 32)
    assert line.startswith("Per example, the average similarity with 16 and with 32 rollouts correlates at Spearman -1.000")
    assert "(12 examples with a gradient in both)" in line
    assert rollouts_agreement(ex, alt_ex.iloc[:2], 16, 32) is None
