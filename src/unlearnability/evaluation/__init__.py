"""Stage 5, evaluation: pass@k rollouts (`evaluate`), the paper's groups (`groups`), the
testbed's fitness checks and targets (`calibration`) and the binomial null of Table 1 (`null`)."""
