"""The chart and table helpers chapters share (charts.py)."""

import numpy as np
import pandas as pd

from unlearnability.book import charts


def test_long_titles_are_wrapped_to_the_content_column():
    t = charts.title("Figure 15b: training reward with 64 rollouts per prompt, unlearnable + ambiguous "
                     "(no unlearnable examples) alone", subtitle="x " * 90)
    lines = t.text if isinstance(t.text, list) else [t.text]
    assert len(lines) == 2 and all(len(s) <= charts.TITLE_CHARS for s in lines)
    assert len(t.subtitle) == 2 and all(len(s) <= charts.SUBTITLE_CHARS for s in t.subtitle)
    short = charts.title("Figure 2", subtitle=["one line"])
    assert short.text == "Figure 2" and short.subtitle == ["one line"]


def test_format_table_formats_each_column_and_survives_a_transpose():
    df = pd.DataFrame({"draws": [12.0, 3.0], "share": [0.25, np.nan]}, index=["easy", "learnable"])
    out = charts.format_table(df, {"draws": "{:.0f}"}, default="{:.1%}")
    assert out.loc["easy", "draws"] == "12" and out.loc["easy", "share"] == "25.0%"
    assert out.loc["learnable", "share"] == "–"
    assert out.T.loc["share", "easy"] == "25.0%"
    mixed = charts.format_table(pd.DataFrame({"value": ["0.10%", 2.0]}), default="{:.1f}")
    assert list(mixed["value"]) == ["0.10%", "2.0"]  # strings as they are


def test_figure_builders_make_valid_specs():
    charts.setup()
    groups = ["easy", "learnable", "unlearnable"]
    curves = pd.DataFrame([{"step": s, "mean": 0.1 * s, "group": g, "run": r, "seed": "1", "rows": 2}
                           for s in (5, 10) for g in groups for r in ("baseline", "no KL")])
    spec = charts.runs_by_group(curves, "reward", "Figure 2", ["sub"]).to_dict()
    assert spec["encoding"]["strokeDash"]["field"] == "run" and spec["encoding"]["color"]["scale"]["domain"] == groups
    assert charts.runs_faceted(curves, "Figure 5", ["sub"]).to_dict()["facet"]["field"] == "run"
    finals = pd.DataFrame([{"run": "baseline", "seed": 1, "group": g, "mean": 0.2, "examples": 3} for g in groups])
    assert charts.finals_by_run(finals, "Final", ["sub"]).to_dict()["mark"]["type"] == "point"
    sft = pd.DataFrame([{"step": s, "group": g, "examples": n, "pass@1": 0.1} for s in (0, 4) for g, n in (("easy", 4), ("learnable", 2))])
    assert charts.sft_curves(sft, "Figure 15a").to_dict()["title"]["subtitle"] == ["easy 4, learnable 2 examples"]
    seed = pd.DataFrame({"step": [1, 2], "mean": [0.0, 0.1], "seed": ["1", "1"]})
    assert charts.seed_lines(seed, "unlearnable", "Figure 15b", ["sub"]).to_dict()["mark"]["color"] == charts.GROUP_COLORS["unlearnable"]
    long = pd.DataFrame([{"prompt_id": "p", "group": g, "policy": "initial policy", "measure": m, "cosine": 0.1}
                         for g in groups for m in ("(a)", "(b)")])
    box = charts.interference_boxes(long, "Figure 16").to_dict()
    assert box["encoding"]["row"]["field"] == "measure" and box["title"] == "Figure 16"
    pairs = pd.DataFrame([{"group_a": a, "group_b": b, "mean_cosine": 0.1, "pairs": 3, "policy": "initial policy"}
                          for a in groups for b in groups])
    heat = charts.similarity_heatmaps(pairs, groups, "Figures 6 and 17", ["sub"]).to_dict()
    assert [layer["mark"]["type"] for layer in heat["spec"]["layer"]] == ["rect", "text"]
    q7 = pd.DataFrame([{"group": g, "step": s, "correct_rollouts": 3, "problems": 2, "mean_score": 2.0, "zero_share": 0.1}
                       for g in groups for s in (0, 5)])
    assert charts.quality_curves(q7, groups, "Figure 7", ["sub"]).to_dict()["encoding"]["y"]["scale"]["domain"] == [0, 5]
    f18 = pd.DataFrame({"stage": ["stage 1", "stage 2"], "step": [0, 12], "success": [0.0, 0.1], "mean_score": [1.0, 2.0],
                        "correct_rollouts": [1, 2]})
    long18 = f18[["stage", "step", "success"]].rename(columns={"success": "value"}).assign(series="unlearnable pass@1")
    assert len(charts.curriculum_panels(f18, long18).to_dict()["vconcat"]) == 2
    dist = pd.DataFrame({"group": ["easy", "easy"], "score": [0, 5], "rollouts": [1, 3], "share": [0.25, 0.75]})
    assert charts.score_bars(dist, ["easy"], "Figure 1d").to_dict()["encoding"]["column"]["field"] == "group"


def test_facet_width_keeps_a_row_of_panels_inside_the_column():
    # measured in headless Chromium: five 110 px panels of Figure 1d drew 744 px against the 740 px column
    assert charts.facet_width(3) == 110 and charts.facet_width(4) == 110
    assert charts.facet_width(5) < 110
    for n in range(1, 9):
        assert 94 + n * (charts.facet_width(n) + 20) <= 740
