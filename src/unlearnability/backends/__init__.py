"""Stage 7, backends for paper scale, none of them needed by the CPU book.

- `backends.vllm_sampler.VLLMSampler`: the `sampling.Sampler` interface on vLLM (GPU; the
  optional `[gpu]` extra), for pass@k and gradient-analysis rollouts.
- `backends.llm`: a thin OpenAI-compatible chat client (base URL and model from parameters,
  the key from an environment variable and never stored, logged or raised), for the LLM
  judge (`analysis.judge`) and LLM augmentation (`backends.llm_augment`, `unlearn augment`).
- `backends.verl`: export a preset's data, reward function and Hydra overrides to verl, and
  ingest verl's rollout dumps into the library's per-example history.

Nothing here is imported by `unlearnability` itself; vLLM is imported only when a
VLLMSampler is built.
"""
