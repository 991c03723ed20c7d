"""The figures of ranks and study designs, drawn with seaborn's objects interface: the share of women by rank
band, each term's share in each branch side by side, and the drift between waves, each point with its 95%
interval (the bootstrap intervals gimg computed, not seaborn's own). Returned as PNG bytes."""

from __future__ import annotations

import io
import warnings

import pandas as pd

BAND_ORDER = ["1-10", "11-20", "21-50", "51-100", "101+"]
_DPI = 100


def _render(plot, width: float, height: float, *, zero_line: bool = False) -> bytes:
    """A seaborn Plot drawn on a fresh matplotlib Figure (never pyplot, so no display is needed), as PNG;
    zero_line adds a dashed vertical line at 0 (no change)."""
    from matplotlib import rc_context  # imported on use: `import gimg` stays fast
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI)
    buffer = io.BytesIO()
    with rc_context(_theme()), warnings.catch_warnings():
        # seaborn 0.13 passes pandas a keyword that pandas 3 deprecates; the figure is the same.
        warnings.filterwarnings("ignore", message="The copy keyword is deprecated")
        plot.on(figure).plot()
        for legend in figure.legends:
            # seaborn anchors its legend to the figure's edge, which a tight crop moves: anchor it to the axes.
            legend.set_bbox_to_anchor((1.03, 0.5), transform=figure.axes[-1].transAxes)
        if zero_line:
            for axes in figure.axes:
                axes.axvline(0, color="grey", linestyle="--", linewidth=1)
        figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _theme() -> dict:
    import seaborn as sns

    return {**sns.axes_style("whitegrid"), "axes.titlesize": 11}


def rank_bands_figure(bands: pd.DataFrame, title: str, *, hue: str | None = None, facet: str | None = None) -> bytes:
    """Share of women by rank band with intervals: bands has band, share, low, high (and the hue and facet columns).

    One colour per value of hue (e.g. engine and market) and one panel per value of facet (e.g. the wave) when
    given.
    """
    import seaborn.objects as so

    table = bands.assign(band=pd.Categorical(bands["band"], categories=BAND_ORDER, ordered=True)).sort_values("band")
    table["band"] = table["band"].astype(str)
    plot = (so.Plot(table, x="band", y="share", ymin="low", ymax="high", **({"color": hue} if hue else {}))
            .add(so.Dot(pointsize=7), so.Dodge())
            .add(so.Range(linewidth=2), so.Dodge())
            .scale(x=so.Nominal(order=[band for band in BAND_ORDER if band in set(table["band"])]))
            .limit(y=(0, 1))
            .label(x="rank band (1 = top result)", y="share of women (95% CI)", title=title, color=hue or "")
            .theme(_theme()))
    panels = table[facet].nunique() if facet else 1
    if panels > 1:
        plot = plot.facet(col=facet).label(title=lambda name: f"{title}: {name}")
    return _render(plot, 4.5 * panels + (2 if hue else 0), 4)


def side_by_side_figure(side: pd.DataFrame, title: str) -> bytes:
    """Each term's share of women in each engine and market (rows: terms; colour: engine_market, e.g.
    bing_en-US), with intervals; one panel per wave when there are several."""
    import seaborn.objects as so

    terms, waves = side["term"].nunique(), side["wave"].nunique()
    plot = (so.Plot(side, y="term", x="share", xmin="low", xmax="high", color="engine_market")
            .add(so.Dot(pointsize=6), so.Dodge())
            .add(so.Range(linewidth=1.5), so.Dodge())
            .limit(x=(0, 1))
            .label(y="", x="share of women, corrected (95% CI)", title=title, color="engine_market")
            .theme(_theme()))
    if waves > 1:
        plot = plot.facet(col="wave").label(title=lambda wave: f"{title}: wave {wave}")
    return _render(plot, 2 + 5 * waves, 1.5 + 0.3 * terms * max(2, side["engine_market"].nunique()))


def drift_figure(drift: pd.DataFrame, title: str) -> bytes:
    """Each term's change between two waves (later minus earlier) with intervals; a line at no change."""
    import seaborn.objects as so

    table = drift.assign(pair=drift["a"].str.split("/").str[1] + ": " + drift["a"].str.split("/").str[0] + " → "
                         + drift["b"].str.split("/").str[0])
    spread = max(0.5, float(table[["low", "high"]].abs().max().max()) * 1.1)
    plot = (so.Plot(table, y="term", x="difference", xmin="low", xmax="high", color="pair")
            .add(so.Dot(pointsize=6), so.Dodge())
            .add(so.Range(linewidth=1.5), so.Dodge())
            .limit(x=(-spread, spread))
            .label(y="", x="change in the share of women between waves (95% CI)", title=title,
                   color="engine_market: waves")
            .theme(_theme()))
    terms = table["term"].nunique()
    return _render(plot, 9, 1.5 + 0.45 * terms * max(1, table["pair"].nunique() / 2), zero_line=True)

