"""Stage 4, the policy: the Qwen2 model and its text-training loop (`model`), the sampler
interface and the transformers sampler (`sampling`), the fast KV-cache decoder (`decoder`)."""
