"""Simulated GRPO training draws for the null tests (test_null.py, test_null_results.py)."""

import numpy as np
import pandas as pd


def training_history(rng: np.random.Generator, rates: np.ndarray, ids) -> pd.DataFrame:
    """One seed's history: each problem drawn 3 or 4 times (about the default's 3.4), each draw a
    group of 8 rollouts at the problem's true rate (`rates`, shape (n,)), in history.csv's columns."""
    n = len(rates)
    draws = 3 + (rng.random(n) < 0.418)
    pos = rng.binomial(8, rates[:, None], size=(n, 4))
    pi, step = np.nonzero(np.arange(4)[None, :] < draws[:, None])
    mean = pos[pi, step] / 8
    return pd.DataFrame({"step": step + 1, "prompt_id": np.asarray(ids)[pi], "mean_reward": mean,
                         "std_reward": np.sqrt(mean * (1 - mean)), "n": 8, "processed": 1, "clip_frac": 0.0})
