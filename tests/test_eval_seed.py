"""Evaluation draws are independent per run and checkpoint (testbed-v3 issue, item 2b): the
sampler seed is derived from the run's seed and the step, the base model has its own, and the
cache name carries it so evaluations drawn with the old shared seed are not reused."""

from pathlib import Path

from unlearnability.config import load_config
from unlearnability.data.reward import SCORING_VERSION
from unlearnability.pipeline import experiment
from unlearnability.pipeline.experiment import eval_seed
from unlearnability.store import runs


def test_eval_seed_is_stable_and_distinct():
    assert eval_seed(0, 1, 40) == eval_seed(0, 1, 40) == 424954570  # sha256, not the salted hash()
    finals = {s: eval_seed(0, s, 40) for s in (1, 42, 37)}
    base = eval_seed(0, None, 0)
    assert len(set(finals.values()) | {base}) == 4
    assert eval_seed(0, 1, 0) != base and eval_seed(0, 1, 20) != finals[1] and eval_seed(1, 1, 40) != finals[1]
    assert all(0 <= s < 2**30 for s in (*finals.values(), base))


def test_final_evaluations_of_two_seeds_and_the_initial_use_different_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_HOME", str(tmp_path / "store"))
    base = tmp_path / "base"
    base.mkdir()
    monkeypatch.setattr(experiment, "ensure_base_model", lambda cfg: base)
    seen = []

    def fake_evaluate_into(cfg, src, folder, out, name, whole, split, keep_text, sampler, limit, ids):
        seen.append({"seed": cfg.eval.seed, "name": name, "src": Path(src), "folder": folder})
        return out

    monkeypatch.setattr(experiment, "_evaluate_into", fake_evaluate_into)
    step = 6
    run_dirs = {}
    for s in (1, 42):
        cfg = load_config("smoke", {"grpo": {"seed": s}})
        run = tmp_path / f"run{s}"
        (run / "checkpoints" / f"step_{step:04d}").mkdir(parents=True)
        runs.write_config(run, cfg)
        run_dirs[s] = run
    f1 = experiment.evaluate_checkpoint(run_dirs[1], step)
    f42 = experiment.evaluate_checkpoint(run_dirs[42], step)
    init = experiment.evaluate_checkpoint(run_dirs[1], 0)
    assert experiment.evaluate_checkpoint(run_dirs[42], 0) == init  # the initial evaluation is shared
    s1, s42, s0 = (d["seed"] for d in seen[:3])
    assert s1 == eval_seed(0, 1, step) and s42 == eval_seed(0, 42, step) and s0 == eval_seed(0, None, 0)
    assert len({s1, s42, s0}) == 3 and seen[3]["seed"] == s0
    assert seen[2]["src"] == base and seen[2]["folder"] == base / "evals"
    # the cache name carries the seed: not the name the shared-seed evaluations were stored under
    cfg = load_config("smoke", {"grpo": {"seed": 1}})
    old = f"train-k{cfg.eval.k}-{cfg.section_hash('eval', 'data')}-v{SCORING_VERSION}"
    assert f1.name == f"train-k{cfg.eval.k}-{cfg.section_hash('eval', 'data')}-s{s1}-v{SCORING_VERSION}.csv"
    assert old + ".csv" not in {f1.name, f42.name, init.name} and f"-s{s0}-" in init.name
    assert f1.name != f42.name and f1.parent == run_dirs[1] / "evals" / f"step_{step:04d}"
