import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


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
