import math
import random

import pandas as pd
import pytest
import torch

from unlearnability.analysis.gradients import example_gradient, lora_policy
from unlearnability.analysis.interference import (
    batch_cosines,
    cosine,
    interference,
    split_gradients,
)
from unlearnability.config import GradientConfig
from unlearnability.data.tasks import Task
from unlearnability.world.problems import Problem

G = GradientConfig(lora_r=4, lora_alpha=8, rollouts=8, temperature=1.0, max_correct=3, seed=5)


@pytest.fixture(scope="module")
def tiny(tiny_model):
    d, tok = tiny_model
    return d, tok, lora_policy(d, G)


def ids(tok, text, eos=True):
    return tok(text, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if eos else [])


def test_split_gradients_none_without_variance(tiny):
    d, tok, model = tiny
    prompt = tok("a = 3 . what is a ?")["input_ids"]
    resp = [ids(tok, "answer 3"), ids(tok, "answer 4")]
    for rewards in ([1.0, 1.0], [0.0, 0.0]):
        assert split_gradients(model, prompt, resp, rewards, tok.pad_token_id, 4, random.Random(0)) is None


def test_identical_responses_give_opposite_updates(tiny):
    d, tok, model = tiny
    prompt = tok("a = 3 . what is a ?")["input_ids"]
    r = ids(tok, "a = 3 . answer 3")
    gc, gi = split_gradients(model, prompt, [r, r, r], [1.0, 0.0, 0.0], tok.pad_token_id, 4, random.Random(0))
    assert gc.norm() > 0
    assert cosine(gc, gi) == pytest.approx(-1.0, abs=1e-5)
    # A = (1, -1/2, -1/2) * 1/std: the correct side carries twice the incorrect side's magnitude
    assert torch.allclose(gc, -2 * gi, atol=1e-6 * float(gc.abs().max()) + 1e-9)


def test_correct_side_equals_example_gradient(tiny):
    """g_correct is the §5.1 per-example gradient (same loss, same rollouts, all of them kept)."""
    d, tok, model = tiny
    prompt = tok("b = 2 + 5 . what is b ?")["input_ids"]
    resp = [ids(tok, "b = 7 . answer 7"), ids(tok, "answer 7"), ids(tok, "answer 6", eos=False), ids(tok, "b = 1 .")]
    rewards = [1.0, 1.0, 0.0, 0.0]
    gc, gi = split_gradients(model, prompt, resp, rewards, tok.pad_token_id, 10, random.Random(0))
    ref = example_gradient(model, prompt, resp, rewards, GradientConfig(max_correct=10), tok.pad_token_id,
                           random.Random(1))
    assert torch.allclose(gc, ref, atol=1e-7, rtol=1e-4)
    assert gi.norm() > 0 and -1 <= cosine(gc, gi) <= 1
    # max_each caps the rollouts used: one of each side gives another mean, the same for the same rng seed
    a = split_gradients(model, prompt, resp, rewards, tok.pad_token_id, 1, random.Random(3))
    b = split_gradients(model, prompt, resp, rewards, tok.pad_token_id, 1, random.Random(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.allclose(a[0], gc, rtol=1e-3)


def test_batch_cosines_by_hand():
    s1 = (torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0]))
    s2 = (torch.tensor([0.0, 1.0]), torch.tensor([0.0, 2.0]))
    one = batch_cosines([s1])
    assert one == [pytest.approx(cosine(*s1))] and one[0] == pytest.approx(-1.0)  # batch of one = within
    out = batch_cosines([s1, None, s2])  # incorrect sum = (-1, 2)
    assert out[0] == pytest.approx(-1 / math.sqrt(5)) and math.isnan(out[1])
    assert out[2] == pytest.approx(2 / math.sqrt(5))
    assert all(math.isnan(x) for x in batch_cosines([None, None]))


def test_interference_end_to_end(tiny):
    d, tok, _ = tiny
    # a reward the random tiny model meets about half the time; gold "never" is never met
    reward = lambda resp, gold: 0.0 if gold == "never" else float(any(w.isdigit() for w in resp.split()))
    probs = [Problem("p0", "a = 3 . what is a ?", "3"), Problem("p1", "b = 2 . what is b ?", "never"),
             Problem("p2", "c = 4 + 1 . what is c ?", "5")]
    task = Task(probs, [], tok, lambda q: q, reward, "testbed")
    df = interference(d, task, probs, G, max_new_tokens=4, batch_prompts=1)
    assert list(df.columns) == ["prompt_id", "rollouts", "correct", "cos_within", "cos_batch"]
    assert df.prompt_id.tolist() == ["p0", "p1", "p2"] and (df.rollouts == 8).all()
    p1 = df.set_index("prompt_id").loc["p1"]
    assert p1.correct == 0 and math.isnan(p1.cos_within) and math.isnan(p1.cos_batch)
    ok = df[df.cos_within.notna()]
    assert len(ok) >= 1 and ok.cos_within.between(-1, 1).all()
    assert ok.cos_batch.values == pytest.approx(ok.cos_within.values, abs=1e-6)  # batches of one
    together = interference(d, task, probs, G, max_new_tokens=4, batch_prompts=3, rollouts=6)
    assert (together.rollouts == 6).all()
    both = together.dropna()
    if len(both) >= 2:  # the other examples' incorrect rollouts move the batch direction
        assert (both.cos_batch - both.cos_within).abs().max() > 1e-4
    again = interference(d, task, probs, G, max_new_tokens=4, batch_prompts=3, rollouts=6)
    pd.testing.assert_frame_equal(together, again)  # deterministic given the config's seeds


def test_figure16_tables_and_claims():
    from unlearnability.analysis.interference import cancel_claims, cancel_long, cancel_means, cancel_table, within_change

    def frame(unl_within):
        g = ["learnable"] * 4 + ["unlearnable"] * 4 + ["easy"]
        return pd.DataFrame({"prompt_id": [f"p{i}" for i in range(9)], "group": g, "rollouts": 8, "correct": 3,
                             "cos_within": [-0.1, -0.2, -0.1, -0.2] + unl_within + [float("nan")],
                             "cos_batch": [-0.1, -0.2, -0.1, -0.2, -0.1, -0.2, -0.15, -0.15, 0.3]})
    itf = cancel_table({"initial policy": frame([-0.1, -0.2, -0.15, -0.15]), "step 5": frame([0.9, 0.8, 0.9, 0.8])})
    assert len(itf) == 16 and set(itf.policy) == {"initial policy", "step 5"}  # the easy rows have no within value
    assert itf["within"].iloc[0] == pytest.approx(0.1) and itf["batch"].iloc[0] == pytest.approx(0.1)  # sign flipped
    long = cancel_long(itf)
    assert len(long) == 32 and set(long.measure) == {"(a) within the example", "(b) against the batch's incorrect rollouts"}
    means = cancel_means(itf)
    assert means.loc[("step 5", "unlearnable"), "within"] == pytest.approx(-0.85) and means["examples"].eq(4).all()
    change = within_change(means, "step 5")
    assert change["unlearnable"] == pytest.approx(-1.0) and change["learnable"] == pytest.approx(0.0)
    assert change.name == "change of (a), initial -> mid"
    assert within_change(cancel_means(itf[itf.policy == "step 5"]), "step 5") is None
    rows = cancel_claims(itf)
    assert [r["hypothesis"] for r in rows] == ["interference: within at initial policy (Fig 16a)",
                                               "interference: batch at initial policy (Fig 16b)",
                                               "interference: within at step 5 (Fig 16a)",
                                               "interference: batch at step 5 (Fig 16b)"]
    assert rows[0]["testbed"] == "reproduced" and rows[2]["testbed"] == "see numbers"
    assert rows[2]["paper"] == "learnable shift, unlearnable do not" and rows[3]["paper"] == "no learnable/unlearnable difference"
    assert rows[2]["numbers"].startswith("unlearnable - learnable -1.000, p = ") and rows[2]["numbers"].endswith("(4 vs 4)")
    assert cancel_claims(itf[itf.group == "easy"]) == []
