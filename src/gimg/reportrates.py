"""The report's words on the error rates a correction used: the study's own (with the raters' agreement), or a warning
that they were measured on another kind of image."""

from __future__ import annotations

import math
from html import escape

from . import studyrates
from .analyze import AnalysisResult

# The figures of issue 10: the default model on a public set of adult faces in the wild, not used by gimg.
WILD_ACCURACY, WILD_SENSITIVITY, WILD_SPECIFICITY = 0.860, 0.816, 0.905
WILD_TERM = "a term with 95% women came out at 77% [64%, 89%], an interval that misses the truth"

_DRAWS = {
    "counts": "draws the sensitivity and specificity from their Beta posteriors given the evaluation's counts "
              "(uniform prior)",
    "study": "redraws the study's error rates from its labelled sample (a Bayesian bootstrap of the labelled faces "
             "within each term and predicted class, the cells' sizes fixed)",
}
_RATES = (
    ("sensitivity", "sensitivity: women the classifier called women"),
    ("specificity", "specificity: men the classifier called men"),
    ("nonperson_share", "counted faces that are not a real person's face (drawings, statues, screens, no face)"),
    ("nonperson_called_female", "of those, the share the classifier called women"),
    ("unclear_share", "counted faces whose gender the raters could not tell"),
)


def _value(value, digits: int = 3) -> str:
    """A number of the evaluation file (null there when undefined) for a person."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _percent(share):
    return None if share is None else 100 * share


def _interval(pair) -> str:
    if not pair or any(value is None for value in pair):
        return ""
    return f" [{pair[0]:.3f}, {pair[1]:.3f}]"


def rate_draws(result: AnalysisResult) -> str:
    """How each bootstrap replicate draws the error rates, for the method's interval paragraph."""
    return _DRAWS[result.evaluation.kind if result.evaluation else "counts"]


def rates_warning(result: AnalysisResult) -> str:
    """A visible warning when the shares are corrected with rates measured on other images than the study's own."""
    evaluation = result.evaluation
    if evaluation is None or evaluation.kind == "study":
        return ""
    return (
        '<div class="warning"><b>The error rates come from another kind of image.</b> The shares are corrected with '
        f"the classifier's error rates on {escape(evaluation.dataset)}, not on this study's images, and how far "
        "those rates are off on web images is unknown. They can be far off: on a public set of adult faces "
        f"photographed in the wild, the default model's accuracy was {WILD_ACCURACY:.3f} (sensitivity "
        f"{WILD_SENSITIVITY:.3f}, specificity {WILD_SPECIFICITY:.3f}, against about 0.96 on UTKFace), and "
        f"corrected with the UTKFace rates, {WILD_TERM}. To correct with this study's own rates, have people label a "
        "few hundred of its faces (<code>gimg label sample</code>, <code>gimg label serve</code> or "
        "<code>gimg label import</code>) and analyze again.</div>"
    )


def _agreement(agreement: dict) -> str:
    names = ", ".join(escape(name) for name in agreement.get("rater_names", []))
    text = (
        f"<p><b>Agreement between raters:</b> {agreement['raters']} rater(s){f' ({names})' if names else ''} labelled "
        f"{agreement['items']} faces, {agreement['items_with_two_or_more']} of them by two raters or more. "
        f"Krippendorff's α (nominal) is <b>{_value(agreement['alpha'])}</b> over the five answers and "
        f"{_value(agreement['alpha_gender'])} over female and male alone; raters gave the same answer to "
        f"{_value(_percent(agreement['percent_agreement']), 0)}% of the faces they shared. Each face counts with its "
        "majority answer (a tie counts as unclear)."
    )
    return text + (f" {escape(agreement['note'])}." if agreement.get("note") else "") + "</p>"


def _rates_table(study: dict) -> str:
    rows = "".join(
        f"<tr><td>{escape(words)}</td><td>{_value(study[name])}{_interval(study['intervals'].get(name))}</td></tr>"
        for name, words in _RATES
    )
    return f"<table><tr><th>rate on this study's counted faces</th><th>estimate [95% CI]</th></tr>{rows}</table>"


def _per_term(study: dict) -> str:
    header = ("<tr><th>term</th><th>counted faces</th><th>labelled</th><th>not a person</th><th>unclear</th>"
              "<th>sensitivity</th><th>specificity</th></tr>")
    rows = "".join(
        f"<tr><td>{escape(str(row['term']))}</td><td>{row['faces']}</td><td>{row['labelled']}</td>"
        f"<td>{_value(row['nonperson_share'])}</td><td>{_value(row['unclear_share'])}</td>"
        f"<td>{_value(row['sensitivity'])}</td><td>{_value(row['specificity'])}</td></tr>"
        for row in study["per_term"]
    )
    return (f"<p>Per term (its own rates only where it has at least 10 labelled faces in each predicted class; the "
            f"correction assumes the non-person share is the same in every term):</p><table>{header}{rows}</table>")


def _method_text() -> str:
    """The estimator in plain words: the numbered paragraphs of studyrates' docstring, as HTML."""
    text = studyrates.__doc__.split("\n\n", 2)[2]
    paragraphs = []
    for block in text.strip().split("\n\n"):
        parts = []
        for line in block.splitlines():
            stripped = escape(line.strip())
            if line.startswith("       "):
                parts.append(f"<br><code>{stripped}</code><br>")
            elif line.lstrip().startswith("- "):
                parts.append(f"<br>• {stripped[2:]}")
            else:
                parts.append(stripped)
        paragraphs.append(f"<p>{' '.join(parts)}</p>")
    return "".join(paragraphs)


def _more_labels(study: dict) -> str:
    """How many more labels would halve each rate's interval, or why that cannot be told."""
    sentences = []
    for rate in ("sensitivity", "specificity"):
        low, high = study["intervals"][rate]
        more = study["labels_to_halve_interval_width"][rate]["more_labels"]
        sentences.append(
            f"about {more} more labels would halve the width of the {rate}'s interval"
            if low is not None and high > low else
            f"no labelled face showed an error of the {rate}, so its interval has no width and the labels cannot "
            "tell how many more would narrow it"
        )
    text = "; ".join(sentences)
    return f"<p>{text[0].upper()}{text[1:]}.</p>"


def study_words(result: AnalysisResult) -> str:
    """The method's paragraphs on rates measured on the study's own labelled faces."""
    evaluation = result.evaluation
    study = evaluation.study
    by_class = study["labelled_by_predicted_class"]
    return (
        f"<p>The classifier's errors were measured on <b>this study's own faces</b>: people labelled "
        f"{study['labelled']} of its {study['faces']} counted faces ({by_class['female']} that the classifier called "
        f"women, {by_class['male']} that it called men), a sample stratified by term and predicted class (model "
        f"{escape(evaluation.model)}; cutoff {evaluation.cutoff:g}). Source: {escape(result.evaluation_source)}.</p>"
        + _agreement(study["agreement"])
        + _rates_table(study)
        + _more_labels(study)
        + _per_term(study)
        + "<h3>How the study's rates are estimated and used</h3>"
        + _method_text()
    )
