"""Numbers the paper reports, for showing beside the book's own results (never as them).

Source: the paper's Table 1 and book/protocol.md. Pages that show these must say that they are
the paper's reported numbers, not computed by the book.
"""

from __future__ import annotations

import pandas as pd

# Table 1: percent of training examples per group, intersection over three GRPO seeds.
TABLE1 = {
    "Qwen2.5-0.5B (MATH levels 1-4)": {"unlearnable": 30.2, "learnable": 25.6, "no_reward": 23.5},
    "Llama-3.2-3B-Instruct (MATH levels 3-5)": {"unlearnable": 21.9, "learnable": 31.6, "no_reward": 37.7},
    "Qwen2.5-3B (DeepScaleR)": {"unlearnable": 16.7, "learnable": 14.2, "no_reward": 47.2},
}
TAU = 0.1  # pass@1 threshold between "solved" and "not solved"
K = 32  # samples per example for pass@1
SEEDS = (1, 42, 37)  # the paper's three GRPO runs


def table1() -> pd.DataFrame:
    """Table 1 as a long table: model, group, percent (the paper's reported numbers)."""
    rows = [{"model": model, "group": group, "percent": pct}
            for model, groups in TABLE1.items() for group, pct in groups.items()]
    return pd.DataFrame(rows)
