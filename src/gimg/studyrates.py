"""The classifier's error on the study's own faces, from a labelled sample stratified by term and predicted class.

How the numbers are made, in plain words (this is the method section's text).

1. The design. Every counted face of the study falls in one cell: its term, and the class the classifier gave it
   (female when p_female >= cutoff, else male). The cell sizes are known exactly (they are counts of the study).
   The sample takes, in each cell, the first faces of a random order of that cell, and spreads the labels over
   the cells so that each predicted class gets about half of them and, within a class, each term gets a share
   proportional to its size, but at least one label where possible (Huntington-Hill apportionment). Because the
   labels are added one at a time in that order, a larger sample always contains a smaller one.

2. What a cell tells. Within a cell, the share of labelled faces that people called female, male, unclear, or not
   a real person's face (not_a_person and not_a_face together) estimates that share among all the cell's faces.
   Multiplying by the cell's size and adding over cells estimates, for the whole study, how many counted faces
   are women called female (TP), women called male (FN), men called male (TN), men called female (FP), and not a
   person, in each predicted class. A cell without a label borrows the mean of the labelled cells of its class.
   "Unclear" faces are people whose gender the raters could not tell: they are shared out between women and men
   in the proportion of the clear ones of the same predicted class (they are assumed to err like those).

3. The rates. Sensitivity = TP / (TP + FN) and specificity = TN / (TN + FP), over the whole study. The share of
   counted faces that are not a real person, and how often the classifier calls such a face female, come from the
   same totals. The sample's own shares cannot be used instead, for two reasons (both shown by simulation in
   tests/test_studyrates.py):
   - P(female | called female) and P(female | called male) depend on how many women there are. Applied to a
     term with more or fewer women than the study as a whole, they pull its share toward the study's share.
   - Counting sensitivity as (women in the called-female sample) / (women in the whole sample) ignores that the
     sample takes the two predicted classes in equal parts while the study does not. The cell sizes undo that.

4. The correction of a term. A term's raw share p (faces called female / counted faces) mixes three kinds of
   face. With s the share of non-person faces and a the share of those the classifier calls female (both taken
   as the same in every term; the report lists each term's own share so a reader can see where that fails):
       p = (1 - s) * (share_women * Se + (1 - share_women) * (1 - Sp)) + s * a
   so the share of women among the term's real people is
       share_women = ((p - s * a) / (1 - s) + Sp - 1) / (Se + Sp - 1),
   Rogan-Gladen on the raw share once the non-person faces are taken out. It is clipped to [0, 1].
   The report also gives the share of non-person faces among the faces called female and among those called
   male. Those shares are not removed term by term, because they depend on the term's share of women in the
   same way as P(female | called female) does: a term with few women has few faces called female, so non-person
   faces make up more of them. Removing s * a from the raw share avoids that.

5. The uncertainty. Each bootstrap replicate draws every cell's shares from their posterior given the cell's
   labels (a Bayesian bootstrap of the labelled faces within each cell, which keeps the design: cell sizes are
   fixed, cells are drawn independently) and recomputes every rate, so the intervals carry the labels' sampling
   error. Images are resampled per term as for the shipped rates.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, fields

import numpy as np

from .correction import Evaluation, TermEstimate, interval, resample_shares, rogan_gladen
from .errors import GimgError
from .options import AnalyzeOptions, counting

LABELS = ("female", "male", "unclear", "not_a_person", "not_a_face")
PREDICTED = ("female", "male")
_FEMALE, _MALE, _UNCLEAR = 0, 1, 2


@dataclass(frozen=True)
class StudyCell:
    """One term's faces that the classifier put in one class: how many, and the labels its sampled faces got."""

    term: str
    predicted: str
    faces: int
    female: int = 0
    male: int = 0
    unclear: int = 0
    not_a_person: int = 0
    not_a_face: int = 0

    def __post_init__(self) -> None:
        if self.predicted not in PREDICTED:
            raise ValueError(f"predicted class must be one of {', '.join(PREDICTED)}, not {self.predicted!r}")
        if min(self.counts) < 0 or self.faces < 0:
            raise ValueError(f"cell {self.term!r}/{self.predicted}: counts must be 0 or more")

    @property
    def counts(self) -> tuple[int, ...]:
        """Labelled faces per label, in the order of LABELS."""
        return tuple(getattr(self, label) for label in LABELS)

    @property
    def labelled(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class StudyRates:
    """The study's error rates: floats for the point estimate, or one array entry per bootstrap replicate.

    nonperson_share: counted faces that are not a real person's face; nonperson_called_female: the share of those
    the classifier called female; unclear_share: counted faces whose gender raters could not tell;
    nonperson_given_female / _male: the share of non-person faces among the faces called female / male.
    """

    sensitivity: np.ndarray | float
    specificity: np.ndarray | float
    nonperson_share: np.ndarray | float
    nonperson_called_female: np.ndarray | float
    unclear_share: np.ndarray | float
    nonperson_given_female: np.ndarray | float
    nonperson_given_male: np.ndarray | float

    def as_dict(self) -> dict[str, float]:
        """The point values by name (NaN where undefined)."""
        return {field.name: float(getattr(self, field.name)) for field in fields(self)}


def allocation_order(sizes: list[int], predicted: list[str], n: int) -> list[int]:
    """The cells (indices into sizes) that the first n labels go to, one label at a time.

    Each predicted class weighs one half, split over its cells in proportion to their sizes; labels go to the cell
    with the highest weight / sqrt(k (k + 1)) for its k labels so far (Huntington-Hill: every cell gets one before
    any gets two, and adding labels never moves earlier ones). A cell never gets more labels than it has faces.
    """
    if n < 0:
        raise ValueError(f"the sample size must be 0 or more, not {n}")
    class_totals = {kind: sum(size for size, c in zip(sizes, predicted) if c == kind) for kind in set(predicted)}
    weights = [size / class_totals[kind] / 2 if size else 0.0 for size, kind in zip(sizes, predicted)]
    heap = [(-math.inf, -weight, cell) for cell, weight in enumerate(weights) if sizes[cell] > 0]
    heapq.heapify(heap)
    taken = [0] * len(sizes)
    order = []
    while heap and len(order) < n:
        _, negative_weight, cell = heapq.heappop(heap)
        order.append(cell)
        taken[cell] += 1
        if taken[cell] < sizes[cell]:
            k = taken[cell]
            heapq.heappush(heap, (negative_weight / math.sqrt(k * (k + 1)), negative_weight, cell))
    return order


def cells_from_study(study: dict) -> list[StudyCell]:
    """The cells recorded in an evaluation file's study block (Evaluation.study["cells"])."""
    try:
        return [StudyCell(**cell) for cell in study["cells"]]
    except (KeyError, TypeError) as error:
        raise ValueError(f"the evaluation's study block has no valid cells ({error}): rerun `gimg label report`") from None


def _cell_arrays(cells: list[StudyCell]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell sizes, a predicted-female mask and the label counts (cells x LABELS)."""
    sizes = np.array([cell.faces for cell in cells], dtype=float)
    called_female = np.array([cell.predicted == "female" for cell in cells])
    counts = np.array([cell.counts for cell in cells], dtype=float).reshape(len(cells), len(LABELS))
    return sizes, called_female, counts


def _rates_from_shares(sizes: np.ndarray, called_female: np.ndarray, shares: np.ndarray) -> StudyRates:
    """Study rates from each cell's label shares (..., cells, LABELS; NaN rows are cells without a label)."""
    labelled = ~np.isnan(shares[..., 0])
    totals = {}
    for kind, mask in (("female", called_female), ("male", ~called_female)):
        in_class = labelled & mask
        covered = np.where(in_class, sizes, 0.0).sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = sizes[mask].sum() / covered  # cells without a label take the labelled cells' mean
        weighted = np.where(in_class[..., None], shares * sizes[:, None], 0.0).sum(axis=-2)
        totals[kind] = weighted * np.asarray(scale)[..., None] if sizes[mask].sum() else np.zeros_like(weighted)
    with np.errstate(invalid="ignore", divide="ignore"):
        people = {}
        for kind, total in totals.items():
            clear = total[..., _FEMALE] + total[..., _MALE]
            spread = np.where(total[..., _UNCLEAR] > 0, 1 + total[..., _UNCLEAR] / clear, 1.0)
            people[kind] = (total[..., _FEMALE] * spread, total[..., _MALE] * spread)
        (true_positive, false_positive), (false_negative, true_negative) = people["female"], people["male"]
        nonperson = {kind: total[..., 3] + total[..., 4] for kind, total in totals.items()}
        all_nonperson = nonperson["female"] + nonperson["male"]
        faces = sizes.sum()
        return StudyRates(
            sensitivity=true_positive / (true_positive + false_negative),
            specificity=true_negative / (true_negative + false_positive),
            nonperson_share=all_nonperson / faces,
            nonperson_called_female=np.where(all_nonperson > 0, nonperson["female"] / all_nonperson, 0.0),
            unclear_share=(totals["female"][..., _UNCLEAR] + totals["male"][..., _UNCLEAR]) / faces,
            nonperson_given_female=nonperson["female"] / sizes[called_female].sum(),
            nonperson_given_male=nonperson["male"] / sizes[~called_female].sum(),
        )


def _checked(cells: list[StudyCell]) -> list[StudyCell]:
    """The cells, or a one-line instruction when a predicted class has faces but no labelled face."""
    for kind in PREDICTED:
        faces = sum(cell.faces for cell in cells if cell.predicted == kind)
        labelled = sum(cell.labelled for cell in cells if cell.predicted == kind)
        if faces and not labelled:
            raise ValueError(f"no labelled face among the {faces} the classifier called {kind}: label more of the "
                             "sample (it takes both classes in turn)")
    if not any(cell.faces for cell in cells):
        raise ValueError("the study has no counted faces to estimate error rates on")
    return cells


def study_rates(cells: list[StudyCell]) -> StudyRates:
    """The point estimate of the study's rates from its cells (design-weighted; see the module docstring)."""
    sizes, called_female, counts = _cell_arrays(_checked(cells))
    labelled = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(labelled > 0, counts / labelled, np.nan)
    rates = _rates_from_shares(sizes, called_female, shares)
    return StudyRates(**{name: float(value) for name, value in vars(rates).items()})


def draw_study_rates(cells: list[StudyCell], resamples: int, rng: np.random.Generator,
                     only: str | None = None) -> StudyRates:
    """The study's rates per bootstrap replicate: each cell's label shares drawn from a Bayesian bootstrap.

    Within a cell, Dirichlet(1, ..., 1) weights over its labelled faces give Dirichlet(counts) shares per label;
    cell sizes stay fixed. only="female" or "male" redraws only that predicted class (the other keeps its point
    shares): how much of a rate's uncertainty each class contributes.
    """
    sizes, called_female, counts = _cell_arrays(_checked(cells))
    draws = rng.gamma(np.broadcast_to(counts, (resamples, *counts.shape)))
    labelled = draws.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(labelled > 0, draws / labelled, np.nan)
        if only is not None:
            fixed = called_female != (only == "female")
            point = np.where(counts.sum(axis=1, keepdims=True) > 0, counts / counts.sum(axis=1, keepdims=True),
                             np.nan)
            shares[:, fixed] = point[fixed]
    return _rates_from_shares(sizes, called_female, shares)


def remove_nonpersons(raw: np.ndarray | float, rates: StudyRates) -> np.ndarray | float:
    """The share called female among a term's real people: (raw - s a) / (1 - s), s and a from the rates."""
    share, called_female = np.asarray(rates.nonperson_share), np.asarray(rates.nonperson_called_female)
    return (np.asarray(raw) - share * called_female) / (1 - share)


def correct_with_study(raw: np.ndarray | float, rates: StudyRates) -> np.ndarray | float:
    """A term's share of women among its real people, from its raw share (unclipped; see the module docstring)."""
    return rogan_gladen(remove_nonpersons(raw, rates), rates.sensitivity, rates.specificity)


def estimate_term_with_study(
    women: np.ndarray, faces: np.ndarray, draws: StudyRates, point: StudyRates, rng: np.random.Generator,
) -> tuple[TermEstimate, np.ndarray]:
    """correction.estimate_term with the study's rates: a term's estimate and its corrected-share replicates.

    women, faces: counted per image (analyze.per_image); draws: draw_study_rates(...) shared by every term of
    one analysis; point: study_rates(...).
    """
    resamples = len(np.atleast_1d(draws.sensitivity))
    total = float(np.sum(faces))
    if total == 0:
        nan = math.nan
        return TermEstimate(nan, nan, nan, nan, nan, nan, False), np.full(resamples, nan)
    share = float(np.sum(women)) / total
    unclipped = float(correct_with_study(share, point))
    replicates = resample_shares(women, faces, resamples, rng)
    corrected = np.clip(correct_with_study(replicates, draws), 0, 1)
    estimate = TermEstimate(share, *interval(replicates), min(max(unclipped, 0.0), 1.0), *interval(corrected),
                            clipped=not 0 <= unclipped <= 1)
    return estimate, corrected


class StudyCorrection:
    """The correction with a study evaluation's own rates (registry.CORRECTIONS["study"]): its cells' rates drawn per
    replicate with the design, non-person faces taken out as a third class, then Rogan-Gladen."""

    def __init__(self, evaluation: Evaluation, options: AnalyzeOptions, rng: np.random.Generator) -> None:
        measured = evaluation.study.get("counting")
        if measured is not None and measured != counting(options):
            raise GimgError(
                f"the study's labelled sample was drawn from faces counted with {_described(measured)}, but this "
                f"analysis counts {_described(counting(options))}: analyze with the sample's options, or pass "
                "--evaluation to correct with other rates"
            )
        self.cells = cells_from_study(evaluation.study)
        self.point = study_rates(self.cells)
        self.draws = draw_study_rates(self.cells, options.resamples, rng)

    def estimate(
        self, women: np.ndarray, faces: np.ndarray, rng: np.random.Generator
    ) -> tuple[TermEstimate, np.ndarray]:
        return estimate_term_with_study(women, faces, self.draws, self.point, rng)

    def notes(self, counted: dict[str, tuple[int, int]]) -> list[str]:
        """Notes on a rate no labelled face showed an error of (its interval has no width), and on terms whose counted
        faces differ from the cells the sample was drawn from."""
        notes = [f"no labelled face shows an error of the {rate} ({getattr(self.point, rate):.3f}), so its interval "
                 "has no width and the shares' intervals leave out its uncertainty: label more faces"
                 for rate in ("sensitivity", "specificity") if np.nanstd(getattr(self.draws, rate)) == 0]
        sampled: dict[str, tuple[int, int]] = {}
        for cell in self.cells:
            female, total = sampled.get(cell.term, (0, 0))
            sampled[cell.term] = (female + cell.faces * (cell.predicted == "female"), total + cell.faces)
        changed = [term for term in dict.fromkeys([*sampled, *counted]) if sampled.get(term) != counted.get(term)]
        if changed:
            notes.append(f"the study's labelled sample was drawn when {len(changed)} term(s) had other counted faces "
                         f"than now ({', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''}): its rates "
                         "describe the study as it was; move validation/ away, then draw and label a new sample")
        return notes


def _described(options: dict) -> str:
    return ", ".join(f"{name} {value}" for name, value in options.items())


def labels_to_halve(cells: list[StudyCell], resamples: int, rng: np.random.Generator) -> dict[str, dict]:
    """For sensitivity and specificity: how many more labels, per predicted class, would halve the interval's width.

    Each class's share of a rate's variance comes from redrawing only that class; a class's part shrinks as
    1 / labels. Halving the width needs a quarter of the variance; the extra labels go where they buy the most
    (n_c proportional to sqrt(variance part x labels), never fewer than now).
    """
    labelled = {kind: sum(cell.labelled for cell in cells if cell.predicted == kind) for kind in PREDICTED}
    parts = {kind: draw_study_rates(cells, resamples, rng, only=kind) for kind in PREDICTED}
    plan = {}
    for rate in ("sensitivity", "specificity"):
        variance = {kind: float(np.nanvar(getattr(parts[kind], rate))) for kind in PREDICTED}
        plan[rate] = _cheapest_quartering(variance, labelled)
    return plan


def _cheapest_quartering(variance: dict[str, float], labelled: dict[str, int]) -> dict:
    """Labels per class that bring sum(variance_c * n_c / m_c) to a quarter with the fewest labels, m_c >= n_c."""
    scale = {kind: variance[kind] * labelled[kind] for kind in variance}  # variance_c = scale_c / labels_c
    target = sum(variance.values()) / 4
    fixed: set[str] = set()
    while True:
        free = [kind for kind in scale if kind not in fixed and scale[kind] > 0]
        remaining = target - sum(scale[kind] / labelled[kind] for kind in fixed)
        if not free or remaining <= 0:
            needed = {kind: labelled[kind] for kind in scale}
            break
        root = sum(math.sqrt(scale[kind]) for kind in free)
        needed = {kind: (math.sqrt(scale[kind]) * root / remaining if kind in free else labelled[kind])
                  for kind in scale}
        short = [kind for kind in free if needed[kind] < labelled[kind]]
        if not short:
            break
        fixed.update(short)
    more = {kind: max(0, math.ceil(needed[kind] - labelled[kind])) for kind in scale}
    return {"more_labels": sum(more.values()), "by_predicted_class": more}
