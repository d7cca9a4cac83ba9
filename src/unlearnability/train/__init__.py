"""Stage 6, training: the text-training loop (`text`), a base model as a sequence of
text-training phases (`base`: pretraining `pretrain`, the style anneal and mid-training
`midtrain`), GRPO (`grpo`), oversampling with replay (`replay`) and SFT (`sft`)."""
