"""backends/vllm_sampler.py without a GPU: the ImportError, the argument mapping, the result
conversion, and the whole generate path against a stand-in `vllm` module."""

import dataclasses
import subprocess
import sys
import types
from types import SimpleNamespace as NS

import pytest

from unlearnability.backends import vllm_sampler as vs
from unlearnability.policy.sampling import SamplingParams


def test_missing_vllm_names_the_gpu_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail even where it is installed
    with pytest.raises(ImportError, match=r"\[gpu\]"):
        vs.import_vllm()
    with pytest.raises(ImportError, match=r"pip install -e '\.\[gpu\]'"):
        vs.VLLMSampler("runs/some/checkpoint")


def test_importing_the_module_does_not_import_vllm():
    code = ("import sys, unlearnability.backends.vllm_sampler, unlearnability.backends.verl; "
            "assert 'vllm' not in sys.modules and 'verl' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sampling_kwargs():
    p = SamplingParams(n=32, temperature=0.7, top_p=0.95, max_new_tokens=5120, seed=3)
    kw = vs.sampling_kwargs(p, prompt_index=5, top_k_off=0)
    assert kw == {"n": 32, "temperature": 0.7, "top_p": 0.95, "top_k": 0, "max_tokens": 5120,
                  "logprobs": 0, "seed": 3 * vs.SEED_STRIDE + 5, "stop_token_ids": []}
    seeds = {vs.sampling_kwargs(p, i)["seed"] for i in range(100)}
    assert len(seeds) == 100  # identical prompts in one call still draw different samples
    assert vs.sampling_kwargs(p, 0)["top_k"] == -1
    assert vs.sampling_kwargs(p, 0, stop_token_ids=(151645,))["stop_token_ids"] == [151645]


def test_stop_ids():
    qwen = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "a": 64}
    assert vs.stop_ids(qwen) == [151643, 151645]
    assert vs.stop_ids({"<|eot_id|>": 128009, "<|end_of_text|>": 128001}) == [128001, 128009]
    assert vs.stop_ids({"a": 0, "<eos>": 1}) == []  # e.g. the testbed's word-level tokenizer


def test_engine_kwargs():
    kw = vs.engine_kwargs("runs/abc/checkpoint")
    assert kw["model"] == kw["tokenizer"] == "runs/abc/checkpoint"
    assert kw["logprobs_mode"] == "processed_logprobs"
    old = vs.engine_kwargs("m", engine_fields={"model", "tokenizer", "dtype", "seed", "gpu_memory_utilization"},
                           max_model_len=6144)
    assert "logprobs_mode" not in old and old["max_model_len"] == 6144


def _out(index, ids, lps, reason="stop", text="t"):
    return NS(index=index, token_ids=ids, logprobs=[{t: NS(logprob=lp)} for t, lp in zip(ids, lps)],
              finish_reason=reason, text=text)


def test_completions_from_outputs_is_prompt_major():
    outputs = [NS(outputs=[_out(1, [7, 2], [-0.5, -0.1]), _out(0, [5], [-1.0], reason="length")]),
               NS(outputs=[_out(0, [9, 9, 2], [-0.2, -0.3, -0.4]), _out(1, [], [])])]
    cs = vs.completions_from_outputs(outputs, n=2)
    assert [(c.prompt_index, c.token_ids, c.finished) for c in cs] == [
        (0, [5], False), (0, [7, 2], True), (1, [9, 9, 2], True), (1, [], True)]
    assert cs[1].logprobs == [-0.5, -0.1] and cs[0].extra["finish_reason"] == "length"
    with pytest.raises(RuntimeError, match="expected n=3"):
        vs.completions_from_outputs(outputs, n=3)
    broken = [NS(outputs=[NS(index=0, token_ids=[1], logprobs=None, finish_reason="stop", text="")])]
    with pytest.raises(RuntimeError, match="missing log-probs"):
        vs.completions_from_outputs(broken, n=1)


def fake_vllm_module(calls):
    """A stand-in for `vllm`: records what VLLMSampler passes, answers like vLLM's LLM.generate."""
    mod = types.ModuleType("vllm")

    @dataclasses.dataclass
    class EngineArgs:  # an older vLLM: no logprobs_mode
        model: str = ""
        tokenizer: str = ""
        dtype: str = "auto"
        seed: int = 0
        gpu_memory_utilization: float = 0.9

    class SamplingParams:
        def __init__(self, n=1, temperature=1.0, top_p=1.0, top_k=0, max_tokens=16, logprobs=None, seed=None,
                     stop_token_ids=None):
            self.__dict__.update(n=n, temperature=temperature, top_p=top_p, top_k=top_k, max_tokens=max_tokens,
                                 logprobs=logprobs, seed=seed, stop_token_ids=stop_token_ids)

    class LLM:
        def __init__(self, **kw):
            calls["engine"] = kw

        def get_tokenizer(self):
            return NS(get_vocab=lambda: {"<|im_end|>": 5, "<|endoftext|>": 2, "x": 7})

        def generate(self, prompts, sampling_params, use_tqdm=True):
            calls["prompts"], calls["params"] = prompts, sampling_params
            result = []
            for p, sp in zip(prompts, sampling_params):
                last = p["prompt_token_ids"][-1]
                outs = [_out(j, [last + j, 2], [-0.25, -0.5], text=f"{last}-{j}") for j in range(sp.n)]
                result.append(NS(outputs=list(reversed(outs))))
            return result

    mod.EngineArgs, mod.SamplingParams, mod.LLM = EngineArgs, SamplingParams, LLM
    return mod


def test_generate_through_a_stand_in_vllm(monkeypatch, tmp_path):
    calls = {}
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module(calls))
    sampler = vs.VLLMSampler(str(tmp_path / "checkpoint"))
    assert calls["engine"]["model"] == str(tmp_path / "checkpoint")
    assert "logprobs_mode" not in calls["engine"]  # not offered by this (older) EngineArgs
    params = SamplingParams(n=3, temperature=1.0, top_p=1.0, max_new_tokens=64, seed=1)
    cs = sampler.generate([[1, 10], [1, 20]], params)
    assert calls["prompts"] == [{"prompt_token_ids": [1, 10]}, {"prompt_token_ids": [1, 20]}]
    sp = calls["params"][1]
    assert (sp.n, sp.temperature, sp.top_p, sp.top_k, sp.max_tokens, sp.logprobs, sp.seed, sp.stop_token_ids) == (
        3, 1.0, 1.0, 0, 64, 0, vs.SEED_STRIDE + 1, [2, 5])
    assert len(cs) == 6
    assert [(c.prompt_index, c.token_ids[0], c.text) for c in cs] == [
        (0, 10, "10-0"), (0, 11, "10-1"), (0, 12, "10-2"), (1, 20, "20-0"), (1, 21, "20-1"), (1, 22, "20-2")]
    assert all(c.finished and c.logprobs == [-0.25, -0.5] for c in cs)
    assert sampler.generate([], params) == []
