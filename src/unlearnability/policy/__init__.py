"""Stage 4, the policy: the Qwen2 model, its loading and training rows (`model`), the sampler
interface and the transformers sampler (`sampling`), the fast KV-cache decoder (`decoder`)."""
