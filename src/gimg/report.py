"""The analysis report: one self-contained HTML file (inline CSS; the scatter plot and face strips as data URIs)."""

from __future__ import annotations

import base64
import math
from datetime import datetime, timezone
from html import escape

import pandas as pd

from . import __version__
from .analyze import STRIP_FACES, AnalysisResult
from .figures import plot_scatter, thumbnail
from .layout import atomic_path
from .literature import Literature
from .plots import rank_bands_figure
from .reportrates import rate_draws, rates_warning, study_words

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .6rem .9rem; min-width: 9rem; }
.card b { display: block; font-size: 1.4rem; }
.note { background: #fff4d6; border-left: 4px solid #e0a800; padding: .5rem .8rem; }
.warning { background: #fde2e0; border-left: 6px solid #c0392b; padding: .6rem .9rem; margin: 1rem 0; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { border-bottom: 1px solid #eee; padding: .25rem .5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.under { color: #b03030; } td.over { color: #2060b0; }
img { max-width: 100%; height: auto; }
.strip img { height: 64px; width: auto; margin: 1px; border: 3px solid #4a7fc0; }
.strip img.woman { border-color: #e08a00; }
h3 { font-size: 1rem; margin: 1rem 0 .3rem; }
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


def _interval(pair: tuple[float, float], digits: int = 2) -> str:
    """A confidence interval for a person: [low, high]."""
    return "" if any(math.isnan(value) for value in pair) else f" [{pair[0]:.{digits}f}, {pair[1]:.{digits}f}]"


def _cards(result: AnalysisResult) -> str:
    """The headline numbers as a row of cards."""
    summary = result.summary
    rates = "none"
    if result.evaluation is not None:
        rates = f"{result.evaluation.sensitivity:.3f} / {result.evaluation.specificity:.3f}"
    cards = [
        ("terms analysed", str(len(summary))),
        ("terms compared with the census", str(result.n_terms)),
        ("images", str(int(summary["images"].sum()))),
        ("faces counted", str(int(summary["faces"].sum()))),
        ("Pearson r", f"{_number(result.pearson_r, 2)}<small>{_interval(result.pearson_ci)} "
                      f"(p = {_p_value(result.pearson_p)})</small>"),
        ("Spearman ρ", f"{_number(result.spearman_rho, 2)}<small>{_interval(result.spearman_ci)} "
                       f"(p = {_p_value(result.spearman_p)})</small>"),
        ("mean difference, search − census",
         f"{_number(result.mean_difference, 3)}<small>{_interval(result.mean_difference_ci, 3)}</small>"),
        ("sensitivity / specificity (female)", rates),
    ]
    return "".join(f'<div class="card">{escape(label)}<b>{value}</b></div>' for label, value in cards)


_POLICY_WORDS = {
    "biggest": "In each image it kept only the <b>biggest face</b> (largest box area), so that clients, patients or "
               "bystanders count less than the person the picture is about (the rule of the original study).",
    "all": "It counted <b>all faces</b> of each image.",
    "single": "It kept only images with <b>exactly one face</b>, as Kay, Matuszek and Munson (2015) did.",
}


def _evaluation_words(result: AnalysisResult) -> str:
    """The error rates used for the correction and where they come from."""
    evaluation = result.evaluation
    if evaluation is None:
        return ("<p><b>No correction:</b> no evaluation of this classifier was available, so the corrected shares "
                "equal the raw shares and their intervals carry only the sampling of images.</p>")
    if evaluation.kind == "study":
        return study_words(result)
    return (
        f"<p>The classifier's errors were measured on <b>{escape(evaluation.dataset)}</b> ({evaluation.n} labelled "
        f"faces; model {escape(evaluation.model)}, {escape(evaluation.model_version)}; cutoff {evaluation.cutoff:g}): "
        f"of {evaluation.tp + evaluation.fn} women it called {evaluation.tp} women (sensitivity "
        f"{evaluation.sensitivity:.3f}); of {evaluation.tn + evaluation.fp} men it called {evaluation.tn} men "
        f"(specificity {evaluation.specificity:.3f}). Source: {escape(result.evaluation_source)}. "
        f"Procedure: {escape(evaluation.provenance)}</p>"
        "<p>A classifier that errs turns a true share <i>p</i> into an observed share of <i>p</i>·sensitivity "
        "+ (1 − <i>p</i>)·(1 − specificity): it pulls every share towards the middle. The <b>corrected share</b> "
        "undoes this (Rogan and Gladen, 1978): (raw share + specificity − 1) / (sensitivity + specificity − 1). "
        "When the result falls outside [0, 1] it is clipped to the nearest bound, and the table marks it with *.</p>"
    )


def _method(result: AnalysisResult) -> str:
    """The method in plain words: policy, cutoff, model, correction, bootstrap, comparison."""
    options = result.options
    models = ", ".join(result.models) or "unknown"
    size = ""
    if options.min_box:
        size = f"Faces whose detected box has a side under <b>{options.min_box} px</b> were ignored. "
    return (
        "<p>For each search term, gimg counted the images it downloaded (status <code>downloaded</code> in the "
        f"term's <code>manifest.csv</code>). {size}{_POLICY_WORDS[options.policy]} A counted face is a woman when "
        f"the classifier's probability of female (<code>p_female</code>, classifier <b>{escape(models)}</b>) is at "
        f"least <b>{options.cutoff:g}</b>. A term's <b>raw share</b> is the number of women divided by the number "
        "of counted faces.</p>"
        + _evaluation_words(result)
        + f"<p><b>95% intervals</b> come from {options.resamples} bootstrap replicates (seed {options.seed}). Each "
        f"replicate resamples a term's images with replacement and, at the same time, {rate_draws(result)}, one "
        "draw shared by all terms; the interval is the 2.5th to 97.5th percentile. So the intervals carry both the "
        "sampling of images and the uncertainty of the error rates. A term whose counted faces are all called women "
        "(or all men) gets no spread from resampling its images, so its interval shows only the error rates' "
        "uncertainty: read it with its number of faces.</p>"
        f"<p>The census share is <code>bls_share_women</code> for the same term in "
        f"<code>{escape(result.census)}</code>. Terms with fewer than <b>{options.min_faces} counted faces</b> "
        f"are flagged and left out of the comparison. Over the {result.n_terms} remaining terms with a census share, "
        "gimg reports Pearson's r and Spearman's ρ of corrected search shares with census shares, and the <b>mean "
        "signed difference</b> (search − census; Kay et al. 2015's measure of exaggeration: negative when search "
        "shows fewer women than work in the occupation). Their intervals resample the terms and, within each "
        "replicate, use that replicate's corrected shares.</p>"
    )


def _table(summary: pd.DataFrame) -> str:
    """The per-term table, sorted by corrected difference (search minus census), most under-represented first."""
    ordered = summary.sort_values("corrected_difference", na_position="last", kind="stable")
    header = (
        "<tr><th>term</th><th>images</th><th>faces</th><th>women</th><th>raw share [95% CI]</th>"
        "<th>corrected share [95% CI]</th><th>census share</th><th>difference</th><th>flag</th></tr>"
    )
    rows = []
    for row in ordered.itertuples():
        difference = row.corrected_difference
        tone = "" if math.isnan(difference) else ' class="under"' if difference < 0 else ' class="over"'
        clipped = "*" if row.clipped else ""
        flag = "too few faces" if row.too_few_faces else ""
        rows.append(
            f"<tr><td>{escape(row.term)}</td><td>{row.images}</td><td>{row.faces}</td><td>{row.women}</td>"
            f"<td>{_number(row.share_women)}{_interval((row.share_low, row.share_high))}</td>"
            f"<td>{_number(row.corrected_share)}{clipped}{_interval((row.corrected_low, row.corrected_high))}</td>"
            f"<td>{_number(row.census_share_women)}</td><td{tone}>{_number(difference)}</td><td>{flag}</td></tr>"
        )
    return f"<table>{header}{''.join(rows)}</table>"


def _strips(result: AnalysisResult) -> str:
    """For each term, its counted faces as embedded thumbnails ordered by p_female (women framed in orange)."""
    ordered = result.summary.sort_values("corrected_difference", na_position="last", kind="stable")
    sections = []
    for term, counted in zip(ordered["term"], ordered["faces"]):
        faces = result.strips.get(term, [])
        images = []
        for path, p_female in faces:
            data = thumbnail(path)
            if data is not None:
                tone = "woman" if p_female >= result.options.cutoff else "man"
                images.append(f'<img class="{tone}" title="p_female {p_female:.2f}" alt="face, p_female '
                              f'{p_female:.2f}" src="data:image/jpeg;base64,{data}">')
        body = "".join(images) if images else "<span>no face crops to show</span>"
        heading = f"{escape(term)} <small>({len(images)} of {counted} counted faces)</small>"
        sections.append(f'<div class="strip"><h3>{heading}</h3>{body}</div>')
    return "".join(sections)


def _term_list(terms: list[str], empty: str) -> str:
    """A comma-separated list of terms, or a sentence when there are none."""
    return f"<p>{', '.join(escape(term) for term in terms)}</p>" if terms else f"<p>{escape(empty)}</p>"


def _image(png: bytes, alt: str) -> str:
    """An embedded PNG."""
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _rank_sections(literature: Literature, bands_png: bytes, coded: bool) -> str:
    """Where women appear in the ranking, and Kay et al.'s exaggeration model."""
    bands = "".join(
        f'<tr><th scope="row">{escape(row.band)}</th><td>{row.terms}</td><td>{row.images}</td><td>{row.women}</td>'
        f"<td>{_number(row.share_women)}{_interval((row.share_low, row.share_high))}</td>"
        f"<td>{_number(row.corrected_share)}{_interval((row.corrected_low, row.corrected_high))}</td></tr>"
        for row in literature.bands.itertuples())
    correction = (
        "The corrected share of a band undoes the classifier's errors as a term's does (the same error rates, drawn "
        "anew in each bootstrap replicate): the correction holds for any set of faces the classifier errs on at "
        "its measured rates, a band of ranks as much as a term." if literature.corrected else
        "No correction: the genders were coded by people, or no evaluation of the classifier was available, so the "
        "corrected column repeats the raw one.")
    weighted, test, model = literature.weighted, literature.rank_test, literature.exaggeration
    first = literature.ranks["first_woman_rank"]
    terms = "".join(
        f'<tr><th scope="row">{escape(row.term)}</th><td>{row.images}</td><td>{_number(row.share_women)}</td>'
        f"<td>{_number(row.weighted_share)}</td><td>{_number(row.first_woman_rank, 0)}</td>"
        f"<td>{_number(row.women_mean_rank, 1)}</td><td>{_number(row.men_mean_rank, 1)}</td></tr>"
        for row in literature.ranks.itertuples())
    slope = "" if model.note else f"<p>The model's {escape(model.slope_sentence())}.</p>"
    pooling = "A band's share pools its images over terms; intervals resample images within terms."
    counted = (f"<p>Each coded image counts once. {pooling} {correction}</p>" if coded else
               f"<p>Each image counts once, with the face the policy counts (under the policy <code>all</code>, its "
               f"biggest). {pooling} {correction} The rank statistics below use the genders as called, without "
               "correction: errors that do not depend on rank leave the test valid but weaken it, and pull rank "
               "differences towards 0.</p>")
    return (
        "<h2>Where women appear in the ranking</h2>"
        + _image(bands_png, "Share of women by rank band, with 95% intervals")
        + "<table><tr><th>rank band</th><th>terms</th><th>images</th><th>women</th><th>raw share [95% CI]</th>"
        f"<th>corrected share [95% CI]</th></tr>{bands}</table>"
        + counted
        + f"<p><b>Rank-weighted share</b> (weights {escape(weighted.weighting)}: attention falls with position): "
        f"{_number(weighted.weighted)}{_interval(weighted.weighted_ci)} against {_number(weighted.share)}"
        f"{_interval(weighted.share_ci)} unweighted, a gap of {_number(weighted.gap)}{_interval(weighted.gap_ci)} "
        "(negative: women are rarer near the top).</p>"
        f"<p><b>First woman</b>: the first result in {int((first == 1).sum())} of {len(first)} terms; median rank "
        f"{_number(float(first.median()), 0)}; no woman at all in {int(first.isna().sum())} term(s).</p>"
        f"<p><b>Do women rank lower than men?</b> (Pew Research Center 2018): {escape(test.sentence())}; "
        f"{test.permutations} permutations of the genders within terms, every term weighted alike. Weighting each "
        f"term by its size (n<sub>women</sub>·n<sub>men</sub>/n), the difference is {_number(test.pooled_difference, 1)} "
        f"places, and van Elteren's stratified rank-sum test gives z = {_number(test.van_elteren_z, 2)}, p = "
        f"{_p_value(test.van_elteren_p)}. Both are reported: they weight the terms differently, and can "
        "disagree.</p>"
        f"<table><tr><th>term</th><th>images</th><th>share</th><th>rank-weighted share</th><th>first woman</th>"
        f"<th>women's mean rank</th><th>men's mean rank</th></tr>{terms}</table>"
        "<h2>Stereotype exaggeration (Kay et al. 2015)</h2>"
        f"<p>A logistic regression of each compared term's share of women in search on its census share "
        f"(quasi-binomial, weighted by images or counted faces): <b>{escape(literature.exaggeration_sentence())}</b>."
        f"</p>{slope}"
    )


def _faces_section(result: AnalysisResult) -> str:
    """Each term's strip of counted faces, with its explanation."""
    return (
        f"<h2>The faces of each term</h2>\n<p>Up to {STRIP_FACES} counted faces per term, spread over the term's "
        "faces ordered by p_female (left: most male, right: most female); a face framed in orange counts as a "
        f"woman. Hover a face to see its p_female.</p>\n{_strips(result)}"
    )


def _coded_method(result: AnalysisResult) -> str:
    """The method of a study coded by people, in plain words."""
    options = result.options
    return (
        "<p>The genders were <b>coded by people</b> (one row per image: term, rank, woman or man), so there is no "
        "classifier and no correction: a term's share is the number of images coded woman divided by the number "
        f"coded. <b>95% intervals</b> come from {options.resamples} bootstrap replicates (seed {options.seed}) that "
        f"resample each term's images. The census share is <code>bls_share_women</code> in "
        f"<code>{escape(result.census)}</code>; terms with fewer than <b>{options.min_faces}</b> coded images are left "
        f"out of the comparison. Over the {result.n_terms} compared terms, gimg reports Pearson's r and Spearman's ρ "
        "and the mean signed difference (search − census), with intervals that resample terms and images.</p>"
    )


def render_report(result: AnalysisResult, png: bytes, generated: datetime, bands_png: bytes | None = None) -> str:
    """The report's HTML text: headline, method, scatter, per-term table, ranks, face strips, provenance."""
    image = base64.b64encode(png).decode("ascii")
    notes = [note for note in (result.correlation_note, *result.notes) if note]
    note = "".join(f'<p class="note">{escape(text)}</p>' for text in notes)
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
{rates_warning(result)}
{note}
<h2>Method</h2>
{_coded_method(result) if result.coded else _method(result)}
<h2>Search vs census</h2>
<img alt="Scatter plot of the share of women per term: census (x) against corrected search share (y)"
 src="data:image/png;base64,{image}">
<h2>Per term</h2>
<p>Sorted by difference (corrected search share minus census share): terms where search results show fewer women
than the census come first. * marks a corrected share clipped to [0, 1].</p>
{_table(result.summary)}
{_rank_sections(result.literature, bands_png, result.coded) if result.literature is not None and bands_png else ""}
{"" if result.coded else _faces_section(result)}
<h2>Terms without a census share</h2>
{_term_list(result.without_census, "None: every term has a census share.")}
{pending}
<footer>Generated {generated.strftime("%Y-%m-%d %H:%M:%S UTC")} by gimg {escape(__version__)}.
Data: {escape(str(result.layout.summary_csv))}.</footer>
</body>
</html>
"""


def write_report(result: AnalysisResult) -> None:
    """Draw the scatter plot and write analysis/scatter.png and the self-contained report.html, atomically."""
    png = plot_scatter(result)
    layout = result.layout
    with atomic_path(layout.scatter_png) as temporary:
        temporary.write_bytes(png)
    bands_png = None
    if result.literature is not None and len(result.literature.bands):
        bands = result.literature.bands.rename(
            columns={"corrected_share": "share", "corrected_low": "low", "corrected_high": "high"}
        )[["band", "share", "low", "high"]]
        title = "Share of women by rank band" + (", corrected" if result.literature.corrected else "")
        bands_png = rank_bands_figure(bands, title)
        with atomic_path(layout.rank_bands_png) as temporary:
            temporary.write_bytes(bands_png)
    html = render_report(result, png, datetime.now(timezone.utc), bands_png)
    with atomic_path(layout.report_html) as temporary:
        temporary.write_text(html, encoding="utf-8")
