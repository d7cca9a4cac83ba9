"""The testbed chapter's tables: what the world and the base model are, and where they depart
from the paper. Pure functions of a config (and the base model's folder and samples); the
chapter displays them.

    knobs_table(cfg, n_train, n_valid)          the world's knobs, their values and meaning
    designed_table(cfg, train)                  what the world is designed to have
    model_table(cfg, base, model)               the base model: architecture, size, pretraining
    pretraining_curve(cfg, base)                its training loss by token, phase by phase
    style_prior(samples, final)                 the styles the base model samples, beside the corpus
    headroom_sentence(greedy, sampled, ...)     how much sharpening alone could gain
    paper_comparison(paper_cfg, cfg, ...)       the paper's setting beside the testbed's
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unlearnability.config import Config
from unlearnability.world.problems import Problem


def _mix(shares: dict, sep: str = ": ") -> str:
    """{"a": 0.5, "b": 1.0} -> "a: 0.5, b: 1" (with `sep` between a name and its value)."""
    return ", ".join(f"{k}{sep}{v:g}" for k, v in shares.items())


def knobs_table(cfg: Config, n_train: int, n_valid: int) -> pd.DataFrame:
    """The world's knobs: index knob, columns value and meaning (one row per knob; the
    final-phase styles only when `pretrain.anneal_styles` is set). n_train, n_valid: the
    numbers of training and validation problems."""
    w = cfg.world
    return pd.DataFrame([
        ("p (answer space)", w.p, f"a blind guess is right with chance {1 / w.p:.4f}"),
        ("skills (operators)", ", ".join(w.skills), "add_c: x + c, sub_c: x - c, add: x + y, sub: x - y, mul_c: c * x, mul: x * y"),
        ("pretraining coverage", _mix(w.coverage), "relative weight of each skill in pretraining; 0 = never seen"),
        ("training mix", _mix(w.task_mix), "relative weight of each skill in training / validation problems"),
        ("tiers", ", ".join(map(str, w.tiers)), "operations the answer needs"),
        ("distractors", f"0-{w.distractors_max}", "statements the answer does not need"),
        ("chain bias", w.chain_bias, "probability an operation extends the newest chain (deeper graphs)"),
        ("response styles", _mix(w.styles), "shares of each response style in the pretraining corpus"),
        *([("final-phase styles", _mix(cfg.pretrain.anneal_styles),
            "shares in the last stretch of pretraining (pretrain.anneal_styles): the mix the base model saw last")]
          if cfg.pretrain.anneal_styles is not None else []),
        ("training / validation problems", f"{n_train} / {n_valid}", "same generator, disjoint questions"),
    ], columns=["knob", "value", "meaning"]).set_index("knob")


def designed_table(cfg: Config, train: list[Problem]) -> pd.DataFrame:
    """What the world is designed to have: index property, columns value and "what it means".
    Rows: the guess floor, each rare (0 < coverage < 0.5) and unseen (coverage 0) skill with the
    share of training problems that need it, each skill coupled to styles, the tiers, and the
    style mix the base model saw last. train: the training problems (meta skills)."""
    w = cfg.world
    skill_of = pd.Series({p.id: p.meta["skills"] for p in train})
    share = {s: skill_of.map(lambda sk, s=s: s in sk).mean() for s in w.skills}
    return pd.DataFrame([
        ("guess floor", f"{1 / w.p:.2%}", f"a blind guess of an answer mod {w.p}"),
        *[(f"rare skill {s}", f"coverage {w.coverage[s]:g}",
           f"seen in pretraining at {w.coverage[s]:g} of the common skills' weight; needed by {share[s]:.0%} of training problems")
          for s in w.skills if 0 < w.coverage.get(s, 1.0) < 0.5],
        *[(f"unseen skill {s}", "coverage 0", f"never in pretraining; needed by {share[s]:.0%} of training problems")
          for s in w.skills if w.coverage.get(s, 1.0) == 0],
        *[(f"coupled skill {s}", ", ".join(st), "appears in pretraining only in these styles")
          for s, st in (w.skill_styles or {}).items()],
        ("tiers", ", ".join(map(str, w.tiers)), f"{len(train) // len(w.tiers)} training problems per tier"),
        ("response styles", _mix(cfg.pretrain.anneal_styles or w.styles, " "),
         "the mix the base model saw last; only the worked chain is checked as reasoning"),
    ], columns=["property", "value", "what it means"]).set_index("property")


def phase_logs(cfg: Config, base: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The base model's training logs (`train_log.csv`, rows step, tokens, loss, ...): the first
    phase's, and the final phase's when the base model has one (else None). base: the base
    model's folder (`ensure_base_model(cfg)`)."""
    from unlearnability.store import runs
    from unlearnability.train.pretrain import without_anneal

    first = runs.base_dir(without_anneal(cfg))  # the first phase's model (the base itself without a final phase)
    log = pd.read_csv(first / "train_log.csv")
    return log, (pd.read_csv(Path(base) / "train_log.csv") if first != Path(base) else None)


def pretraining_curve(cfg: Config, base: Path) -> pd.DataFrame:
    """The pretraining curve: `phase_logs` stacked, with a `phase` column ("first phase",
    "final phase") and the final phase's tokens counted on from the first phase's last."""
    log, anneal = phase_logs(cfg, base)
    log = log.assign(phase="first phase")
    if anneal is not None:
        log = pd.concat([log, anneal.assign(tokens=anneal.tokens + log.tokens.max(), phase="final phase")])
    return log


def model_table(cfg: Config, base: Path, model) -> pd.DataFrame:
    """The base model in words: index "" (architecture, parameters, layers x hidden, vocabulary,
    pretraining, final phase when there is one, pretraining time), column value. base: its
    folder; model: the loaded model (`policy.model.load_model(base)`)."""
    from unlearnability.policy.model import n_params
    from unlearnability.train.pretrain import anneal_config

    _, anneal = phase_logs(cfg, base)
    m, seconds = cfg.model, Path(base) / "pretrain_seconds.txt"
    return pd.DataFrame([
        ("architecture", "Qwen2 (transformers Qwen2ForCausalLM), tied embeddings"),
        ("parameters", f"{n_params(model) / 1e6:.2f}M"),
        ("layers x hidden", f"{m.num_hidden_layers} x {m.hidden_size} (MLP {m.intermediate_size}, {m.num_attention_heads} heads)"),
        ("vocabulary", f"{model.config.vocab_size} words (one token per {'digit' if cfg.world.digits else 'number'}, name and symbol)"),
        ("pretraining", f"{cfg.pretrain.tokens / 1e6:.1f}M tokens of solutions in the styles above, lr {cfg.pretrain.lr:g} cosine, "
                        f"batch {cfg.pretrain.batch_size}, fp32" + ("" if m.autocast == "none" else f" with {m.autocast} autocast")),
        *([("final phase", f"{anneal.tokens.max() / 1e6:.2g}M more tokens in the final-phase styles, fresh AdamW, "
                           f"lr {anneal_config(cfg).lr:g} warm-up then cosine")] if anneal is not None else []),
        ("pretraining time", f"{float(seconds.read_text()):.0f} s on this machine (cached in the run store)"
         if seconds.exists() else "n/a"),
    ], columns=["", "value"]).set_index("")


def style_prior(samples: pd.DataFrame, final: dict[str, float]) -> pd.DataFrame:
    """The learned style prior, one row per style the samples use: "share in the corpus seen
    last" (`final`'s share, e.g. `pretrain.final_styles(cfg)`), "share of the base model's
    samples", "pass rate" (mean reward of the style's samples) and "share of correct samples";
    missing values are 0. samples: per-sample rows with style and reward."""
    from unlearnability.evaluation.calibration import style_shares

    prior = style_shares(samples).iloc[0]
    ok = style_shares(samples, correct_only=True).iloc[0]
    share = {st: final.get(st, 0.0) / sum(final.values()) for st in prior.index}
    return pd.DataFrame({"share in the corpus seen last": pd.Series(share), "share of the base model's samples": prior,
                         "pass rate": samples.groupby("style").reward.mean(), "share of correct samples": ok}).fillna(0)


def headroom_sentence(greedy: float, sampled: float, n_valid: int, temperature: float, k: int = 8,
                      small: float = 0.03) -> str:
    """The headroom paragraph: the base model's held-out pass@1 greedy and sampled (at
    `temperature`, `k` samples each), and whether their difference (what sharpening the policy
    toward its own likeliest behaviour could gain) is small (< `small`)."""
    return (f"**Headroom.** On the {n_valid} held-out problems the base model's greedy answer is right {greedy:.1%} of the "
            f"time and a sample at T = {temperature} {sampled:.1%} of the time ({k} samples each). RL that only sharpens "
            "the policy toward its own most likely behaviour gains at most about the difference, "
            + ("which is small here: what RL can add on new problems must come from elsewhere."
               if greedy - sampled < small else "which leaves it room here."))


def paper_comparison(paper_cfg: Config, cfg: Config, params: int, n_train: int, n_valid: int) -> pd.DataFrame:
    """The paper's setting beside the testbed's: index setting, columns paper, testbed, why and
    same (the two values equal as text); floats printed with :g. paper_cfg: the paper's preset
    (e.g. "paper-qwen0.5b-math"); params: the testbed model's parameter count."""
    pc, g, pg = paper_cfg, cfg.grpo, paper_cfg.grpo

    def row(name, a, b, why=""):
        return {"setting": name, "paper": a, "testbed": b, "why": why}

    same_updates = pg.prompts_per_step // pg.mini_batch_prompts == g.prompts_per_step // g.mini_batch_prompts
    corpus = _mix(cfg.world.styles, " ") + ("" if cfg.pretrain.anneal_styles is None else
                                            "; final phase " + _mix(cfg.pretrain.anneal_styles, " "))
    diff = pd.DataFrame([
        row("model", pc.model.hub_id, f"tiny Qwen2, {params / 1e6:.2f}M, from scratch", "fits a 2-core CPU"),
        row("training data", f"MATH levels {pc.data.levels}", f"{n_train} generated problems", "exact verification and step checking"),
        row("validation data", "MATH-500", f"{n_valid} held-out generated problems", ""),
        row("prompts per step", pg.prompts_per_step, g.prompts_per_step, "scaled with the data set"),
        row("rollouts per prompt", pg.rollouts_per_prompt, g.rollouts_per_prompt, ""),
        row("mini-batch (prompts)", pg.mini_batch_prompts, g.mini_batch_prompts, "same number of updates per step" if same_updates else ""),
        row("learning rate", pg.lr, g.lr, "a tiny model from scratch needs a larger step"),
        row("KL coefficient (k3)", pg.kl_coef, g.kl_coef, ""),
        row("entropy bonus", pg.entropy_coef, g.entropy_coef, ""),
        row("clip eps low / high", f"{pg.eps_low} / {pg.eps_high}", f"{g.eps_low} / {g.eps_high}", ""),
        row("pretraining corpus", "web-scale text (the hub model's own)", corpus, "a mixture of response styles gives RL a shared behaviour to amplify"),
        row("pretraining tokens", "trillions (hub model)", f"{cfg.pretrain.tokens / 1e6:.0f}M", "CPU budget"),
        row("max response tokens", pg.max_new_tokens, g.max_new_tokens, "the longest worked solution is far shorter"),
        row("GRPO steps (classification)", pg.steps, g.steps, "with dynamic sampling's redraws, well over 60 rollouts per problem and seed (the next chapter reports them)"),
        row("sampling (train)", f"T={pg.temperature}, top_p={pg.top_p}", f"T={g.temperature}, top_p={g.top_p}", ""),
        row("evaluation", f"k={pc.eval.k}, T={pc.eval.temperature}, top_p={pc.eval.top_p}",
            f"k={cfg.eval.k}, T={cfg.eval.temperature}, top_p={cfg.eval.top_p}",
            "" if cfg.eval.k == pc.eval.k else f"more samples: the three seeds' finals agree on the side of tau; pass@1 estimates the same rate as k={pc.eval.k}"),
        row("dynamic sampling", pg.dynamic_sampling, g.dynamic_sampling, ""),
        row("reasoning-quality judge", "GPT-5-mini, 0-5", "exact step checker, 0-5", "every step is verifiable"),
        row("gradient analysis rollouts", pc.gradients.rollouts, cfg.gradients.rollouts, "CPU budget"),
    ]).set_index("setting")
    diff["same"] = [str(a) == str(b) for a, b in zip(diff.paper, diff.testbed)]
    diff[["paper", "testbed"]] = diff[["paper", "testbed"]].map(lambda v: f"{v:g}" if isinstance(v, float) else v)
    return diff
