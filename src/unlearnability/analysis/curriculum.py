"""The curriculum of paper A.5 (Figure 18): train without the unlearnable examples first, then add them back.

`pipeline.experiment.curriculum` runs the two stages; these functions read what the chapter shows:

    curriculum_scores   per checkpoint of both stages: the unlearnable examples' pass@1 and the
                        step checker's score of their correct rollouts; each stage's validation
    curriculum_long     the success and validation curves in one long table (Figure 18b)
    curriculum_verdict  the claim "a curriculum does not make them learnable", in words
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from unlearnability.paper import TAU


def curriculum_scores(cur, ids: list[str]) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """The unlearnable examples `ids` at every checkpoint of `cur` (an `experiment.Curriculum`):
    evaluated (or read from the store) at step 0 and every saved checkpoint of stage 1, then every
    checkpoint of stage 2 but its step 0 (stage 1's last policy), with stage 2's steps continuing
    stage 1's.

    Returns (table: stage, step, success (mean reward of all rollouts), mean_score (of the correct
    ones, NaN without any), correct_rollouts; per stage with a validation log, its mean validation
    reward per step: step (continued), validation, stage)."""
    from unlearnability.pipeline import experiment
    from unlearnability.store import runs
    from unlearnability.store.history import read_validation

    s1_steps = experiment.load_run_config(cur.stage1).grpo.steps
    rows, vals = [], []
    for stage, d, offset in (("stage 1", cur.stage1, 0), ("stage 2", cur.stage2, s1_steps)):
        for step in sorted({0, *runs.checkpoint_steps(d)}):
            if stage == "stage 2" and step == 0:
                continue  # the same policy as stage 1's last checkpoint
            smp = experiment.read_eval(experiment.evaluate_checkpoint(d, step, ids=ids), samples=True)
            c = smp[smp.reward > 0]
            rows.append({"stage": stage, "step": offset + step, "success": smp.reward.mean(),
                         "mean_score": c.score.mean() if len(c) else np.nan, "correct_rollouts": len(c)})
        vv = read_validation(d)
        if len(vv):
            vals.append(vv.groupby("step").mean_reward.mean().rename("validation").reset_index().assign(
                step=lambda x, o=offset: x.step + o, stage=stage))
    return pd.DataFrame(rows), vals


def curriculum_long(scores: pd.DataFrame, vals: list[pd.DataFrame]) -> pd.DataFrame:
    """Figure 18b's table from `curriculum_scores`: stage, step, value, series ("unlearnable
    pass@1", then "validation pass@1" when there is a validation log)."""
    long = scores[["stage", "step", "success"]].rename(columns={"success": "value"}).assign(series="unlearnable pass@1")
    if vals:
        long = pd.concat([long, pd.concat(vals).rename(columns={"validation": "value"}).assign(series="validation pass@1")])
    return long


def curriculum_verdict(scores: pd.DataFrame, stage1_log: pd.DataFrame, n_unlearnable: int, n_mixed: int,
                       tau: float = TAU) -> tuple[str, str]:
    """Figure 18's claim, "a curriculum does not make the unlearnable examples learnable":
    reproduced when their pass@1 at the last checkpoint of stage 2 (`curriculum_scores`' table) is
    at most tau, else not (also when stage 2 has no checkpoint). stage1_log: stage 1's train_log.csv
    (mean_reward per step), whose last third shows the plateau. Returns (verdict, the numbers in words)."""
    tail = stage1_log.mean_reward.tail(max(1, len(stage1_log) // 3))
    end2 = scores[scores.stage == "stage 2"].success
    verdict = "reproduced" if (len(end2) and end2.iloc[-1] <= tau) else "not"
    numbers = (f"{n_unlearnable} unlearnable + {n_mixed} mixed-in examples; stage 1 reward over its last third "
               f"{tail.mean():.3f} ± {tail.std():.3f}; unlearnable pass@1 at the end of stage 1 "
               f"{scores[scores.stage == 'stage 1'].success.iloc[-1]:.3f}, after stage 2 "
               f"{end2.iloc[-1] if len(end2) else float('nan'):.3f}")
    return verdict, numbers
