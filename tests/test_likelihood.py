import math

import pandas as pd
import pytest
import torch

from unlearnability.analysis.likelihood import per_example, per_group, rollout_logliks
from unlearnability.data.tasks import Task
from unlearnability.policy.model import load_model
from unlearnability.world.problems import Problem


@pytest.fixture(scope="module")
def tiny(tiny_model):
    d, tok = tiny_model
    probs = [Problem("p0", "a = 3 . what is a ?", "3"), Problem("p1", "b = 2 + 5 . what is b ?", "7")]
    task = Task(probs, [], tok, lambda q: q, lambda r, gold: 0.0, "testbed")
    return d, tok, task


def manual(model, tok, question: str, response: str, finished: bool) -> tuple[float, int]:
    """Sum of log_softmax(logits)[next token] over the response tokens, one unpadded sequence."""
    p = tok(question)["input_ids"]
    r = tok(response, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if finished else [])
    ids = torch.tensor([p + r])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)  # (L, V)
    return sum(float(logp[len(p) - 1 + t, tok_id]) for t, tok_id in enumerate(r)), len(r)


def test_rollout_logliks_match_manual_computation(tiny):
    d, tok, task = tiny
    samples = pd.DataFrame({
        "prompt_id": ["p0", "p0", "p1", "p1"], "sample": [0, 1, 0, 1], "reward": [1.0, 0.0, 1.0, 1.0],
        "response": ["answer 3", "a = 4 . answer 4", "b = 7 . answer 7", "answer 7 7 7 7 7 7"],
        "finished": [True, True, False, True]})
    model = load_model(d)
    out = rollout_logliks(d, task, samples, batch_size=2)
    assert list(out.columns) == ["prompt_id", "sample", "reward", "n_tokens", "mean_logp", "sum_logp"]
    assert out[["prompt_id", "sample"]].values.tolist() == [["p0", 0], ["p1", 0], ["p1", 1]]  # correct only, in order
    q = {"p0": task.train[0].question, "p1": task.train[1].question}
    for _, row in out.iterrows():
        s = samples[(samples.prompt_id == row.prompt_id) & (samples["sample"] == row["sample"])].iloc[0]
        want, n = manual(model, tok, q[row.prompt_id], s.response, bool(s.finished))
        assert row.n_tokens == n
        assert row.sum_logp == pytest.approx(want, abs=1e-4)
        assert row.mean_logp == pytest.approx(want / n, abs=1e-5)
    # padding and batching do not change the numbers; a loaded model works as well as a folder
    every = rollout_logliks(model, task, samples, batch_size=64, correct_only=False)
    assert len(every) == 4 and every.loc[every.reward > 0, "sum_logp"].values == pytest.approx(
        out["sum_logp"].values, abs=1e-4)
    assert (out["mean_logp"] < 0).all()


def test_rollout_logliks_empty_when_nothing_correct(tiny):
    d, tok, task = tiny
    samples = pd.DataFrame({"prompt_id": ["p0"], "sample": [0], "reward": [0.0], "response": ["answer 4"],
                            "finished": [True]})
    out = rollout_logliks(d, task, samples)
    assert out.empty and "mean_logp" in out.columns


def test_per_example_and_per_group_by_hand():
    df = pd.DataFrame({"prompt_id": ["a", "a", "a", "b", "c", "c"], "sample": [0, 1, 2, 0, 0, 1],
                       "reward": [1.0, 1.0, 0.0, 1.0, 1.0, 1.0],
                       "n_tokens": [2, 4, 3, 1, 2, 2],
                       "mean_logp": [-1.0, -3.0, -100.0, -0.5, -2.0, -4.0],
                       "sum_logp": [-2.0, -12.0, -300.0, -0.5, -4.0, -8.0]})
    ex = per_example(df).set_index("prompt_id")
    assert ex.loc["a", "n_correct"] == 2 and ex.loc["a", "mean_logp"] == pytest.approx(-2.0)  # the 0 row ignored
    assert ex.loc["a", "mean_sum_logp"] == pytest.approx(-7.0)
    assert ex.loc["b", "mean_logp"] == pytest.approx(-0.5) and ex.loc["c", "mean_logp"] == pytest.approx(-3.0)
    groups = pd.Series({"a": "unlearnable", "b": "easy", "c": "easy", "zzz": "learnable"})
    pg = per_group(ex.reset_index(), groups)
    assert pg["group"].tolist() == ["easy", "unlearnable"]  # groups.GROUPS order, only groups with examples
    easy = pg.set_index("group").loc["easy"]
    assert easy.examples == 2 and easy["mean"] == pytest.approx(-1.75)
    assert easy["sem"] == pytest.approx(pd.Series([-0.5, -3.0]).std(ddof=1) / math.sqrt(2))
    assert math.isnan(pg.set_index("group").loc["unlearnable", "sem"])  # one example: no SEM
    # examples without a group are dropped
    assert per_group(ex.reset_index(), pd.Series({"a": "easy"}))["examples"].tolist() == [1]
