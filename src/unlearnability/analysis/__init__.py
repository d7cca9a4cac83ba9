"""Stage 9, analyses of runs and policies, one question per module:

    gradients      per-example gradient similarity (§5.1) and the setup every policy analysis shares
    dynamics       per-group curves over training, and the measured verdict of an intervention
    likelihood     reference log-likelihood of correct rollouts (§4.2, Figure 3)
    interference   correct vs incorrect rollouts' gradients (A.3, Figure 16)
    quality        reasoning score of correct rollouts per group, Table 2's pick (§5.2)
    curriculum     the unlearnable examples through the two stages of a curriculum (A.5, Figure 18)
    judge          an LLM judge (0-5) with the step checker's interface (paper scale)
    augmentation   GRPO on augmented data; gradient similarity with own augmentations (§5.3, Figure 10)
    midtraining    gradient similarity of difficult examples, base vs mid-trained (§5.4, Figure 11)
    testbed        the testbed chapter's tables: world knobs, the model, its pretraining, the paper beside it

`dynamics` and `quality` are pure functions of run tables (but `dynamics.read_replay` and
`quality.checkpoint_scores`, which read or evaluate a run, and `quality.judged`); `curriculum`
evaluates checkpoints; `likelihood` and `interference` score or sample with a policy; `judge`
calls an OpenAI-compatible server."""
