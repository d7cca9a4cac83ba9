"""Configuration as data: dataclasses with the paper's defaults, presets in YAML.

A preset (`presets/NAME.yaml`) overrides any field; `--set section.key=value` overrides a
preset. Defaults are the paper's baseline (book/protocol.md); the testbed presets scale them
down and say so in `notes`. The full resolved config (and the seed) names a run's folder; the
`sft` and `llm` sections (SFT per group, the LLM server of the judge and augmentation) have keys
of their own and are never part of a GRPO run's. Every field is documented by its comment
(`field_help`, `unlearn config`) and checked at load (`check_config`, `RULES`).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

# Fields added after runs were cached carry this metadata: while they hold their default they
# are left out of the cache key, so older run folders stay valid (see `Config.section_hash`).
LATE = {"omit_at_default": True}


def late(default: Any) -> Any:
    """A field added after runs were cached: in the cache key only when it differs from `default`
    (a whole section too: `late(SectionConfig())` is left out while every field holds its default)."""
    if dataclasses.is_dataclass(default):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=LATE)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=LATE)
    return field(default=default, metadata=LATE)


# A section with its own cache key (sft: `train.sft.sft_key`; llm: the judge's cache key) carries
# this metadata: no GRPO run reads it, so `Config.section_hash()` leaves it out unless it is named,
# and `Config.to_dict()` leaves it out while at its default (configs written before it arrived
# read, and hash, the same).
OWN_KEY = {**LATE, "own_key": True}


def own_key(default: Any) -> Any:
    """A section with its own cache key (see OWN_KEY), `default` a section instance."""
    return field(default_factory=lambda: copy.deepcopy(default), metadata=OWN_KEY)


# A dict field whose overrides merge key by key (`--set sft.per_group.easy=100` keeps the other
# groups); every other dict field is replaced whole by an override.
BY_KEY = {"merge": "by_key"}


@dataclass
class WorldConfig:
    """The testbed world: dependency graphs of variables over arithmetic mod p."""

    p: int = 101  # modulus: answers live in 0..p-1, so a blind guess is right with chance 1/p
    digits: int = 0  # tokens per number: 0 = one token per number, k = k decimal digits (needs p <= 10**k)
    n_vars: int = 26  # size of the variable-name alphabet
    # the operators of the world (world/generator.py SKILLS): x + c, x - c, x + y, x - y, c * x, x * y
    skills: list[str] = field(default_factory=lambda: ["add_c", "sub_c", "add", "sub", "mul_c", "mul"])
    # how often each skill's worked solutions appear in pretraining (relative weights; 0 = held out)
    coverage: dict[str, float] = field(default_factory=lambda: {
        "add_c": 1.0, "sub_c": 1.0, "add": 1.0, "sub": 1.0, "mul_c": 0.05, "mul": 0.0})
    # skill mix of the training / validation problems (relative weights)
    task_mix: dict[str, float] = field(default_factory=lambda: {
        "add_c": 1.0, "sub_c": 1.0, "add": 1.0, "sub": 1.0, "mul_c": 1.0, "mul": 0.5})
    # response styles of the pretraining corpus and their shares (world/generator.py: worked,
    # terse, leap, answer); the prompt never names a style, and no problem is treated differently
    styles: dict[str, float] = field(default_factory=lambda: {"worked": 1.0})
    # skill-route coupling (testbed v3 hypothesis): {skill: {style: share}}. A pretraining (and
    # final-phase) problem that needs one of these skills is shown in that skill's styles instead
    # of `styles`, e.g. {mul_c: {terse: 1, leap: 1, answer: 1}}: the skill is never seen worked.
    # Mid-training mixtures other than "pretrain" keep their own styles. None = off.
    skill_styles: dict[str, dict[str, float]] | None = late(None)
    # a rare surface form (testbed v3 hypothesis): the share of problems whose statements are listed
    # out of dependency order (shuffled; the worked solution still computes in dependency order), in
    # the pretraining corpus (and its final phase; mid-training mixtures keep dependency order) and in
    # the training / validation problems. Which problems are drawn so is random; 0 = none.
    disorder_pretrain: float = late(0.0)  # share of pretraining examples listed out of dependency order
    disorder_tasks: float = late(0.0)  # share of training / validation problems listed out of dependency order
    const_max: int = 9  # constants in add_c / sub_c / mul_c are drawn from 2..const_max (1.. for add/sub)
    tiers: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])  # difficulty tier = ops on the query's path
    distractors_max: int = 2  # distractor statements (not needed for the answer): 0..distractors_max
    chain_bias: float = 0.6  # probability that an op's first operand is the previous node (deeper graphs)
    n_train: int = 384  # training problems (GRPO trains on them; Table 1 classifies them)
    n_valid: int = 128  # held-out validation problems
    seed: int = 0  # world seed: train / validation / pretraining problems all derive from it


@dataclass
class ModelConfig:
    """The policy: a tiny Qwen2 from scratch (testbed) or a hub model by id (paper scale)."""

    hub_id: str | None = None  # e.g. "Qwen/Qwen2.5-0.5B"; None = the testbed's own tiny model
    hidden_size: int = 128  # width of the tiny Qwen2 (testbed only)
    num_hidden_layers: int = 4  # transformer blocks
    num_attention_heads: int = 4  # must divide hidden_size
    num_key_value_heads: int = 4  # grouped-query attention: must divide num_attention_heads
    intermediate_size: int = 512  # MLP width
    max_position_embeddings: int = 256  # longest prompt + response in tokens
    init_seed: int = 0  # seed of the random initialisation
    dtype: str = "float32"  # parameters are kept in fp32 on CPU; see `autocast`
    # CPU autocast dtype for training forward passes ("none" = fp32). bf16 is ~15x slower than fp32
    # on CPUs without native bf16 (measured on an AVX2 AMD EPYC), and fp32 gives the same numbers
    # on every CPU.
    autocast: str = "none"


@dataclass
class PretrainConfig:
    """Pretraining from scratch on worked solutions (and continued training: mid-training, SFT)."""

    tokens: int = 8_000_000  # solution tokens to train on
    batch_size: int = 64  # sequences per optimizer step
    lr: float = 3e-3  # peak learning rate (AdamW), after warm-up
    min_lr_ratio: float = 0.1  # cosine decay to lr * min_lr_ratio
    warmup_steps: int = 100  # linear warm-up steps
    weight_decay: float = 0.1  # AdamW weight decay
    grad_clip: float = 1.0  # gradient norm clipping
    seed: int = 0  # data order and torch seed
    log_every: int = 50  # optimizer steps between log lines
    # A final phase (an anneal): continue the model on the same world with the response styles
    # re-weighted, as base models end pretraining on a different data mix. On the testbed it sets
    # the base model's style prior (which style it samples) after it has learnt every style.
    anneal_styles: dict[str, float] | None = late(None)  # the final phase's style shares; None = off
    anneal_tokens: int | None = late(None)  # tokens of the final phase; None = a seventh of `tokens`


@dataclass
class DataConfig:
    """Where training / validation problems come from."""

    source: str = "testbed"  # testbed | math | deepscaler
    train: str | None = None  # hub id or local jsonl / parquet path (paper scale)
    valid: str | None = None  # hub id or local path of the validation set (paper scale)
    levels: list[int] | None = None  # MATH difficulty levels kept for training
    split_seed: int = 0  # DeepScaleR 90/10 split
    template: str = "testbed"  # testbed | qwen-boxed | question-answer
    limit: int | None = None  # keep only the first N training problems (None = all)
    train_ids: list[str] | None = late(None)  # train only on these problem ids (Fig 15b: one group alone)
    # testbed augmentation (paper §5.3; world/augment.py): the training problems kept plus their
    # similar problems / subproblems, e.g. {kinds: [similar, subproblem], n_similar: 5, seed: 0,
    # ids: null (augment every kept problem) or [ids]}; missing keys get AUGMENT_DEFAULTS
    augment: dict[str, Any] | None = late(None)


ADV_EPS = 1e-6  # verl's epsilon of the group advantage (r - mean) / (std + eps); train.grpo.group_advantages


@dataclass
class GRPOConfig:
    """GRPO as in the paper's baseline (verl). Defaults are the paper's values (book/protocol.md)."""

    steps: int = 120  # training steps; the paper classifies at step 120
    prompts_per_step: int = 256  # prompts whose groups enter one training step
    rollouts_per_prompt: int = 8  # group size
    mini_batch_prompts: int = 64  # prompts per optimizer update: 256 / 64 = 4 updates a step
    ppo_epochs: int = 1  # passes over each step's batch
    lr: float = 5e-7  # constant, no warm-up
    weight_decay: float = 0.0  # AdamW weight decay
    eps_low: float = 0.2  # ratio clip below: 1 - eps_low
    eps_high: float = 0.2  # ratio clip above: 1 + eps_high (clip-higher ablation: 0.28)
    clip_ratio_c: float = 3.0  # verl's dual clip: loss of negative-advantage tokens capped at c * |A|
    kl_coef: float = 1e-4  # KL(policy || reference) in the loss; 0 = off
    kl_estimator: str = "k3"  # k3 (low-variance) | k1
    entropy_coef: float = 1e-3  # entropy bonus
    grad_clip: float = 1.0  # gradient norm clipping
    adv_eps: float = ADV_EPS  # advantage = (r - mean) / (std + adv_eps), population std
    loss_agg: str = "token-mean"  # token-mean over the mini-batch's response tokens
    dynamic_sampling: bool = True  # drop zero-variance groups, refill until the batch is full
    max_gen_batches: int = 10  # give up refilling after this many generation rounds (then train on what we have)
    temperature: float = 1.0  # rollout sampling
    top_p: float = 1.0  # nucleus sampling of rollouts (1 = off)
    max_new_tokens: int = 5120  # longest response sampled
    valid_every: int = 10  # validation pass@1 on the held-out split every N steps (0 = off)
    valid_k: int = 4  # samples per validation problem (pass@1 = mean reward)
    checkpoint_every: int = 10  # checkpoints every N steps (resume + later analysis)
    seed: int = 1  # the run's seed (paper: 1, 42, 37)
    # oversampling with replay (paper §4.1, Algorithm 1; `train/replay.py`); off when 0
    oversample_n: int = late(0)  # rollouts drawn per prompt before downsampling to the group (paper 64)
    n_pos: int = late(1)  # positives kept in each downsampled group (the rest are negatives)
    replay_capacity: int = late(5)  # most recent positives buffered per prompt
    max_replay: int = late(2)  # times one buffered positive may be replayed (paper 2; authors' code 3)
    init_from: str | None = late(None)  # start the policy and the KL reference from this checkpoint folder (curriculum stage 2)
    # speed: every forward pass of a training step (old policy, reference, loss) over rows
    # bucketed by length, at most this many padded tokens each, gradients accumulated (the same
    # token-mean loss, less padding); None = one forward per mini-batch. Numerically equal up to
    # float summation order.
    loss_chunk_tokens: int | None = late(None)
    # rollout decoder: "fast" = decoder.FastSampler (plain-torch Qwen2 decoder, ~3x the tokens/s
    # of the transformers forward on the testbed; other models fall back to the transformers
    # one), "transformers" = sampling.TorchSampler. Not `late`: the fast decoder's samples are
    # not guaranteed to equal the old sampler's (float rounding can flip a draw), so GRPO runs,
    # evaluations and gradient analyses cached before it arrived get new keys, never reused.
    decoder: str = "fast"  # fast | transformers
    # where the old policy's log-probs come from: "recompute" = a no-grad forward over every rollout
    # at the start of each step (verl); "sampler" = the sampler's own log-probs of the groups it drew
    # this step with the current weights (the old policy), recomputed only for groups carried over
    # from the previous step or replayed. The fast decoder's log-probs equal the training forward's
    # to ~1e-6 in fp32 (tests/test_decoder.py): a step saves one of its two no-grad forwards.
    # fp32 only (model.autocast none): a bf16 training forward would not match the sampler's.
    old_logprobs: str = late("recompute")  # recompute | sampler


@dataclass
class EvalConfig:
    """pass@k evaluation (paper: k = 32, temperature 0.7, top_p 0.95)."""

    k: int = 32  # samples per problem; pass@1 = their mean reward
    temperature: float = 0.7  # sampling temperature (0 = greedy)
    top_p: float = 0.95  # nucleus sampling
    max_new_tokens: int = 5120  # longest response sampled
    batch_prompts: int = 64  # prompts per sampler call
    seed: int = 0  # mixed with the run's seed and the step into each evaluation's sampler seed
    decoder: str = "fast"  # fast | transformers: the torch sampler's decoder (see GRPOConfig.decoder)


@dataclass
class GradientConfig:
    """Per-example gradient similarity (paper §5.1 and the authors' gradient scripts)."""

    per_group: int = 100  # examples sampled per group (fixed seed)
    rollouts: int = 1000  # rollouts per example from the analysed policy
    temperature: float = 0.7  # sampling temperature of the rollouts
    top_p: float = 1.0  # nucleus sampling of the rollouts (1 = off)
    max_correct: int = 20  # correct rollouts kept per example (at random)
    lora_r: int = 16  # LoRA rank of the adapter whose gradients are compared
    lora_alpha: int = 32  # LoRA scaling
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])  # modules with adapters
    lora_seed: int = 42  # seed of the adapter's A init (peft default B = 0: only B gets gradients, as the paper's code)
    seed: int = 0  # which examples are sampled, and the rollouts
    decoder: str = "fast"  # fast | transformers: the rollouts' decoder (see GRPOConfig.decoder)


@dataclass
class MidtrainConfig:
    """Mid-training (paper §5.4, OctoThinker; `train.midtrain`): continued pretraining of the base
    model on worked solutions weighted toward the tiers and skills hard problems need. Off while
    `mixture` is null; when set, `train.base.ensure_base_model` returns the mid-trained model, so
    GRPO, pass@k and the gradient analyses of that config start from it."""

    mixture: str | None = None  # null = off; a name in midtrain.MIXTURES: hybrid | long | pretrain
    tier_weights: dict[int, float] | None = None  # tier -> relative weight; replaces the mixture's
    skill_weights: dict[str, float] | None = None  # skill -> relative weight; replaces the mixture's
    styles: dict[str, float] | None = None  # response styles and shares; replaces the mixture's
    tokens: int | None = None  # tokens of continued training; None: a seventh of pretrain.tokens (default 2M)
    lr: float = 5e-4  # peak; warm-up then cosine decay to lr * pretrain.min_lr_ratio
    warmup_steps: int = 50  # linear warm-up steps
    seed: int = 0  # which problems the mid-training stream draws (and torch's seed)


@dataclass
class SFTConfig:
    """Supervised fine-tuning on correct responses, per group (paper A.2, Figure 15a; `train.sft`).
    Set with `--set sft.KEY=VALUE`; the SFT folder has its own key (`train.sft.sft_key`)."""

    # examples per group: an int is a count, a float in (0, 1] a fraction of the group's examples
    # that have a correct response. Paper: 200 unlearnable, 200 learnable, 400 random easy.
    # Set a group to 0 to leave it out (`--set sft.per_group.easy=0`); overrides merge key by key.
    per_group: dict[str, int | float] = field(default_factory=lambda: {
        "unlearnable": 200, "learnable": 200, "easy": 400}, metadata=BY_KEY)
    # True: take min(requested, available) per group (the testbed's groups are small);
    # False: a group with fewer examples than requested is an error.
    scale_to_groups: bool = True
    responses_per_example: int = 1  # correct responses trained on per example (first N distinct)
    epochs: int = 3  # passes over the SFT set
    lr: float = 5e-4  # AdamW learning rate, constant (testbed scale; a 0.5B model wants ~1e-5)
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float = 1.0  # max gradient norm
    batch_size: int = 16  # (example, response) rows per optimizer step
    max_length: int = 2048  # tokens per row, prompt + response + EOS; capped at the model's positions
    # optimizer steps between evaluations (checkpoint + per-group pass@1); 0 = at the end of
    # every epoch. The last step and step 0 (the base model) are always evaluated.
    eval_every: int = 0
    eval_k: int = 8  # samples per example for per-group pass@1 (temperature / top_p from `eval`)
    seed: int = 0  # which examples are chosen, and the batch order


@dataclass
class LLMConfig:
    """An OpenAI-compatible chat server (`backends.llm`) for the paper-scale LLM paths: the
    reasoning judge (§5.2, `analysis.judge`) and LLM augmentation (§5.3, `backends.llm_augment`).
    Holds the *name* of the environment variable with the API key (api_key_env), never the key."""

    # the server's endpoint, e.g. https://api.openai.com/v1 or http://localhost:8000/v1 (null: none set)
    base_url: str | None = None
    model: str | None = None  # the model's name as the server knows it, e.g. gpt-5-mini (null: none set)
    api_key_env: str = "OPENAI_API_KEY"  # NAME of the environment variable holding the API key
    # sampling temperature sent with each request; null: the server's default (GPT-5 models accept only that)
    temperature: float | None = None
    max_tokens: int | None = None  # token limit per reply; null: none sent (GPT-5's reasoning tokens count against it)
    timeout: float = 120.0  # seconds per request
    max_retries: int = 4  # extra attempts after a transient error (connection, timeout, 408 / 409 / 429, 5xx)
    concurrency: int = 8  # requests in flight (chat_many, the judge, augmentation)
    retry_backoff: float = 1.0  # first retry waits this many seconds, then doubles (cap 30 s)
    # how the token limit is sent: max_completion_tokens (GPT-5, vLLM, SGLang) | max_tokens (older servers)
    max_tokens_field: str = "max_completion_tokens"


@dataclass
class Config:
    name: str = "custom"  # the preset's name (not part of any cache key)
    notes: str = ""  # where and why this preset departs from the paper
    world: WorldConfig = field(default_factory=WorldConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    gradients: GradientConfig = field(default_factory=GradientConfig)
    midtrain: MidtrainConfig = late(MidtrainConfig())  # a late section: out of every key while off
    sft: SFTConfig = own_key(SFTConfig())  # SFT per group (paper A.2; train.sft), its own cache key
    llm: LLMConfig = own_key(LLMConfig())  # the LLM judge / augmentation server (paper scale), its own cache key

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (a run's config.yaml); sections with their own key
        (`own_key`: sft, llm) only when they differ from their default."""
        d = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if f.metadata.get("own_key") and getattr(self, f.name) == f.default_factory():
                del d[f.name]
        return d

    def section_hash(self, *sections: str) -> str:
        """Short hash of the named sections (all if none, less those with their own key: sft,
        llm): the cache key of what they produce. Fields marked `late` are left out while they
        hold their default."""
        d = _cache_dict(self)
        own = {f.name for f in dataclasses.fields(self) if f.metadata.get("own_key")}
        # (a late section at its default is absent from d, so it adds nothing)
        names = sections or tuple(k for k in d if k not in own)
        keep = {k: d[k] for k in names if k not in ("name", "notes") and k in d}
        blob = json.dumps(keep, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _cache_dict(obj: Any) -> dict[str, Any]:
    """`dataclasses.asdict(obj)` without the `late` fields that hold their default."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if f.metadata.get("omit_at_default"):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if v == default:
                continue
        out[f.name] = _cache_dict(v) if dataclasses.is_dataclass(v) else v
    return out


class ConfigError(ValueError):
    """A preset or override names an unknown key or gives a value of the wrong type."""


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("unlearnability.presets").iterdir()
                  if p.name.endswith(".yaml"))


def _merge(obj: Any, updates: dict[str, Any], where: str) -> Any:
    """Return a copy of dataclass `obj` with `updates` applied (nested dicts merge into nested
    dataclasses, and into dict fields marked BY_KEY key by key; other fields are replaced)."""
    names = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in updates.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r}; valid keys: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a mapping, got {value!r}")
            value = _merge(current, value, f"{where}.{key}")
        elif names[key].metadata.get("merge") == "by_key":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a mapping, merged key by key into {current}, got {value!r}")
            value = {**current, **value}
        changes[key] = value
    return dataclasses.replace(obj, **changes)


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


def parse_value(raw: str) -> Any:
    """A command-line value as YAML ("3" -> 3, "[1, 2]" -> [1, 2], "true" -> True, "x" -> "x").

    Unlike plain YAML 1.1, "1e-4" is read as a float.
    """
    value = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(value, str) and _FLOAT.match(value.strip()):
        return float(value)
    return value


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """['grpo.lr=1e-4', 'world.p=97'] -> {'grpo': {'lr': 1e-4}, 'world': {'p': 97}} (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. grpo.lr=1e-4")
        key, raw = item.split("=", 1)
        value = parse_value(raw)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def parse_yaml(text: str, where: str) -> dict[str, Any]:
    """A YAML mapping, with errors that name the file and line."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}{line}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of sections (world:, model:, grpo:, ...), "
                          f"got {type(data).__name__}")
    return data


def load_config(preset: str | Path = "default", overrides: dict[str, Any] | None = None) -> Config:
    """A preset by name (or a YAML file path), with `overrides` (nested dict) applied on top."""
    path = Path(preset)
    if path.suffix in (".yaml", ".yml") and path.exists():
        text, where = path.read_text(), str(path)
    else:
        names = preset_names()
        if str(preset) not in names:
            raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(names)} (or a .yaml path)")
        ref = resources.files("unlearnability.presets") / f"{preset}.yaml"
        text, where = ref.read_text(), f"presets/{preset}.yaml"
    data = parse_yaml(text, where)
    cfg = _merge(Config(), data, where)
    if overrides:
        cfg = _merge(cfg, overrides, "--set")
    check_config(cfg)
    return cfg


def apply_overrides(cfg: Config, overrides: dict[str, Any] | None, where: str = "--set") -> Config:
    """A copy of `cfg` with `overrides` (a nested dict, as `parse_set` gives) merged as a preset's
    are, then checked: apply_overrides(cfg, {"sft": {"epochs": 5, "per_group": {"easy": 100}}})."""
    out = _merge(copy.deepcopy(cfg), overrides or {}, where)
    check_config(out)
    return out


def check_section(name: str, section: Any) -> None:
    """`check_config` for one section built in code (e.g. `SFTConfig(epochs=2)` handed to
    `train.sft.train_sft`), with every other section at its default."""
    check_config(dataclasses.replace(Config(), **{name: section}))


DECODERS = ("fast", "transformers")  # grpo/eval/gradients.decoder (decoder.FastSampler | sampling.TorchSampler)
AUGMENT_KINDS = ("similar", "subproblem")  # what data.augment.kinds may name (world/augment.py)
AUGMENT_DEFAULTS: dict[str, Any] = {"ids": None, "kinds": list(AUGMENT_KINDS), "n_similar": 5, "seed": 0}


def check_augment(spec: Any) -> dict[str, Any] | None:
    """`data.augment` checked, with AUGMENT_DEFAULTS filled in and kinds in canonical order (so
    two spellings of one augmentation share a cache key); a ConfigError names the bad key."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ConfigError(f"data.augment: expected a mapping such as {{kinds: [similar], n_similar: 5}}, got {spec!r}")
    unknown = sorted(set(spec) - set(AUGMENT_DEFAULTS))
    if unknown:
        raise ConfigError(f"data.augment: unknown key {unknown[0]!r}; valid keys: {', '.join(AUGMENT_DEFAULTS)}")
    out = {**AUGMENT_DEFAULTS, **spec}
    kinds = out["kinds"]
    if isinstance(kinds, str):
        kinds = [kinds]
    if not isinstance(kinds, list) or not kinds:
        raise ConfigError(f"data.augment.kinds: expected a non-empty list of {list(AUGMENT_KINDS)}, got {kinds!r}")
    bad = [k for k in kinds if k not in AUGMENT_KINDS]
    if bad:
        raise ConfigError(f"data.augment.kinds: unknown kind {bad[0]!r}; known: {', '.join(AUGMENT_KINDS)}")
    out["kinds"] = [k for k in AUGMENT_KINDS if k in kinds]
    for key in ("n_similar", "seed"):
        if not isinstance(out[key], int) or isinstance(out[key], bool) or out[key] < 0:
            raise ConfigError(f"data.augment.{key}: expected a non-negative integer, got {out[key]!r}")
    if "similar" in out["kinds"] and out["n_similar"] < 1:
        raise ConfigError("data.augment.n_similar: must be >= 1 when kinds has 'similar'")
    ids = out["ids"]
    if ids is not None and (not isinstance(ids, list) or not ids):
        raise ConfigError(f"data.augment.ids: expected null (every kept training problem) or a non-empty list "
                          f"of training problem ids, got {ids!r}")
    out["ids"] = None if ids is None else [str(i) for i in ids]
    return out


def check_config(cfg: Config) -> None:
    """The checks every loaded config passes (`load_config`, `config_from_dict`; call it on a
    Config built in code): ints given for float fields coerced, wrong types, then the ranges,
    names and cross-field rules (`_check_ranges`); a ConfigError names the key."""
    cfg.data.augment = check_augment(cfg.data.augment)
    for section in dataclasses.fields(cfg):
        obj = getattr(cfg, section.name)
        if not dataclasses.is_dataclass(obj):
            continue
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            t = str(f.type)
            if t.endswith(" | None") and v is None:
                continue
            t = t.removesuffix(" | None")
            if t == "float" and isinstance(v, int) and not isinstance(v, bool):
                setattr(obj, f.name, float(v))
            elif t == "float" and not isinstance(v, float):
                raise ConfigError(f"{section.name}.{f.name}: expected a number, got {v!r}")
            elif t == "int" and (not isinstance(v, int) or isinstance(v, bool)):
                raise ConfigError(f"{section.name}.{f.name}: expected an integer, got {v!r}")
            elif t == "bool" and not isinstance(v, bool):
                raise ConfigError(f"{section.name}.{f.name}: expected true/false, got {v!r}")
            elif t == "str" and not isinstance(v, str):
                raise ConfigError(f"{section.name}.{f.name}: expected a string, got {v!r}")
            elif t == "dict[str, int | float]":  # sft.per_group: ints are counts, floats fractions (no coercion)
                if not isinstance(v, dict):
                    raise ConfigError(f"{section.name}.{f.name}: expected a mapping, got {v!r}")
            elif t.startswith("dict[str, dict[str, float]]") and isinstance(v, dict):  # world.skill_styles
                for k, inner in v.items():
                    if not isinstance(inner, dict) or any(isinstance(x, bool) or not isinstance(x, (int, float))
                                                          for x in inner.values()):
                        raise ConfigError(f"{section.name}.{f.name}.{k}: expected {{style: share}}, got {inner!r}")
                setattr(obj, f.name, {k: {s: float(x) for s, x in inner.items()} for k, inner in v.items()})
            elif t.startswith("dict[") and "float]" in t and isinstance(v, dict):
                # {worked: 1} and {worked: 1.0} are one config: one cache key
                for k, x in v.items():
                    if isinstance(x, bool) or not isinstance(x, (int, float)):
                        raise ConfigError(f"{section.name}.{f.name}.{k}: expected a number, got {x!r}")
                setattr(obj, f.name, {k: float(x) for k, x in v.items()})
    for section in ("grpo", "eval", "gradients"):
        value = getattr(cfg, section).decoder
        if value not in DECODERS:
            raise ConfigError(f"{section}.decoder: {value!r} is not a decoder; choose one of: {', '.join(DECODERS)}")
    _check_ranges(cfg)
    if cfg.grpo.old_logprobs == "sampler" and cfg.model.autocast != "none":
        raise ConfigError(f"grpo.old_logprobs=sampler needs fp32 training forwards (model.autocast none, got "
                          f"{cfg.model.autocast!r}): the sampler's log-probs would not match a "
                          f"{cfg.model.autocast} forward; use grpo.old_logprobs=recompute")
    w = cfg.world
    if w.digits and w.p > 10 ** w.digits:  # else numbers from 10**digits up get more digit tokens than the rest
        raise ConfigError(f"world.p={w.p} with world.digits={w.digits}: answers up to {w.p - 1} need "
                          f"world.digits >= {len(str(w.p - 1))} (or world.p <= {10 ** w.digits})")


def small_set_batch(n: int, grpo: GRPOConfig) -> dict[str, int]:
    """GRPO batch sizes for a run on `n` training problems: at most one epoch a step
    (prompts_per_step = min(n, grpo.prompts_per_step)) and the largest mini-batch up to
    grpo.mini_batch_prompts that divides it, so every optimizer update has the same size."""
    prompts = min(n, grpo.prompts_per_step)
    mini = max(m for m in range(1, min(prompts, grpo.mini_batch_prompts) + 1) if prompts % m == 0)
    return {"prompts_per_step": prompts, "mini_batch_prompts": mini}


def field_help(key: str) -> str:
    """The help text of a config field ("grpo.top_p", or a section: "grpo"), read from the comment
    beside or above it in this file (simple_parsing's docstring reader), so the code comment is
    the one place a field is documented."""
    section, _, name = key.partition(".")
    sections = [f.name for f in dataclasses.fields(Config)]
    if section not in sections:
        raise ConfigError(f"unknown config section {section!r}; sections: {', '.join(sections)}")
    cls = type(getattr(Config(), section))
    is_section = dataclasses.is_dataclass(cls)
    if not name:
        return (cls.__doc__ or "").strip() if is_section else _doc_text(Config, section)
    if not is_section or name not in {f.name for f in dataclasses.fields(cls)}:
        raise ConfigError(f"unknown config key {key!r}")
    return _doc_text(cls, name)


def _doc_text(cls: type, name: str) -> str:
    from simple_parsing.docstring import get_attribute_docstring

    d = get_attribute_docstring(cls, name)
    parts = [t.strip() for t in (d.comment_inline, d.comment_above, d.docstring_below) if t and t.strip()]
    return " ".join(" ".join(p.split()) for p in parts)


# ----------------------------------------------------------------------------- semantic checks
# RULES: one row (key, rule) per field with a range or a set of names, a rule being (test, what is
# allowed, a value it refuses: the table-driven test tries each). Checked at load, before any work
# starts, so `--set grpo.rollouts_per_prompt=0` is an error that names the key instead of a
# ZeroDivisionError an hour later.
def _at_least(n):
    return (lambda v: v >= n), f">= {n}", n - 1


def _above(n):
    return (lambda v: v > n), f"> {n}", n


def _within(lo, hi, lo_open=False):
    return ((lambda v: (lo < v if lo_open else lo <= v) and v <= hi),
            f"in {'(' if lo_open else '['}{lo}, {hi}]", hi + 1)


def _optional(rule):
    test, what, bad = rule
    return (lambda v: v is None or test(v)), f"null or {what}", bad


def _one_of(*names):
    return (lambda v: v in names), "one of: " + ", ".join(map(str, names)), "no-such-name"


KL_ESTIMATORS = ("k3", "k1")  # grpo.kl_penalty
LOSS_AGGREGATIONS = ("token-mean",)  # the only aggregation grpo.train_step implements
SOURCES = ("testbed", "math", "deepscaler")  # mathdata.load_data
AUTOCAST = ("none", "bfloat16")  # model.autocast
OLD_LOGPROBS = ("recompute", "sampler")  # grpo.old_logprobs
MAX_TOKENS_FIELDS = ("max_completion_tokens", "max_tokens")  # llm.max_tokens_field (backends.llm._request_args)

RULES: list[tuple[str, tuple]] = [
    ("world.p", _at_least(2)), ("world.digits", _at_least(0)), ("world.n_vars", _within(2, 26)),
    ("world.const_max", _at_least(2)), ("world.distractors_max", _at_least(0)),
    ("world.chain_bias", _within(0, 1)), ("world.disorder_pretrain", _within(0, 1)),
    ("world.disorder_tasks", _within(0, 1)), ("world.n_train", _at_least(1)), ("world.n_valid", _at_least(1)),
    ("model.hidden_size", _at_least(1)), ("model.num_hidden_layers", _at_least(1)),
    ("model.num_attention_heads", _at_least(1)), ("model.num_key_value_heads", _at_least(1)),
    ("model.intermediate_size", _at_least(1)), ("model.max_position_embeddings", _at_least(8)),
    ("model.autocast", _one_of(*AUTOCAST)),
    ("pretrain.tokens", _at_least(1)), ("pretrain.batch_size", _at_least(1)), ("pretrain.lr", _above(0)),
    ("pretrain.min_lr_ratio", _within(0, 1)), ("pretrain.warmup_steps", _at_least(0)),
    ("pretrain.weight_decay", _at_least(0)), ("pretrain.grad_clip", _above(0)), ("pretrain.log_every", _at_least(1)),
    ("pretrain.anneal_tokens", _optional(_at_least(1))),
    ("data.source", _one_of(*SOURCES)), ("data.limit", _optional(_at_least(1))),
    ("grpo.steps", _at_least(1)), ("grpo.prompts_per_step", _at_least(1)),
    ("grpo.rollouts_per_prompt", _at_least(2)),  # a group of one has no advantage (r - mean = 0)
    ("grpo.mini_batch_prompts", _at_least(1)), ("grpo.ppo_epochs", _at_least(1)), ("grpo.lr", _above(0)),
    ("grpo.weight_decay", _at_least(0)), ("grpo.eps_low", _within(0, 1)), ("grpo.eps_high", _at_least(0)),
    ("grpo.clip_ratio_c", _above(1)),  # verl asserts c > 1: the dual clip must sit above the ratio clip
    ("grpo.kl_coef", _at_least(0)), ("grpo.kl_estimator", _one_of(*KL_ESTIMATORS)),
    ("grpo.entropy_coef", _at_least(0)), ("grpo.grad_clip", _above(0)), ("grpo.adv_eps", _above(0)),
    ("grpo.loss_agg", _one_of(*LOSS_AGGREGATIONS)), ("grpo.max_gen_batches", _at_least(1)),
    ("grpo.temperature", _above(0)), ("grpo.top_p", _within(0, 1, lo_open=True)),
    ("grpo.max_new_tokens", _at_least(1)), ("grpo.valid_every", _at_least(0)), ("grpo.valid_k", _at_least(1)),
    ("grpo.checkpoint_every", _at_least(0)), ("grpo.oversample_n", _at_least(0)), ("grpo.n_pos", _at_least(0)),
    ("grpo.replay_capacity", _at_least(0)), ("grpo.max_replay", _at_least(0)),
    ("grpo.loss_chunk_tokens", _optional(_at_least(1))), ("grpo.old_logprobs", _one_of(*OLD_LOGPROBS)),
    ("eval.k", _at_least(1)), ("eval.temperature", _at_least(0)),  # 0 = greedy
    ("eval.top_p", _within(0, 1, lo_open=True)), ("eval.max_new_tokens", _at_least(1)),
    ("eval.batch_prompts", _at_least(1)),
    ("gradients.per_group", _at_least(1)), ("gradients.rollouts", _at_least(1)),
    ("gradients.temperature", _above(0)), ("gradients.top_p", _within(0, 1, lo_open=True)),
    ("gradients.max_correct", _at_least(1)), ("gradients.lora_r", _at_least(1)), ("gradients.lora_alpha", _above(0)),
    ("midtrain.tokens", _optional(_at_least(1))), ("midtrain.lr", _above(0)), ("midtrain.warmup_steps", _at_least(0)),
    ("sft.responses_per_example", _at_least(1)), ("sft.epochs", _at_least(1)), ("sft.lr", _above(0)),
    ("sft.weight_decay", _at_least(0)), ("sft.grad_clip", _above(0)), ("sft.batch_size", _at_least(1)),
    ("sft.max_length", _at_least(2)),  # a prompt token and a response token at least
    ("sft.eval_every", _at_least(0)), ("sft.eval_k", _at_least(1)),
    ("llm.temperature", _optional(_at_least(0))), ("llm.max_tokens", _optional(_at_least(1))),
    ("llm.timeout", _above(0)), ("llm.max_retries", _at_least(0)), ("llm.concurrency", _at_least(1)),
    ("llm.retry_backoff", _at_least(0)), ("llm.max_tokens_field", _one_of(*MAX_TOKENS_FIELDS)),
]


def _check_ranges(cfg: Config) -> None:
    """RULES, then the checks that relate two fields; a ConfigError names the key and what is allowed."""
    for key, (test, what, _) in RULES:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if not test(value):
            raise ConfigError(f"{key}={value!r}: must be {what} ({key}: {field_help(key)})")
    g, m, w = cfg.grpo, cfg.model, cfg.world
    if g.prompts_per_step % g.mini_batch_prompts:
        raise ConfigError(f"grpo.mini_batch_prompts={g.mini_batch_prompts}: must divide grpo.prompts_per_step="
                          f"{g.prompts_per_step} (every optimizer update the same size)")
    if g.oversample_n and g.oversample_n < g.rollouts_per_prompt:
        raise ConfigError(f"grpo.oversample_n={g.oversample_n}: must be 0 (off) or >= grpo.rollouts_per_prompt="
                          f"{g.rollouts_per_prompt} (it downsamples to the group)")
    if g.n_pos > g.rollouts_per_prompt:
        raise ConfigError(f"grpo.n_pos={g.n_pos}: must be <= grpo.rollouts_per_prompt={g.rollouts_per_prompt}")
    if m.hub_id is None and m.hidden_size % m.num_attention_heads:
        raise ConfigError(f"model.num_attention_heads={m.num_attention_heads}: must divide model.hidden_size={m.hidden_size}")
    if m.hub_id is None and m.num_attention_heads % m.num_key_value_heads:
        raise ConfigError(f"model.num_key_value_heads={m.num_key_value_heads}: must divide "
                          f"model.num_attention_heads={m.num_attention_heads}")
    for key in ("coverage", "task_mix"):
        shares = getattr(w, key)
        unknown = sorted(set(shares) - set(w.skills))
        if unknown:
            raise ConfigError(f"world.{key}: unknown skill {unknown[0]!r}; world.skills: {', '.join(w.skills)}")
        if any(v < 0 for v in shares.values()):
            raise ConfigError(f"world.{key}: shares must be >= 0, got {shares}")
    if not any(v > 0 for v in w.task_mix.values()):
        raise ConfigError(f"world.task_mix: at least one skill needs a share > 0, got {w.task_mix}")
    if not w.tiers or any(isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in w.tiers):
        raise ConfigError(f"world.tiers: expected a non-empty list of integers >= 1, got {w.tiers!r}")
    for key, shares in (("world.styles", w.styles), ("pretrain.anneal_styles", cfg.pretrain.anneal_styles)):
        if shares is not None and (not shares or any(v < 0 for v in shares.values()) or not sum(shares.values()) > 0):
            raise ConfigError(f"{key}: expected {{style: share}} with shares >= 0 and a positive total, got {shares}")
    for group, n in cfg.sft.per_group.items():
        if isinstance(n, bool) or not isinstance(n, (int, float)) or n < 0 or (isinstance(n, float) and n > 1):
            raise ConfigError(f"sft.per_group.{group}={n!r}: must be a count (an integer >= 0) or a fraction "
                              f"in (0, 1] of the group (0 leaves it out)")


def config_from_dict(d: dict[str, Any]) -> Config:
    """Rebuild a Config from `Config.to_dict()` output (e.g. a run's config.yaml)."""
    cfg = _merge(Config(), d, "config")
    check_config(cfg)
    return cfg


def merge_overrides(*layers: dict | None) -> dict:
    """Nested dicts merged left to right: merge_overrides({"grpo": {"lr": 1}}, {"grpo": {"seed": 2}})
    == {"grpo": {"lr": 1, "seed": 2}}."""
    out: dict = {}
    for layer in layers:
        for k, v in (layer or {}).items():
            out[k] = merge_overrides(out.get(k), v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
