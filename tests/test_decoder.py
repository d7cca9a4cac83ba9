"""The fast decoder (decoder.FastSampler) against the transformers Qwen2 forward it replaces."""

import warnings

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from unlearnability.config import ConfigError, ModelConfig, load_config
from unlearnability.policy.decoder import (
    FastSampler,
    make_sampler,
    supports,
    unsupported_reason,
)
from unlearnability.policy.model import build_model
from unlearnability.policy.sampling import SamplingParams, TorchSampler
from unlearnability.world import build_tokenizer

TOK = build_tokenizer(11)
PROMPTS = [TOK(s)["input_ids"] for s in (
    "a = 3 . what is a ?",
    "a = 3 . b = a + 2 . c = b - 1 . what is c ?",
    "b = 7 . c = b + b . what is c ?",
    "a = 1 . b = a + 4 . c = b + 2 . d = c - a . what is d ?",
)]


def roughen(model, seed=0):
    """Non-trivial biases and norm weights (init has zeros / ones), a sharper head."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.3 * torch.randn(p.shape, generator=g))
        model.lm_head.weight.mul_(4)
    return model.eval()


def tiny(kv=2, seed=0, **conf):
    """A small testbed Qwen2 (p = 11 tokenizer); `conf` overrides Qwen2Config fields."""
    if conf:
        c = Qwen2Config(vocab_size=len(TOK), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=kv, intermediate_size=64, max_position_embeddings=256,
                        bos_token_id=TOK.bos_token_id, eos_token_id=TOK.eos_token_id,
                        pad_token_id=TOK.pad_token_id, **conf)
        torch.manual_seed(seed)
        return roughen(Qwen2ForCausalLM(c), seed)
    cfg = ModelConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=kv,
                      intermediate_size=64, init_seed=seed)
    return roughen(build_model(cfg, len(TOK), TOK), seed)


MODELS = {
    "smoke-mha": lambda: tiny(kv=2),
    # GQA (4 query heads on 1 key/value head), another rope_theta and RMSNorm eps, untied lm_head
    "gqa-theta-eps-untied": lambda: tiny(kv=1, seed=1, rope_parameters={"rope_type": "default", "rope_theta": 500.0},
                                         rms_norm_eps=1e-5, tie_word_embeddings=False),
    "default-shape": lambda: roughen(build_model(load_config("default").model, len(TOK), TOK), 2),
}


def full_logits(model, seq):
    """Next-token logits at every position of one unpadded sequence: (len(seq), V)."""
    with torch.no_grad():
        return model(input_ids=torch.tensor([seq])).logits[0].float()


@pytest.mark.parametrize("name", list(MODELS))
def test_logits_equal_transformers_with_teacher_forcing(name):
    """Prefill + 50 decode steps of a left-padded batch (prompts of four lengths, one twice, two
    samples each), rows ending at different steps (all of one prompt's rows early, so the prompt
    leaves the cache): every next-token logit equals the transformers forward to 1e-5."""
    model = MODELS[name]()
    prompts = PROMPTS + [PROMPTS[1]]
    n, T = 2, 51
    B = len(prompts) * n
    g = torch.Generator().manual_seed(0)
    forced = torch.randint(3, len(TOK), (B, T), generator=g)  # no stop token ...
    ends = {0: 3, 1: 5, 2: 10, 3: 44, 4: 20, 6: 30, 9: 1}  # ... except EOS at these steps
    for r, t in ends.items():
        forced[r, t] = TOK.eos_token_id
    seen = {}

    def hook(t, rows, logits):
        for r, lg in zip(rows.tolist(), logits):
            seen[r, t] = lg.clone()
        return forced[rows, t]

    s = FastSampler(model, TOK)
    s.step_hook = hook
    comps = s.generate(prompts, SamplingParams(n=n, temperature=1.0, max_new_tokens=T, seed=0))
    assert len(seen) == sum(ends.get(r, T - 1) + 1 for r in range(B))
    worst = 0.0
    for r, c in enumerate(comps):
        stop = ends.get(r, T - 1) + 1
        assert c.token_ids == forced[r, :stop].tolist() and c.finished == (r in ends)
        prompt = prompts[c.prompt_index]
        ref = full_logits(model, prompt + c.token_ids)  # (L, V)
        for t in range(stop):
            worst = max(worst, (seen[r, t] - ref[len(prompt) - 1 + t]).abs().max().item())
        want = torch.log_softmax(ref[len(prompt) - 1:-1], -1).gather(-1, torch.tensor(c.token_ids)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(c.logprobs), want, atol=1e-5)
    assert worst < 1e-5, worst


@pytest.mark.parametrize("temperature,top_p", [(0.9, 1.0), (1.3, 0.8)])
def test_logprobs_of_own_samples_match_a_full_forward(temperature, top_p):
    model = tiny(kv=1, seed=3, rope_parameters={"rope_type": "default", "rope_theta": 1000.0})
    comps = FastSampler(model, TOK).generate(PROMPTS, SamplingParams(n=3, temperature=temperature, top_p=top_p,
                                                                     max_new_tokens=24, seed=5))
    assert [c.prompt_index for c in comps] == [i for i in range(4) for _ in range(3)]
    assert any(c.finished for c in comps) and any(not c.finished for c in comps)
    for c in comps:
        prompt = PROMPTS[c.prompt_index]
        lp = torch.log_softmax(full_logits(model, prompt + c.token_ids) / temperature, -1)
        want = lp[len(prompt) - 1:-1].gather(-1, torch.tensor(c.token_ids)[:, None])[:, 0]
        assert (torch.tensor(c.logprobs) - want).abs().max().item() < 1e-5
        if c.finished:
            assert c.token_ids[-1] == TOK.eos_token_id and TOK.eos_token_id not in c.token_ids[:-1]
        else:
            assert len(c.token_ids) == 24 and TOK.eos_token_id not in c.token_ids
        assert c.text == TOK.decode(c.token_ids, skip_special_tokens=True)


def test_seeds_and_greedy():
    model = tiny()
    s = FastSampler(model, TOK)
    p = SamplingParams(n=4, max_new_tokens=12, seed=9)
    a, b = s.generate(PROMPTS, p), s.generate(PROMPTS, p)
    c = s.generate(PROMPTS, SamplingParams(n=4, max_new_tokens=12, seed=10))
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.logprobs for x in a] == [x.logprobs for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]
    # it consumes the generator as TorchSampler does: the same seed gives (nearly always) the same draws
    t = TorchSampler(model, TOK).generate(PROMPTS, p)
    assert sum(x.token_ids == y.token_ids for x, y in zip(a, t)) >= 0.9 * len(a)
    greedy = s.generate(PROMPTS, SamplingParams(n=2, temperature=0, max_new_tokens=10))
    for i in range(0, len(greedy), 2):
        x = greedy[i]
        assert x.token_ids == greedy[i + 1].token_ids
        seq = PROMPTS[x.prompt_index] + x.token_ids
        ref = full_logits(model, seq)[len(PROMPTS[x.prompt_index]) - 1:-1].argmax(-1)
        assert x.token_ids == ref.tolist()


def test_duplicate_prompts_chunks_and_order():
    model = tiny(seed=4)
    prompts = [PROMPTS[0], PROMPTS[2], PROMPTS[0], PROMPTS[3], PROMPTS[2]]
    p = SamplingParams(n=3, temperature=1.0, max_new_tokens=16, seed=2)
    for batch_size in (4, 256):  # 4: chunks cut through a prompt's samples
        comps = FastSampler(model, TOK, batch_size=batch_size).generate(prompts, p)
        assert [c.prompt_index for c in comps] == [i for i in range(5) for _ in range(3)]
        for c in comps:
            prompt = prompts[c.prompt_index]
            lp = torch.log_softmax(full_logits(model, prompt + c.token_ids), -1)
            want = lp[len(prompt) - 1:-1].gather(-1, torch.tensor(c.token_ids)[:, None])[:, 0]
            assert (torch.tensor(c.logprobs) - want).abs().max().item() < 1e-5
        ref = TorchSampler(model, TOK, batch_size=batch_size).generate(prompts, p)  # the same chunks and stream
        assert sum(x.token_ids == y.token_ids for x, y in zip(comps, ref)) >= 0.9 * len(comps)
    # a duplicate prompt's samples are its own draws, not copies of the first one's
    assert [c.token_ids for c in comps[0:3]] != [c.token_ids for c in comps[6:9]]


def test_short_limits_and_bad_prompts():
    model = tiny()
    s = FastSampler(model, TOK)
    one = s.generate(PROMPTS, SamplingParams(n=2, max_new_tokens=1, seed=0))
    assert all(len(c.token_ids) == 1 for c in one)
    assert all(c.token_ids == [] and not c.finished for c in s.generate(PROMPTS, SamplingParams(max_new_tokens=0)))
    with pytest.raises(ValueError, match="empty prompt"):
        s.generate([[]], SamplingParams())


def test_weights_are_read_at_each_call():
    """GRPO updates the weights between calls: the next call must sample from the new ones."""
    model = tiny(seed=5)
    s = FastSampler(model, TOK)
    p = SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=1)
    s.generate(PROMPTS, p)
    with torch.no_grad():
        for w in model.parameters():
            w.add_(0.05 * torch.randn_like(w))
    for c in s.generate(PROMPTS, p):
        prompt = PROMPTS[c.prompt_index]
        lp = torch.log_softmax(full_logits(model, prompt + c.token_ids), -1)
        want = lp[len(prompt) - 1:-1].gather(-1, torch.tensor(c.token_ids)[:, None])[:, 0]
        assert (torch.tensor(c.logprobs) - want).abs().max().item() < 1e-5


def test_lora_adapter_is_merged():
    """The gradient analysis samples from a peft LoRA policy: the deltas count (B != 0 here)."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny(seed=6), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                                    lora_dropout=0.0, bias="none"))
    with torch.no_grad():
        for name, w in model.named_parameters():
            if "lora_B" in name:
                w.normal_(0, 0.3)
    model.eval()
    assert supports(model)
    comps = make_sampler(model, TOK).generate(PROMPTS, SamplingParams(n=2, max_new_tokens=12, seed=3))
    base_model_lp = []
    for c in comps:
        prompt = PROMPTS[c.prompt_index]
        lp = torch.log_softmax(full_logits(model, prompt + c.token_ids), -1)  # the peft forward
        want = lp[len(prompt) - 1:-1].gather(-1, torch.tensor(c.token_ids)[:, None])[:, 0]
        assert (torch.tensor(c.logprobs) - want).abs().max().item() < 1e-5
        with model.disable_adapter():
            lp0 = torch.log_softmax(full_logits(model, prompt + c.token_ids), -1)
        base_model_lp.append((lp0[len(prompt) - 1:-1].gather(-1, torch.tensor(c.token_ids)[:, None])[:, 0]
                              - want).abs().max().item())
    assert max(base_model_lp) > 1e-3  # the adapter changed the policy: the test can tell


def unsupported_models():
    from peft import IA3Config, LoraConfig, get_peft_model

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(TOK), hidden_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=64))
    return {
        "is not a transformers Qwen2ForCausalLM": llama,
        "sliding-window": tiny(use_sliding_window=True, sliding_window=8, max_window_layers=0),
        "rope_type='linear'": tiny(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}),
        "only float32": tiny().to(torch.bfloat16),
        "only LoRA": get_peft_model(tiny(), IA3Config(target_modules=["k_proj", "down_proj"],
                                                      feedforward_modules=["down_proj"])),
        "only plain LoRA": get_peft_model(tiny(), LoraConfig(r=2, target_modules=["q_proj"], use_dora=True)),
        "lm_head": get_peft_model(tiny(), LoraConfig(r=2, target_modules=["lm_head"])),
    }


def test_unsupported_models_are_refused_or_fall_back():
    for why, model in unsupported_models().items():
        reason = unsupported_reason(model)
        assert reason is not None and why in reason, (why, reason)
        with pytest.raises(ValueError, match="FastSampler cannot decode this model"):
            FastSampler(model, TOK)
        with pytest.warns(UserWarning, match="transformers forward"):
            assert type(make_sampler(model, TOK)) is TorchSampler
    model = tiny()
    assert supports(model) and type(make_sampler(model, TOK)) is FastSampler
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert type(make_sampler(model, TOK, "transformers")) is TorchSampler
    with pytest.raises(ValueError, match="decoder='vllm'"):
        make_sampler(model, TOK, "vllm")


def test_config_decoder_is_validated_and_keyed():
    for section in ("grpo", "eval", "gradients"):
        with pytest.raises(ConfigError, match=rf"{section}\.decoder: 'hf'.*fast, transformers"):
            load_config("smoke", {section: {"decoder": "hf"}})
    fast, old = load_config("smoke"), load_config("smoke", {"grpo": {"decoder": "transformers"}})
    assert fast.grpo.decoder == "fast" and fast.section_hash() != old.section_hash()
    ev = load_config("smoke", {"eval": {"decoder": "transformers"}})
    assert fast.section_hash("eval", "data") != ev.section_hash("eval", "data")
    assert fast.section_hash("world", "model", "pretrain") == ev.section_hash("world", "model", "pretrain")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_transformers():
    model = tiny(kv=1, seed=7).cuda()
    comps = FastSampler(model, TOK).generate(PROMPTS, SamplingParams(n=4, max_new_tokens=30, seed=0))
    for c in comps:
        prompt = PROMPTS[c.prompt_index]
        with torch.no_grad():
            lg = model(input_ids=torch.tensor([prompt + c.token_ids], device="cuda")).logits[0].float().cpu()
        want = torch.log_softmax(lg, -1)[len(prompt) - 1:-1].gather(-1, torch.tensor(c.token_ids)[:, None])[:, 0]
        assert (torch.tensor(c.logprobs) - want).abs().max().item() < 1e-4


def test_experiment_sampler_follows_the_config(tiny_model):
    from unlearnability.pipeline import experiment

    folder, tok = tiny_model
    assert type(experiment.make_sampler("torch", folder, tok)) is FastSampler
    assert type(experiment.make_sampler("torch", folder, tok, "transformers")) is TorchSampler
