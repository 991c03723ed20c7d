"""Terms whose images hold far fewer faces than the study's median are flagged as possible decoys."""

from __future__ import annotations

import pandas as pd
import pytest

from gimg.screening import SPARSE_COLUMNS, flag_sparse_terms


def test_only_a_term_far_and_surely_below_the_median_is_flagged():
    terms = pd.DataFrame({
        "term": [f"t{i}" for i in range(8)] + ["decoy", "small", "lower", "empty"],
        "images": [100] * 8 + [100, 3, 100, 0],
        "images_with_face": [60] * 8 + [5, 0, 40, 0],
    })
    table = flag_sparse_terms(terms)
    assert list(table.columns) == SPARSE_COLUMNS and table["term"].tolist() == terms["term"].tolist()
    assert table["median_rate"].iloc[0] == 0.6  # the terms with at least 10 images: eight at 0.6, 0.05, 0.4
    flagged = table.set_index("term")
    assert flagged["sparse"].tolist() == [False] * 8 + [True, False, False, False]
    assert flagged.loc["decoy", "p_value"] < 1e-20
    assert flagged.loc["small", "p_value"] == pytest.approx(0.4**3)  # 0 of 3 is not unlikely enough
    assert flagged.loc["lower", "face_rate"] == 0.4  # below the median, but not by half


@pytest.mark.parametrize("options", [{"ratio": 0}, {"ratio": 1.5}, {"level": 1}])
def test_bad_thresholds_are_refused(options):
    with pytest.raises(ValueError, match="ratio must be in"):
        flag_sparse_terms(pd.DataFrame({"term": ["a"], "images": [1], "images_with_face": [1]}), **options)
