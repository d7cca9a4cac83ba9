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
