"""The analysis figures: the search-vs-census scatter plot, and face thumbnails for the report's strips."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np

from .analyze import AnalysisResult, compared

MAX_LABELLED_TERMS = 40
THUMBNAIL_HEIGHT = 64
_THUMBNAIL_QUALITY = 70


def fitted_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """Least-squares slope and intercept of y on x, or None when x does not vary."""
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def plot_scatter(result: AnalysisResult) -> bytes:
    """A PNG: census share (x) against corrected search share (y) with 95% CI bars, identity and fitted lines."""
    # Imported on use: `import gimg` (and so every pool worker) would otherwise pay about a second for it.
    from matplotlib.figure import Figure

    summary = result.summary
    with_census = summary.dropna(subset=["census_share_women", "corrected_share"])
    inside = with_census[compared(with_census)]
    few = with_census[~compared(with_census)]
    figure = Figure(figsize=(8, 8), dpi=100)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="search = census")
    for table, colour, label in ((inside, "tab:purple", "corrected share, 95% CI"),
                                 (few, "lightgrey", f"fewer than {result.options.min_faces} faces (not compared)")):
        if len(table):
            errors = np.vstack([table["corrected_share"] - table["corrected_low"],
                                table["corrected_high"] - table["corrected_share"]]).clip(min=0)
            axes.errorbar(table["census_share_women"], table["corrected_share"], yerr=errors, fmt="o", markersize=4,
                          color=colour, ecolor=colour, elinewidth=0.8, capsize=2, label=label)
    if result.evaluation is not None and len(inside):
        axes.scatter(inside["census_share_women"], inside["share_women"], s=10, color="tab:orange", alpha=0.6,
                     label="raw share (uncorrected)", zorder=1)
    line = fitted_line(inside["census_share_women"].to_numpy(float), inside["corrected_share"].to_numpy(float))
    if line is not None:
        slope, intercept = line
        axes.plot([0, 1], [intercept, intercept + slope], color="tab:purple", linewidth=1,
                  label=f"fitted: y = {intercept:.2f} + {slope:.2f} x")
    if len(with_census) <= MAX_LABELLED_TERMS:
        for row in with_census.itertuples():
            axes.annotate(row.term, (row.census_share_women, row.corrected_share), xytext=(4, 3),
                          textcoords="offset points", fontsize=7)
    axes.set(xlim=(0, 1), ylim=(0, 1), aspect="equal")
    axes.set_xlabel("share of women in the occupation (BLS census)")
    axes.set_ylabel("share of women among the images coded" if result.coded else
                    f"share of women among faces in search results ({result.options.policy} face policy), corrected")
    if math.isnan(result.pearson_r):
        title = f"Search vs census (n = {result.n_terms}; no correlation: too few terms)"
    else:
        low, high = result.pearson_ci
        title = f"Search vs census: Pearson r = {result.pearson_r:.2f} [{low:.2f}, {high:.2f}] (n = {result.n_terms})"
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def thumbnail(path: Path, height: int = THUMBNAIL_HEIGHT) -> str | None:
    """A face crop as a base64 JPEG of the given height, or None when the crop cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            picture = picture.convert("RGB")
            width = max(1, round(picture.width * height / max(picture.height, 1)))
            small = picture.resize((width, height))
    except OSError:  # a missing or corrupt crop leaves a gap in the strip, not a failed report
        return None
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=_THUMBNAIL_QUALITY)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
