"""Kay, Matuszek & Munson's (CHI 2015) "stereotype exaggeration" model: a logistic regression of the share of
women in search on the census share, and what it predicts for an occupation with 50% women.

Their "stereotyped" model, `glm(search_p_women ~ I(bls_p_women - 0.5), family = quasibinomial, weights =
search_n)` in R: logit(search share) = intercept + slope * (census share - 0.5), one observation per term
weighted by its number of images, with the quasi-binomial dispersion (Pearson chi-square / (terms - 2)). The
intercept is the logit of the share predicted at 50% women in the census: below 0 means women are
under-represented across occupations. A slope above 4 (the slope of logit(share) at 50% when search mirrors the
census exactly) pulls occupations near 50% away from it, towards their majority gender: stereotype exaggeration
(the paper's own evidence for it is that this model fits better than one linear in logit(census)). Intervals
are Wald intervals on the logit scale with the dispersion and normal quantiles, which reproduce the paper's
published [-0.45, -0.07] and [38.9%, 48.2%].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .correction import LEVEL

IDENTITY_SLOPE = 4.0
_ITERATIONS = 100
_TOLERANCE = 1e-10


def _logistic(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


@dataclass(frozen=True)
class ExaggerationModel:
    """The fitted model: coefficients with intervals, their covariance, dispersion, and the intercept's t-test.

    note says why the model could not be fitted (then every number is NaN).
    """

    intercept: float
    intercept_ci: tuple[float, float]
    slope: float
    slope_ci: tuple[float, float]
    covariance: tuple[tuple[float, float], tuple[float, float]]
    dispersion: float
    intercept_t: float
    intercept_p: float
    degrees_of_freedom: int
    terms: int
    level: float = LEVEL
    note: str = ""

    def share_at(self, census_share: float) -> tuple[float, float, float]:
        """The predicted share of women in search for a census share, with its interval (low, high)."""
        from scipy import stats  # imported on use: `import gimg` stays fast

        offset = census_share - 0.5
        eta = self.intercept + self.slope * offset
        (a, ab), (_, b) = self.covariance
        spread = stats.norm.ppf(0.5 + self.level / 2) * math.sqrt(max(a + 2 * offset * ab + offset**2 * b, 0.0))
        low, point, high = _logistic([eta - spread, eta, eta + spread])
        return float(point), float(low), float(high)

    def slope_sentence(self) -> str:
        """The exaggeration, compared with search that mirrored the census."""
        low, high = self.slope_ci
        verdict = "are" if low > IDENTITY_SLOPE else "are not clearly"
        return (f"slope {self.slope:.2f} on the logit scale ({self.level:.0%} CI {low:.2f} to {high:.2f}), against "
                f"{IDENTITY_SLOPE:g} if search mirrored the census: occupations near 50% women {verdict} pulled "
                "towards their majority gender")

    def sentence(self) -> str:
        """Kay et al.'s summary: what an occupation with 50% women shows in search."""
        point, low, high = self.share_at(0.5)
        return (f"an occupation with 50% women appears with {point:.1%} women in search "
                f"({self.level:.0%} CI {low:.1%} to {high:.1%}; {self.terms} terms)")


def exaggeration_model(
    women: np.ndarray, images: np.ndarray, census: np.ndarray, level: float = LEVEL
) -> ExaggerationModel:
    """Fit logit(women / images) = intercept + slope * (census - 0.5), weighted by images, quasi-binomial.

    women and images are counts per term, census the census shares (fractions). Terms need at least one image.
    """
    from scipy import stats  # imported on use: `import gimg` stays fast

    women, images, census = (np.asarray(values, dtype=float) for values in (women, images, census))
    terms = len(images)
    if terms < 3:
        return _unfitted(terms, level, f"only {terms} term(s): the model needs at least 3")
    if np.ptp(census) == 0:
        return _unfitted(terms, level, "every term has the same census share: the model needs different ones")
    if women.sum() in (0, images.sum()):
        return _unfitted(terms, level, "the images show only women or only men: the model needs both")
    design = np.column_stack([np.ones(terms), census - 0.5])
    coefficients = np.zeros(2)
    for _ in range(_ITERATIONS):  # iteratively reweighted least squares for a binomial GLM with logit link
        share = _logistic(design @ coefficients)
        weight = images * share * (1 - share)
        step = np.linalg.solve(design.T @ (weight[:, None] * design), design.T @ (women - images * share))
        coefficients = coefficients + step
        if np.max(np.abs(step)) < _TOLERANCE:
            break
    else:
        return _unfitted(terms, level, "the model did not converge (shares of 0% or 100% all on one side?)")
    share = _logistic(design @ coefficients)
    variance = images * share * (1 - share)
    degrees = terms - 2
    dispersion = float(np.sum((women - images * share) ** 2 / variance) / degrees)
    covariance = np.linalg.inv(design.T @ (variance[:, None] * design)) * dispersion
    errors = np.sqrt(np.diag(covariance))
    z = stats.norm.ppf(0.5 + level / 2)
    intercept, slope = (float(value) for value in coefficients)
    t = intercept / errors[0]
    return ExaggerationModel(
        intercept=intercept, intercept_ci=(intercept - z * errors[0], intercept + z * errors[0]),
        slope=slope, slope_ci=(slope - z * errors[1], slope + z * errors[1]),
        covariance=tuple(tuple(float(value) for value in row) for row in covariance),
        dispersion=dispersion, intercept_t=float(t), intercept_p=float(2 * stats.t.sf(abs(t), degrees)),
        degrees_of_freedom=degrees, terms=terms, level=level,
    )


def _unfitted(terms: int, level: float, note: str) -> ExaggerationModel:
    nan = math.nan
    return ExaggerationModel(nan, (nan, nan), nan, (nan, nan), ((nan, nan), (nan, nan)), nan, nan, nan,
                             max(terms - 2, 0), terms, level, note)


def share_at_replicates(
    shares: np.ndarray, images: np.ndarray, census: np.ndarray, rng: np.random.Generator, census_share: float = 0.5
) -> np.ndarray:
    """Bootstrap replicates of the model's predicted share of women at census_share.

    shares: each term's share replicates (terms x resamples), e.g. corrected shares that carry the images and the
    classifier's error rates; each replicate also resamples the terms (as gimg.correction.compare_with_census
    does) and fits the model to them, so the interval carries all three. A replicate whose terms share one census
    share, or whose fit does not converge, is NaN.
    """
    shares, images, census = (np.asarray(values, dtype=float) for values in (shares, images, census))
    terms, resamples = shares.shape
    if terms < 3:
        return np.full(resamples, math.nan)
    picks = rng.integers(0, terms, size=(resamples, terms))
    n, x = images[picks], census[picks] - 0.5
    women = shares[picks, np.arange(resamples)[:, None]] * n
    coefficients = np.zeros((resamples, 2))
    step = np.full((resamples, 2), np.inf)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for _ in range(_ITERATIONS):  # the same IRLS as exaggeration_model, for every replicate at once
            share = _logistic(coefficients[:, :1] + coefficients[:, 1:] * x)
            weight = n * share * (1 - share)
            a, b, c = weight.sum(axis=1), (weight * x).sum(axis=1), (weight * x * x).sum(axis=1)
            residual = women - n * share
            g, h = residual.sum(axis=1), (residual * x).sum(axis=1)
            determinant = a * c - b * b
            step = np.column_stack([(c * g - b * h) / determinant, (a * h - b * g) / determinant])
            coefficients = coefficients + step
            if np.nanmax(np.abs(step)) < _TOLERANCE:
                break
        predicted = _logistic(coefficients[:, 0] + coefficients[:, 1] * (census_share - 0.5))
    converged = np.all(np.abs(step) < 1e-6, axis=1)
    return np.where(converged, predicted, math.nan)
