"""Training stages beyond the baseline GRPO loop: oversampling with replay, SFT."""
