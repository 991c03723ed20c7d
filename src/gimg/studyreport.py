"""The study report: one self-contained HTML file (OUT/comparison/report.html) that sets a study's branches side by
side: engines and markets, drift between waves, shares by rank band, each figure with its intervals."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import pandas as pd

from . import __version__
from .compare import ALL_TERMS, StudyComparison
from .layout import atomic_path
from .plots import drift_figure, rank_bands_figure, side_by_side_figure

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 64rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.note { background: #fff4d6; border-left: 4px solid #e0a800; padding: .5rem .8rem; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
th, td { border-bottom: 1px solid #eee; padding: .25rem .5rem; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
tr.flag td { background: #fdebd0; } tr.all td { font-weight: bold; }
img { max-width: 100%; height: auto; }
footer { margin-top: 2rem; color: #777; font-size: .8rem; }
"""


def _value(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _ci(low: float, high: float, digits: int = 3) -> str:
    return "" if pd.isna(low) or pd.isna(high) else f" [{low:.{digits}f}, {high:.{digits}f}]"


def _image(png: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _branch_table(comparison: StudyComparison) -> str:
    """One row per branch: its headline numbers, and a link to its own report."""
    rows = []
    out = comparison.layout.out
    for row in comparison.branches.itertuples():
        branch = next(b for b in comparison.design.branches if b.label == row.branch)
        link = Path("..") / branch.path(out).relative_to(out) / "analysis" / "report.html"
        rows.append(
            f'<tr><td class="text"><a href="{escape(link.as_posix())}">{escape(row.branch)}</a></td>'
            f"<td>{row.terms}</td><td>{_value(row.pearson_r, 2)}</td>"
            f"<td>{_value(row.mean_difference)}{_ci(row.mean_difference_low, row.mean_difference_high)}</td>"
            f"<td>{_value(row.share_at_50)}{_ci(row.share_at_50_low, row.share_at_50_high)}</td>"
            f"<td>{_value(row.rank_difference, 1)} (p = {_value(row.rank_permutation_p)})</td></tr>")
    return ("<table><tr><th>branch (wave/engine_market)</th><th>terms</th><th>Pearson r</th>"
            "<th>mean difference search − census [95% CI]</th><th>share at 50% women (Kay) [95% CI]</th>"
            f"<th>women's rank − men's (permutation p)</th></tr>{''.join(rows)}</table>")


def _pairs_table(table: pd.DataFrame, flag_word: str) -> str:
    """Differences of b minus a per term, the "all terms" row in bold, a flagged row shaded."""
    rows = []
    for row in table.itertuples():
        classes = [name for name, on in (("flag", row.excludes_zero), ("all", row.term == ALL_TERMS)) if on]
        flag = flag_word if row.excludes_zero else ""
        few = " (few faces)" if row.too_few_faces else ""
        rows.append(
            f'<tr class="{" ".join(classes)}"><td class="text">{escape(row.term)}{few}</td>'
            f'<td class="text">{escape(row.b)} − {escape(row.a)}</td><td>{_value(row.share_a)}</td>'
            f"<td>{_value(row.share_b)}</td><td>{_value(row.difference)}{_ci(row.low, row.high)}</td>"
            f"<td>{flag}</td></tr>")
    return ("<table><tr><th>term</th><th>difference</th><th>share in a</th><th>share in b</th>"
            f"<th>b − a [95% CI]</th><th></th></tr>{''.join(rows)}</table>")


def _overlap_table(table: pd.DataFrame) -> str:
    rows = "".join(
        f'<tr><td class="text">{escape(row.term)}</td><td class="text">{escape(row.a)} / {escape(row.b)}</td>'
        f"<td>{row.results_a}</td><td>{row.results_b}</td><td>{row.shared}</td><td>{_value(row.jaccard, 2)}</td>"
        f"<td>{row.shared_top10}</td></tr>" for row in table.itertuples())
    return ("<table><tr><th>term</th><th>branches</th><th>results a</th><th>results b</th><th>shared URLs</th>"
            f"<th>Jaccard</th><th>shared in both top 10</th></tr>{rows}</table>")


def render_study_report(comparison: StudyComparison, figures: dict[str, bytes], generated: datetime) -> str:
    """The study report's HTML: branches, engines and markets side by side, differences, overlap, drift, ranks."""
    options = comparison.options
    notes = "".join(f'<p class="note">{escape(note)}</p>' for note in comparison.notes)
    waves = ", ".join(f"{escape(wave.name)} (started {escape(wave.started)})" for wave in comparison.design.waves)
    sections = [
        "<h2>Branches</h2>",
        f"<p>Waves: {waves}. Each branch is one engine in one market in one wave, a complete output tree with its "
        "own report (linked).</p>",
        _branch_table(comparison),
        "<h2>Engines and markets side by side</h2>",
        _image(figures["engines"], "Share of women per term in each branch, with 95% intervals") if "engines" in
        figures else "<p>No branch is analysed yet.</p>",
    ]
    if len(comparison.differences):
        changed = int((comparison.differences["excludes_zero"] & (comparison.differences["term"] != ALL_TERMS)).sum())
        sections += [
            "<h2>Differences between engines and between markets</h2>",
            f"<p>Corrected share of women in b minus a, per term and averaged over the terms both have. "
            f"{changed} term difference(s) have an interval that excludes 0 (shaded).</p>",
            _pairs_table(comparison.differences, "differs"),
        ]
    if len(comparison.drift):
        changed = int((comparison.drift["excludes_zero"] & (comparison.drift["term"] != ALL_TERMS)).sum())
        sections += [
            "<h2>Drift between waves</h2>",
            _image(figures["drift"], "Change in the share of women per term between waves, with 95% intervals"),
            f"<p>Later wave minus earlier, same engine and market. {changed} term(s) changed: their interval "
            "excludes 0 (shaded, flagged <i>changed</i>).</p>",
            _pairs_table(comparison.drift, "changed"),
        ]
    if len(comparison.overlap):
        sections += ["<h2>Overlap of the result URLs</h2>",
                     "<p>How many image URLs two branches share for a term (every result, whatever its download "
                     "status); Jaccard = shared / all distinct.</p>", _overlap_table(comparison.overlap)]
    if "rank_bands" in figures:
        sections += ["<h2>Share of women by rank band</h2>",
                     _image(figures["rank_bands"], "Share of women by rank band in each branch, with 95% intervals")]
    sections += [
        "<h2>Method</h2>",
        f"<p>Each branch's shares are its own analysis (<code>analysis/summary.csv</code>). Differences and drift "
        f"have 95% intervals from {options.resamples} bootstrap replicates (seed {options.seed}) that resample each "
        "term's images in both branches and draw the classifier's sensitivity and specificity once per replicate "
        "for both (one classifier made both branches' errors). The averages over terms hold the terms fixed. "
        "An interval that excludes 0 is flagged; with many terms, some will be by chance (5% of unchanged "
        "ones).</p>",
    ]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gimg study report: branches compared</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>Image search by engine, market and wave: the study compared</h1>
{notes}
{"".join(sections)}
<footer>Generated {generated.strftime("%Y-%m-%d %H:%M:%S UTC")} by gimg {escape(__version__)}.
Data: {escape(str(comparison.layout.comparison))}.</footer>
</body>
</html>
"""


def comparison_figures(comparison: StudyComparison) -> dict[str, bytes]:
    """The figures a comparison has data for: engines (side by side), drift, rank_bands."""
    figures = {}
    side = comparison.side_by_side.dropna(subset=["corrected_share"])
    if len(side):
        table = side.rename(columns={"corrected_share": "share", "corrected_low": "low", "corrected_high": "high"})
        figures["engines"] = side_by_side_figure(table.assign(engine_market=_source(table)),
                                                 "Share of women per term")
    drift = comparison.drift[comparison.drift["term"] != ALL_TERMS].dropna(subset=["difference"])
    if len(drift):
        figures["drift"] = drift_figure(drift, "Drift between waves")
    if len(comparison.bands):
        bands = comparison.bands.rename(
            columns={"corrected_share": "share", "corrected_low": "low", "corrected_high": "high"})
        figures["rank_bands"] = rank_bands_figure(bands.assign(engine_market=_source(bands)),
                                                  "Share of women by rank band", hue="engine_market", facet="wave")
    return figures


def _source(table: pd.DataFrame) -> pd.Series:
    """engine_market (or the engine alone) of each row of a table with engine and market columns."""
    market = table["market"].fillna("").astype(str)
    return table["engine"].astype(str) + market.where(market == "", "_" + market)


def write_study_report(comparison: StudyComparison) -> None:
    """Draw the comparison's figures (OUT/comparison/*.png) and write the self-contained report.html."""
    layout = comparison.layout
    figures = comparison_figures(comparison)
    for name, png in figures.items():
        with atomic_path(layout.comparison_figure(name)) as temporary:
            temporary.write_bytes(png)
    html = render_study_report(comparison, figures, datetime.now(timezone.utc))
    with atomic_path(layout.comparison_report) as temporary:
        temporary.write_text(html, encoding="utf-8")
