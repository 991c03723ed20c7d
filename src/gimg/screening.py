"""Terms whose results look unlike the rest of the study: far fewer images with a face than the study's median.

An engine that recognises a scripted client may serve it a decoy page (stock graphics, unrelated images) instead
of the results people see; such a term's images hold far fewer faces than the other terms'. Pure pandas/scipy.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

SPARSE_COLUMNS = ["term", "images", "images_with_face", "face_rate", "median_rate", "p_value", "sparse"]


def flag_sparse_terms(
    terms: pd.DataFrame, *, ratio: float = 0.5, level: float = 0.01, min_images: int = 10
) -> pd.DataFrame:
    """Flag the terms whose share of images with a face is below `ratio` times the study's median share.

    terms: one row per term with term, images (downloaded) and images_with_face (e.g. analyze's summary). A term
    is flagged (sparse) when its share is below ratio x the median over terms with at least min_images images,
    and a one-sided binomial test against the median share gives p < level, so that a term with few images is
    not flagged by chance. Returns SPARSE_COLUMNS, one row per term, in the input's order.
    """
    from scipy import stats  # imported on use: `import gimg` stays fast

    if not 0 < ratio <= 1 or not 0 < level < 1:
        raise ValueError(f"ratio must be in (0, 1] and level in (0, 1), not {ratio} and {level}")
    images = terms["images"].to_numpy(dtype=int)
    with_face = terms["images_with_face"].to_numpy(dtype=int)
    rate = np.where(images > 0, with_face / np.maximum(images, 1), np.nan)
    counted = images >= min_images
    median = float(np.median(rate[counted])) if counted.any() else math.nan
    testable = 0 < median < 1
    p_values = [
        stats.binomtest(int(k), int(n), median, alternative="less").pvalue if n > 0 and testable else math.nan
        for k, n in zip(with_face, images)
    ]
    table = pd.DataFrame({"term": terms["term"].to_numpy(), "images": images, "images_with_face": with_face,
                          "face_rate": rate, "median_rate": median, "p_value": p_values})
    table["sparse"] = (table["face_rate"] < ratio * median) & (table["p_value"] < level)
    return table[SPARSE_COLUMNS]
