"""Bad input, one row each: the error names the file, row, parameter or step, and nothing
already computed is lost (the files that were there before the error are byte-identical)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
from test_grpo import parity_reward  # a reward the smoke model earns half the time

from unlearnability.backends.verl import read_dump
from unlearnability.config import ConfigError, load_config
from unlearnability.data.mathdata import load_math_file
from unlearnability.data.tasks import load_task
from unlearnability.pipeline.experiment import load_run_config
from unlearnability.policy.model import load_model
from unlearnability.store import history, runs
from unlearnability.train import grpo
from unlearnability.train.base import ensure_base_model
from unlearnability.train.sft import read_groups


@dataclass
class Case:
    name: str
    make: Callable[[Path], Path]  # writes the bad input under tmp, returns what to hand over
    call: Callable[[Path], object]  # what a user runs on it
    error: type[BaseException]
    says: list[str]  # substrings the message must contain ("{path}" is the bad input)


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def smoke_grpo(tmp: Path, steps: int = 4):
    """A 4-step smoke GRPO run in tmp/run (checkpoints at 2 and 4)."""
    cfg = load_config("smoke", {"grpo": {"steps": steps, "checkpoint_every": 2}})
    base = ensure_base_model(cfg, quiet=True)
    task = load_task(cfg, base)
    task.reward_fn = parity_reward
    return cfg, base, task


def half_run(tmp: Path) -> Path:
    """A GRPO run stopped after its step-2 checkpoint (resumable)."""
    cfg, base, task = smoke_grpo(tmp)
    return grpo.train_grpo(cfg, tmp / "run", base, task, stop_after=2)


def corrupt_state(tmp: Path) -> Path:
    run = half_run(tmp)
    (run / "state.pt").write_bytes(b"PK\x03\x04 cut short")
    return run


def corrupt_checkpoint(tmp: Path) -> Path:
    run = half_run(tmp)
    weights = run / "checkpoints" / "step_0002" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    return run


def resume(run: Path):
    cfg, base, task = smoke_grpo(run.parent)
    return grpo.train_grpo(cfg, run, base, task)


def older_run_folder(tmp: Path) -> Path:
    cfg = load_config("smoke")
    folder = tmp / "old-run"
    runs.write_config(folder, cfg)
    text = (folder / "config.yaml").read_text().replace("grpo:\n", "grpo:\n  entropy_bonus: 0.01\n", 1)
    (folder / "config.yaml").write_text(text)  # a key this version does not know
    return folder


CASES = [
    Case("malformed preset YAML", lambda t: write(t, "bad.yaml", "grpo:\n  lr: [1e-4\n  steps: 3\n"),
         load_config, ConfigError, ["{path}", "line", "not valid YAML"]),
    Case("preset that is not a mapping", lambda t: write(t, "list.yaml", "- grpo\n- world\n"),
         load_config, ConfigError, ["{path}", "expected a mapping"]),
    Case("unknown key in a preset", lambda t: write(t, "typo.yaml", "grpo:\n  learning_rate: 1e-4\n"),
         load_config, ConfigError, ["{path}", "unknown key 'learning_rate'", "valid keys"]),
    Case("mistyped value in a preset", lambda t: write(t, "type.yaml", "grpo:\n  steps: ten\n"),
         load_config, ConfigError, ["grpo.steps", "expected an integer", "'ten'"]),
    Case("unknown --set override", lambda t: t, lambda t: load_config("smoke", {"grpo": {"nope": 1}}),
         ConfigError, ["--set", "unknown key 'nope'"]),
    Case("run folder from another version", older_run_folder, load_run_config, ConfigError,
         ["{path}/config.yaml", "unknown key 'entropy_bonus'", "another version"]),
    Case("run folder with a broken config.yaml", lambda t: write(t, "r/config.yaml", "grpo: {lr: 1\n").parent,
         load_run_config, ConfigError, ["{path}/config.yaml", "not valid YAML"]),
    Case("corrupt state.pt", corrupt_state, resume, runs.CorruptRunError,
         ["{path}/state.pt", "damaged", "finished checkpoints and logs are kept"]),
    Case("corrupt checkpoint", corrupt_checkpoint, resume, runs.CorruptRunError,
         ["{path}/checkpoints/step_0002", "cannot load", "state.pt"]),
    Case("corrupt model folder", lambda t: write(t, "m/config.json", "{not json"), lambda p: load_model(p.parent),
         runs.CorruptRunError, ["{path}".replace("/config.json", ""), "cannot load this model folder"]),
    Case("verl dump: a line that is not JSON",
         lambda t: write(t, "dump/3.jsonl", '{"input": "q", "score": 1.0}\n{"input": "q", "sco\n').parent,
         lambda d: list(read_dump(d)), ValueError, ["{path}/3.jsonl:2", "not valid JSON"]),
    Case("verl dump: a row without a score",
         lambda t: write(t, "dump/1.jsonl", '{"input": "q", "output": "a"}\n').parent,
         lambda d: list(read_dump(d)), ValueError, ["{path}/1.jsonl:1", "missing key(s) ['score']"]),
    Case("empty data file", lambda t: write(t, "empty.jsonl", ""),
         lambda p: load_math_file(str(p)), ValueError, ["{path}", "no problems"]),
    Case("duplicate ids in a data file",
         lambda t: write(t, "dup.jsonl", '{"problem": "1+1", "answer": "2", "unique_id": "a"}\n'
                                         '{"problem": "2+2", "answer": "4", "unique_id": "a"}\n'),
         lambda p: load_math_file(str(p)), ValueError, ["{path}", "duplicate problem id 'a'", "rows 1 and 2"]),
    Case("data row without an answer", lambda t: write(t, "noans.jsonl", '{"problem": "1+1"}\n'),
         lambda p: load_math_file(str(p)), ValueError, ["{path} row 1", "no answer"]),
    Case("groups file with a duplicate id", lambda t: write(t, "g.csv", "prompt_id,group\na,easy\na,unlearnable\n"),
         read_groups, ValueError, ["{path}", "'a'"]),
]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_names_the_culprit_and_keeps_what_was_computed(case, smoke_store, tmp_path):
    bad = case.make(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(case.error) as info:
        case.call(bad)
    msg = str(info.value)
    for part in case.says:
        assert part.replace("{path}", str(bad)) in msg, msg
    assert snapshot(tmp_path) == before  # nothing on disk was changed or removed


def test_nan_loss_stops_at_the_step_and_the_run_resumes_from_the_last_good_checkpoint(
        smoke_store, tmp_path, monkeypatch):
    cfg, base, task = smoke_grpo(tmp_path)
    clean = grpo.train_grpo(cfg, tmp_path / "clean", base, task)
    real = grpo.train_step

    def diverge_at_step_3(model, *args, **kw):
        metrics, clip = real(model, *args, **kw)
        if (tmp_path / "run" / "checkpoints" / "step_0002").exists():
            metrics["loss"] = float("nan")
        return metrics, clip

    monkeypatch.setattr(grpo, "train_step", diverge_at_step_3)
    with pytest.raises(runs.NonFiniteLossError) as info:
        grpo.train_grpo(cfg, tmp_path / "run", base, task)
    msg = str(info.value)
    assert "step 3" in msg and "loss is nan" in msg and "step 2 (step_0002)" in msg, msg
    run = tmp_path / "run"
    assert history.read_history(run)["step"].max() == 2  # the bad step was not logged
    assert not (run / "checkpoints" / "step_0004").exists() and not runs.is_done(run)
    monkeypatch.setattr(grpo, "train_step", real)
    grpo.train_grpo(cfg, run, base, task)  # resume from step 2: the same run as without the fault
    pd.testing.assert_frame_equal(history.read_history(clean), history.read_history(run))


def test_nan_loss_in_pretraining_and_sft_names_the_step():
    with pytest.raises(runs.NonFiniteLossError, match=r"runs/x \(pretrain\): step 7: the loss is inf"):
        runs.check_finite(float("inf"), "runs/x (pretrain)", 7, "none (the start)")
    runs.check_finite(0.25, "runs/x", 1, "none")  # a finite loss passes
