"""Studies coded by people: Kay et al.'s (2015) published figures reproduced from their own codes, and bad codes
or census tables refused in one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from browser import CHROMEDRIVER, figure_drew, headless_chromium

from gimg.analyze import read_census
from gimg.coded import analyze_codes, check_codes, compare_shares
from gimg.errors import GimgError
from gimg.options import AnalyzeOptions


@pytest.fixture(scope="module")
def kay(fixtures):
    """Kay et al.'s codes analysed against their 2012 census shares, as `gimg analyze --codes` would."""
    folder = fixtures / "kay2015"
    codes = pd.read_csv(folder / "codes.csv")
    census = read_census(folder / "census_2012.csv")
    published = pd.read_csv(folder / "filtered_bls_occupations_with_search_gender_proportions.csv")
    return analyze_codes(codes, census), published


def test_kay_per_term_shares_are_the_published_table(kay):
    study, published = kay
    table = study.terms.set_index("term")
    expected = published.set_index("search_term")
    assert sorted(table.index) == sorted(expected.index) and len(table) == 45
    assert table["images"].sum() == 3262
    assert (table.loc[expected.index, "images"] == expected["search_n"]).all()
    assert np.allclose(table.loc[expected.index, "share_women"], expected["search_p_women"], atol=1e-8)
    assert np.allclose(table.loc[expected.index, "census_share_women"], expected["bls_p_women"])
    assert table["compared"].all() and study.without_census == []


def test_kay_census_comparison_is_the_published_one(kay):
    comparison = kay[0].comparison
    assert comparison.terms == 45
    assert round(comparison.pearson_r, 3) == 0.937  # published: r = 0.937
    assert round(100 * comparison.mean_difference, 1) == -3.9  # published: -3.9 points
    low, high = comparison.pearson_ci
    assert low < comparison.pearson_r < high <= 1
    assert comparison.mean_difference_ci[0] < comparison.mean_difference < comparison.mean_difference_ci[1]


def test_kay_exaggeration_model_is_the_published_one(kay):
    model = kay[0].exaggeration
    assert model.note == "" and model.terms == 45 and model.degrees_of_freedom == 43
    # Published: intercept -0.26, 95% CI [-0.45, -0.07], t(43) = -2.68, p < 0.05; odds ratio 0.77 [0.64, 0.93].
    assert round(model.intercept, 2) == -0.26
    assert tuple(round(value, 2) for value in model.intercept_ci) == (-0.45, -0.07)
    assert round(model.intercept_t, 2) == -2.68 and model.intercept_p < 0.05
    assert round(np.exp(model.intercept), 2) == 0.77
    assert tuple(round(float(np.exp(value)), 2) for value in model.intercept_ci) == (0.64, 0.93)
    # Published: "about 45% of the images" at 50% women, 95% CI [38.9%, 48.2%].
    point, low, high = model.share_at(0.5)
    assert (round(100 * low, 1), round(100 * high, 1)) == (38.9, 48.2)
    assert low < 0.45 < high and round(100 * point, 1) == 43.5
    assert model.sentence() == "an occupation with 50% women appears with 43.5% women in search (95% CI 38.9% to " \
                               "48.2%; 45 terms)"
    assert model.slope_ci[0] > 4  # the S-curve of stereotype exaggeration


def test_kay_ranks(kay):
    study = kay[0]
    bands = study.bands.set_index("band")
    assert list(bands.index) == ["1-10", "11-20", "21-50", "51-100"]  # Google's top 100: no 101+
    assert round(100 * bands.loc["1-10", "share_women"], 1) == 36.3
    assert round(100 * bands.loc["51-100", "share_women"], 1) == 39.9
    assert bands["images"].sum() == 3262 and (bands["terms"] == 45).all()
    for band in bands.itertuples():
        assert band.share_low < band.share_women < band.share_high
    test = study.rank_test
    assert test.terms == 44  # roofer's results show no woman
    assert round(test.mean_difference, 1) == 3.7
    assert test.ci[0] < test.mean_difference < test.ci[1]
    assert 0 < test.p_value < 1 and 0 < test.van_elteren_p < 1
    roofer = study.terms.set_index("term").loc["roofer"]
    assert np.isnan(roofer["first_woman_rank"]) and roofer["first_man_rank"] == 1


def test_kay_fixture_is_the_published_data(shared_data, fixtures):
    source = shared_data / "kay2015"
    images = pd.read_csv(source / "gender_labelled_images.csv")
    rebuilt = pd.DataFrame(
        {"term": images["search_term"], "rank": images["order"] + 1, "gender": images["image_gender"]}
    )
    pd.testing.assert_frame_equal(pd.read_csv(fixtures / "kay2015" / "codes.csv"), rebuilt)
    occupations = pd.read_csv(source / "filtered_bls_occupations.csv").set_index("search_term")
    census = pd.read_csv(fixtures / "kay2015" / "census_2012.csv").set_index("term")
    assert np.allclose(census["bls_share_women"], occupations.loc[census.index, "p_women"] / 100)
    assert (census["bls_occupation"] == occupations.loc[census.index, "occupation"]).all()
    assert np.allclose(census["bls_employed_thousands"], occupations.loc[census.index, "n"] / 1000)
    assert (fixtures / "kay2015" / "LICENSE.txt").read_bytes() == (source / "LICENSE.txt").read_bytes()


GOOD = {"term": ["nurse", "nurse"], "rank": [1, 2], "gender": ["woman", "Man "]}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"gender": None}, "codes lack column(s) gender: give term, rank, gender (woman/man), url optional"),
        ({"rank": [0, 1]}, "codes row 1: rank 0 is not a whole number >= 1 (ranks count from 1"),
        ({"rank": [1, 2.5]}, "codes row 2: rank 2.5 is not a whole number >= 1"),
        ({"rank": [1, "top"]}, "codes row 2: rank 'top' is not a whole number >= 1"),
        ({"gender": ["woman", "unsure"]}, "codes have gender(s) 'unsure': write woman or man"),
        ({"rank": [3, 3]}, "codes list rank 3 of 'nurse' more than once: keep one row per image"),
        ({"term": [], "rank": [], "gender": []}, "codes have no rows"),
    ],
)
def test_bad_codes_are_refused_in_one_line(change, message):
    table = {**GOOD, **change}
    codes = pd.DataFrame({name: values for name, values in table.items() if values is not None})
    with pytest.raises(GimgError) as caught:
        check_codes(codes)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_codes_are_normalised():
    codes = pd.DataFrame({"term": [" pilot", "pilot", "nurse"], "rank": [3.0, 1, 2],
                          "gender": ["MAN", "female", "woman"], "url": ["u3", "u1", "u2"]})
    checked = check_codes(codes)
    assert checked.to_dict("list") == {"term": ["nurse", "pilot", "pilot"], "rank": [2, 1, 3],
                                       "woman": [True, True, False], "url": ["u2", "u1", "u3"]}


def _study(women_by_term: dict[str, list[int]]) -> pd.DataFrame:
    rows = [{"term": term, "rank": rank, "gender": "woman" if woman else "man"}
            for term, flags in women_by_term.items() for rank, woman in enumerate(flags, start=1)]
    return pd.DataFrame(rows)


def test_terms_without_census_or_with_few_images_stay_out_of_the_comparison():
    codes = _study({"nurse": [1] * 18 + [0] * 4, "pilot": [0] * 20 + [1] * 2, "judge": [1, 0] * 11,
                    "cook": [1, 0, 0] * 8, "poet": [1, 0] * 5})
    census = pd.DataFrame({"term": ["nurse", "pilot", "judge", "poet"], "bls_share_women": [0.9, 0.05, 0.5, 0.4]})
    study = analyze_codes(codes, census, AnalyzeOptions(resamples=200), permutations=99)
    terms = study.terms.set_index("term")
    assert study.without_census == ["cook"]
    assert terms.loc["poet", "too_few_images"] and not terms.loc["poet", "compared"]
    assert terms["compared"].sum() == 3 == study.comparison.terms == study.exaggeration.terms
    assert study.rank_test.terms == 5  # ranks use every term


@pytest.mark.parametrize(
    "census, message",
    [
        (pd.DataFrame({"term": ["nurse"], "share": [0.9]}), "census lacks column(s) bls_share_women"),
        (pd.DataFrame({"term": ["nurse"], "bls_share_women": [90]}), "census has bls_share_women outside [0, 1]"),
        (pd.DataFrame({"term": ["nurse", "nurse"], "bls_share_women": [0.9, 0.8]}),
         "census lists terms more than once (nurse)"),
    ],
)
def test_bad_census_is_refused_in_one_line(census, message):
    with pytest.raises(GimgError) as caught:
        analyze_codes(pd.DataFrame(GOOD), census, AnalyzeOptions(resamples=100), permutations=99)
    assert str(caught.value).startswith(message)


def test_too_few_terms_give_no_correlation_and_say_why():
    rng = np.random.default_rng(1)
    replicates = np.array([[0.2] * 100, [0.6] * 100])
    comparison = compare_shares(np.array([0.1, 0.5]), np.array([0.2, 0.6]), replicates, rng)
    assert np.isnan(comparison.pearson_r) and comparison.note.startswith("only 2 term(s) can be compared with the census")
    assert comparison.mean_difference == pytest.approx(0.1)


def test_kay_published_figures_through_gimg_analyze_codes(gimg, fixtures, tmp_path):
    """`gimg analyze --codes` on Kay et al.'s own codes, with their 2012 census, reproduces their table."""
    import json

    folder = fixtures / "kay2015"
    code, out, err = gimg("analyze", "--codes", folder / "codes.csv", "--census", folder / "census_2012.csv",
                          "--out", tmp_path)
    assert code == 0, err
    assert "45 terms compared with the census; Pearson r = 0.937" in out  # published: r = 0.937
    assert "mean difference search - census = -0.039" in out  # published: -3.9 points
    sentence = "an occupation with 50% women appears with 43.5% women in search (95% CI 38.9% to 48.2%; 45 terms)"
    assert sentence in out
    analysis = json.loads((tmp_path / "analysis" / "analysis.json").read_text())
    assert analysis["coded"] is True and analysis["evaluation"] is None
    assert round(analysis["pearson_r"], 3) == 0.937 and round(100 * analysis["mean_difference"], 1) == -3.9
    model = analysis["exaggeration"]
    low, high = model["share_at_50_wald_ci"]
    assert low < 0.45 < high and low < model["share_at_50"] < high  # published: about 45%, [38.9%, 48.2%]
    bands = pd.read_csv(tmp_path / "analysis" / "rank_bands.csv").set_index("band")
    assert round(100 * bands.loc["1-10", "share_women"], 1) == 36.3
    assert (bands["corrected_share"] == bands["share_women"]).all(), "codes are not corrected"
    test = analysis["rank_test"]
    assert test["terms"] == 44 and round(test["mean_difference"], 1) == 3.7
    html = (tmp_path / "analysis" / "report.html").read_text()
    assert sentence in html and "coded by people" in html and "The faces of each term" not in html
    ranks = [line for line in out.splitlines() if "ranks:" in line]
    print(f"\nKay et al. 2015 through gimg analyze --codes: {ranks[0]}")
    if CHROMEDRIVER.exists():
        from selenium.webdriver.common.by import By

        with headless_chromium(tmp_path / "profile") as driver:
            driver.get((tmp_path / "analysis" / "report.html").resolve().as_uri())
            text = driver.find_element(By.TAG_NAME, "body").text
            assert sentence in text and "van Elteren" in text and "Stereotype exaggeration" in text
            figure_drew(driver, driver.find_element(By.CSS_SELECTOR, 'img[alt^="Share of women by rank band"]'))
            figure_drew(driver, driver.find_element(By.CSS_SELECTOR, 'img[alt^="Scatter plot"]'))
            driver.save_screenshot(str(tmp_path / "kay.png"))
