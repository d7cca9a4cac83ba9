"""Altair charts for the book: one theme, one set-up call, and the chart builders chapters share.

Chapters call `setup()` once. It picks altair's HTML renderer, whose output the book's
`vega_offline` Sphinx extension (book/_ext/vega_offline.py) draws with no network, enables the
book theme and lifts altair's 5000-row limit (runs log many rows; the specs stay inline).

Groups (easy, learnable, unlearnable, ...) always get the same colours, on every page.

Shared builders: `line_by_group`, `bar_table`, `format_table`. The §4 and §5 figures, each from
the table its chapter computes: `runs_by_group`, `runs_faceted`, `finals_by_run`, `sft_curves`,
`seed_lines`, `interference_boxes`, `similarity_heatmaps`, `quality_curves`, `curriculum_panels`,
`score_bars`.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

THEME = "unlearnability"

# One colour per example group, the same on every page (colour-blind safe, Okabe-Ito based).
GROUP_COLORS: dict[str, str] = {
    "easy": "#009E73",
    "learnable": "#0072B2",
    "unlearnable": "#D55E00",
    "no_reward": "#999999",
    "ambiguous": "#CC79A7",
}
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


@alt.theme.register(THEME, enable=False)
def book_theme() -> alt.theme.ThemeConfig:
    """A quiet theme: no frame, light grid, readable axis titles, fixed size that fits a book page."""
    axis = {"labelFont": FONT, "titleFont": FONT, "labelFontSize": 11, "titleFontSize": 12,
            "titleFontWeight": "normal", "gridColor": "#e6e6e6", "domainColor": "#888888",
            "tickColor": "#888888", "labelColor": "#333333", "titleColor": "#333333"}
    return alt.theme.ThemeConfig(
        config={
            "view": {"continuousWidth": 480, "continuousHeight": 280, "stroke": None},
            "font": FONT,
            "title": {"font": FONT, "fontSize": 14, "fontWeight": "normal", "anchor": "start",
                      "subtitleFontSize": 11, "subtitleColor": "#555555"},
            "axis": axis,
            "axisX": {"grid": False},
            "legend": {"labelFont": FONT, "titleFont": FONT, "labelFontSize": 11,
                       "titleFontSize": 12, "titleFontWeight": "normal"},
            "header": {"labelFont": FONT, "titleFont": FONT, "labelFontSize": 12},
            "range": {"category": PALETTE},
            "line": {"strokeWidth": 2},
            "bar": {"cornerRadiusEnd": 2},
        }
    )


def setup() -> None:
    """Call once per notebook: HTML renderer (drawn offline by the book), book theme, no row limit."""
    alt.renderers.enable("html")
    alt.theme.enable(THEME)
    alt.data_transformers.disable_max_rows()


def color_scale(values: Sequence[str] | None = None) -> alt.Scale:
    """A colour scale that keeps the fixed group colours; other values get the palette in order."""
    if values is None:
        values = list(GROUP_COLORS)
    values = list(dict.fromkeys(values))
    spare = iter(c for c in PALETTE if c not in GROUP_COLORS.values())
    colors = [GROUP_COLORS.get(v) or next(spare, "#666666") for v in values]
    return alt.Scale(domain=values, range=colors)


TITLE_CHARS = 80  # a title line at 14 px: about 560 px, inside the 740 px content column
SUBTITLE_CHARS = 100  # a subtitle line at 11 px


def title(text: str, subtitle: str | Sequence[str] | None = None) -> alt.TitleParams:
    """A chart title (and subtitle lines) wrapped to fit the book's content column: Vega-Lite
    never wraps a title, and a long one widens the chart past the page."""
    import textwrap

    lines = textwrap.wrap(text, TITLE_CHARS) or [""]
    subs = [subtitle] if isinstance(subtitle, str) else list(subtitle or [])
    sub_lines = [w for s in subs for w in (textwrap.wrap(s, SUBTITLE_CHARS) or [""])]
    return alt.TitleParams(lines if len(lines) > 1 else lines[0], **({"subtitle": sub_lines} if sub_lines else {}))


def _title(text: str | None, subtitle: str | None) -> alt.TitleParams | str:
    return title(text or "", subtitle) if (text or subtitle) else ""


def line_by_group(df: pd.DataFrame, x: str, y: str, color: str, detail: str | None = "seed", *,
                  title: str | None = None, subtitle: str | None = None,
                  x_title: str | None = None, y_title: str | None = None,
                  y_domain: tuple[float, float] | None = None, order: Sequence[str] | None = None,
                  width: int | None = None, height: int | None = None) -> alt.LayerChart:
    """One thin line per (`color`, `detail`) value (e.g. per seed) and a bold mean line per `color`.

    `df` is long-form: one row per (x, color, detail). With `detail=None` (or a column that is
    absent) only the mean lines are drawn. A tooltip on the mean line shows the value.
    """
    order = list(order) if order is not None else list(dict.fromkeys(df[color].astype(str)))
    scale_y = alt.Scale(domain=list(y_domain)) if y_domain else alt.Undefined
    enc_x = alt.X(f"{x}:Q", title=x_title or x)
    enc_color = alt.Color(f"{color}:N", title=color, scale=color_scale(order), sort=order)
    base = alt.Chart(df)
    mean = base.mark_line(strokeWidth=3).encode(
        x=enc_x, y=alt.Y(f"mean({y}):Q", title=y_title or y, scale=scale_y), color=enc_color,
        tooltip=[alt.Tooltip(f"{color}:N"), alt.Tooltip(f"{x}:Q"),
                 alt.Tooltip(f"mean({y}):Q", title=f"mean {y}", format=".3f")])
    layers = [mean]
    if detail and detail in df.columns and df[detail].nunique() > 1:
        thin = base.mark_line(strokeWidth=1, opacity=0.35).encode(
            x=enc_x, y=alt.Y(f"{y}:Q", scale=scale_y), color=enc_color, detail=f"{detail}:N")
        layers = [thin, mean]
    chart = alt.layer(*layers).properties(title=_title(title, subtitle))
    if width or height:
        chart = chart.properties(**{k: v for k, v in (("width", width), ("height", height)) if v})
    return chart


def bar_table(df: pd.DataFrame, category: str, value: str, color: str | None = None, *,
              title: str | None = None, subtitle: str | None = None, value_title: str | None = None,
              fmt: str = ".1f", order: Sequence[str] | None = None,
              width: int = 300, label_limit: int = 260) -> alt.Chart | alt.LayerChart:
    """Horizontal bars with their numbers printed beside them: a table you can see at a glance.

    One bar per `category` row; with `color`, the bars of each category are split side by side
    by `color` (e.g. group), in `order`.
    """
    order = list(order) if order is not None else (
        list(dict.fromkeys(df[color].astype(str))) if color else None)
    enc = {"y": alt.Y(f"{category}:N", title=None, sort=list(dict.fromkeys(df[category].astype(str))),
                      axis=alt.Axis(labelLimit=label_limit)),
           "x": alt.X(f"{value}:Q", title=value_title or value),
           "tooltip": [alt.Tooltip(f"{category}:N")] + ([alt.Tooltip(f"{color}:N")] if color else [])
           + [alt.Tooltip(f"{value}:Q", format=fmt)]}
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=color, scale=color_scale(order), sort=order,
                                 legend=alt.Legend(orient="bottom", direction="horizontal"))
        enc["yOffset"] = alt.YOffset(f"{color}:N", sort=order)
    base = alt.Chart(df).encode(**enc)
    bars = base.mark_bar()
    text = base.mark_text(align="left", dx=3, fontSize=10, color="#333333").encode(
        text=alt.Text(f"{value}:Q", format=fmt))
    if color:  # text takes the bar's offset but not its colour
        text = text.encode(color=alt.value("#333333"))
    return alt.layer(bars, text).properties(title=_title(title, subtitle), width=width)


def format_table(df: pd.DataFrame, formats: dict[str, str] | None = None, default: str = "{:.3f}",
                 missing: str = "–") -> pd.DataFrame:
    """A table of numbers as the book prints it: each column in its format (`formats`, by column
    name; else `default`; strings are kept as they are), missing values as `missing`. Returns strings, so the result can be
    transposed (a long row of columns read as a narrow table) without losing the formats."""
    formats = formats or {}

    def fmt(col: pd.Series) -> pd.Series:
        f = formats.get(col.name, default)
        return col.map(lambda v: v if isinstance(v, str) else missing if pd.isna(v) else f.format(v))

    return df.apply(fmt)


def replay_text(rt: pd.DataFrame) -> pd.DataFrame:
    """`analysis.dynamics.replay_table` as the page prints it: counts and means as numbers, shares
    as percentages, columns in words (`dynamics.REPLAY_WORDS`), transposed (one row per measure,
    one column per group)."""
    from unlearnability.analysis.dynamics import REPLAY_WORDS

    text = format_table(rt, {"draws": "{:.0f}", "drawn_positives": "{:.2f}", "extra_positives": "{:.2f}"}, "{:.1%}")
    return text.rename(columns=REPLAY_WORDS).T


# ---------------------------------------------------------------- the figures of §4 and §5
#
# Each builder draws one figure from the table its chapter computes (columns named below); the
# chapters pass their titles, so a figure's words stay on its page.

GROUP_ORDER = ["easy", "learnable", "unlearnable"]


def runs_by_group(df: pd.DataFrame, y_title: str, title_text: str, subtitle: Sequence[str]) -> alt.Chart:
    """Training curves of several runs (Figure 2): df with step, mean, group, run, seed, rows (the
    stacked `dynamics.group_curves` of each run); colour = group, dash = run, one line per seed."""
    return alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("step:Q", title="GRPO step"), y=alt.Y("mean:Q", title=y_title),
        color=alt.Color("group:N", scale=color_scale(GROUP_ORDER)),
        strokeDash=alt.StrokeDash("run:N", title="run"), detail="seed:N",
        tooltip=["run", "seed", "group", "step", alt.Tooltip("mean:Q", format=".3f"), "rows"],
    ).properties(title=title(title_text, subtitle=subtitle))


def runs_faceted(df: pd.DataFrame, title_text: str, subtitle: Sequence[str]) -> alt.FacetChart:
    """Training reward per group, one panel per run (Figure 5): df with step, mean, group, run, seed."""
    return alt.Chart(df).mark_line().encode(
        x=alt.X("step:Q", title="GRPO step"), y=alt.Y("mean:Q", title="training reward"),
        color=alt.Color("group:N", scale=color_scale(GROUP_ORDER)), detail="seed:N",
        tooltip=["run", "seed", "group", "step", alt.Tooltip("mean:Q", format=".3f")],
    ).properties(width=230, height=200).facet(facet=alt.Facet("run:N", title=None), columns=2).properties(
        title=title(title_text, subtitle=subtitle))


def finals_by_run(df: pd.DataFrame, title_text: str, subtitle: Sequence[str]) -> alt.Chart:
    """Final pass@1 per group, one point per (run, seed) (Figure 5): df with run, seed, group, mean,
    examples (stacked `dynamics.group_finals`)."""
    return alt.Chart(df).mark_point(filled=True, size=70).encode(
        y=alt.Y("run:N", title=None), x=alt.X("mean:Q", title="final pass@1"),
        color=alt.Color("group:N", scale=color_scale(GROUP_ORDER)),
        tooltip=["run", "seed", "group", alt.Tooltip("mean:Q", format=".3f"), "examples"],
    ).properties(width=420, title=title(title_text, subtitle=subtitle))


def sft_curves(evals: pd.DataFrame, title_text: str) -> alt.Chart:
    """Per-group pass@1 over SFT steps (Figure 15a): the SFT run's eval table (step, group,
    examples, pass@1); the subtitle counts each group's examples (at step 0)."""
    counts = ", ".join(f"{g} {n}" for g, n in evals[evals.step == 0].set_index("group").examples.items())
    return alt.Chart(evals).mark_line(point=True).encode(
        x=alt.X("step:Q", title="SFT optimizer step"), y=alt.Y("pass@1:Q", title="pass@1 on the SFT examples"),
        color=alt.Color("group:N", scale=color_scale(sorted(evals.group.unique()))),
        tooltip=["group", "step", "examples", alt.Tooltip("pass@1:Q", format=".3f")],
    ).properties(title=title(title_text, subtitle=[f"{counts} examples"]))


def seed_lines(df: pd.DataFrame, group: str, title_text: str, subtitle: Sequence[str]) -> alt.Chart:
    """One training-reward line per seed in `group`'s colour (Figure 15b): df with step, mean, seed
    (`dynamics.seed_curve`)."""
    return alt.Chart(df).mark_line(point=True, color=GROUP_COLORS[group]).encode(
        x=alt.X("step:Q", title="GRPO step"), y=alt.Y("mean:Q", title="training reward"), detail="seed:N",
        tooltip=["seed", "step", alt.Tooltip("mean:Q", format=".3f")]).properties(
        title=title(title_text, subtitle=subtitle))


def interference_boxes(long: pd.DataFrame, title_text: str) -> alt.FacetChart:
    """Box plots of the cosine per group, one panel per (measure, policy) (Figure 16): the long
    table of `interference.cancel_long` (group, policy, measure, cosine)."""
    return alt.Chart(long).mark_boxplot(extent="min-max").encode(
        x=alt.X("group:N", sort=GROUP_ORDER, title=None), y=alt.Y("cosine:Q", title="cosine of log-likelihood gradients"),
        color=alt.Color("group:N", scale=color_scale(GROUP_ORDER), legend=None),
        column=alt.Column("policy:N", title=None), row=alt.Row("measure:N", title=None),
    ).properties(width=200, height=170, title=title_text)


def similarity_heatmaps(pairs: pd.DataFrame, order: Sequence[str], title_text: str,
                        subtitle: Sequence[str]) -> alt.FacetChart:
    """Mean cosine within and between groups, one heat map per policy, each cell labelled with its
    mean and number of pairs (Figures 6 and 17): pairs with group_a, group_b, mean_cosine, pairs,
    policy (stacked `gradients.similarity_tables` pair tables)."""
    base = alt.Chart(pairs).encode(x=alt.X("group_a:N", sort=order, title=None), y=alt.Y("group_b:N", sort=order, title=None))
    heat = base.mark_rect().encode(color=alt.Color("mean_cosine:Q", title="mean cosine", scale=alt.Scale(scheme="blues")),
                                   tooltip=["policy", "group_a", "group_b", alt.Tooltip("mean_cosine:Q", format=".4f"), "pairs"])
    text = base.mark_text(fontSize=11, lineBreak="\n").encode(text="label:N").transform_calculate(
        label="format(datum.mean_cosine, '.3f') + '\\n(' + datum.pairs + ' pairs)'")
    return alt.layer(heat, text).properties(width=180, height=180).facet(column=alt.Column("policy:N", title=None)).properties(
        title=title(title_text, subtitle=subtitle))


def quality_curves(scores: pd.DataFrame, order: Sequence[str], title_text: str, subtitle: Sequence[str]) -> alt.Chart:
    """Mean score (0-5) of correct rollouts per group over checkpoints (Figure 7): scores with step,
    group, mean_score, correct_rollouts, problems, zero_share (`quality.checkpoint_scores`)."""
    return alt.Chart(scores).mark_line(point=True).encode(
        x=alt.X("step:Q", title="GRPO step"), y=alt.Y("mean_score:Q", title="mean score of correct rollouts (0-5)", scale=alt.Scale(domain=[0, 5])),
        color=alt.Color("group:N", scale=color_scale(order), sort=order),
        tooltip=["group", "step", "correct_rollouts", "problems", alt.Tooltip("mean_score:Q", format=".2f"), alt.Tooltip("zero_share:Q", format=".1%")],
    ).properties(title=title(title_text, subtitle=subtitle))


def curriculum_panels(scores: pd.DataFrame, long: pd.DataFrame) -> alt.VConcatChart:
    """Figure 18, stacked (side by side they overflow the column): (a) the unlearnable examples'
    mean score of correct rollouts over both stages (`curriculum.curriculum_scores`' table: stage,
    step, mean_score, correct_rollouts), (b) their pass@1 and validation (`curriculum.curriculum_long`)."""
    x = alt.X("step:Q", title="GRPO step (stage 2 continues stage 1)")
    a = alt.Chart(scores).mark_line(point=True, color=GROUP_COLORS["unlearnable"]).encode(
        x=x, y=alt.Y("mean_score:Q", title="mean score of correct rollouts", scale=alt.Scale(domain=[0, 5])),
        strokeDash="stage:N", tooltip=["stage", "step", "correct_rollouts", alt.Tooltip("mean_score:Q", format=".2f")]
    ).properties(width=360, height=200, title="Figure 18a: reasoning quality, unlearnable examples")
    b = alt.Chart(long).mark_line(point=True).encode(
        x=x, y=alt.Y("value:Q", title="pass@1"), color=alt.Color("series:N", title=None),
        strokeDash="stage:N", tooltip=["series", "stage", "step", alt.Tooltip("value:Q", format=".3f")]
    ).properties(width=360, height=200, title="Figure 18b: success rate and validation")
    return alt.vconcat(a, b)


COLUMN_PX = 740  # the book's content column
Y_AXIS_PX = 100  # a facet row's y axis with its title (~94 px drawn)
FACET_GAP_PX = 20  # Vega-Lite's spacing beside each facet panel
NARROWEST_PX = 40


def facet_width(panels: int, widest: int = 110) -> int:
    """Width of one panel of a row of `panels` facets, so that the row (the y axis and the spacing
    beside each panel) fits the book's content column: 110 px up to 4 panels, 108 at 5."""
    per_panel = (COLUMN_PX - Y_AXIS_PX) // max(panels, 1)
    return max(NARROWEST_PX, min(widest, per_panel - FACET_GAP_PX))


def score_bars(dist: pd.DataFrame, order: Sequence[str], title_text: str) -> alt.Chart:
    """The share of each group's correct rollouts per reasoning score, one panel per group (Figure
    1d): dist with group, score, rollouts, share (`quality.score_shares`)."""
    panels = dist["group"].nunique() if len(dist) else 1
    return alt.Chart(dist).mark_bar().encode(
        x=alt.X("score:O", title="reasoning score (0-5, step checker)"),
        y=alt.Y("share:Q", title="share of the group's correct rollouts", axis=alt.Axis(format="%")),
        color=alt.Color("group:N", scale=color_scale(order), sort=order, legend=None),
        column=alt.Column("group:N", sort=order, title=None),
        tooltip=["group", "score", "rollouts", alt.Tooltip("share:Q", format=".1%")],
    ).properties(width=facet_width(panels), height=200, title=title_text)


def augmentation_pass_rates(f8: pd.DataFrame, target_name: str, k: int) -> alt.FacetChart:
    """Figure 8: the target examples' pass@1 and pass@k over GRPO steps, one line per
    composition (and seed), one panel per measure: f8 with composition, seed, step, pass@1,
    pass@<k> (`augmentation.target_pass_rates`)."""
    long8 = f8.melt(id_vars=["composition", "seed", "step"], var_name="metric", value_name="value")
    return alt.Chart(long8).mark_line(point=True).encode(
        x=alt.X("step:Q", title="GRPO step"), y=alt.Y("value:Q", title=f"on the original {target_name} examples"),
        color=alt.Color("composition:N", title="trained with", legend=alt.Legend(orient="bottom")), detail="seed:N",
        tooltip=["composition", "seed", "step", alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=280, height=200).facet(column=alt.Column("metric:N", title=None)).properties(
        title=title(f"Figure 8: {target_name} examples' pass@1 and pass@{k} during training with augmentations",
                    subtitle=[f"k = {k} samples per example at each checkpoint"]))
