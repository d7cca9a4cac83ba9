"""A kill inside a CSV append, and two processes asking for the same run folder."""

import multiprocessing as mp
import time

import pandas as pd

from unlearnability.store import history, runs


def test_truncate_after_drops_a_partial_last_line(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text("step,prompt_id,x\n1,a,0.5\n2,b,0.25\n3,c,0.")  # killed while writing step 3
    history.truncate_after(p, 2)
    assert pd.read_csv(p).to_dict("list") == {"step": [1, 2], "prompt_id": ["a", "b"], "x": [0.5, 0.25]}
    history.append_dicts(p, [{"step": 3, "prompt_id": "c", "x": 0.75}])
    assert pd.read_csv(p)["step"].tolist() == [1, 2, 3]
    half_header = tmp_path / "new.csv"
    half_header.write_text("step,pro")  # killed while writing the header
    history.truncate_after(half_header, 5)
    assert not half_header.exists()


def _hold(folder, seconds, marker):
    with runs.locked(folder):
        marker.write_text("child")
        time.sleep(seconds)
        marker.write_text("child done")


def test_a_second_writer_waits_for_the_first(tmp_path):
    folder, marker = tmp_path / "run", tmp_path / "marker"
    child = mp.get_context("fork").Process(target=_hold, args=(folder, 1.0, marker))
    child.start()
    while not marker.exists():
        time.sleep(0.01)
    with runs.locked(folder):  # blocks until the child releases
        assert marker.read_text() == "child done"
    child.join()
    assert child.exitcode == 0


def test_append_keeps_the_existing_header(tmp_path):
    p = tmp_path / "train_log.csv"
    history.append_dicts(p, [{"step": 1, "loss": 0.5}])
    history.append_dicts(p, [{"step": 2, "loss": 0.25, "gen_tokens": 99}])  # newer code logs more
    history.append_dicts(p, [{"step": 3}])
    assert p.read_text().splitlines() == ["step,loss", "1,0.5", "2,0.25", "3,"]


def test_truncate_after_keeps_the_kept_rows_byte_for_byte(tmp_path):
    p = tmp_path / "validation.csv"
    history.append_dicts(p, [{"step": s, "prompt_id": f"v{s}", "mean_reward": 1 / 3, "clip": float("nan")}
                             for s in (0, 2, 4)])
    whole = p.read_bytes()
    assert whole.count(b"\r\n") == 4  # the csv module's line ends: a rewrite by pandas would change them
    history.truncate_after(p, 2)
    assert p.read_bytes() == whole[: whole.index(b"4,v4")]
