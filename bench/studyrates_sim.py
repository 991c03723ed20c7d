"""Print the simulation figures behind tests/test_studyrates.py: the estimator's bias and its pitfalls' bias.

Usage: python bench/studyrates_sim.py   (about 5 s; the same simulated studies as the tests, seed 20261124)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402
import test_studyrates as t  # noqa: E402

from gimg.correction import rogan_gladen  # noqa: E402
from gimg.studyrates import correct_with_study  # noqa: E402

rng = np.random.default_rng(20261124)
runs = []
for _ in range(t.SIMULATIONS):
    study = t.simulate(rng)
    cells, raw = t.sample_cells(study, rng)
    runs.append((study, raw, t.study_rates(cells), t.term_raw_shares(study)))
for rate in ("sensitivity", "specificity", "nonperson_share"):
    print(f"{rate}: mean error {np.mean([getattr(p, rate) - s.realized()[rate] for s, _, p, _ in runs]):+.4f}")
naive = [r["female"]["female"] / (r["female"]["female"] + r["male"]["female"]) for _, r, _, _ in runs]
print(f"sensitivity counted from the sample without stratum sizes: {np.mean(naive):.3f}, realized "
      f"{np.mean([s.realized()['sensitivity'] for s, *_ in runs]):.3f}, design {np.mean([p.sensitivity for _, _, p, _ in runs]):.3f}")
per_class, direct = [], []
for s, _, p, shares in runs:
    called = np.array([s.called_female[s.term == term].mean() for term in range(len(t.THETAS))])
    people_female = called * (1 - p.nonperson_given_female)
    people = people_female / (people_female + (1 - called) * (1 - p.nonperson_given_male))
    per_class.append(rogan_gladen(people, p.sensitivity, p.specificity))
    person = s.truth != "nonperson"
    ppv = (s.truth[s.called_female & person] == "female").mean()
    omission = (s.truth[~s.called_female & person] == "female").mean()
    own = np.array([s.called_female[(s.term == term) & person].mean() for term in range(len(t.THETAS))])
    direct.append(own * ppv + (1 - own) * omission)
rows = {
    "truth": t.THETAS,
    "study rates (s*a removed, Rogan-Gladen)": np.mean([correct_with_study(sh, p) for _, _, p, sh in runs], axis=0),
    "non-person faces ignored": np.mean([rogan_gladen(sh, p.sensitivity, p.specificity) for _, _, p, sh in runs], axis=0),
    "non-person share removed per predicted class": np.mean(per_class, axis=0),
    "P(female | predicted) applied to the term": np.mean(direct, axis=0),
}
for name, values in rows.items():
    print(f"{name:46s} " + " ".join(f"{value:.3f}" for value in values))
