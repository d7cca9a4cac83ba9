"""Try-it boxes: commands that parse back, and costs read from the run store."""

import pandas as pd

from unlearnability.book import chapters
from unlearnability.book.tryit import Try, TryIt, command, seeded, store_times
from unlearnability.config import load_config
from unlearnability.store import runs


def fake_run(overrides, seconds_per_step):
    """A finished smoke GRPO run in the store (config, DONE, a train_log with per-step seconds)."""
    cfg = load_config("smoke", overrides)
    folder = runs.grpo_dir(cfg)
    runs.write_config(folder, cfg)
    pd.DataFrame({"step": range(1, cfg.grpo.steps + 1), "seconds": seconds_per_step}).to_csv(
        folder / "train_log.csv", index=False)
    runs.mark_done(folder)
    base = runs.base_dir(cfg)
    runs.write_config(base, cfg)
    (base / "pretrain_seconds.txt").write_text("600.0\n")
    runs.mark_done(base)


def test_costs_come_from_the_store(store):
    fake_run({"grpo": {"seed": 1}}, 30.0)  # 4 steps x 30 s = 2 min
    fake_run({"grpo": {"seed": 2}}, 60.0)  # 4 min
    box = TryIt("unlearnable-examples", "smoke", [
        Try({"tau": 0.2}, "looser"),
        Try({"seeds": [1, 2]}, "stored", runs=seeded({}, {}, [1, 2])),
        Try({"grpo.lr": 1e-4}, "new", runs=seeded({}, {"grpo": {"lr": 1e-4}}, [1, 2, 3])),
        Try({"world.p": 13}, "new world", runs=seeded({}, {"world": {"p": 13}}, [1])),
        Try({"gradients.rollouts": 128}, "analysis", also="a new gradient analysis"),
        Try({"world.p": 13}, "another chapter", chapter="testbed", bases=[{"world": {"p": 13}}]),
    ])
    costs = [c for _, _, c in box.rows]
    assert box.rows[5][0].startswith("unlearn chapter testbed --profile smoke -p world.p=13")
    # the smoke base has a final phase: a first-phase-only base in the store is not a pretraining's time
    first = runs.base_dir(load_config("smoke", {"pretrain": {"anneal_styles": None}}))
    runs.write_config(first, load_config("smoke", {"pretrain": {"anneal_styles": None}}))
    (first / "pretrain_seconds.txt").write_text("60.0\n")
    runs.mark_done(first)
    assert store_times("smoke")["pretrain"] == [10.0]
    assert costs[5].startswith("about 10 min of training") and "1 pretraining x 10 min" in costs[5]
    assert costs[0] == "no new training: every run is reused from the store"
    assert costs[1] == "no new training: the 2 run(s) it needs are already in the store"
    assert costs[2].startswith("about 9 min of training") and "3 GRPO runs x 3 min (median of 2 in the store)" in costs[2]
    assert "1 pretraining x 10 min (median of 1 in the store) + 1 GRPO run x 3 min" in costs[3]
    assert costs[4] == "a new gradient analysis (not timed from the store)"
    assert "Try it" in box._repr_html_() and "<code>unlearn chapter unlearnable-examples" in box._repr_html_()


def test_commands_parse_back_into_the_same_parameters():
    cmd = command("testbed", "default", {"world.styles": {"worked": 1.0}, "seeds": [1, 42], "tau": 0.2})
    assert cmd == "unlearn chapter testbed --profile default -p 'world.styles={worked: 1.0}' -p 'seeds=[1, 42]' -p tau=0.2"
    import shlex
    items = [a for a in shlex.split(cmd)[5:] if a != "-p"]
    assert chapters.parse_overrides(items) == {"seeds": [1, 42], "tau": 0.2, "overrides": {"world": {"styles": {"worked": 1.0}}}}


def test_the_box_says_what_this_chapter_cost_from_an_empty_store(store, tmp_path, monkeypatch):
    from unlearnability.store import ledger

    path = tmp_path / "ledger.tsv"
    monkeypatch.setenv(ledger.ENV, str(path))
    ledger.note("grpo", "grpo/r", True, 600.0, "measured", 1)
    ledger.note("grpo", "grpo/r", False, 600.0, "saved", 1)  # used twice, paid once
    ledger.note("evaluation", "grpo/r/e.csv", False, None, "legacy", None)
    box = TryIt("unlearnable-examples", "smoke", [Try({"tau": 0.2}, "looser")])
    assert box.cold.startswith("From an empty run store, the 2 runs, evaluations and analyses this chapter used took "
                               "at least 10 min") and "; 1 of them were made before the store timed" in box.cold
    assert box.cold in repr(box) and "From an empty run store" in box._repr_html_()
    monkeypatch.delenv(ledger.ENV)
    assert TryIt("unlearnable-examples", "smoke", [Try({"tau": 0.2}, "looser")]).cold == ""
