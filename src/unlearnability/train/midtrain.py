"""Mid-training (paper §5.4): continued pretraining of the base model, the testbed's OctoThinker.

What the paper did: it mid-trained nothing itself. It took OctoThinker-3B-Hybrid-Base and
OctoThinker-3B-Long-Base (Wang et al., 2025: Llama-3.2-3B-Base mid-trained on 20B tokens of
math web text plus question-answer data with short and long chains of thought (Hybrid) or long
ones (Long)), and compared them with Llama-3.2-3B-Base by §5.1's per-example gradients: 500
random MATH-Hard training examples, a subset of difficult ones, the mean cosine of each
difficult example with the 500 (Figure 11). Both mid-trained models gave higher similarity.

What this module does (testbed): continue training the cached base model with
`train.text.train_on_text` on fresh generated problems' solutions (never a training or validation
question: the same exclusion as pretraining), drawn from a mixture weighted toward what hard
problems need. The mixtures are data (`MIXTURES`), built from three rules:

    hybrid    tiers weighted by tier (t: weight t, so the hardest chains come most often); the
              rare skills (pretraining coverage in (0, 0.5), `world.coverage_class`) raised to
              the common skills' weight; response styles as in pretraining (short and long
              answers mixed, as Hybrid mixes short and long chains of thought)
    long      the longest half of the tiers only (weighted by tier); skills as in pretraining;
              worked solutions only (every step written: Long's long chains of thought)
    pretrain  the pretraining mixture itself: a control (as many more tokens of the same data)

`midtrain.tier_weights` / `skill_weights` / `styles` replace the named mixture's part.

Cached like the base model: `midtrain_dir(cfg)` = runs.home()/midtrain/<hash of world, model,
pretrain, midtrain>, one writer at a time (`runs.locked`), DONE when complete, resumed from
`train_on_text`'s checkpoints after a kill. The base model's folder is only read. With
`midtrain.mixture` set, `train.base.ensure_base_model(cfg)` returns the mid-trained folder, so
GRPO, pass@k (Table 1 again) and the gradient analyses of that config start from it: e.g.
`experiment.variant_runs(profile, seeds, overrides, {"midtrain": {"mixture": "hybrid"}})`.

Simplifications against OctoThinker: one stage (no stable-then-decay schedule); a fresh AdamW
(the base model's optimizer state is not kept), warm-up then cosine decay, batch size, decay
and clipping from the `pretrain` section; tiers stay within `world.tiers` (the model's
position limit) and the unseen skill stays unseen in every named mixture (mid-training adds
depth and practice of the rare skill, not a new operator; a custom `skill_weights` may add
it); the data are the world's exact worked solutions, not web text; the default token budget
(a seventh of the pretraining tokens: 2M on the default preset) is a far larger share than OctoThinker's 20B of
Llama 3.2's 9T. Paper scale: nothing is mid-trained here; point `model.hub_id` at a mid-trained
model (e.g. OctoThinker/OctoThinker-3B-Hybrid-Base) instead.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from unlearnability.config import Config, MidtrainConfig, WorldConfig
from unlearnability.policy.model import load_model
from unlearnability.store import runs
from unlearnability.train.text import train_on_text
from unlearnability.world.generator import (
    coupled_styles,
    draw_style,
    graph_of,
    sample_problem,
    style_weights,
    train_valid_split,
)
from unlearnability.world.problems import Problem

# name -> {tiers: rule or {tier: weight}, skills: rule or {skill: weight}, styles: "world" or {style: share}}
MIXTURES: dict[str, dict[str, Any]] = {
    "hybrid": {"tiers": "by_tier", "skills": "rare_up", "styles": "world"},
    "long": {"tiers": "longest", "skills": "coverage", "styles": {"worked": 1.0}},
    "pretrain": {"tiers": "uniform", "skills": "coverage", "styles": "world"},
}
TIER_RULES = ("uniform", "by_tier", "longest")
SKILL_RULES = ("coverage", "rare_up")
RARE = 0.5  # coverage below this (and above 0) is a rare skill, as in `world.coverage_class`


@dataclass(frozen=True)
class Mixture:
    """The resolved mid-training distribution: relative weights (each with a positive entry)."""

    tiers: dict[int, float]  # tier -> weight, tiers of the world only
    skills: dict[str, float]  # skill -> weight, every skill of the world
    styles: dict[str, float]  # style -> share, every style in `STYLES`

    def to_dict(self) -> dict[str, dict]:
        return dataclasses.asdict(self)


def tier_weights(rule: str | dict, tiers: list[int]) -> dict[int, float]:
    """Weights of the world's `tiers` by a rule: uniform (1 each), by_tier (t -> t), longest
    (the upper half of the sorted tiers, t -> t; the rest 0); or an explicit {tier: weight}."""
    if isinstance(rule, dict):
        out = {}
        for t, w in rule.items():
            try:
                t = int(t)
            except (TypeError, ValueError):
                raise ValueError(f"midtrain.tier_weights: tier {t!r} is not an integer") from None
            if t not in tiers:
                raise ValueError(f"midtrain.tier_weights: tier {t} is not a world tier; world.tiers = {tiers}")
            out[t] = float(w)
        return _checked({t: out.get(t, 0.0) for t in tiers}, "midtrain.tier_weights")
    if rule == "uniform":
        return {t: 1.0 for t in tiers}
    if rule == "by_tier":
        return {t: float(t) for t in tiers}
    if rule == "longest":
        top = sorted(tiers)[len(tiers) // 2:]
        return {t: float(t) if t in top else 0.0 for t in tiers}
    raise ValueError(f"mixture tiers rule {rule!r}: use one of {', '.join(TIER_RULES)} or a {{tier: weight}} mapping")


def skill_weights(rule: str | dict, world: WorldConfig) -> dict[str, float]:
    """Weights of the world's skills by a rule: coverage (as in pretraining), rare_up (coverage,
    with every rare skill raised to the largest coverage); or an explicit {skill: weight}
    (skills not named get 0)."""
    cov = {s: float(world.coverage.get(s, 0.0)) for s in world.skills}
    if isinstance(rule, dict):
        unknown = sorted(set(rule) - set(world.skills))
        if unknown:
            raise ValueError(f"midtrain.skill_weights: unknown skill {unknown[0]!r}; world.skills = {world.skills}")
        return _checked({s: float(rule.get(s, 0.0)) for s in world.skills}, "midtrain.skill_weights")
    if rule == "coverage":
        return _checked(cov, "world.coverage")
    if rule == "rare_up":
        top = max(cov.values())
        return _checked({s: top if 0 < w < RARE else w for s, w in cov.items()}, "world.coverage")
    raise ValueError(f"mixture skills rule {rule!r}: use one of {', '.join(SKILL_RULES)} "
                     "or a {skill: weight} mapping")


def _checked(weights: dict, what: str) -> dict:
    if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
        raise ValueError(f"{what}: weights must be >= 0 with at least one > 0, got {weights}")
    return weights


def resolve_mixture(world: WorldConfig, m: MidtrainConfig) -> Mixture:
    """The distribution `m` asks for in `world`: the named mixture, with `m.tier_weights`,
    `m.skill_weights` and `m.styles` replacing its parts where given."""
    if m.mixture not in MIXTURES:
        raise ValueError(f"midtrain.mixture={m.mixture!r}: choose one of {', '.join(MIXTURES)}")
    spec = MIXTURES[m.mixture]
    styles = m.styles if m.styles is not None else (world.styles if spec["styles"] == "world" else spec["styles"])
    try:
        styles = style_weights(styles)
    except ValueError as e:
        raise ValueError(f"midtrain.styles: {e}") from None
    return Mixture(tiers=tier_weights(m.tier_weights if m.tier_weights is not None else spec["tiers"], world.tiers),
                   skills=skill_weights(m.skill_weights if m.skill_weights is not None else spec["skills"], world),
                   styles=styles)


def midtraining_problems(world: WorldConfig, mix: Mixture, exclude: set[str], seed: int) -> Iterator[Problem]:
    """Endless fresh problems drawn from `mix` (tier by its tier weights, then a graph whose ops
    follow its skill weights); questions in `exclude` (train / validation) are skipped.
    Deterministic in (world, mix, seed), and not the pretraining stream's draws."""
    rng = random.Random(f"midtrain-{world.seed}-{seed}")
    tiers = [t for t, w in mix.tiers.items() if w > 0]
    weights = [mix.tiers[t] for t in tiers]
    i = 0
    while True:
        prob = sample_problem(rng, world, rng.choices(tiers, weights)[0], mix.skills, f"mid-{i}")
        i += 1
        if prob.question not in exclude:
            yield prob


def midtraining_stream(world: WorldConfig, mix: Mixture, exclude: set[str], seed: int,
                       coupled: bool = False) -> Iterator[tuple[str, str]]:
    """Endless (question, response) pairs of `midtraining_problems`, each response in a style
    drawn from `mix.styles` (independently of the problem, as in pretraining); with `coupled`
    (the final pretraining phase, the "pretrain" mixture), `world.skill_styles` applies too."""
    rng = random.Random(f"midtrain-styles-{world.seed}-{seed}")
    skill_styles = coupled_styles(world.skill_styles) if coupled else {}
    for prob in midtraining_problems(world, mix, exclude, seed):
        style = draw_style(rng, prob.meta["skills"], mix.styles, skill_styles)
        yield prob.question, prob.meta["solution"] if style == "worked" else graph_of(prob).solution(style)


def without_midtrain(cfg: Config) -> Config:
    """`cfg` with mid-training off (its base model: the pretrained one)."""
    return dataclasses.replace(cfg, midtrain=MidtrainConfig())


def midtrain_dir(cfg: Config) -> Path:
    """Folder of the mid-trained model `cfg` describes (world, model, pretrain, midtrain)."""
    return runs.home() / "midtrain" / cfg.section_hash("world", "model", "pretrain", "midtrain")


def midtrain_tokens(cfg: Config) -> int:
    """`midtrain.tokens`, or a seventh of the pretraining tokens when unset (2M on the default)."""
    return cfg.midtrain.tokens if cfg.midtrain.tokens is not None else max(1, cfg.pretrain.tokens // 7)


def midtrain_pretrain_config(cfg: Config):
    """The `PretrainConfig` the mid-training loop runs with: `pretrain` with midtrain's tokens,
    lr, warm-up and seed."""
    m = cfg.midtrain
    return dataclasses.replace(cfg.pretrain, tokens=midtrain_tokens(cfg), lr=m.lr, warmup_steps=m.warmup_steps, seed=m.seed)


def midtrain_phase(cfg: Config, base: Path, folder: Path, mix: Mixture, quiet: bool) -> Path:
    """Mid-training: the model in `base` trained on `mix`'s stream into `folder` (`train.base` calls it)."""
    from unlearnability.world import load_tokenizer

    runs.write_config(folder, cfg)
    runs.atomic_write_text(folder / "mixture.yaml",
                           yaml.safe_dump({"base": str(base), **mix.to_dict()}, sort_keys=False))
    tok = load_tokenizer(base)
    model = load_model(base)
    if not quiet:
        print(f"mid-training ({cfg.midtrain.mixture}) {base.name} on {midtrain_tokens(cfg) / 1e6:.2f}M tokens "
              f"-> {folder}", flush=True)
    train, valid = train_valid_split(cfg.world)
    # mid-training "as in pretraining" keeps pretraining's skill-route coupling; the other mixtures show every skill in their styles
    pairs = midtraining_stream(cfg.world, mix, {p.question for p in train + valid}, cfg.midtrain.seed,
                               coupled=cfg.midtrain.mixture == "pretrain")
    t0 = time.time()
    train_on_text(model, tok, pairs, midtrain_pretrain_config(cfg), folder, autocast_dtype=cfg.model.autocast,
                  desc="midtrain")
    (folder / "midtrain_seconds.txt").write_text(f"{time.time() - t0:.1f}\n")
    runs.mark_done(folder)
    return folder
