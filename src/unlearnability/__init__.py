"""The Unlearnability Phenomenon in RLVR, reproduced: testbed, GRPO, analysis.

The package is laid out as its pipeline; a module imports only its own stage and the stages
above it in this list (tests/test_layers.py holds that, and that no import cycle exists):

    config, paper, presets   the one config system and the paper's reported numbers
    store/                   run store, histories, cost ledger, cached analysis tables
    world/                   the testbed's generated problems, step checker, tokenizer
    data/                    MATH loaders, reward, the task a run trains on
    policy/                  the model, samplers, fast decoder
    evaluation/              pass@k, the paper's groups, calibration targets, the null
    train/                   text training, base model phases, GRPO, replay, SFT
    backends/                vLLM, verl, an OpenAI-compatible LLM client (paper scale)
    pipeline/                runs by seed and variant, their evaluations, studies
    analysis/                gradients, likelihood, interference, quality, forecast, ...
    book/                    chapters, Papermill, Jupyter Book, the plan, charts
    cli/                     `unlearn`
"""

__version__ = "0.1.0"
