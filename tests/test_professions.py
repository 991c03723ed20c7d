"""professions.csv and professions.txt: their shape, and their agreement with the BLS 2022 table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gimg.layout import read_terms

REPO = Path(__file__).resolve().parents[1]
CENSUS = REPO / "src" / "gimg" / "data" / "professions.csv"

COLUMNS = ["term", "bls_occupation", "bls_share_women", "bls_employed_thousands", "source"]


@pytest.fixture(scope="module")
def professions() -> pd.DataFrame:
    return pd.read_csv(CENSUS, keep_default_na=False)


@pytest.fixture(scope="module")
def bls(fixtures) -> pd.DataFrame:
    return pd.read_csv(fixtures / "bls" / "cpsaat11_2022_clean.csv").set_index("occupation")


def test_columns_and_size(professions):
    assert list(professions.columns) == COLUMNS
    assert len(professions) >= 100
    assert professions["term"].is_unique
    assert (professions["term"].str.strip() == professions["term"]).all()
    assert (professions["term"] != "").all()
    assert (professions["source"] == "BLS CPS 2022 cpsaat11").all()


def test_shares_are_fractions_covering_the_range(professions):
    shares = professions["bls_share_women"]
    assert shares.between(0, 1).all()
    assert shares.min() <= 0.03
    assert shares.max() >= 0.95
    assert (professions["bls_employed_thousands"] > 0).all()


def test_terms_file_matches_csv(professions):
    assert read_terms(REPO / "professions.txt") == professions["term"].tolist()
    assert (REPO / "professions.txt").read_text(encoding="utf-8").startswith("#")


def test_every_occupation_is_a_detailed_bls_row_with_that_share(professions, bls):
    rows = bls.loc[professions["bls_occupation"]]
    assert not rows["is_aggregate"].any()
    assert rows["pct_women"].notna().all()
    assert (professions["bls_share_women"].to_numpy() == (rows["pct_women"] / 100).round(3).to_numpy()).all()
    assert (professions["bls_employed_thousands"].to_numpy() == rows["total_employed_thousands"].to_numpy()).all()


@pytest.mark.parametrize("term, occupation", [("nurse", "Registered nurses"), ("CEO", "Chief executives")])
def test_terms_a_person_types(professions, term, occupation):
    assert professions.set_index("term").loc[term, "bls_occupation"] == occupation


def test_build_script_reproduces_the_files(fixtures, tmp_path):
    bls_csv = fixtures / "bls" / "cpsaat11_2022_clean.csv"
    script = REPO / "scripts" / "build_professions.py"
    census = tmp_path / "professions.csv"
    subprocess.run([sys.executable, script, "--bls", bls_csv, "--out", tmp_path, "--census", census], check=True,
                   capture_output=True)
    for built, shipped in ((census, CENSUS), (tmp_path / "professions.txt", REPO / "professions.txt")):
        assert built.read_bytes() == shipped.read_bytes(), f"{shipped} is stale: rerun the script"
