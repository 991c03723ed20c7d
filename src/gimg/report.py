"""The analysis report: one self-contained HTML file (inline CSS, the scatter plot embedded as a data URI)."""

from __future__ import annotations

import base64
import math
from datetime import datetime, timezone
from html import escape
from typing import TYPE_CHECKING

import pandas as pd

from .layout import atomic_path

if TYPE_CHECKING:
    from .analyze import AnalysisResult

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .6rem .9rem; min-width: 9rem; }
.card b { display: block; font-size: 1.4rem; }
.note { background: #fff4d6; border-left: 4px solid #e0a800; padding: .5rem .8rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { border-bottom: 1px solid #eee; padding: .25rem .5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.under { color: #b03030; } td.over { color: #2060b0; }
img { max-width: 100%; height: auto; }
footer { margin-top: 2rem; color: #777; font-size: .8rem; }
"""


def _number(value: float, digits: int = 3) -> str:
    """A float for a person: fixed digits, or n/a for NaN."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _p_value(value: float) -> str:
    """A p-value for a person: scientific notation when tiny."""
    if math.isnan(value):
        return "n/a"
    return f"{value:.1e}" if value < 0.001 else f"{value:.3f}"


def _cards(result: AnalysisResult) -> str:
    """The headline numbers as a row of cards."""
    summary = result.summary
    both = summary.dropna(subset=["share_women", "census_share_women"])
    cards = [
        ("terms analysed", str(len(summary))),
        ("terms with a census share", str(len(summary) - len(result.without_census))),
        ("images", str(int(summary["images"].sum()))),
        ("images with a face", str(int(summary["images_with_face"].sum()))),
        ("Pearson r", f"{_number(result.pearson_r, 2)} <small>(p = {_p_value(result.pearson_p)})</small>"),
        ("Spearman ρ", f"{_number(result.spearman_rho, 2)} <small>(p = {_p_value(result.spearman_p)})</small>"),
        ("mean share of women: search", _number(both["share_women"].mean() if len(both) else math.nan, 2)),
        ("mean share of women: census", _number(both["census_share_women"].mean() if len(both) else math.nan, 2)),
    ]
    return "".join(f'<div class="card">{escape(label)}<b>{value}</b></div>' for label, value in cards)


def _method(result: AnalysisResult) -> str:
    """The method in plain words."""
    models = ", ".join(result.models) or "unknown"
    return (
        "<p>For each search term, gimg counted the images it downloaded (status <code>downloaded</code> in the "
        "term's <code>manifest.csv</code>). In each image with at least one detected face it kept only the "
        "<b>biggest face</b> (largest box area), so that clients, patients or bystanders count less than the person "
        "the picture is about. That face counts as a woman when the classifier's probability of female "
        f"(<code>p_female</code> in <code>Datasets/&lt;term&gt;.csv</code>, classifier: <b>{escape(models)}</b>) "
        f"is at least <b>{result.cutoff:g}</b>. A term's share of women is the number of women divided by the "
        "number of images with a face. The census share is <code>bls_share_women</code> for the same term in "
        f"<code>{escape(result.census.name)}</code>. Pearson's r and Spearman's ρ are computed over the "
        f"{result.n_terms} terms that have both shares.</p>"
    )


def _table(summary: pd.DataFrame) -> str:
    """The per-term table, sorted by difference (search minus census), most under-represented first."""
    ordered = summary.sort_values("difference", na_position="last", kind="stable")
    header = (
        "<tr><th>term</th><th>images</th><th>images with a face</th><th>women</th>"
        "<th>share of women (search)</th><th>share of women (census)</th><th>difference</th></tr>"
    )
    rows = []
    for row in ordered.itertuples():
        tone = "" if math.isnan(row.difference) else ' class="under"' if row.difference < 0 else ' class="over"'
        rows.append(
            f"<tr><td>{escape(row.term)}</td><td>{row.images}</td><td>{row.images_with_face}</td>"
            f"<td>{row.women}</td><td>{_number(row.share_women)}</td><td>{_number(row.census_share_women)}</td>"
            f"<td{tone}>{_number(row.difference)}</td></tr>"
        )
    return f"<table>{header}{''.join(rows)}</table>"


def _term_list(terms: list[str], empty: str) -> str:
    """A comma-separated list of terms, or a sentence when there are none."""
    return f"<p>{', '.join(escape(term) for term in terms)}</p>" if terms else f"<p>{escape(empty)}</p>"


def render_report(result: AnalysisResult, png: bytes, generated: datetime) -> str:
    """The report's HTML text: headline, method, scatter, per-term table, terms without census, provenance."""
    from . import __version__

    image = base64.b64encode(png).decode("ascii")
    note = f'<p class="note">{escape(result.correlation_note)}</p>' if result.correlation_note else ""
    pending = ""
    if result.not_classified:
        pending = "<h2>Terms not classified yet</h2>" + _term_list(result.not_classified, "")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gimg report: image search vs census</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>How image search portrays occupations by gender, compared with the census</h1>
<div class="cards">{_cards(result)}</div>
{note}
<h2>Method</h2>
{_method(result)}
<h2>Search vs census</h2>
<img alt="Scatter plot of the share of women per term: census (x) against search results (y)"
 src="data:image/png;base64,{image}">
<h2>Per term</h2>
<p>Sorted by difference (search share minus census share): terms where search results show fewer women
than the census come first.</p>
{_table(result.summary)}
<h2>Terms without a census share</h2>
{_term_list(result.without_census, "None: every term has a census share.")}
{pending}
<footer>Generated {generated.strftime("%Y-%m-%d %H:%M:%S UTC")} by gimg {escape(__version__)}.
Data: {escape(str(result.summary_csv))}.</footer>
</body>
</html>
"""


def write_report(result: AnalysisResult, png: bytes) -> None:
    """Write the report to result.report_html, atomically."""
    html = render_report(result, png, datetime.now(timezone.utc))
    with atomic_path(result.report_html) as temporary:
        temporary.write_text(html, encoding="utf-8")
