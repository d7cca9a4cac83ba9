"""Altair charts for the book: one theme, one set-up call, and the chart builders chapters share.

Chapters call `setup()` once. It picks altair's HTML renderer, whose output the book's
`vega_offline` Sphinx extension (book/_ext/vega_offline.py) draws with no network, enables the
book theme and lifts altair's 5000-row limit (runs log many rows; the specs stay inline).

Groups (easy, learnable, unlearnable, ...) always get the same colours, on every page.
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
