"""The Unlearnability Phenomenon in RLVR, reproduced: testbed, GRPO, analysis."""

__version__ = "0.1.0"
