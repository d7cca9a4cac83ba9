import pandas as pd
import pytest
import torch

from unlearnability.config import ModelConfig, PretrainConfig, WorldConfig
from unlearnability.policy.model import build_model
from unlearnability.train.text import train_on_text
from unlearnability.world import build_tokenizer, pretraining_stream

WORLD = WorldConfig(p=11, digits=2, tiers=[1, 2], n_train=4, n_valid=2)
MODEL = ModelConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                    intermediate_size=64, autocast="none")
PRE = PretrainConfig(tokens=6000, batch_size=4, lr=3e-3, warmup_steps=2, log_every=1)


class Killed(Exception):
    pass


def pretrain(folder, kill_at=None):
    tok = build_tokenizer(WORLD.p, WORLD.digits)
    model = build_model(MODEL, len(tok), tok)

    def on_checkpoint(step):
        if kill_at is not None and step >= kill_at:
            raise Killed

    train_on_text(model, tok, pretraining_stream(WORLD, set(), seed=0), PRE, folder, autocast_dtype="none",
                  on_checkpoint=on_checkpoint, checkpoint_every=3)
    return model


def test_pretraining_learns_and_resumes_to_the_same_weights(tmp_path):
    full = pretrain(tmp_path / "a")
    log = pd.read_csv(tmp_path / "a" / "train_log.csv")
    assert log["loss"].iloc[-3:].mean() < log["loss"].iloc[:3].mean()  # it learns
    assert (tmp_path / "a" / "model.safetensors").exists() and not (tmp_path / "a" / "train_state.pt").exists()
    with pytest.raises(Killed):
        pretrain(tmp_path / "b", kill_at=6)
    assert (tmp_path / "b" / "train_state.pt").exists()
    resumed = pretrain(tmp_path / "b")
    for (n, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), n
    pd.testing.assert_frame_equal(log.drop(columns="seconds"),
                                  pd.read_csv(tmp_path / "b" / "train_log.csv").drop(columns="seconds"))


def test_a_kill_before_the_first_checkpoint_leaves_no_stale_log_rows(tmp_path):
    full = pd.read_csv((pretrain(tmp_path / "a"), tmp_path / "a" / "train_log.csv")[1])
    folder = tmp_path / "b"
    folder.mkdir()
    full.assign(loss=99.0).to_csv(folder / "train_log.csv", index=False)  # rows of a run killed before step 3
    pretrain(folder)
    pd.testing.assert_frame_equal(full.drop(columns="seconds"),
                                  pd.read_csv(folder / "train_log.csv").drop(columns="seconds"))
