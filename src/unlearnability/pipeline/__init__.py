"""Stage 8, the pipeline the CLI, the notebooks and the analyses share: GRPO runs by seed and
variant, their evaluations, and a study's baseline runs (`experiment`)."""
