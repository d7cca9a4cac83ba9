"""The testbed chapter's tables (analysis/testbed.py): read from a config, a base model's folder and
its samples, on small synthetic inputs."""

import dataclasses
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from unlearnability.analysis import testbed as tb
from unlearnability.config import load_config
from unlearnability.store import runs
from unlearnability.train.pretrain import without_anneal
from unlearnability.world.problems import Problem


def without_final_phase(cfg):
    return dataclasses.replace(cfg, pretrain=dataclasses.replace(cfg.pretrain, anneal_styles=None))


def test_knobs_table_reads_the_world_and_shows_the_final_phase_only_when_set():
    cfg = load_config("smoke")
    t = tb.knobs_table(cfg, 16, 8)
    assert list(t.columns) == ["value", "meaning"] and t.index.name == "knob"
    assert t.loc["p (answer space)", "value"] == cfg.world.p
    assert t.loc["p (answer space)", "meaning"] == f"a blind guess is right with chance {1 / cfg.world.p:.4f}"
    assert t.loc["pretraining coverage", "value"] == ", ".join(f"{k}: {v:g}" for k, v in cfg.world.coverage.items())
    assert t.loc["distractors", "value"] == f"0-{cfg.world.distractors_max}"
    assert t.loc["training / validation problems", "value"] == "16 / 8"
    assert "final-phase styles" in t.index
    assert "final-phase styles" not in tb.knobs_table(without_final_phase(cfg), 16, 8).index


def test_designed_table_names_rare_unseen_and_coupled_skills_with_their_shares():
    cfg = load_config("smoke")  # mul_c rare (0.05), mul unseen (0)
    cfg = dataclasses.replace(cfg, world=dataclasses.replace(cfg.world, skill_styles={"mul_c": ["terse", "leap"]}))
    train = [Problem(f"p{i}", "q", "1", {"skills": sk}) for i, sk in
             enumerate([["add"], ["mul_c", "add"], ["mul"], ["sub"]])]
    t = tb.designed_table(cfg, train)
    assert t.index.name == "property" and list(t.columns) == ["value", "what it means"]
    assert t.loc["guess floor", "value"] == f"{1 / cfg.world.p:.2%}"
    assert t.loc["rare skill mul_c", "what it means"].endswith("needed by 25% of training problems")
    assert t.loc["unseen skill mul", "value"] == "coverage 0"
    assert t.loc["coupled skill mul_c", "value"] == "terse, leap"
    assert t.loc["tiers", "what it means"] == f"{4 // len(cfg.world.tiers)} training problems per tier"
    assert t.loc["response styles", "value"] == ", ".join(f"{k} {v:g}" for k, v in cfg.pretrain.anneal_styles.items())
    assert not any(i.startswith("rare skill add") for i in t.index)


def write_log(folder, tokens, loss):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"step": range(1, len(tokens) + 1), "tokens": tokens, "loss": loss}).to_csv(folder / "train_log.csv", index=False)


def tiny_model(vocab: int = 13):
    model = torch.nn.Linear(3, 2)  # 8 parameters
    model.config = SimpleNamespace(vocab_size=vocab)
    return model


def test_pretraining_curve_and_model_table_with_and_without_a_final_phase(store):
    cfg = load_config("smoke")
    first = runs.base_dir(without_anneal(cfg))
    write_log(first, [100, 200], [3.0, 2.0])
    final = store / "final"
    write_log(final, [10, 50], [1.5, 1.0])
    (final / "pretrain_seconds.txt").write_text("12.4\n")

    curve = tb.pretraining_curve(cfg, final)
    assert curve.phase.tolist() == ["first phase"] * 2 + ["final phase"] * 2
    assert curve.tokens.tolist() == [100, 200, 210, 250]  # the final phase counts on from the first's last token
    t = tb.model_table(cfg, final, tiny_model())
    assert t.index.name == "" and list(t.columns) == ["value"]
    assert t.loc["parameters", "value"] == f"{8 / 1e6:.2f}M"
    assert t.loc["vocabulary", "value"].startswith("13 words (one token per digit")
    assert t.loc["final phase", "value"].startswith(f"{50 / 1e6:.2g}M more tokens")
    assert t.loc["pretraining time", "value"].startswith("12 s on this machine")

    alone = without_final_phase(cfg)  # the base model is the first phase's: one phase, no time file
    assert tb.pretraining_curve(alone, first).phase.tolist() == ["first phase"] * 2
    t = tb.model_table(alone, first, tiny_model())
    assert "final phase" not in t.index and t.loc["pretraining time", "value"] == "n/a"


def test_style_prior_sets_corpus_shares_beside_the_samples():
    samples = pd.DataFrame({"style": ["worked", "worked", "answer", "answer"], "reward": [1, 1, 1, 0]})
    t = tb.style_prior(samples, {"worked": 3.0, "terse": 1.0, "answer": 0.0})
    assert list(t.columns) == ["share in the corpus seen last", "share of the base model's samples", "pass rate",
                               "share of correct samples"]
    assert t.loc["worked"].tolist() == pytest.approx([0.75, 0.5, 1.0, 2 / 3])
    assert t.loc["answer"].tolist() == pytest.approx([0.0, 0.5, 0.5, 1 / 3])
    assert "terse" not in t.index  # only the styles the samples use


def test_headroom_sentence_says_whether_sharpening_leaves_room():
    small = tb.headroom_sentence(0.30, 0.29, 8, 0.7)
    assert small.startswith("**Headroom.** On the 8 held-out problems the base model's greedy answer is right 30.0%")
    assert "a sample at T = 0.7 29.0% of the time (8 samples each)" in small
    assert small.endswith("must come from elsewhere.")
    assert tb.headroom_sentence(0.40, 0.20, 8, 0.7).endswith("which leaves it room here.")


def test_paper_comparison_marks_equal_settings_and_formats_floats():
    paper = load_config("paper-qwen0.5b-math")
    cfg = load_config("smoke")
    cfg = dataclasses.replace(cfg, grpo=dataclasses.replace(cfg.grpo, rollouts_per_prompt=paper.grpo.rollouts_per_prompt))
    t = tb.paper_comparison(paper, cfg, 1_234_567, 16, 8)
    assert list(t.columns) == ["paper", "testbed", "why", "same"] and t.index.name == "setting"
    assert t.loc["model", "testbed"] == "tiny Qwen2, 1.23M, from scratch" and t.loc["model", "paper"] == paper.model.hub_id
    assert t.loc["rollouts per prompt", "same"] and not t.loc["learning rate", "same"]
    assert t.loc["learning rate", "paper"] == f"{paper.grpo.lr:g}"  # floats as :g
    assert t.loc["training data", "testbed"] == "16 generated problems"
    assert t.loc["pretraining corpus", "testbed"].endswith(
        "; final phase " + ", ".join(f"{k} {v:g}" for k, v in cfg.pretrain.anneal_styles.items()))
    same_updates = (paper.grpo.prompts_per_step // paper.grpo.mini_batch_prompts
                    == cfg.grpo.prompts_per_step // cfg.grpo.mini_batch_prompts)
    assert (t.loc["mini-batch (prompts)", "why"] == "same number of updates per step") == same_updates
