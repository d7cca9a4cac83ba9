import random

import numpy as np
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


def test_permutation_test():
    from unlearnability.analysis.gradients import permutation_test

    vals = np.array([0.0, 0.1, 0.0, 1.0, 1.1, 0.9, 1.0, 1.2])
    gap, p = permutation_test(vals, np.array([1, 1, 1, 0, 0, 0, 0, 0]), n=2000)
    assert gap == pytest.approx(0.1 / 3 - 1.04) and p < 0.05  # clearly lower: 1 of 56 labelings
    gap, p = permutation_test(vals, np.array([0, 0, 0, 1, 1, 1, 0, 0]), n=2000)
    assert p > 0.3


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
