import math

import torch

from unlearnability.config import ModelConfig
from unlearnability.policy.model import build_model
from unlearnability.policy.sampling import SamplingParams, TorchSampler, sample_next
from unlearnability.world import build_tokenizer

TOK = build_tokenizer(11)


def tiny_model(seed=0):
    cfg = ModelConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                      intermediate_size=64, init_seed=seed)
    m = build_model(cfg, len(TOK), TOK)
    with torch.no_grad():  # sharper than init so the test distinguishes tokens
        m.lm_head.weight.mul_(4)
    return m.eval()


def next_token_probs(model, prompt, temperature, top_p):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt])).logits[0, -1].float()
    p = torch.softmax(logits / temperature, -1)
    if top_p < 1:
        sp, idx = p.sort(descending=True)
        keep = (sp.cumsum(0) - sp) < top_p
        mask = torch.zeros_like(p, dtype=torch.bool)
        mask[idx[keep]] = True
        p = torch.where(mask, p, torch.zeros_like(p))
        p = p / p.sum()
    return p


def test_sample_frequencies_follow_the_policy():
    model = tiny_model()
    prompt = TOK("a = 3 . b = a + 2 . what is b ?")["input_ids"]
    sampler = TorchSampler(model, TOK, batch_size=4000)
    for temperature, top_p in [(1.0, 1.0), (0.7, 0.95), (1.5, 0.8)]:
        n = 6000
        comps = sampler.generate([prompt], SamplingParams(n=n, temperature=temperature, top_p=top_p,
                                                          max_new_tokens=1, seed=1))
        counts = torch.bincount(torch.tensor([c.token_ids[0] for c in comps]), minlength=len(TOK)).float()
        want = next_token_probs(model, prompt, temperature, top_p)
        assert (counts[want == 0] == 0).all(), "a token outside the nucleus was sampled"
        # every frequency within 4.5 binomial standard deviations (+ a small floor)
        sd = torch.sqrt(want * (1 - want) / n)
        assert ((counts / n - want).abs() <= 4.5 * sd + 2e-3).all(), (counts / n, want)
        assert want.max() < 0.9  # the test is not trivially about one token


def test_logprobs_match_a_full_forward_with_left_padding():
    model = tiny_model(seed=3)
    prompts = [TOK("a = 3 . what is a ?")["input_ids"], TOK("a = 3 . b = a + 2 . c = b - 1 . what is c ?")["input_ids"]]
    comps = TorchSampler(model, TOK).generate(prompts, SamplingParams(n=3, temperature=0.9, top_p=1.0,
                                                                    max_new_tokens=12, seed=5))
    assert len(comps) == 6 and [c.prompt_index for c in comps] == [0, 0, 0, 1, 1, 1]
    for c in comps:
        seq = prompts[c.prompt_index] + c.token_ids
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([seq])).logits[0].float() / 0.9
        lp = torch.log_softmax(logits, -1)
        start = len(prompts[c.prompt_index])
        want = [lp[start - 1 + t, tok].item() for t, tok in enumerate(c.token_ids)]
        assert max(abs(a - b) for a, b in zip(want, c.logprobs)) < 1e-3
        if c.finished:
            assert c.token_ids[-1] == TOK.eos_token_id and TOK.eos_token_id not in c.token_ids[:-1]
        else:
            assert len(c.token_ids) == 12


def test_same_seed_same_samples_and_greedy():
    model = tiny_model()
    prompt = [TOK("a = 5 . what is a ?")["input_ids"]]
    s = TorchSampler(model, TOK)
    a = s.generate(prompt, SamplingParams(n=4, max_new_tokens=8, seed=9))
    b = s.generate(prompt, SamplingParams(n=4, max_new_tokens=8, seed=9))
    c = s.generate(prompt, SamplingParams(n=4, max_new_tokens=8, seed=10))
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]
    g = s.generate(prompt, SamplingParams(n=2, temperature=0, max_new_tokens=8))
    assert g[0].token_ids == g[1].token_ids


def test_sample_next_top_p_keeps_top_token():
    logits = torch.tensor([[10.0, 0.0, 0.0]])
    tok, lp = sample_next(logits, 1.0, 0.1, torch.Generator().manual_seed(0))
    assert tok.item() == 0 and math.isclose(lp.item(), torch.log_softmax(logits, -1)[0, 0].item(), rel_tol=1e-5)
