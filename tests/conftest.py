import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, len(os.sched_getaffinity(0))))  # 1 under `taskset -c N`
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def load_benchmark(name: str):
    """The module of `benchmarks/<name>.py` (not a package), for the tests of its pure parts."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session", autouse=True)
def _no_project_store(tmp_path_factory):
    """Tests never write into the project's run store (runs/): a session store unless one is set."""
    if os.environ.get("UNLEARN_HOME"):
        yield
        return
    os.environ["UNLEARN_HOME"] = str(tmp_path_factory.mktemp("session-runs"))
    yield
    os.environ.pop("UNLEARN_HOME", None)


@pytest.fixture()
def store(tmp_path, monkeypatch):
    """An empty run store for one test."""
    monkeypatch.setenv("UNLEARN_HOME", str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture(scope="session")
def smoke_store(tmp_path_factory):
    """A run store shared by the tests that need the smoke preset's pretrained base model."""
    path = tmp_path_factory.mktemp("smoke-runs")
    old = os.environ.get("UNLEARN_HOME")
    os.environ["UNLEARN_HOME"] = str(path)
    yield path
    if old is None:
        os.environ.pop("UNLEARN_HOME", None)
    else:
        os.environ["UNLEARN_HOME"] = old


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny randomly initialised testbed Qwen2 (p = 11) saved to a folder: (folder, tokenizer)."""
    from unlearnability.config import ModelConfig
    from unlearnability.policy.model import build_model
    from unlearnability.world import build_tokenizer

    tok = build_tokenizer(11)
    m = build_model(ModelConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                intermediate_size=64), len(tok), tok)
    d = tmp_path_factory.mktemp("tiny-model")
    m.save_pretrained(d)
    tok.save_pretrained(d)
    return d, tok
