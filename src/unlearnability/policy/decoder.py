"""A fast decoder for the Qwen2 policy: `FastSampler`, the `sampling.Sampler` interface in plain
eager torch (the transformers forward, its DynamicCache and its module calls left out).

    sampler = make_sampler(model, tokenizer)          # FastSampler when supported, else TorchSampler
    comps = sampler.generate(prompts, SamplingParams(n=8, max_new_tokens=160, seed=0))

It reads the weights of a transformers `Qwen2ForCausalLM` (plain, or wrapped in a peft LoRA
adapter) at every `generate` call, so GRPO's updates between calls are seen. One call, per
chunk of `batch_size` rows (prompt-major, as TorchSampler):

1. weights: q|k|v and gate|up fused into one matrix each, the attention scale 1/sqrt(d) folded
   into the q rows and each RMSNorm weight into the columns of the matrix after it (the norm's
   1 / rms is applied to the matmul's output rows); LoRA deltas merged in (W + s B A). The
   residual adds ride on the matmuls (addmm).
2. prefill once per *distinct* prompt of the chunk (U of them, left-padded to Lp, positions
   cumsum(mask) - 1 as TorchSampler), not once per sample: the n samples of a prompt share its
   keys / values, which are never copied to the rows. Token-wise work runs on the real tokens
   only (packed), attention on the padded layout.
3. decode one token per live row per step. A row's own keys / values (the tokens it generated)
   go into one preallocated (2 layers, B0, Hkv, T, d) tensor, written at one slot per step; every
   live row is at the same step, so that part needs no mask. Attention has two parts and one
   softmax over both (cascade attention): the prompt part puts the queries of a prompt's rows
   into a (U, Hkv, G, rep, d) grid, so one (G rep) x Lp matmul per prompt and key/value head
   reads that prompt's keys once for all its rows (an additive mask hides the left padding);
   the own part is one query per row against its own keys (a batched matmul over the filled
   slots). The scores of both parts are concatenated per row, softmaxed, and split again.
4. a row that produced a stop token leaves the batch: the last live rows move into the freed
   slots (only the moved rows' caches are copied), so the batch stays dense; the grid shrinks
   to the most live rows any prompt has, and prompts with no live row leave the prompt cache
   once they are a quarter of it.
5. tokens are drawn by `sampling.sample_next` on the live rows' logits in their original row
   order, with one `torch.Generator` seeded with `params.seed` per call: the random stream is
   the one TorchSampler consumes, so both give the same samples up to float rounding of the
   logits (|diff| ~1e-6; a draw that lands within that of a boundary can differ, and the rest
   of that chunk then differs).

Measured (benchmarks/sampler_vs_generate.py, default model shape, 32 prompts x 8 samples, 160
new tokens, one thread, a shared 2-core VM): 3.0-3.2x TorchSampler's tokens/s (random init and
a pretrained base alike); a GRPO step of the default preset 1.34-1.46x faster
(benchmarks/step_split.py). What is left is mostly memory-bound or per-kernel overhead: the
own-token keys / values (each step reads every live row's: 3.4 GB a call at random init, about
a third of the time), the prompt part's small matmuls and index ops, the linears at small
batch, and ~125 kernels a step that dominate once few rows are left.

Simplifications (what it does not do; `unsupported_reason` names the first one a model hits,
and `make_sampler` then returns `sampling.TorchSampler`):
- Qwen2ForCausalLM only: RMSNorm, SiLU-gated MLP, q/k/v biases, tied or untied lm_head, GQA.
  No sliding-window layers, no rope scaling (rope_type "default" only), no other architecture.
- float32 parameters on one device (CPU or CUDA); no autocast, no bf16 / fp16 path.
- peft: LoRA adapters on the seven linear layers only (no DoRA or other variants, no lora_bias,
  no LoRA on embeddings / lm_head, no prompt learning); dropout is not applied (sampling is eval).
- the prompt cache is padded to the chunk's longest prompt (padding masked, not skipped).
- no torch.compile (slower here, and minutes per shape), no custom kernels, no CUDA graphs.
- sampling always on the CPU (as TorchSampler: one generator), so CUDA syncs once per step.
- the own-token cache starts at min(max_new_tokens, 256) slots and doubles when full; the
  sampler keeps the last call's buffer for the next call (no fresh pages to fault in), so it
  holds that memory between calls.
- numerics: the same float32 math in another order (fused matrices, folded scales, one
  softmax over two parts): next-token logits within ~2e-6 of the transformers forward.
- the grid's unused slots hold zeros or stale finite values; they are computed on, never read.

Shapes: B live rows (B0 at the start of a chunk), U distinct prompts, G grid slots per prompt,
Lp prompt length, t the decode step, D hidden, I intermediate, H query heads, Hkv key/value
heads, rep = H / Hkv, d head dim, V vocab.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from unlearnability.config import (
    DECODERS,  # "fast" (this decoder) | "transformers" (TorchSampler)
)
from unlearnability.policy.sampling import (
    Completion,
    SamplingParams,
    TorchSampler,
    completions,
    sample_next,
    special_ids,
)

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
FIRST_CACHE_SLOTS = 256


# ----------------------------------------------------------------------------- support


def unsupported_reason(model) -> str | None:
    """None if FastSampler can decode `model`, else why not (one sentence)."""
    try:
        from transformers import Qwen2ForCausalLM
    except ImportError:  # pragma: no cover
        return "transformers is not installed"
    base, reason = _unwrap_peft(model)
    if reason:
        return reason
    if type(base) is not Qwen2ForCausalLM:
        return f"{type(base).__name__} is not a transformers Qwen2ForCausalLM"
    c = base.config
    if c.hidden_act != "silu":
        return f"hidden_act={c.hidden_act!r} (only 'silu')"
    if getattr(c, "use_sliding_window", False) or any(t != "full_attention" for t in (c.layer_types or [])) \
            or any(layer.self_attn.sliding_window is not None for layer in base.model.layers):
        return "sliding-window attention is active"
    rope = getattr(c, "rope_parameters", None) or {}
    rope_type = rope.get("rope_type", "default")
    if rope_type != "default" or getattr(base.model.rotary_emb, "rope_type", "default") != "default":
        return f"rope_type={rope_type!r} (only 'default': no rope scaling)"
    if c.num_attention_heads % c.num_key_value_heads:
        return "num_attention_heads is not a multiple of num_key_value_heads"
    params = list(base.parameters())
    if any(p.dtype != torch.float32 for p in params):
        return f"parameters in {sorted({str(p.dtype) for p in params if p.dtype != torch.float32})} (only float32)"
    if len({p.device for p in params}) != 1:
        return "parameters on more than one device"
    for layer in base.model.layers:
        for mod in (*(getattr(layer.self_attn, n) for n in LINEARS[:4]), *(getattr(layer.mlp, n) for n in LINEARS[4:])):
            reason = _linear_reason(mod)
            if reason:
                return reason
    if type(base.lm_head) is not torch.nn.Linear or type(base.model.embed_tokens) is not torch.nn.Embedding:
        return "lm_head / embed_tokens are not plain Linear / Embedding modules (LoRA or quantisation there)"
    return None


def supports(model) -> bool:
    """True if FastSampler can decode `model` (see `unsupported_reason`)."""
    return unsupported_reason(model) is None


def make_sampler(model, tokenizer=None, decoder: str = "fast", **kw):
    """The policy's sampler: FastSampler if `decoder` is "fast" and the model is supported,
    else TorchSampler (the transformers forward; a warning says why when "fast" was asked for).
    `kw` (eos_id, pad_id, batch_size) go to either."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder={decoder!r}: use one of {', '.join(DECODERS)}")
    if decoder == "fast":
        reason = unsupported_reason(model)
        if reason is None:
            return FastSampler(model, tokenizer, **kw)
        warnings.warn(f"fast decoder: {reason}; sampling with the transformers forward (TorchSampler)",
                      stacklevel=2)
    return TorchSampler(model, tokenizer, **kw)


def _unwrap_peft(model):
    """(the Qwen2ForCausalLM inside `model`, None) or (None, reason) for peft models we cannot read."""
    if not hasattr(model, "peft_config") or not hasattr(model, "get_base_model"):
        return model, None
    cfg = getattr(model, "active_peft_config", None)
    if cfg is None or getattr(cfg, "is_prompt_learning", False) or getattr(cfg, "peft_type", None) != "LORA":
        kind = getattr(getattr(cfg, "peft_type", None), "value", "prompt-learning")
        return None, f"a peft model with a {kind} adapter (only LoRA)"
    return model.get_base_model(), None


def _linear_reason(mod) -> str | None:
    if type(mod) is torch.nn.Linear:
        return None
    try:
        from peft.tuners.lora import Linear as LoraLinear
    except ImportError:  # pragma: no cover
        LoraLinear = ()
    if not isinstance(mod, LoraLinear) or type(mod.base_layer) is not torch.nn.Linear:
        return f"a {type(mod).__name__} layer (only torch Linear, or a peft LoRA Linear around one)"
    for a in _active_adapters(mod):
        if a in getattr(mod, "lora_variant", {}) or mod.use_dora.get(a, False):
            return f"LoRA adapter {a!r} is a variant (DoRA, ...): only plain LoRA"
        if mod.lora_bias.get(a, False):
            return f"LoRA adapter {a!r} has lora_bias"
        if getattr(mod, "fan_in_fan_out", False):
            return "LoRA with fan_in_fan_out"
    return None


def _active_adapters(mod) -> list[str]:
    if mod.disable_adapters or mod.merged:  # merged: the base weight already holds the delta
        return []
    return [a for a in mod.active_adapters if a in mod.lora_A]


# ----------------------------------------------------------------------------- weights


@dataclass
class LayerWeights:
    wqkv: torch.Tensor  # ((H + 2 Hkv) d, D): q | k | v fused, q rows scaled by 1/sqrt(d), columns
    #                     by the input RMSNorm weight
    bqkv: torch.Tensor | None  # ((H + 2 Hkv) d,)
    wo: torch.Tensor  # (D, H d)
    bo: torch.Tensor | None
    wgu: torch.Tensor  # (2 I, D): gate | up fused, columns scaled by the post-attention RMSNorm weight
    bgu: torch.Tensor | None
    wd: torch.Tensor  # (D, I)
    bd: torch.Tensor | None


@dataclass
class Weights:
    embed: torch.Tensor  # (V, D)
    layers: list[LayerWeights]
    norm: torch.Tensor  # (D,)
    lm_head: torch.Tensor  # (V, D); the embedding itself when tied
    lm_bias: torch.Tensor | None
    n_head: int  # H
    n_kv: int  # Hkv
    head_dim: int  # d
    eps: float  # RMSNorm epsilon
    eps_t: torch.Tensor  # the same as a 0-dim tensor on the weights' device
    inv_freq: torch.Tensor  # (d / 2,) rotary inverse frequencies, float32
    rope_scale: float  # transformers' attention_scaling (1.0 for the default rope)


def read_weights(model) -> Weights:
    """The weights of a supported model (see `supports`), fused; LoRA deltas merged in."""
    base, _ = _unwrap_peft(model)
    c, m = base.config, base.model
    attn0 = m.layers[0].self_attn
    layers = []
    for layer in m.layers:
        a, mlp = layer.self_attn, layer.mlp
        (wq, bq), (wk, bk), (wv, bv) = (_linear(a.q_proj), _linear(a.k_proj), _linear(a.v_proj))
        (wg, bg), (wu, bu) = _linear(mlp.gate_proj), _linear(mlp.up_proj)
        (wo, bo), (wd, bd) = _linear(a.o_proj), _linear(mlp.down_proj)
        s = a.head_dim ** -0.5  # the attention scale, folded into q (rope is linear)
        ln1, ln2 = layer.input_layernorm.weight, layer.post_attention_layernorm.weight  # (D,), folded in
        layers.append(LayerWeights(
            wqkv=torch.cat([wq * s, wk, wv]) * ln1, bqkv=_cat_bias(None if bq is None else bq * s, bk, bv, wq, wk, wv),
            wo=wo, bo=bo, wgu=torch.cat([wg, wu]) * ln2, bgu=_cat_bias(bg, bu, None, wg, wu, None), wd=wd, bd=bd))
    rot, eps = m.rotary_emb, m.norm.variance_epsilon
    return Weights(embed=m.embed_tokens.weight, layers=layers, norm=m.norm.weight, lm_head=base.lm_head.weight,
                   lm_bias=base.lm_head.bias, n_head=c.num_attention_heads, n_kv=c.num_key_value_heads,
                   head_dim=attn0.head_dim, eps=eps, eps_t=torch.tensor(eps, device=m.norm.weight.device),
                   inv_freq=rot.inv_freq.float(), rope_scale=float(rot.attention_scaling))


def _linear(mod) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight (out, in), bias (out,) or None) of a Linear, or of a peft LoRA Linear with its deltas merged."""
    if type(mod) is torch.nn.Linear:
        return mod.weight, mod.bias
    w = mod.base_layer.weight
    for a in _active_adapters(mod):
        w = w + mod.get_delta_weight(a)  # s * B @ A, (out, in)
    return w, mod.base_layer.bias


def _cat_bias(b1, b2, b3, w1, w2, w3):
    bs, ws = [b1, b2, b3], [w1, w2, w3]
    if all(b is None for b in bs):
        return None
    return torch.cat([b if b is not None else w.new_zeros(w.shape[0]) for b, w in zip(bs, ws) if w is not None])


# ----------------------------------------------------------------------------- the forward


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """Qwen2RMSNorm (float32): x (..., D) -> w * x / sqrt(mean(x^2) + eps)."""
    return F.rms_norm(x, (x.shape[-1],), w, eps)


def norm_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, W: "Weights") -> torch.Tensor:
    """linear(rms_norm(x, g), w0, b) for w = w0 * g (the norm weight folded into the columns):
    (x @ w.T) * r + b with r = 1 / sqrt(mean(x^2) + eps) per row, applied after the matmul.
    x: (..., D) -> (..., out). Five kernels where F.rms_norm + linear take about eleven on CPU."""
    n = torch.linalg.vector_norm(x, dim=-1, keepdim=True)  # (..., 1)
    r = torch.addcmul(W.eps_t, n, n, value=1.0 / x.shape[-1]).rsqrt_()  # (..., 1)
    h = x @ w.t()
    return h.mul_(r) if b is None else torch.addcmul(b, h, r)


def rope_tables(W: Weights, n_pos: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, signed sin (n_pos, d) for positions 0..n_pos-1, as transformers' Qwen2RotaryEmbedding
    computes cos and sin; the sin's first half is negated (see `rope`)."""
    pos = torch.arange(n_pos, device=device).float()
    freqs = pos[:, None] * W.inv_freq.to(device)[None, :]  # (n_pos, d / 2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (n_pos, d)
    h = emb.shape[-1] // 2
    sign = torch.cat([-torch.ones(h, device=device), torch.ones(h, device=device)])
    return emb.cos() * W.rope_scale, emb.sin() * W.rope_scale * sign


def rope(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """x (..., d) rotated: x * cos + rotate_half(x) * sin, where rotate_half(x) * sin equals
    roll(x, d / 2) * sin_signed ([x2, x1] * [-s, s]). cos, sin_signed broadcast to x."""
    return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, -1), sin_signed)


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return F.linear(x, w, b)


def residual_linear(x: torch.Tensor, a: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x + a @ w.T (+ b), the residual add fused into the matmul. x: (B, D), a: (B, K), w: (D, K)."""
    out = torch.addmm(x, a, w.t())
    return out if b is None else out.add_(b)


def swiglu(gu: torch.Tensor) -> torch.Tensor:
    """(..., 2 I) gate | up -> silu(gate) * up (..., I)."""
    gate, up = gu.chunk(2, dim=-1)
    return F.silu(gate).mul_(up)


def prefill(W: Weights, ids: torch.Tensor, mask: torch.Tensor, cos_t: torch.Tensor, sin_t: torch.Tensor):
    """The forward over left-padded prompts. ids, mask: (U, Lp) ->
    logits of the next token (U, V), [keys, values (U, Hkv, Lp, d) per layer (zeros at padding)].

    Token-wise work (norms, linears, rope, MLP) runs on the N real tokens only, packed; attention
    on the padded (U, Lp) layout, with a causal mask that hides the padding keys."""
    U, Lp = ids.shape
    H, Hkv, d = W.n_head, W.n_kv, W.head_dim
    real = mask.view(-1).nonzero()[:, 0]  # (N,) packed -> padded index
    pos = (mask.cumsum(-1) - 1).clamp(min=0).view(-1)[real]  # (N,): positions follow each row's real tokens
    cos, sin = cos_t[pos][:, None], sin_t[pos][:, None]  # (N, 1, d)
    # causal, real keys only; a padding query sees itself (never used, but keeps its row finite)
    eye = torch.eye(Lp, dtype=torch.bool, device=ids.device)
    allowed = torch.ones(Lp, Lp, dtype=torch.bool, device=ids.device).tril() & (mask.bool()[:, None, :] | eye)
    bias = torch.zeros(U, 1, Lp, Lp, device=ids.device).masked_fill(~allowed[:, None], float("-inf"))
    x = W.embed[ids.view(-1)[real]]  # (N, D)
    padded = x.new_zeros(U * Lp, H + 2 * Hkv, d)
    kv = []
    for lw in W.layers:
        qkv = norm_linear(x, lw.wqkv, lw.bqkv, W).view(-1, H + 2 * Hkv, d)  # (N, H + 2 Hkv, d); q pre-scaled
        qkv[:, : H + Hkv] = rope(qkv[:, : H + Hkv], cos, sin)
        padded.index_copy_(0, real, qkv)
        q, k, v = padded.view(U, Lp, H + 2 * Hkv, d).transpose(1, 2).split([H, Hkv, Hkv], dim=1)  # (U, ., Lp, d)
        kv.append((k.contiguous(), v.contiguous()))
        rep = H // Hkv
        if rep > 1:
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)  # (U, H, Lp, d)
        att = torch.softmax(q @ k.transpose(-1, -2) + bias, dim=-1) @ v  # (U, H, Lp, d)
        att = att.transpose(1, 2).reshape(U * Lp, H * d).index_select(0, real)  # (N, H d)
        x = residual_linear(x, att, lw.wo, lw.bo)
        x = residual_linear(x, swiglu(norm_linear(x, lw.wgu, lw.bgu, W)), lw.wd, lw.bd)
    last = mask.sum(-1).cumsum(0) - 1  # (U,): each prompt's last token, packed
    logits = linear(rms_norm(x[last], W.norm, W.eps), W.lm_head, W.lm_bias)  # (U, V)
    return logits, kv


class Cache:
    """Keys / values of one chunk: the prompts' (shared) and each live row's own.

    prompt_kt[l]: (U, Hkv, d, Lp) keys, transposed for the score matmul; prompt_v[l]: (U, Hkv, Lp, d);
    prompt_bias: (U, 1, 1, Lp) 0 or -inf (left padding);
    own (2 L, B0, Hkv, T_cap, d): every layer's own keys (2 l) and values (2 l + 1), rows 0..B-1
    live, slots 0..t filled; own_k/v[l] are its views. A view of the previous call's buffer
    (`spare`) when that is large enough: no fresh pages to fault in;
    prow (B,): the prompt slot of each live row; gslot (B,): its place among that prompt's rows (< G).
    """

    def __init__(self, kv, mask: torch.Tensor, prow: torch.Tensor, gslot: torch.Tensor, G: int, T: int,
                 spare: torch.Tensor | None = None):
        self.prompt_kt = [k.transpose(-1, -2).contiguous() for k, _ in kv]
        self.prompt_v = [v for _, v in kv]
        bias = torch.zeros(mask.shape, device=mask.device).masked_fill(mask == 0, float("-inf"))  # (U, Lp)
        self.prompt_bias = bias[:, None, None]
        self.prow, self.gslot, self.G = prow, gslot, G
        U, Hkv, _, d = self.prompt_v[0].shape
        B0, cap = prow.shape[0], max(1, min(T, FIRST_CACHE_SLOTS))
        like, L2 = self.prompt_v[0], 2 * len(kv)
        if spare is not None and spare.dtype == like.dtype and spare.device == like.device \
                and spare.shape[0] == L2 and spare.shape[2] == Hkv and spare.shape[4] == d \
                and spare.shape[1] >= B0 and spare.shape[3] >= cap:  # reuse the last call's buffer
            self.buffer, cap = spare, min(spare.shape[3], T)
        else:
            self.buffer = like.new_empty(L2, B0, Hkv, cap, d)
        self.T = T
        self._view(B0, cap)
        self._grids: dict[str, torch.Tensor] = {}
        self.index_grid()

    def _view(self, B0: int, cap: int) -> None:
        self.own = self.buffer[:, :B0, :, :cap]  # (2 L, B0, Hkv, cap, d)
        self.own_k, self.own_v = list(self.own[0::2]), list(self.own[1::2])

    def index_grid(self) -> None:
        """gidx (B Hkv,): where row b, key/value head h sits in the flattened (U Hkv G) grid."""
        Hkv = self.prompt_v[0].shape[1]
        heads = torch.arange(Hkv, device=self.prow.device)
        self.gidx = ((self.prow[:, None] * Hkv + heads) * self.G + self.gslot[:, None]).view(-1)

    def grid(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """A buffer kept across layers and steps (zeros when made, then only some entries are
        written: the others hold zeros or stale finite values that are never read back); made
        anew when its shape changes (U or G after `shrink`)."""
        buf = self._grids.get(name)
        if buf is None or buf.shape != shape:
            buf = self._grids[name] = like.new_zeros(shape)
        return buf

    def ensure_slot(self, t: int, B: int) -> None:
        """Room for own slot t (doubling the capacity when full; copies live rows only)."""
        L2, B0, Hkv, cap, d = self.own.shape
        if t < cap:
            return
        old, new = self.own, min(self.T, 2 * cap)
        self.buffer = old.new_empty(L2, B0, Hkv, new, d)
        self.buffer[:, :B, :, :t] = old[:, :B, :, :t]
        self._view(B0, new)

    def move_rows(self, dst: torch.Tensor, src: torch.Tensor, n_slots: int) -> None:
        """Rows src overwrite rows dst (own slots 0..n_slots-1), so the live rows stay 0..B-1."""
        self.own[:, dst, :, :n_slots] = self.own[:, src, :, :n_slots]

    def shrink(self) -> None:
        """After rows left: fewer rows per prompt slot (G), and prompts with no live row dropped
        once they are a quarter of the prompt cache."""
        U = self.prompt_v[0].shape[0]
        count = torch.bincount(self.prow, minlength=U)  # (U,) live rows per prompt
        alive = count > 0
        n_alive = int(alive.sum())
        if 4 * (U - n_alive) >= U:
            keep = alive.nonzero()[:, 0]  # (U',)
            self.prompt_kt = [k[keep] for k in self.prompt_kt]
            self.prompt_v = [v[keep] for v in self.prompt_v]
            self.prompt_bias = self.prompt_bias[keep]
            new_index = torch.full((U,), -1, dtype=torch.long, device=keep.device)
            new_index[keep] = torch.arange(n_alive, device=keep.device)
            self.prow, count = new_index[self.prow], count[keep]
        G = int(count.max())
        if G < self.G:  # renumber each prompt's rows 0..count-1
            order = torch.argsort(self.prow, stable=True)  # rows grouped by prompt
            start = count.cumsum(0) - count  # (U,) first place of each prompt in `order`
            self.gslot = torch.empty_like(self.prow)
            self.gslot[order] = torch.arange(len(order), device=order.device) - start[self.prow[order]]
            self.G = G


def attend(q: torch.Tensor, pkt: torch.Tensor, pv: torch.Tensor, pbias: torch.Tensor, ok: torch.Tensor,
           ov: torch.Tensor, gidx: torch.Tensor, qg: torch.Tensor, pg: torch.Tensor) -> torch.Tensor:
    """One query per row over its prompt's keys and its own, one softmax over both.
    q: (B, Hkv, rep, d), pre-scaled by 1/sqrt(d); pkt: (U, Hkv, d, Lp); pv: (U, Hkv, Lp, d);
    pbias: (U, 1, 1, Lp); ok, ov: (B, Hkv, t + 1, d); gidx (B Hkv,) and the grid buffers
    qg, pg: (U, Hkv, G, rep, d | Lp) from `Cache` -> (B, Hkv, rep, d)."""
    B, Hkv, rep, d = q.shape
    U, Lp, G = pkt.shape[0], pkt.shape[-1], qg.shape[2]
    # prompt part: the rows of prompt u sit at [u, :, gslot] of a (U, Hkv, G, rep, .) grid (flat
    # index gidx), so one (G rep) x Lp matmul per prompt and key/value head reads its keys once
    # for all its rows
    qg.view(U * Hkv * G, rep, d).index_copy_(0, gidx, q.reshape(B * Hkv, rep, d))
    sp = torch.matmul(qg.view(U, Hkv, G * rep, d), pkt).add_(pbias)  # (U, Hkv, G rep, Lp)
    sp = sp.view(U * Hkv * G, rep, Lp).index_select(0, gidx).view(B, Hkv, rep, Lp)
    # own part: each row against the tokens it generated (all rows are at step t: no mask)
    so = q @ ok.transpose(-1, -2)  # (B, Hkv, rep, t + 1)
    p = torch.softmax(torch.cat([sp, so], dim=-1), dim=-1)  # (B, Hkv, rep, Lp + t + 1)
    pg.view(U * Hkv * G, rep, Lp).index_copy_(0, gidx, p.view(B * Hkv, rep, -1)[..., :Lp])
    out = (pg.view(U, Hkv, G * rep, Lp) @ pv).view(U * Hkv * G, rep, d).index_select(0, gidx)
    return out.view(B, Hkv, rep, d).add_(p[..., Lp:] @ ov)


def decode_step(W: Weights, cache: Cache, tok: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                t: int) -> torch.Tensor:
    """Feed one token per live row at own slot t. tok: (B,); cos, sin: (B, 1, d) at each row's
    position (sin signed, see `rope_tables`) -> logits of the next token (B, V)."""
    B = tok.shape[0]
    H, Hkv, d = W.n_head, W.n_kv, W.head_dim
    rep, (U, _, Lp, _) = H // Hkv, cache.prompt_v[0].shape
    x = W.embed[tok]  # (B, D)
    qg = cache.grid("q", (U, Hkv, cache.G, rep, d), x)
    pg = cache.grid("p", (U, Hkv, cache.G, rep, Lp), x)
    for i, lw in enumerate(W.layers):
        qkv = norm_linear(x, lw.wqkv, lw.bqkv, W).view(B, H + 2 * Hkv, d)
        qk = rope(qkv[:, : H + Hkv], cos, sin)  # (B, H + Hkv, d); q pre-scaled by 1/sqrt(d)
        cache.own_k[i][:B, :, t] = qk[:, H:]
        cache.own_v[i][:B, :, t] = qkv[:, H + Hkv:]
        att = attend(qk[:, :H].view(B, Hkv, rep, d), cache.prompt_kt[i], cache.prompt_v[i], cache.prompt_bias,
                     cache.own_k[i][:B, :, : t + 1], cache.own_v[i][:B, :, : t + 1], cache.gidx, qg, pg)
        x = residual_linear(x, att.view(B, H * d), lw.wo, lw.bo)
        x = residual_linear(x, swiglu(norm_linear(x, lw.wgu, lw.bgu, W)), lw.wd, lw.bd)
    return linear(rms_norm(x, W.norm, W.eps), W.lm_head, W.lm_bias)  # (B, V)


# ----------------------------------------------------------------------------- the sampler


class FastSampler:
    """`sampling.Sampler` for a Qwen2 policy in plain torch (see the module docstring).

    Same arguments, outputs and stopping as `sampling.TorchSampler` (stops at EOS and at the
    tokenizer's end-of-turn tokens; `batch_size` rows per chunk). Refuses a model it cannot
    decode (ValueError naming why); `make_sampler` falls back to TorchSampler instead.
    """

    def __init__(self, model, tokenizer=None, eos_id: int | None = None, pad_id: int | None = None,
                 batch_size: int = 256):
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"FastSampler cannot decode this model: {reason}. Use sampling.TorchSampler "
                             "(or decoder.make_sampler, which falls back to it).")
        self.model = model
        self.tok = tokenizer
        self.eos_id, self.pad_id, self.stop_ids = special_ids(tokenizer, eos_id, pad_id)
        self.batch_size = batch_size
        # tests: f(t, rows (B,), logits (B, V)) -> None, or tokens (B,) to feed instead of the draws;
        # called each step with the live chunk rows in order and their next-token logits
        self.step_hook = None
        self._spare: torch.Tensor | None = None  # the last call's own-token cache buffer, reused

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        if any(len(p) == 0 for p in prompts):
            raise ValueError("FastSampler: an empty prompt (every prompt needs at least one token, e.g. BOS)")
        rows = [i for i in range(len(prompts)) for _ in range(params.n)]
        gen = torch.Generator().manual_seed(params.seed)
        W = read_weights(self.model)  # per call: the weights may have changed since the last one
        out: list[Completion] = []
        for s in range(0, len(rows), self.batch_size):
            chunk = rows[s: s + self.batch_size]
            out += self._generate_batch(W, [prompts[i] for i in chunk], chunk, params, gen)
        return out

    def _generate_batch(self, W: Weights, prompts, index, params: SamplingParams, gen) -> list[Completion]:
        device = W.embed.device
        B0, T = len(prompts), params.max_new_tokens
        out_tok = torch.full((B0, max(T, 0)), -1, dtype=torch.long)  # (B0, T): -1 after a row's last token
        out_lp = torch.zeros((B0, max(T, 0)))
        finished = torch.zeros(B0, dtype=torch.bool)
        if T > 0:
            self._decode(W, prompts, params, gen, device, out_tok, out_lp, finished)
        return completions(out_tok, out_lp, finished, index, self.tok)

    def _decode(self, W, prompts, params, gen, device, out_tok, out_lp, finished) -> None:
        B0, T = len(prompts), params.max_new_tokens
        # distinct prompts: U of them, left-padded; row b is sample gslot[b] of prompt prow[b]
        distinct: dict[tuple, int] = {}
        prow_l, gslot_l, count = [], [], []
        for p in prompts:
            u = distinct.setdefault(tuple(p), len(distinct))
            if u == len(count):
                count.append(0)
            prow_l.append(u)
            gslot_l.append(count[u])
            count[u] += 1
        U, Lp = len(distinct), max(len(p) for p in distinct)
        ids = torch.full((U, Lp), self.pad_id, dtype=torch.long)
        mask = torch.zeros((U, Lp), dtype=torch.long)
        for p, u in distinct.items():
            ids[u, Lp - len(p):] = torch.tensor(p)
            mask[u, Lp - len(p):] = 1
        ids, mask = ids.to(device), mask.to(device)
        cos_t, sin_t = rope_tables(W, Lp + T, device)  # positions up to the longest prompt + T
        logits, kv = prefill(W, ids, mask, cos_t, sin_t)  # (U, V)
        prow = torch.tensor(prow_l, device=device)  # (B,)
        cache = Cache(kv, mask, prow, torch.tensor(gslot_l, device=device), max(count), T - 1, self._spare)
        logits = logits[prow]  # (B, V): every sample of a prompt starts from its prompt's logits
        pos = mask.sum(-1)[prow]  # (B,): the position of the first generated token
        orig = torch.arange(B0)  # (B,) CPU: the chunk row each live row is
        order = None  # (B,) CPU: the slots in original row order (None: slot = row order)
        stops = torch.tensor(sorted(self.stop_ids))
        for t in range(T):
            # draw in original row order: the random stream TorchSampler consumes
            rows, lg = (orig, logits.cpu()) if order is None else (orig[order], logits.cpu()[order])
            tok_o, lp_o = sample_next(lg, params.temperature, params.top_p, gen)
            if self.step_hook is not None and (forced := self.step_hook(t, rows, lg)) is not None:
                tok_o = forced
                lp_o = torch.log_softmax(lg.float() / (params.temperature or 1.0), -1).gather(-1, forced[:, None])[:, 0]
            done_o = torch.isin(tok_o, stops)
            out_tok[rows, t], out_lp[rows, t], finished[rows] = tok_o, lp_o, done_o
            if t == T - 1 or bool(done_o.all()):
                break
            tok, done = tok_o, done_o
            if order is not None:  # back to slot order
                tok, done = torch.empty_like(tok_o), torch.empty_like(done_o)
                tok[order], done[order] = tok_o, done_o
            if bool(done.any()):
                tok, pos, orig = self._compact(cache, done, tok, pos, orig, t)
                order = torch.argsort(orig)
            cache.ensure_slot(t, tok.shape[0])
            cs = (cos_t[pos][:, None], sin_t[pos][:, None])  # (B, 1, d) each
            logits = decode_step(W, cache, tok.to(device), *cs, t)
            pos = pos + 1
        self._spare = cache.buffer

    @staticmethod
    def _compact(cache: Cache, done: torch.Tensor, tok, pos, orig, t: int):
        """Drop the finished rows: the last live rows move into the finished rows' slots."""
        B = done.shape[0]
        n_live = B - int(done.sum())
        dst = done[:n_live].nonzero()[:, 0]  # finished slots that stay in the batch
        src = n_live + (~done[n_live:]).nonzero()[:, 0]  # live slots past the end
        dev = cache.prow.device
        if len(dst):
            dst_d, src_d = dst.to(dev), src.to(dev)
            cache.move_rows(dst_d, src_d, t)  # own slots 0..t-1 are filled; slot t is written next
            for x in (cache.prow, cache.gslot, pos):
                x[dst_d] = x[src_d]
            tok[dst], orig[dst] = tok[src], orig[src]
        cache.prow, cache.gslot = cache.prow[:n_live], cache.gslot[:n_live]
        cache.shrink()
        cache.index_grid()
        return tok[:n_live], pos[:n_live], orig[:n_live]
